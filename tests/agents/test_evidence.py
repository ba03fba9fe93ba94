"""Evidence carried forward, end to end with the anthropic backend (the real SDK against the fake
Messages API, real git, replayed harness runs): the implementer's pilot notes are recorded beside
the proposal through `amend_proposal`, the implement phase's quick runs (put into the sprint's
saved state, as run_experiment records them) and the parent's curves reach the conclude prompt,
report.md, report.pdf and the ledger row the next proposer reads."""

from __future__ import annotations

import json

from autosae.report.evidence import MAX_AMENDMENTS
from tests.agents.fake_messages_api import FakeMessagesAPI, phase_of, tool_results, turn_of, use
from tests.agents.test_anthropic import ENV, VARIANT, anthropic_project, propose, sprint_folder, texts_of
from tests.report import pdftools
from tests.sprint.conftest import autosae, ledger

NOTES = "the pilots showed eta 0.9 diverges; kept eta 0.3"
QUICK = {
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
            "metrics": {"f1": {"mean": 0.8123, "std": 0.01, "n": 2}, "mcc": {"mean": 0.7, "std": 0.02, "n": 2}},
            "delta_vs_parent": {"f1": {"mean": 0.0311, "std": 0.005, "n": 2, "p": 0.02}},
        },
        {"arm": "parent", "source": "parent", "status": "ok", "metrics": {"f1": {"mean": 0.7812, "std": 0.01, "n": 2}}},
    ],
    "curves": {"eta 0.3": {"samples": [0, 10240, 20480], "loss": [2.0, 1.2, 1.0], "l0": [9, 6, 5], "dead": [0, 1, 2]}},
}


def implement(body: dict) -> list[dict]:
    folder = sprint_folder(body)
    steps = [
        [
            use(
                "str_replace_based_edit_tool",
                {"command": "create", "path": f"{folder}/README.md", "file_text": "# x\n"},
            )
        ],
        [
            use(
                "str_replace_based_edit_tool",
                {"command": "create", "path": f"{folder}/variant.py", "file_text": VARIANT},
            )
        ],
        [use("amend_proposal", {"pilot_notes": NOTES, "hypothesis": "LISTA at eta 0.3 sharpens the encoder"})],
        [use("amend_proposal", {"hypothesis": "no notes"}), use("amend_proposal", {"pilot_notes": "x" * 5000})],
        [use("finish", {"summary": "done"})],
    ]
    return steps[min(turn_of(body), len(steps) - 1)]


def policy(body: dict) -> list[dict]:
    phase = phase_of(body)
    if phase == "propose":
        return propose(body)
    if phase == "implement":
        return implement(body)
    return [
        use(
            "finish",
            {
                "checks": "the diff adds LISTA",
                "alternatives": ["seed noise"],
                "conclusion": "LISTA at eta 0.3 moved F1 within the noise. More seeds would settle it.",
                "next_steps": ["try two LISTA steps", "eta 0.5"],
            },
        )
    ]


def test_pilot_notes_and_quick_runs_reach_conclude_the_reports_and_the_next_proposer(project):
    with FakeMessagesAPI(policy) as api:
        anthropic_project(project, api.url)
        killed = autosae("sprint", cwd=project, env={**ENV, "AUTOSAE_CRASH_AT": "verifying"})
        assert killed.returncode != 0
        [path] = (project / ".autosae" / "state").glob("*.json")
        state = json.loads(path.read_text())
        # recorded beside the proposal, never over it; the bad calls were refused with a reason
        assert state["hypothesis"] == "LISTA sharpens the encoder" and state["title"] == "one-step LISTA on Matryoshka"
        [amended] = state["amendments"]
        assert amended["pilot_notes"] == NOTES and amended["hypothesis"] == "LISTA at eta 0.3 sharpens the encoder"
        refused = next(tool_results(r) for r in api.answered("implement") if turn_of(r) == 4)
        assert all(r.get("is_error") for r in refused)
        assert "pilot_notes: expected a non-empty string" in refused[0]["content"]
        assert "at most 2,000" in refused[1]["content"]
        implement_prompt = texts_of(api.answered("implement")[0])
        assert "amend_proposal" in implement_prompt and "beside the original" in implement_prompt
        assert "amend_proposal" in [t["name"] for t in api.answered("implement")[0]["tools"]]
        state["quick_runs"] = [QUICK]  # as run_experiment records each call
        path.write_text(json.dumps(state))
        resumed = autosae("resume", cwd=project, env=ENV)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    asked = texts_of(api.answered("conclude")[0])
    assert "Hypothesis (as proposed): LISTA sharpens the encoder\nAmended after pilots (1, " in asked
    assert "The parent's (baseline:matryoshka) training curves from its counted run" in asked
    parent_curves = asked.split("training curves from its counted run, the same points:\n", 1)[1]
    assert parent_curves.startswith("seed ") and "  loss: " in parent_curves
    assert "call 1: profile tiny, 20,480 training samples, quick seeds 900000, 900001" in asked
    assert "eta 0.3 | variant (eta=0.3) | 0.8123 ± 0.0100 (n = 2)" in asked and "not the verdict" in asked

    [row] = ledger(project)
    assert row["conclusion_summary"] == "LISTA at eta 0.3 moved F1 within the noise. More seeds would settle it."
    assert row["next_step"] == "try two LISTA steps" and row["pilot_notes"] == NOTES
    folder = project / "sprints" / row["id"]
    record = json.loads((folder / "sprint.json").read_text())
    assert record["quick_runs"][0]["arms"][0]["arm"] == "eta 0.3" and record["amendments"][0]["pilot_notes"] == NOTES
    md = (folder / "report.md").read_text()
    assert "## Quick runs (implement phase, uncounted)" in md and "not the verdict" in md
    assert "| eta 0.3 | variant (eta=0.3) | 0.8123 ± 0.0100 (n = 2) | 0.7000 ± 0.0200 (n = 2) |" in md
    assert "+0.0311 ± 0.0050 (n = 2), p = 0.020" in md and "**Amended after pilots** (1, " in md and NOTES in md
    assert md.index("## Conclusions and next steps") < md.index("## The change against the parent")
    pdf = " ".join(pdftools.text(folder / "report.pdf").split())
    assert "Quick runs (implement phase, uncounted)" in pdf and "0.8123 ± 0.0100 (n = 2)" in pdf
    assert "Amended after pilots (1" in pdf and "eta 0.9 diverges" in pdf

    # `autosae report` re-renders from the committed folder alone: the same sections
    (folder / "report.md").write_text("")
    assert autosae("report", row["id"], cwd=project).returncode == 0
    assert "| eta 0.3 | variant (eta=0.3) |" in (folder / "report.md").read_text()

    # the next proposer's past table: the lessons, the held-out status, the pilot notes
    from autosae.agents import AgentContext
    from autosae.agents.prompts import propose_prompt
    from autosae.sprint.ledger import past_sprint

    ctx = AgentContext(task_body="", profile="tiny", objective="f1", sprint_number=1, past=[past_sprint(row)])
    table = propose_prompt(ctx, None)
    assert (
        "| held-out not verified | concluded: LISTA at eta 0.3 moved F1 within the noise. More seeds would settle it. | "
        f"next: try two LISTA steps | pilot: {NOTES}" in table
    )
    assert MAX_AMENDMENTS >= 1
