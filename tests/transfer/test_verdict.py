"""The transfer's statistics: paired verdicts across L0s and seeds, the budget that would decide
an inconclusive one, and the cost line."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from autosae.transfer import verdict
from autosae.transfer.report import cost_line, markdown


def runs(values: dict[str, list[float]], l0s=(16, 32, 64), wall_s: float = 360.0) -> list[dict]:
    """Runs whose ce_loss_score (and explained variance, the same) is `values[kind][i]`, the
    i-th (L0, seed) pair in order: L0 major, seeds 0 and 1."""
    out = []
    for kind, vals in values.items():
        pairs = [(l0, seed) for l0 in l0s for seed in (0, 1)]
        for (l0, seed), v in zip(pairs, vals):
            out.append(
                {
                    "kind": kind,
                    "l0_target": l0,
                    "seed": seed,
                    "status": "ok",
                    "l0": l0 * 0.98,
                    "ce_loss_score": v,
                    "explained_variance": v,
                    "mse": 1 - v,
                    "dead_latents": 0,
                    "wall_s": wall_s,
                }
            )
    return out


BASE = [0.90, 0.91, 0.93, 0.92, 0.95, 0.94]


def test_consistent_gains_hold_and_losses_do_not():
    up = runs({"variant": [b + 0.01 + 0.001 * i for i, b in enumerate(BASE)], "parent": BASE})
    c = verdict.compare(up, "parent", "ce_loss_score", 0.05, 3)
    assert c["verdict"] == verdict.HOLDS and c["n"] == 6 and c["seeds_needed"] is None
    diffs = [0.01 + 0.001 * i for i in range(6)]
    assert c["p_value"] == pytest.approx(scipy_stats.ttest_1samp(diffs, 0).pvalue, rel=1e-9)
    down = runs({"variant": [b - 0.02 for b in BASE], "parent": BASE})
    c = verdict.compare(down, "parent", "ce_loss_score", 0.05, 3)
    assert c["verdict"] == verdict.FAILS and c["p_value"] == 0.0  # every pair the same difference


def test_a_noisy_difference_is_inconclusive_with_the_seeds_that_would_decide_it():
    noise = [0.004, -0.003, 0.005, -0.002, 0.003, -0.001]
    c = verdict.compare(
        runs({"variant": [b + n for b, n in zip(BASE, noise)], "parent": BASE}), "parent", "ce_loss_score", 0.05, 3
    )
    assert c["verdict"] == verdict.INCONCLUSIVE and c["p_value"] > 0.05
    mean, sd = sum(noise) / 6, c["sd_diff"]
    pairs = ((1.959964 + 0.8416) * sd / mean) ** 2
    assert c["seeds_needed"] == math.ceil(pairs / 3) and c["seeds_needed"] > 2
    one = runs({"variant": [0.95], "parent": [0.9]}, l0s=(16,))
    c = verdict.compare(one, "parent", "ce_loss_score", 0.05, 1)
    assert c["verdict"] == verdict.INCONCLUSIVE and c["p_value"] is None and c["seeds_needed"] is None


def test_failed_runs_and_missing_partners_are_left_out_of_the_pairs():
    data = runs({"variant": [b + 0.01 for b in BASE], "parent": BASE[:4]})  # the parent's last L0 never ran
    data[0]["status"] = "failed"
    c = verdict.compare(data, "parent", "ce_loss_score", 0.05, 3)
    assert c["n"] == 3 and c["pairs"] == [[16, 1], [32, 0], [32, 1]]


def test_the_cost_line_counts_what_was_spent_and_prices_the_next_step():
    data = runs({"variant": BASE, "parent": BASE, "baseline": BASE}, wall_s=600.0)
    cost = verdict.cost(data, "cuda:0", kinds=3, l0s=3, seeds=2, needed=5)
    assert cost["unit"] == "GPU-hours" and cost["spent"] == pytest.approx(18 * 600 / 3600)
    assert cost["next_seeds"] == 5 and cost["next_runs"] == 3 * 3 * 3 and cost["next"] == pytest.approx(27 / 6)
    decided = verdict.cost(data, "cpu", kinds=3, l0s=3, seeds=2, needed=None)
    assert decided["unit"] == "CPU-hours" and decided["next_seeds"] == 4  # twice the seeds
    record = {
        "sprint": "s1",
        "title": "t",
        "parent": "p",
        "parent_is_baseline": False,
        "settings": {
            "model": "m",
            "hook": "h",
            "dataset": "d",
            "context_size": 128,
            "tokens": 100,
            "width": 8,
            "batch_size": 4,
            "lr": 1e-3,
            "l0s": [16, 32, 64],
            "eval_batches": 1,
            "eval_batch_prompts": 1,
        },
        "device": "cuda:0",
        "alpha": 0.05,
        "runs": data,
        "comparisons": verdict.judge(data, ["parent", "baseline"], 0.05, 3),
        "verdict": verdict.INCONCLUSIVE,
        "verdict_against": "parent",
        "verdict_metric": "ce_loss_score",
        "cost": cost,
    }
    assert "3 GPU-hours spent on 18 SAEs (10 min each)" in cost_line(record)
    assert "5 seeds per L0: 27 more SAEs, about 4.5 GPU-hours" in cost_line(record)
    md = markdown(record)
    assert "**Verdict ? inconclusive at this budget**" in md and md.count("| ok |") == 18


def test_a_variant_that_fails_everywhere_does_not_hold_and_a_next_step_is_never_empty():
    data = runs({"variant": BASE, "parent": BASE})
    for r in data:
        if r["kind"] == "variant":
            r["status"] = "rejected"
    c = verdict.compare(data, "parent", "ce_loss_score", 0.05, 3)
    assert c["verdict"] == verdict.FAILS and "every run of the variant" in c["why"]
    inconclusive = verdict.cost(data, "cpu", kinds=2, l0s=3, seeds=4, needed=3)  # needs fewer than it has
    assert inconclusive["next_seeds"] == 5 and inconclusive["next_runs"] == 2 * 3
