"""The verdict on a sprint: its per-seed scores against its parent's, with a Welch t-test at
TASK.md's significance and a noise floor, plus the no-op check.

    improved / worse   the difference from the parent is significant (p < alpha)
    no change          |delta| is within the noise floor (the larger of the two seed stds),
                       or the sprint behaves exactly like its parent (a no-op)
    inconclusive       a difference beyond the noise floor that the seeds cannot confirm, or
                       fewer than 2 seeds on a side (no test, and no noise floor either)
    failed             the run did not produce scores

With fewer than 2 seeds on a side the noise floor is not a number: the verdict records
`noise_floor: None` and `noise_floor_note: "not measurable (n = 1)"`, never a 0.0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from autosae.records import Verdict, is_ok, ok_seeds


@dataclass
class Reference:
    """Something a sprint is compared with: a past sprint or a baseline."""

    id: str
    values: dict[str, list[float]]
    """Per-seed scores: {"f1": [...], "mcc": [...]}."""
    variant_sha256: str | None = None
    probes: dict[str, list[float]] = field(default_factory=dict)
    """Per seed, the harness's probe sketch of the trained SAE (what it computes)."""

    def stat(self, metric: str) -> dict | None:
        vals = self.values.get(metric) or []
        if not vals:
            return None
        return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}

    @classmethod
    def from_results(cls, ref_id: str, results: dict) -> Reference:
        ok = ok_seeds(results)
        return cls(
            ref_id,
            {m: [float(r[m]) for r in ok if m in r] for m in ("f1", "mcc")},
            results.get("variant_sha256"),
            probes_of(results),
        )


def probes_of(results: dict | None) -> dict[str, list[float]]:
    return {str(r["seed"]): r["probe_sketch"] for r in ok_seeds(results) if r.get("probe_sketch")}


def same_sketch(a: list[float], b: list[float], rel: float = 1e-4) -> bool:
    """Equal up to float noise (a GPU's nondeterministic sums), relative to the sketch's scale."""
    if len(a) != len(b) or not a:
        return False
    scale = max(max(abs(x) for x in b), 1e-12)
    return all(abs(x - y) <= rel * scale for x, y in zip(a, b))


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None when either side has fewer than 2 seeds."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a), statistics.variance(b)
    if va == 0 and vb == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    # scipy.stats.ttest_ind(a, b, equal_var=False) computes the same (test_records compares the
    # two); importing scipy.stats costs 0.6 s of CPU more than scipy.special, in every process
    # that scores a sprint
    from scipy.special import stdtr

    vn1, vn2 = va / len(a), vb / len(b)
    df = (vn1 + vn2) ** 2 / (vn1**2 / (len(a) - 1) + vn2**2 / (len(b) - 1))
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(vn1 + vn2)
    p = float(2 * stdtr(df, -abs(t)))  # Student's t survival function, both tails
    return p if math.isfinite(p) else None


def floor_note(n_mine: int, n_theirs: int) -> str | None:
    """Why there is no noise floor: a std needs at least 2 seeds on each side."""
    n = min(n_mine, n_theirs)
    return f"not measurable (n = {n})" if n < 2 else None


def noop_reason(sprint: Reference, parent: Reference) -> str | None:
    if sprint.variant_sha256 and sprint.variant_sha256 == parent.variant_sha256:
        return "variant.py is byte-for-byte the parent's"
    seeds = list(sprint.probes)
    if seeds and all(s in parent.probes and same_sketch(sprint.probes[s], parent.probes[s]) for s in seeds):
        return (
            "the trained SAE computes what the parent's does: its reconstructions of a fixed probe batch "
            "match the parent's, seed for seed"
        )
    same = all(
        len(sprint.values.get(m, [])) == len(parent.values.get(m, [])) > 0
        and all(abs(x - y) < 1e-9 for x, y in zip(sprint.values[m], parent.values[m]))
        for m in ("f1", "mcc")
    )
    if same:
        return "every seed scored exactly as the parent's did: the change had no effect on the SAE"
    return None


def coverage_reason(coverage: dict | None) -> str | None:
    """A no-op when none of the lines the sprint added or changed ever ran, or when the
    variant's process forged its report of the lines that ran."""
    if not coverage or not coverage.get("changed") or len(coverage["never_ran"]) < coverage["changed"]:
        return None
    from autosae.sprint.coverage import spans

    if coverage.get("forged"):
        return (
            "the variant's process reported lines as run that variant.py does not have: its report "
            f"of the lines that ran is forged, so none of the {coverage['changed']} lines the sprint "
            "added or changed counts as run"
        )
    return (
        f"none of the {coverage['changed']} lines the sprint added or changed in variant.py ran during "
        f"training or scoring, by the variant's process's own report (lines {spans(coverage['never_ran'])})"
    )


def compute_verdict(
    results: dict | None,
    sprint_id: str,
    parent: Reference,
    best: Reference | None,
    baselines: dict[str, Reference],
    objective: str,
    alpha: float,
    coverage: dict | None = None,
) -> dict:
    """The verdict dict recorded in state, ledger and report. `coverage` (see
    sprint.coverage.never_ran) says which changed lines of variant.py never ran."""

    def summary(ref: Reference | None) -> dict | None:
        if ref is None:
            return None
        stat = ref.stat(objective) or {}
        return {
            "id": ref.id,
            "mean": stat.get("mean"),
            "std": stat.get("std"),
            "n": stat.get("n"),
            "values": ref.values.get(objective, []),
            "f1": ref.stat("f1"),
            "mcc": ref.stat("mcc"),
            "per_seed": ref.values,
        }

    verdict = Verdict(
        objective=objective,
        alpha=alpha,
        parent=summary(parent),
        best=summary(best),
        baselines={
            name: {"f1": ref.stat("f1"), "mcc": ref.stat("mcc"), "per_seed": ref.values}
            for name, ref in baselines.items()
        },
        coverage=coverage,
    )
    if not is_ok(results):
        verdict.reason = (results or {}).get("reason") or "the sprint produced no scores"
        return verdict.to_dict()
    judge_scores(verdict, Reference.from_results(sprint_id, results), parent, best, objective, alpha, coverage)
    return verdict.to_dict()


def judge_scores(
    verdict: Verdict,
    me: Reference,
    parent: Reference,
    best: Reference | None,
    objective: str,
    alpha: float,
    coverage: dict | None,
) -> None:
    """Fill in `verdict` for a run that produced scores."""
    mine, theirs = me.values[objective], parent.values.get(objective, [])
    mean = statistics.fmean(mine)
    sd = statistics.stdev(mine) if len(mine) > 1 else 0.0
    if not theirs:
        verdict.verdict, verdict.reason = "inconclusive", f"the parent {parent.id} has no scores to compare with"
        return
    delta = mean - statistics.fmean(theirs)
    note = floor_note(len(mine), len(theirs))
    floor = None if note else max(sd, statistics.stdev(theirs))
    p = welch_p(mine, theirs)
    reason = noop_reason(me, parent) or coverage_reason(coverage)
    verdict.delta_parent, verdict.p_value, verdict.noise_floor, verdict.noise_floor_note = delta, p, floor, note
    verdict.noop, verdict.noop_reason = reason is not None, reason
    name = objective.upper()
    if reason is not None:
        verdict.verdict, verdict.reason = "no change", f"no-op: {reason}"
    elif p is None:  # one seed on either side: no test, so no claim either way
        verdict.verdict = "inconclusive"
        verdict.reason = (
            f"{name} {delta:+.4f} vs {parent.id} from {len(mine)} seed(s) against "
            f"{len(theirs)}: a test needs at least 2 on each side, and a single seed never "
            f"counts (noise floor {note or f'{floor:.4f}'})"
        )
    elif p < alpha:
        verdict.verdict = "improved" if delta > 0 else "worse"
        verdict.reason = f"{name} {delta:+.4f} vs {parent.id}, p = {p:.3g} < {alpha:g}"
    elif abs(delta) <= floor:
        verdict.verdict = "no change"
        verdict.reason = f"{name} {delta:+.4f} vs {parent.id} is within the noise floor {floor:.4f}"
    else:
        verdict.verdict = "inconclusive"
        verdict.reason = (
            f"{name} {delta:+.4f} vs {parent.id} exceeds the noise floor {floor:.4f} but p = {p:.3g} >= {alpha:g}"
        )
    if best is not None and best.values.get(objective):
        verdict.delta_best = mean - statistics.fmean(best.values[objective])
    # A new best must beat its parent significantly and sit above everything before it.
    verdict.new_best = verdict.verdict == "improved" and (verdict.delta_best is None or verdict.delta_best > 0)
