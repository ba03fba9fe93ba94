"""The propose prompt's block on power and budget: the minimum detectable effect is the one the
verdict's own Welch test finds significant, and the block states it with the reference
recipes' scores, the run times, the turns and the money."""

from __future__ import annotations

import statistics

import pytest

from autosae.agents import AgentContext
from autosae.agents.power import POWER, detectable, power_facts
from autosae.agents.prompts import propose_prompt
from autosae.sprint.verdict import welch_p


def runs(values: list[float], wall: float = 30.0) -> dict:
    """A results.json as the harness writes it, for the fields the block reads."""
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return {
        "status": "ok",
        "wall_s": wall,
        "per_seed": [{"seed": i, "status": "ok", "f1": v, "wall_s": wall / 2} for i, v in enumerate(values)],
        "summary": {
            "f1": {"mean": mean, "std": std, "n": len(values)},
            "mcc": {"mean": 0.7, "std": 0.01, "n": len(values)},
        },
    }


def test_the_minimum_detectable_effect_is_what_the_verdicts_test_finds_significant():
    a = [0.70, 0.717, 0.734]  # std 0.017, 3 seeds: the case
    std = statistics.stdev(a)
    mde = detectable(std, 3, 0.05)
    assert mde == pytest.approx(0.0385, abs=5e-4)  # "only effects of about 0.04 or more"
    assert welch_p([x + mde for x in a], a) == pytest.approx(0.05, rel=1e-6)  # exactly at alpha
    assert welch_p([x + 0.9 * mde for x in a], a) > 0.05
    assert detectable(std, 3, 0.05, POWER) > mde and detectable(std, 1, 0.05) is None
    assert detectable(std, 10, 0.05) < mde  # more seeds, smaller effects


def test_the_propose_prompt_states_power_references_times_turns_and_money():
    power = power_facts(
        {"matryoshka": runs([0.70, 0.717, 0.734], wall=40.0), "batchtopk": runs([0.60, 0.61, 0.62])},
        ["batchtopk", "lista_matryoshka", "matryoshka"],
        "f1",
        0.05,
        3,
        204_800,
        204_800,
        {"propose": 15, "implement": 60, "conclude": 15},
        4.5,
        None,
    )
    ctx = AgentContext(task_body="", profile="tiny", objective="f1", sprint_number=0, width=128, k=5, power=power)
    text = propose_prompt(ctx, None)
    assert (
        "`baseline:matryoshka`: F1 0.7170 ± 0.0170, MCC 0.7000 ± 0.0100 (n = 3); 0.0385 when observed exactly" in text
    )
    assert "to be found 4 times in 5. Matryoshka BatchTopK baseline" in text, text
    assert "Not trained on this profile yet: `baseline:lista_matryoshka`" in text
    assert "a quick run's default budget is 204,800 samples, about 20 s per seed and arm" in text
    assert "at most 15 model calls to propose, 60 to implement, 15 to conclude" in text
    assert "$4.50 left for this sprint" in text
    assert "`baseline:lista_matryoshka`" in text.split("the parent (the sprint id it", 1)[1]
