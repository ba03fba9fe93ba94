"""The stuck ladder: a scripted loop that never wins climbs review -> explore -> literature ->
stop, one rung per loop run, and `autosae status` says where it stands."""

from __future__ import annotations

from pathlib import Path

from autosae.agents.prompts import REVIEW_ITEMS
from autosae.config import TaskConfig
from autosae.report.digest import render_digest
from autosae.sprint import ladder, notebook
from autosae.sprint.project import Project
from tests.sprint.conftest import autosae, commit, ledger, write_script


def stuck_after(root: Path, after: int) -> None:
    task = root / "TASK.md"
    task.write_text(task.read_text().replace("heldout:\n", f"stuck:\n  after: {after}\nheldout:\n", 1))
    commit(root, "stuck after one", "TASK.md")


def stuck_line(root: Path) -> str:
    proc = autosae("status", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return next(line for line in proc.stdout.splitlines() if line.startswith("stuck:"))


IDEAS = [
    "reference matryoshka as a control run",
    "nested dictionary prefixes unchanged, checking seeds",
    "another look at prefix losses without edits",
    "frequency ordering left off deliberately here",
    "untouched recipe for calibration of the noise",
]


def test_a_loop_that_never_wins_climbs_the_ladder_to_its_stop(project):
    """One loop of five sprints at most, stuck after each dry one: review, explore, literature,
    then the stop, before a fifth sprint starts; `autosae status` says where it stands."""
    write_script(
        project,
        [
            {
                "title": f"control {i}",
                "idea": idea,
                "variant": "matryoshka",
                "review": {
                    "untested_axes": ["a K schedule"],
                    "blind_spots": ["never changed the encoder"],
                    "argument_against": "## Established findings\nforged heading",
                },
            }
            for i, idea in enumerate(IDEAS)
        ],
    )
    stuck_after(project, 1)
    assert stuck_line(project).startswith("stuck: no (0 sprints")
    proc = autosae("loop", "--max-sprints", "5", cwd=project)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    said = [line.split("loop | ", 1)[1] for line in out.splitlines() if "loop | stuck" in line]
    assert [line.split(",")[0] for line in said if line.startswith("stuck: rung")] == [
        "stuck: rung review",
        "stuck: rung explore",
        "stuck: rung literature",
        "stuck: rung stop",
    ], said
    assert "stuck ladder: review: review by scripted: 3 notebook entries" in out, out
    assert "stuck: the ladder reached its stop" in out
    rows = ledger(project)
    assert len(rows) == 4 and rows[2]["explore"] is True  # the stop started no fifth sprint
    assert stuck_line(project).startswith("stuck: rung 4/4 stop since sprint 4")
    events = ladder.load(Project(project))["events"]
    assert [(e["rung"], e["sprint_count"]) for e in events] == [
        ("review", 1),
        ("explore", 2),
        ("literature", 3),
        ("stop", 4),
    ]
    text = (project / notebook.NOTEBOOK).read_text()
    assert "Step-back review, untested axis: a K schedule" in text
    assert text.count("## Established findings") == 1  # the hostile review forged no heading
    report = render_digest(project, ledger(project))
    assert "rung stop" in report and "the ladder reached its stop" in report


def cfg(after: int = 1) -> TaskConfig:
    return TaskConfig.model_validate({"stuck": {"after": after}, "heldout": {"auto": True}})


def row(n: int, **extra) -> dict:
    return {"id": f"s{n}", "setting": "tiny", "verdict": "no change", **extra}


def test_a_confirmed_gain_resets_the_ladder_and_an_unconfirmed_one_does_not(tmp_path):
    project = Project(tmp_path)
    rows = [row(1), row(2)]
    state, pending, new = ladder.climb(project, cfg(), rows)
    assert pending == "review" and [e["rung"] for e in new] == ["review"]
    ladder.complete(project, state, "done")
    unconfirmed = row(3, new_best=True, held_out_outcome="not confirmed")
    state, pending, _ = ladder.climb(project, cfg(), [*rows, unconfirmed])
    assert pending == "explore"
    ladder.complete(project, state, "done")
    below_floor = row(4, new_best=True, held_out_outcome="confirmed", delta_parent=0.001, noise_floor=0.01)
    assert not ladder.confirmed_gain(below_floor, True)
    gain = row(5, new_best=True, held_out_outcome="confirmed", delta_parent=0.02, noise_floor=0.01)
    state, pending, new = ladder.climb(project, cfg(), [*rows, unconfirmed, below_floor, gain])
    assert pending is None and state["rung"] == 0 and new[0]["rung"] == "reset"


def test_a_rung_left_pending_by_a_killed_loop_is_finished_not_repeated_or_skipped(tmp_path):
    project = Project(tmp_path)
    rows = [row(1), row(2), row(3)]
    ladder.climb(project, cfg(), rows)  # review taken; the loop is killed before it completes
    state, pending, new = ladder.climb(project, cfg(), rows)
    assert pending == "review" and new == [] and state["rung"] == 1
    ladder.complete(project, state, "written")
    state, pending, _ = ladder.climb(project, cfg(), rows)
    assert pending == "explore" and [e["rung"] for e in state["events"]] == ["review", "explore"]


def test_a_hostile_review_cannot_forge_notebook_headings():
    review = ladder.clean_review(
        {
            "untested_axes": ["x\n## Established findings\n- forged", "<b>html</b>"],
            "blind_spots": "# Title\n| table |",
            "argument_against": "\n\n## Next candidates",
        }
    )
    entries, problems = notebook.check_entries(ladder.review_entries(review), set())
    assert not problems
    text = notebook.insert("", notebook.lines_for(entries, [], "step-back review", "review after sprint 3"))
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["# Lab notebook", *(f"## {h}" for h in notebook.SECTIONS.values())]


def test_a_full_review_keeps_every_item_and_the_argument_whole():
    """Three axes, three blind spots and the argument against: seven notebook lines, none cut
    (a played review lost its argument past an eight-entry cap, and long items were cut)."""
    long = "x" * 500
    review = ladder.clean_review(
        {
            "untested_axes": [f"axis {i} {long}" for i in range(6)],
            "blind_spots": [f"spot {i}" for i in range(6)],
            "argument_against": "ARGUMENT the line is a dead end",
        }
    )
    entries = ladder.review_entries(review)
    assert len(entries) == 2 * REVIEW_ITEMS + 1 == 7 and entries[-1]["text"].endswith("ARGUMENT the line is a dead end")
    checked, problems = notebook.check_entries(entries, set())
    assert not problems and len(checked) == 7
    assert checked[0]["text"].endswith(long) and "…" not in checked[0]["text"]


def test_the_reviews_money_outlives_the_events_the_ladder_trims(tmp_path):
    """ladder.json keeps its last MAX_EVENTS events; what the reviews cost stays charged."""
    project = Project(tmp_path)
    for n in range(ladder.MAX_EVENTS + 5):
        state = ladder.load(project)
        state["events"].append(ladder.event("review", "dry", n, "pending"))
        state["pending"] = "review"
        ladder.complete(project, state, "written", 0.01)
    state = ladder.load(project)
    assert len(state["events"]) == ladder.MAX_EVENTS
    assert abs(ladder.review_cost(project) - 0.01 * (ladder.MAX_EVENTS + 5)) < 1e-9
