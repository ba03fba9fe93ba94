"""Whether a sprint's win holds on the language model, from the transfer's runs (no torch).

The test: for each metric, the variant's value minus the other SAE's, paired by L0 and seed
(the same target L0, seed and evaluation prompts), and a two-sided one-sample t-test of those
differences against 0 at TASK.md's significance. "holds": significantly better; "does not
hold": significantly worse; "inconclusive at this budget" otherwise, with the number of
seeds per L0 that a paired test of 80% power would need if the observed mean difference and
spread are the truth, and what those runs would cost at the measured speed.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from autosae.transfer.settings import METRICS

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive at this budget"
SYMBOLS = {HOLDS: "✓", FAILS: "✗", INCONCLUSIVE: "?"}
LABELS = {
    "ce_loss_score": "CE loss recovered",
    "explained_variance": "explained variance",
    "l0": "L0",
    "dead_latents": "dead latents",
    "mse": "MSE",
    "kl_div_score": "KL recovered",
}
POWER_Z = 0.8416  # the normal quantile of 80% power
MAX_SEEDS = 64  # past this, a budget is "more than 64 seeds per L0"


def paired_t(diffs: list[float]) -> float | None:
    """Two-sided p of a one-sample t-test of `diffs` against 0; None with fewer than 2."""
    if len(diffs) < 2:
        return None
    sd = statistics.stdev(diffs)
    mean = statistics.fmean(diffs)
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    from scipy.special import stdtr

    t = mean / (sd / math.sqrt(len(diffs)))
    return float(2 * stdtr(len(diffs) - 1, -abs(t)))


def z_quantile(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def compare(runs: list[dict], other: str, metric: str, alpha: float, l0s: int) -> dict:
    """The variant against `other` on `metric` (see the module's docstring)."""
    ok = [r for r in runs if r.get("status") == "ok" and metric in r]
    mine = {(r["l0_target"], r["seed"]): r[metric] for r in ok if r["kind"] == "variant"}
    theirs = {(r["l0_target"], r["seed"]): r[metric] for r in ok if r["kind"] == other}
    pairs = sorted(set(mine) & set(theirs))
    diffs = [mine[p] - theirs[p] for p in pairs]
    out: dict = {"against": other, "metric": metric, "n": len(diffs), "pairs": [list(p) for p in pairs]}
    tried = [r for r in runs if r["kind"] == "variant"]
    out["variant_failed"] = sum(1 for r in tried if r.get("status") != "ok")
    if tried and out["variant_failed"] == len(tried):  # it cannot even train or pass its checks here
        out.update(mean_diff=None, sd_diff=None, p_value=None, verdict=FAILS, seeds_needed=None)
        out["why"] = "every run of the variant failed or was rejected"
        return out
    out["mean_diff"] = statistics.fmean(diffs) if diffs else None
    out["sd_diff"] = statistics.stdev(diffs) if len(diffs) > 1 else None
    p = paired_t(diffs)
    out["p_value"] = p
    if p is not None and p < alpha and out["mean_diff"] != 0:
        out["verdict"] = HOLDS if out["mean_diff"] > 0 else FAILS
        out["seeds_needed"] = None
        return out
    out["verdict"] = INCONCLUSIVE
    out["seeds_needed"] = seeds_needed(out["mean_diff"], out["sd_diff"], alpha, max(1, l0s))
    return out


def seeds_needed(mean: float | None, sd: float | None, alpha: float, l0s: int) -> int | None:
    """Seeds per L0 for a paired test of 80% power at `alpha`, if mean and sd are the truth;
    None when nothing can say (fewer than 2 pairs, or no difference at all)."""
    if mean is None or sd is None or mean == 0:
        return None
    pairs = ((z_quantile(1 - alpha / 2) + POWER_Z) * sd / abs(mean)) ** 2
    return max(2, math.ceil(pairs / l0s))


def judge(runs: list[dict], others: list[str], alpha: float, l0s: int) -> dict[str, dict[str, dict]]:
    """{other: {metric: comparison}} for each SAE the variant is compared with."""
    return {other: {m: compare(runs, other, m, alpha, l0s) for m in METRICS} for other in others}


def per_l0(runs: list[dict], metric: str) -> dict[str, list[dict]]:
    """{kind: [{l0_target, l0, mean, std, n, values}]}: the points of a Pareto plot."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in runs:
        if r.get("status") == "ok" and metric in r:
            groups[(r["kind"], r["l0_target"])].append(r)
    out: dict[str, list[dict]] = defaultdict(list)
    for (kind, target), rows in sorted(groups.items()):
        values = [r[metric] for r in rows]
        out[kind].append(
            {
                "l0_target": target,
                "l0": statistics.fmean(r["l0"] for r in rows),
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "n": len(values),
                "values": values,
                "l0s": [r["l0"] for r in rows],
            }
        )
    return dict(out)


def cost(runs: list[dict], device: str, kinds: int, l0s: int, seeds: int, needed: int | None) -> dict:
    """What the transfer took (GPU-hours on a GPU, CPU-hours otherwise) and what the next step
    would: the seeds per L0 an inconclusive verdict needs, else twice the seeds (a check at
    twice the statistical power), at the measured time per SAE."""
    unit = "GPU-hours" if device.startswith("cuda") else "CPU-hours"
    walls = [r.get("wall_s", 0.0) for r in runs]
    spent = sum(walls) / 3600
    per_run = statistics.fmean(walls) / 3600 if walls else 0.0
    next_seeds = min(max(needed, seeds + 1), MAX_SEEDS) if needed else 2 * seeds
    more = max(0, next_seeds - seeds) * kinds * l0s
    return {
        "unit": unit,
        "spent": spent,
        "per_sae": per_run,
        "runs": len(runs),
        "next_seeds": next_seeds,
        "next_runs": more,
        "next": more * per_run,
        "capped": bool(needed and needed > MAX_SEEDS),
    }
