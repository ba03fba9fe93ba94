"""The agent's `run_experiment`: quick, uncounted harness runs of several arms (the variant,
its parent, reference variants, past sprints, worktree files, each with knobs for build())
on several quick seeds, on the validation samples (never the counted ones: see
harness.quick), returned as a table with paired deltas against the parent (harness.arms).

The engine hands over what it knows of the sprint (its profile, TASK.md's overrides and
quick settings, its parent, where runs go, how they run, the worktree the copies go to and
where each call is recorded); what the experiment returns is all the agent sees."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError
from autosae.harness.quick import FULL_BUDGET_SAMPLES

if TYPE_CHECKING:
    from autosae.harness.run import RunOptions

MAX_EXPERIMENT_S = 1800.0
"""The most one run_experiment call may take, whatever the profile's time limit."""
NOTE = (
    "uncounted: quick seeds and validation samples that no counted run uses; deltas are paired "
    "(same quick seeds) against the parent arm, p from the paired t-test; the verdict comes "
    "from the counted run"
)


def experimenter(
    sprint_profile: str,
    model_seed: int | None,
    overrides: list[str],
    parent_name: str,
    parent_variant: Path | None,
    out_root: Path,
    options: Callable[..., RunOptions],
    *,
    worktree: Path | None = None,
    project_root: Path | None = None,
    full_budget_samples: int = FULL_BUDGET_SAMPLES,
    default_seeds: int = 3,
    on_record: Callable[[dict], None] | None = None,
) -> Callable[..., dict]:
    """`run_experiment` for one sprint on `sprint_profile` (TASK.md's `model_seed` and profile
    `overrides` apply to that profile only). `parent_variant` is the parent's variant.py (None
    when unknown); each call gets a numbered folder under `out_root`, and its runs are copied
    to `worktree`/.quick/<n>/ for the agent to read; `options(seeds=, time_limit_s=)` gives the
    RunOptions of an uncounted run; `project_root` is where past sprints' variants are read;
    `on_record(record)` receives each call's compact record (SprintState.quick_runs). A
    failed experiment is an answer ({"status": "error", "reason": ...}), never an exception."""
    from autosae.bench.profiles import get_profile
    from autosae.harness import arms as A
    from autosae.harness import quick_copies as C
    from autosae.harness import quick_table as T
    from autosae.harness.quick import cached_parent, clamp_samples, full_budget, logged_metrics
    from autosae.harness.validation import EVAL_SET, VALIDATION_EVAL_SEED, quick_seed

    numbering = threading.Lock()

    def number() -> tuple[int, Path]:
        with numbering:
            out_root.mkdir(parents=True, exist_ok=True)
            n = len(list(out_root.iterdir()))
            while (out_root / f"{n:03d}").exists():
                n += 1
            (out_root / f"{n:03d}").mkdir()
            return n, out_root / f"{n:03d}"

    def worktree_path(path: str) -> Path:
        """A worktree file for a caller without its own confinement (the tools pass theirs):
        resolved, links included, and refused outside the worktree."""
        if worktree is None:
            raise AutosaeError("worktree files are not known here")
        root = worktree.resolve()
        target = (root / path).resolve()
        if root not in target.parents:
            raise AutosaeError(f"{path[:200]}: outside the worktree")
        return target

    def experiment(
        variant: Path,
        samples: int | None = None,
        profile: str | None = None,
        seed: int = 0,
        parent: bool | None = None,
        seeds: int | None = None,
        arms: list | None = None,
        resolve_path: Callable[[str], Path] | None = None,
    ) -> dict:
        name = profile or sprint_profile
        own = name == sprint_profile
        extra = overrides if own else []
        try:
            full = get_profile(name, model_seed if own else None, extra)
            cheap = full_budget(full.constraints, full_budget_samples)
            samples = clamp_samples(samples, full.constraints, full_budget_samples)
            short = get_profile(
                name,
                model_seed if own else None,
                [o for o in extra if not o.startswith("training_samples=")] + [f"training_samples={samples}"],
            )
            quick_seeds = A.check_seeds(seeds if seeds is not None else (default_seeds if cheap else 1), seed)
            parent_file = parent_variant if parent_variant and parent_variant.is_file() else None
            skipped = None
            if arms is None:
                arms = ["variant"]
                if parent_file is not None and parent is not False:
                    if parent or cheap or all(cached_parent(parent_file, short, [s]) for s in quick_seeds):
                        arms.append("parent")
                    else:
                        skipped = (
                            f"the parent was not trained: {full.constraints.training_samples:,} training samples "
                            f"is more than the {full_budget_samples:,} up to which it is by default; "
                            'ask for it (parent: true or arms: ["variant", "parent"])'
                        )
            chosen = A.resolve_arms(arms, variant, resolve_path or worktree_path, project_root)
            for arm in chosen:
                if arm.source == "parent":
                    if parent_file is None:
                        arm.error = "this sprint's parent has no variant to train"
                    else:
                        arm.variant = parent_file
            n, out = number()
            opts = options(seeds=quick_seeds, time_limit_s=min(short.time_limit_s, MAX_EXPERIMENT_S))
            started = time.monotonic()
            jobs = A.run_arms(chosen, quick_seeds, short, out, opts, MAX_EXPERIMENT_S)
            wall = time.monotonic() - started
        except AutosaeError as exc:
            return {"status": "error", "reason": str(exc)}
        rows = T.arm_rows(chosen, jobs, quick_seeds)
        curves = {a.label: c for a in chosen if (c := T.curve([j for j in jobs if j.arm is a])) is not None}
        record = T.record(n, short, quick_seeds, wall, rows, curves)
        if on_record is not None:
            on_record(record)
        run_folder = str(out)
        if worktree is not None:
            try:
                run_folder = C.copy_runs(worktree, n, jobs)
            except OSError as exc:
                run_folder = f"(not copied to the worktree: {exc.strerror or exc})"
        oks = [r["status"] == "ok" for r in rows]
        report = {
            "status": "ok" if all(oks) else "failed" if not any(oks) else "partial",
            "run_folder": run_folder,
            "profile": short.name,
            "training_samples": short.constraints.training_samples,
            "full_budget": samples == full.constraints.training_samples,
            "eval_set": f"{EVAL_SET} (public eval seed {VALIDATION_EVAL_SEED}; disjoint from the counted runs' "
            "eval samples)",
            "seeds": quick_seeds,
            "train_seeds": [quick_seed(s) for s in quick_seeds],
            "wall_s": record["wall_s"],
            "sandboxed": "yes"
            if any(((j.results or {}).get("sandbox") or {}).get("enabled") for j in jobs)
            else "NO"
            if jobs
            else "n/a",
            "table": T.markdown(rows),
            "arms": rows,
            "curves": curves,
            "note": NOTE,
        }
        if skipped:
            report["parent_note"] = skipped
        # the variant's own logged metrics and a failed run's log tail, for the arms it wrote
        mine = [j for j in jobs if not j.arm.cached]
        report["logged"] = {
            f"{j.arm.label} seed {j.seed}": logged_metrics(T.seed_dir(j))
            for j in mine
            if T.seed_dir(j) is not None and (j.results or {}).get("status") == "ok"
        }
        tails = {
            j.arm.label: ((j.results or {}).get("log_tail") or "")[-3000:]
            for j in mine
            if (j.results or {}).get("status") != "ok" and (j.results or {}).get("log_tail")
        }
        if tails:
            report["log_tail"] = tails
        compat(report, rows, chosen, jobs, parent_name)
        return report

    return experiment


def compat(report: dict, rows: list[dict], chosen, jobs, parent_name: str) -> None:
    """The single-run fields the tool has always returned: the variant arm's `metrics`, the
    `parent` beside it and `delta_vs_parent` (means)."""
    means = {r["source"]: {m: s["mean"] for m, s in r["metrics"].items()} for r in reversed(rows)}
    mine = next((r for r in rows if r["source"] == "variant"), rows[0] if rows else None)
    if mine is None:
        return
    report["metrics"] = means.get(mine["source"], {})
    if mine["status"] != "ok":
        report["reason"] = mine.get("reason")
    parent = next((r for r in rows if r["source"] == "parent"), None)
    if parent is not None:
        arm = next(a for a in chosen if a.source == "parent")
        report["parent"] = {
            "variant": parent_name,
            "status": parent["status"],
            "cached": all(j.cached for j in jobs if j.arm is arm) and any(j.arm is arm for j in jobs),
            "metrics": means.get("parent", {}),
        }
        if parent["status"] != "ok":
            report["parent"]["reason"] = parent.get("reason")
        report["delta_vs_parent"] = {m: d["mean"] for m, d in (mine.get("delta_vs_parent") or {}).items()}
