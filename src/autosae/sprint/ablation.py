"""The ablating phase: what carries a new best's gain.

The implementer declares its change as separable parts in sprints/<id>/parts.json (the
format: autosae.harness.parts). When the sprint is the confirmed new best (or a new best with held-out
verification off), each part-removed variant is trained as a counted run on TASK.md's
`ablation` seeds and budget, beside the full variant at the same setting, and judged by Welch's
test: load-bearing (removing it significantly hurts), parasitic (removing it significantly
helps), unclear otherwise. The table goes into the verdict (so the report, the digest and the
conclusion see it); the notebook gets a finding per load-bearing part and a "simplify"
candidate per parasitic one.

Resumable like every phase: each part's run folder is reused when the harness sealed it for
the same variant and knobs, so a kill mid-phase retrains only what had not finished.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import ConstraintBreach, VariantFailed
from autosae.harness.parts import PARTS_FILE, read_parts
from autosae.harness.seal import read_verified
from autosae.report.escape import one_line
from autosae.sprint.common import crash_point
from autosae.sprint.verdict import Reference, welch_p

if TYPE_CHECKING:
    from autosae.sprint.common import Sprint


def ablate(s: Sprint) -> None:
    """Each declared part of a confirmed new best trained removed (see the module's doc)."""
    state, cfg = s.state, s.cfg
    v = state.verdict
    if not v.get("new_best") or v.get("confirmed") is False or "ablation" in v:
        return  # not a new best, or ablated before a crash
    if not cfg.ablation.auto:
        s.say("ablating", "skipped: ablation.auto is off in TASK.md")
        return
    _, folder = s.worktree()
    parts, problem = read_parts(folder)
    if problem:
        s.say("ablating", f"refused: {problem}; no ablation")
        v["ablation_note"] = f"refused: {problem}"
        return
    if not parts:
        s.say("ablating", f"skipped: the implementer declared no parts ({PARTS_FILE})")
        return
    seeds = list(range(cfg.ablation.seeds)) if cfg.ablation.seeds else list(state.seeds)
    profile = s.profile
    if cfg.ablation.samples and cfg.ablation.samples != profile.constraints.training_samples:
        constraints = cfg.constraints.model_copy(update={"training_samples": cfg.ablation.samples})
        profile = s.engine.secret_eval(
            cfg.model_copy(update={"profile": state.profile, "constraints": constraints}).build_profile()
        )
    samples = profile.constraints.training_samples
    s.say("ablating", f"{len(parts)} parts removed one at a time, {len(seeds)} seeds, {samples:,} samples")
    root = s.engine.project.runs_dir / f"{state.id}.ablation"
    variant = folder / "variant.py"
    same = seeds == list(state.seeds) and profile is s.profile
    full = read_verified(s.run_dir / "results.json") if same else _run(s, "full", variant, {}, profile, seeds, root)
    mine = Reference.from_results("full", full or {}).values.get(state.objective, [])
    rows = []
    for part in parts:
        path, off = (folder / part["off_file"], {}) if "off_file" in part else (variant, part["off"])
        res = _run(s, part["name"], path, off, profile, seeds, root)
        rows.append(_row(part, res, mine, state.objective, cfg.significance))
        crash_point("ablating")
    v["ablation"] = {"objective": state.objective, "seeds": seeds, "samples": samples, "rows": rows}
    for r in rows:
        s.say("ablating", f"{r['part']}: {r['class']}")


def _run(s: Sprint, name: str, variant: Path, off: dict, profile, seeds: list[int], root: Path) -> dict | None:
    """One counted run of `variant` with knobs `off`, reused where sealed before."""
    from autosae.harness.run import run_variant, sha256_file

    out = root / name
    done = read_verified(out / "results.json")
    if (
        done
        and done.get("status") not in (None, "running")
        and done.get("variant_sha256") == sha256_file(variant)
        and (done.get("variant_options") or {}) == off
    ):
        s.say("ablating", f"{name}: reusing the run recorded before the interruption")
        return done
    shutil.rmtree(out, ignore_errors=True)
    opts = s.engine.run_options(
        s.cfg,
        s.device,
        backend=s.state.backend,
        seeds=seeds,
        variant_options=tuple(sorted(off.items())),
        log=lambda line: s.engine.detail(f"{s.state.id} ablation {name}: {line}"),
    )
    try:
        return run_variant(variant, profile, out, opts)
    except (VariantFailed, ConstraintBreach) as exc:
        s.say("ablating", f"{name}: the run failed: {one_line(str(exc), 200)}")
        return read_verified(out / "results.json")


def _row(part: dict, res: dict | None, mine: list[float], objective: str, alpha: float) -> dict:
    ref = Reference.from_results(part["name"], res or {})
    theirs = ref.values.get(objective, [])
    delta = statistics.fmean(mine) - statistics.fmean(theirs) if mine and theirs else None
    p = welch_p(mine, theirs) if mine and theirs else None
    if delta is None:
        kind = "failed"
    elif p is not None and p < alpha:
        kind = "load-bearing" if delta > 0 else "parasitic"
    else:
        kind = "unclear"
    return {
        "part": part["name"],
        "what": part["what"],
        "delta": delta,
        "p": p,
        "class": kind,
        "n": len(theirs),
        "f1": ref.stat("f1"),
        "mcc": ref.stat("mcc"),
    }


def notebook_entries(state) -> list[dict]:
    """The notebook's entries from a sprint's ablation: each load-bearing part a finding, each
    parasitic one a "simplify" candidate; cited to the sprint."""
    ablation = (state.verdict or {}).get("ablation") or {}
    name = str(ablation.get("objective") or "f1").upper()
    out = []
    for r in ablation.get("rows") or []:
        if r.get("class") not in ("load-bearing", "parasitic"):
            continue
        what = f" ({r['what']})" if r.get("what") else ""
        numbers = f"{name} {r['delta']:+.4f} with it vs without, p {r['p']:.3g}"
        if r["class"] == "load-bearing":
            text = f"Ablation: the part {r['part']}{what} carries gain in {state.id}'s new best ({numbers})."
            out.append({"section": "findings", "text": text, "sprints": [state.id]})
        else:
            text = f"simplify: remove {r['part']}{what} from {state.id}: removing it helped ({numbers})."
            out.append({"section": "candidates", "text": text, "sprints": [state.id]})
    return out
