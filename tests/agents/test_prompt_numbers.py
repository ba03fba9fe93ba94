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
    "confirmed": True,
    "conclusion_summary": "TERM helps beyond seed noise.",
    "next_step": "try tilt 5e-3",
    "pilot_notes": "the pilots showed tilt 1e-2 diverges, so 2e-3.",
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
        "TERM loss with tilt 2e-3 (Li et al. 2021, robust statistics). | held-out confirmed | "
        "concluded: TERM helps beyond seed noise. | next: try tilt 5e-3 | "
        "pilot: the pilots showed tilt 1e-2 diverges, so 2e-3."
    )
    # an older ledger row: one seed, no precision, recall or dead latents recorded
    assert old == (
        "- s1 | LISTA | inconclusive | F1 0.7900 ± not measurable (n = 1), MCC 0.7500 ± not measurable "
        "(n = 1) | Δ +0.0100, p - | precision -, recall - | dead - | parent baseline:matryoshka | "
        "a one-step LISTA encoder | held-out not verified | concluded: - | next: -"
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


def test_an_old_ledger_rows_lessons_come_from_its_committed_record(tmp_path):
    """A row written before the ledger kept lessons: the conclusion and next step are read
    (bounded) from sprints/<id>/sprint.json; a held-out outcome word is shown as recorded."""
    import json

    folder = tmp_path / "sprints" / "s1"
    folder.mkdir(parents=True)
    conclusion = (
        "LISTA did not move F1 beyond the noise floor. The rest.\n\n**Did the change run?** yes\n\n"
        "**Other explanations considered**\n- seed noise\n\n**Next steps**\n- two LISTA steps\n- eta 0.5"
    )
    (folder / "sprint.json").write_text(json.dumps({"conclusion": conclusion, "amendments": "not a list"}))
    past = past_sprint(dict(OLD, held_out_outcome="contradicted"), tmp_path / "sprints")
    assert (past.conclusion, past.next_step, past.held_out, past.pilot) == (
        "LISTA did not move F1 beyond the noise floor. The rest.",
        "two LISTA steps",
        "contradicted",
        "",
    )
    (folder / "sprint.json").write_text("{broken")  # a hand edit: nothing, never an error
    assert past_sprint(OLD, tmp_path / "sprints").conclusion == ""
    flight = past_sprint({"id": "s9", "title": "x", "verdict": "in progress", "pilot_notes": "quick run 1: ok"})
    assert flight.held_out == "in progress" and flight.pilot == "quick run 1: ok"


QUICK = [
    {
        "n": 1,
        "at": "2026-11-10T01:00:00Z",
        "profile": "tiny",
        "training_samples": 20480,
        "seeds": [900000, 900001],
        "wall_s": 9.5,
        "arms": [
            {
                "arm": "eta 0.3",
                "source": "variant",
                "options": {"eta": 0.3},
                "status": "ok",
                "metrics": {"f1": {"mean": 0.81, "std": 0.01, "n": 2}, "mcc": {"mean": 0.7, "std": 0.02, "n": 2}},
                "delta_vs_parent": {"f1": {"mean": 0.03, "std": 0.005, "n": 2, "p": 0.02}},
            },
            {
                "arm": "parent",
                "source": "parent",
                "status": "ok",
                "metrics": {"f1": {"mean": 0.78, "std": 0.01, "n": 2}},
            },
            {"arm": "eta 0.9", "source": "variant", "status": "failed", "reason": "NaN loss"},
        ],
    },
    "not a call",
]


def test_the_conclude_prompt_shows_the_quick_runs_the_amendment_and_the_parents_curves():
    results = {"status": "ok", "summary": {"f1": {"mean": 0.8, "std": 0.01, "n": 2}}, "per_seed": []}
    verdict = {"verdict": "inconclusive", "noise_floor": 0.01}
    curves = {"0": {"samples": [0, 1024], "loss": [2.0, 1.0], "l0": [9.0, 5.0], "dead": [0, 4]}}
    parent = {"0": {"samples": [0, 1024], "loss": [3.0, 1.5], "l0": [9.0, 5.0], "dead": [1, 7]}}
    amendments = [{"at": "2026-11-10T01:05:00Z", "pilot_notes": "eta 0.9 diverged", "hypothesis": "eta 0.3 only"}]
    ctx = context(curves=curves, parent_curves=parent, quick_runs=QUICK, amendments=amendments)
    _, prompt = conclude_prompt(Proposal("LISTA", "i", "h0", "p", parent="s2"), results, verdict, ctx)
    assert "Hypothesis (as proposed): h0\nAmended after pilots (1, 2026-11-10T01:05:00Z): eta 0.9 diverged" in prompt
    assert "  revised hypothesis: eta 0.3 only" in prompt
    assert "The parent's (s2) training curves from its counted run, the same points:\nseed 0:" in prompt
    assert "  loss: 3, 1.5" in prompt and "  dead latents: 1, 7" in prompt
    assert (
        "not the verdict" in prompt
        and "call 1: profile tiny, 20,480 training samples, quick seeds 900000, 900001" in prompt
    )
    assert (
        "  eta 0.3 | variant (eta=0.3) | 0.8100 ± 0.0100 (n = 2) | 0.7000 ± 0.0200 (n = 2) | "
        "+0.0300 ± 0.0050 (n = 2), p = 0.020 | ok" in prompt
    )
    assert "  eta 0.9 | variant | - | - | - | failed: NaN loss" in prompt
    _, bare = conclude_prompt(Proposal("LISTA", "i", "h0", "p", parent="s2"), results, verdict, context())
    assert "quick runs of the implement phase" not in bare and "Amended" not in bare


def test_lessons_keep_whole_sentences_and_the_end_of_long_pilot_notes():
    """Found by playing Claude: a conclusion's first sentence was "Inconclusive.", and a first-
    sentence cut of the pilot notes hid the later pilot that reversed the first."""
    from autosae.report.evidence import PILOT_CHARS, conclusion_parts, ends

    summary, _ = conclusion_parts("Inconclusive. The schedule gave +0.0125, p = 0.096.\n\n**Next steps**\n- more seeds")
    assert summary == "Inconclusive. The schedule gave +0.0125, p = 0.096."
    notes = "Pilot 1 on seeds 0-2: +0.034, p = 0.003. " + "Filler sentence here. " * 60 + "Pilot 2 reversed it: +0.009."
    shown = ends(notes, PILOT_CHARS)
    assert len(shown) <= PILOT_CHARS and shown.startswith("Pilot 1") and shown.endswith("Pilot 2 reversed it: +0.009.")
    assert " … " in shown and ends("short. notes.", PILOT_CHARS) == "short. notes."


def test_the_conclude_prompt_shows_a_new_bests_ablations_as_a_table():
    results = {"status": "ok", "summary": {"f1": {"mean": 0.8, "std": 0.01, "n": 2}}, "per_seed": []}
    rows = [
        {"part": "lista", "what": "one LISTA\nstep", "delta": 0.021, "p": 0.004, "class": "load-bearing"},
        {"part": "term", "what": "TERM loss", "delta": -0.012, "p": 0.03, "class": "parasitic"},
    ]
    verdict = {"verdict": "improved", "new_best": True, "ablation": {"objective": "f1", "seeds": [0, 1], "rows": rows}}
    _, prompt = conclude_prompt(Proposal("LISTA", "i", "h", "p", parent="s2"), results, verdict, context())
    assert "part | what | F1 with it minus without | p | class" in prompt
    assert "lista | one LISTA step | +0.0210 | 0.004 | load-bearing" in prompt  # one line, whatever the agent wrote
    assert "term | TERM loss | -0.0120 | 0.030 | parasitic" in prompt
    _, none = conclude_prompt(Proposal("LISTA", "i", "h", "p", parent="s2"), results, {"verdict": "worse"}, context())
    assert "The ablations of this new best" not in none
