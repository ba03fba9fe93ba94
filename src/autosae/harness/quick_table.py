"""What a run_experiment call returns and records: per arm the mean ± std over its quick
seeds, paired deltas against the parent arm with the paired t-test's p, a thinned training
curve, a Markdown table, and the compact record SprintState.quick_runs keeps
(autosae.harness.arms runs the arms)."""

from __future__ import annotations

import json
import math
import os
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.harness.arms import COPY_BYTES, CURVE_FIELDS, CURVE_POINTS, text
from autosae.harness.quick import COMPARED
from autosae.harness.validation import quick_seed
from autosae.records import is_ok

if TYPE_CHECKING:
    from autosae.bench.profiles import Profile
    from autosae.harness.arms import Arm, Job


# -- statistics ------------------------------------------------------------------------------


def stats(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def paired(a: list[float], b: list[float]) -> dict:
    """The paired difference a - b (same quick seeds): mean, std, pairs and the two-sided p of
    the paired t-test (None with fewer than 2 pairs)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired: two lists of the same, non-zero length")
    d = [x - y for x, y in zip(a, b, strict=True)]
    out = stats(d)
    n, mean, sd = len(d), out["mean"], out["std"]
    if n < 2:
        p = None
    elif sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        from scipy.special import stdtr  # as sprint.verdict.welch_p: cheaper to import than scipy.stats

        p = float(2 * stdtr(n - 1, -abs(mean / (sd / math.sqrt(n)))))
        p = p if math.isfinite(p) else None
    return {**out, "p": p}


def rounded(x):
    return float(f"{x:.6g}") if isinstance(x, float) and math.isfinite(x) else x


# -- what comes back -------------------------------------------------------------------------


def read_log(seed_dir: Path) -> list[dict]:
    """The harness's fields of a seed's train_log.jsonl (bounded, no link followed)."""
    try:
        fd = os.open(seed_dir / "train_log.jsonl", os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, errors="replace") as f:
            lines = f.read(COPY_BYTES).splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("samples"), int):
            row = {"samples": entry["samples"]}
            for name in CURVE_FIELDS:
                v = entry.get(name)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    row[name] = float(v)
            rows.append(row)
    return rows


def seed_dir(job: Job) -> Path | None:
    if job.folder is None:
        return None
    return job.folder / f"seed_{quick_seed(job.seed)}"


def curve(jobs: list[Job]) -> dict | None:
    """The arm's training curve, the mean over its seeds at the samples all of them logged,
    thinned to CURVE_POINTS (the last included)."""
    logs = [read_log(d) for j in jobs if is_ok(j.results or {}) and (d := seed_dir(j))]
    logs = [{r["samples"]: r for r in log} for log in logs if log]
    if not logs:
        return None
    common = sorted(set.intersection(*(set(log) for log in logs)))
    if not common:
        return None
    step = max(1, math.ceil(len(common) / CURVE_POINTS))
    picked = common[::step][: CURVE_POINTS - 1] if len(common) > CURVE_POINTS else common
    if picked[-1] != common[-1]:
        picked = [*picked, common[-1]]
    out: dict[str, list] = {"samples": picked}
    for name in CURVE_FIELDS:
        values = []
        for s in picked:
            got = [log[s][name] for log in logs if name in log[s]]
            values.append(rounded(statistics.fmean(got)) if got else None)
        out[name] = values
    return out


def seed_metrics(job: Job) -> dict | None:
    results = job.results or {}
    if not is_ok(results):
        return None
    rows = [r for r in results.get("per_seed") or [] if is_ok(r)]
    return rows[0] if rows else None


def arm_rows(arms: list[Arm], jobs: list[Job], seeds: list[int]) -> list[dict]:
    """The table's rows in the schema of SprintState.quick_runs."""
    by_arm = {id(a): [j for j in jobs if j.arm is a] for a in arms}
    parent = next((a for a in arms if a.source == "parent" and a.error is None), None)
    rows = []
    for arm in arms:
        row: dict = {"arm": arm.label, "source": arm.source, "options": arm.options}
        mine = by_arm[id(arm)]
        failed = [j for j in mine if not is_ok(j.results or {})]
        if arm.error is not None:
            row.update(status="failed", reason=arm.error)
        elif failed:
            j = failed[0]
            row.update(status="failed", reason=text(f"seed {j.seed}: {(j.results or {}).get('reason')}", 1000))
        else:
            row["status"] = "ok"
        values = {j.seed: seed_metrics(j) for j in mine}
        row["metrics"] = {
            m: {k: rounded(v) for k, v in stats(vals).items()}
            for m in COMPARED
            if (vals := [float(r[m]) for r in values.values() if r and isinstance(r.get(m), (int, float))])
        }
        if parent is not None and arm is not parent:
            theirs = {j.seed: seed_metrics(j) for j in by_arm[id(parent)]}
            deltas = {}
            for m in COMPARED:
                pairs = [
                    (values[s][m], theirs[s][m]) for s in seeds if values.get(s) and theirs.get(s) and m in values[s]
                ]
                if pairs:
                    d = paired([float(a) for a, _ in pairs], [float(b) for _, b in pairs])
                    deltas[m] = {k: rounded(v) for k, v in d.items()}
            row["delta_vs_parent"] = deltas
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The table as Markdown: f1, mcc, l0 and dead latents, mean ± std (n), and Δ f1 vs the parent."""
    shown = ("f1", "mcc", "l0", "dead_latents", "explained_variance")

    def cell(s: dict | None) -> str:
        return f"{s['mean']:.4g} ± {s['std']:.2g} ({s['n']})" if s else "—"

    def delta(d: dict | None) -> str:
        if not d:
            return "—"
        p = "n/a" if d.get("p") is None else f"{d['p']:.2g}"
        return f"{d['mean']:+.4g} ± {d['std']:.2g} (n={d['n']}, p={p})"

    head = "| arm | status | " + " | ".join(shown) + " | Δf1 vs parent | Δmcc vs parent |"
    lines = [head, "|" + "---|" * (len(shown) + 4)]
    for r in rows:
        label = r["arm"].replace("|", "/")
        ds = r.get("delta_vs_parent")
        lines.append(
            f"| {label} | {r['status']} | "
            + " | ".join(cell(r["metrics"].get(m)) for m in shown)
            + f" | {delta((ds or {}).get('f1')) if ds is not None else 'parent' if r['source'] == 'parent' else '—'}"
            + f" | {delta((ds or {}).get('mcc')) if ds is not None else '—'} |"
        )
    return "\n".join(lines)


def record(n: int, profile: Profile, seeds: list[int], wall_s: float, rows: list[dict], curves: dict) -> dict:
    """One call as SprintState.quick_runs holds it."""
    return {
        "n": n,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile.name,
        "training_samples": profile.constraints.training_samples,
        "seeds": list(seeds),
        "wall_s": round(wall_s, 2),
        "arms": rows,
        "curves": curves,
    }
