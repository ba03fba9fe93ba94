"""The numbers the LLM backends see: the propose table from ledger rows (as `ledger_row`
writes them now, and as older ledgers hold them), and the conclude prompt with the parent's
full metrics and the variant's curves. (A real sprint's records: tests/report/test_one_seed.py.)"""

from __future__ import annotations

from autosae.agents import AgentContext, PastSprint, Proposal
from autosae.agents.prompts import conclude_prompt, propose_prompt
from autosae.sprint.ledger import one_line, past_sprint

NOW = {
    "id": "s2",
    "title": "TERM loss",
    "verdict": "improved",
    "objective": "f1",
    "parent": "s1",
    "idea": "TERM loss with tilt 2e-3 (Li et al. 2021, robust statistics). It reweights hard samples.",
    "f1": {"mean": 0.8123, "std": 0.0042, "n": 3},
    "mcc": {"mean": 0.7712, "std": 0.0031, "n": 3},
    "precision": {"mean": 0.8311, "std": 0.01, "n": 3},
    "recall": {"mean": 0.7944, "std": 0.01, "n": 3},
    "dead_latents": {"mean": 2.3333, "std": 1.0, "n": 3},
    "delta_parent": 0.0211,
    "p_value": 0.0042,
    "noise_floor": 0.0042,
    "noise_floor_note": None,
    "noop": False,
}
OLD = {
    "id": "s1",
    "title": "LISTA",
    "verdict": "inconclusive",
    "parent": "baseline:matryoshka",
    "idea": "a one-step LISTA encoder",
    "f1": {"mean": 0.79, "std": 0.0, "n": 1},
    "mcc": {"mean": 0.75, "std": 0.0, "n": 1},
    "delta_parent": 0.01,
    "p_value": None,
    "noise_floor": 0.0,
}


def context(**extra) -> AgentContext:
    values = {"past": [past_sprint(OLD), past_sprint(NOW)], **extra}
    return AgentContext(
        task_body="",
        profile="tiny",
        objective="f1",
        sprint_number=2,
        width=128,
        k=5,
        baselines={"matryoshka": {"f1": 0.76, "mcc": 0.72}},
        sprint_id="s3",
        **values,
    )


def test_the_propose_table_has_every_number_one_line_per_sprint():
    lines = [x for x in propose_prompt(context(), None).splitlines() if x.startswith("- s")]
    old, now = lines
    assert now == (
        "- s2 | TERM loss | improved | F1 0.8123 ± 0.0042 (n = 3), MCC 0.7712 ± 0.0031 (n = 3) | "
        "Δ F1 +0.0211, p 0.004 | precision 0.8311, recall 0.7944 | dead 2.3 | parent s1 | "
        "TERM loss with tilt 2e-3 (Li et al. 2021, robust statistics)."
    )
    # an older ledger row: one seed, no precision, recall or dead latents recorded
    assert old == (
        "- s1 | LISTA | inconclusive | F1 0.7900 ± not measurable (n = 1), MCC 0.7500 ± not measurable "
        "(n = 1) | Δ +0.0100, p - | precision -, recall - | dead - | parent baseline:matryoshka | "
        "a one-step LISTA encoder"
    )
    refused = PastSprint(
        id="(refused)", title="t", verdict="refused: repeats s1", f1=None, mcc=None, summary=one_line("same again")
    )
    table = propose_prompt(context(past=[refused]), None)
    assert "- (refused) | t | refused: repeats s1 | F1 -, MCC - | Δ -, p - |" in table and "| same again" in table
    assert one_line("x " * 200).endswith("…") and len(one_line("x " * 200)) == 160


def test_the_conclude_prompt_has_the_parents_metrics_and_the_curves():
    results = {
        "status": "ok",
        "summary": {"f1": {"mean": 0.8, "std": 0.01, "n": 2}, "dead_latents": {"mean": 3.0, "std": 1.0, "n": 2}},
        "per_seed": [{"seed": 0, "status": "ok", "f1": 0.79}, {"seed": 1, "status": "ok", "f1": 0.81}],
    }
    verdict = {"verdict": "inconclusive", "noise_floor": 0.01, "noise_floor_note": None}
    parent = {
        "f1": {"mean": 0.78, "std": 0.02, "n": 3},
        "precision": {"mean": 0.9, "std": 0.01, "n": 3},
        "dead_latents": {"mean": 5.0, "std": 0.0, "n": 3},
    }
    curves = {
        "0": {
            "samples": [0, 1024],
            "loss": [2.0, 1.0],
            "l0": [9.0, 5.0],
            "dead": [0, 4],
            "variant": {"lista_eta": [0.3, 0.31]},
        }
    }
    _, prompt = conclude_prompt(
        Proposal("TERM", "i", "h", "p", parent="s2"), results, verdict, context(parent_metrics=parent, curves=curves)
    )
    assert "metric | this sprint | parent s2" in prompt
    assert "f1 | 0.8000 ± 0.0100 (n = 2) | 0.7800 ± 0.0200 (n = 3)" in prompt
    assert "precision | - | 0.9000 ± 0.0100 (n = 3)" in prompt
    assert "dead_latents | 3.0000 ± 1.0000 (n = 2) | 5.0000 ± 0.0000 (n = 3)" in prompt
    assert "and its parent): 0.0100." in prompt
    assert (
        "seed 0:\n  training samples: 0, 1024\n  loss: 2, 1\n  L0: 9, 5\n  dead latents: 0, 4\n"
        "  variant.lista_eta: 0.3, 0.31" in prompt
    )
    _, bare = conclude_prompt(Proposal("TERM", "i", "h", "p", parent="s2"), results, verdict, context())
    assert "(no metrics are recorded for the parent s2)" in bare and "(no training curves were recorded)" in bare
