"""The idea queue (`autosae idea add | list | drop`): committed in ideas.jsonl, run by the next
sprint before the agent's own ideas, and safe to use while a loop holds the project."""

from __future__ import annotations

import json
from pathlib import Path

import git

from tests.sprint.conftest import autosae, autosae_running, commit, ledger, one_line_error, write_script


def queue(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "ideas.jsonl").read_text().splitlines()]


def committed_queue(root: Path) -> list[dict]:
    text = git.Repo(root).git.show("HEAD:ideas.jsonl")
    return [json.loads(line) for line in text.splitlines()]


def test_ideas_are_queued_dropped_listed_and_committed(project):
    first = autosae("idea", "add", "a one-step LISTA encoder", cwd=project)
    assert first.returncode == 0 and "idea: 1" in first.stdout and "committed" in first.stdout
    assert autosae("idea", "add", "decreasing K", "--priority", cwd=project).returncode == 0
    assert autosae("idea", "add", "TERM loss", cwd=project).returncode == 0
    assert autosae("idea", "drop", "3", cwd=project).returncode == 0
    ideas = committed_queue(project)
    assert [(i["n"], i["text"], i["priority"], i["status"]) for i in ideas] == [
        (1, "a one-step LISTA encoder", False, "queued"),
        (2, "decreasing K", True, "queued"),
        (3, "TERM loss", False, "dropped"),
    ]
    assert all(i["source"] == "cli" and i["added_by"] for i in ideas)
    assert not git.Repo(project).is_dirty(untracked_files=True)  # the inbox is the project's private folder
    listed = autosae("idea", "list", cwd=project).stdout
    assert "2. decreasing K [priority]" in listed and "dropped" in listed and "from cli" in listed
    # bad input: one line, nothing recorded changes
    for args, says in ((("drop", "9"), "no idea 9"), (("add", "   "), "needs some text")):
        proc = autosae("idea", *args, cwd=project)
        assert proc.returncode == 1 and says in one_line_error(proc)
    assert committed_queue(project) == ideas
    good = (project / "ideas.jsonl").read_text()
    (project / "ideas.jsonl").write_text(good + "{not json\n")  # a hand edit gone wrong
    broken = autosae("idea", "list", cwd=project)
    assert broken.returncode == 1 and "ideas.jsonl line 4 is not an idea" in one_line_error(broken)
    (project / "ideas.jsonl").write_text(good)
    # the next sprint runs the priority idea, and the two name each other
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = ledger(project)
    assert row["queued_idea"] == 2 and row["idea"] == "decreasing K" and row["user_idea"]
    taken = {i["n"]: i for i in committed_queue(project)}[2]
    assert taken["status"] == "taken" and taken["sprint"] == row["id"]
    report = (project / "sprints" / row["id"] / "report.md").read_text()
    assert "## Idea\ndecreasing K\n\nQueued by the researcher: idea 2 of `ideas.jsonl`" in report
    # an idea that repeats a past sprint does not start, says why, and is not taken again
    assert autosae("idea", "add", "decreasing K", "--priority", cwd=project).returncode == 0
    refused = autosae("sprint", cwd=project)
    assert refused.returncode != 0 and "repeats sprint" in one_line_error(refused)
    repeat = {i["n"]: i for i in committed_queue(project)}[4]
    assert repeat["status"] == "not started" and row["id"] in repeat["reason"]
    assert len(ledger(project)) == 1 and not git.Repo(project).is_dirty(untracked_files=True)


def test_an_idea_added_while_the_loop_runs_is_taken_by_its_next_sprint(project):
    write_script(
        project,
        [
            {
                "title": "agent's own",
                "idea": "the agent's own idea",
                "variant": "lista_matryoshka",
                "sleep": {"implement": 4},
            },
            {"title": "agent's second", "idea": "the agent's second idea", "variant": "lista_matryoshka"},
        ],
    )
    commit(project, "script", "script.yaml")
    repo = git.Repo(project)
    loop = autosae_running("loop", "--max-sprints", "2", cwd=project)
    seen = []
    try:
        for line in loop.stdout:  # the first sprint is implementing (its agent sleeps 4 s)
            seen.append(line)
            if "| implementing |" in line:
                break
        added = autosae("idea", "add", "a queued idea: detach the inner levels", cwd=project)
        assert added.returncode == 0 and "the running loop takes it next" in added.stdout, added.stdout + added.stderr
        assert not (project / "ideas.jsonl").exists()  # not committed under the loop's feet
        out, _ = loop.communicate(timeout=300)
    finally:
        if loop.poll() is None:
            loop.kill()
    out = "".join(seen) + out
    assert loop.returncode == 0, out
    rows = ledger(project)
    assert [r["idea"] for r in rows] == ["the agent's own idea", "a queued idea: detach the inner levels"]
    assert rows[0].get("queued_idea") is None and rows[1]["queued_idea"] == 1
    (idea,) = committed_queue(project)
    assert idea["status"] == "taken" and idea["sprint"] == rows[1]["id"]
    assert "ideas | taking | #1 a queued idea" in out
    assert not repo.is_dirty(untracked_files=True)


def test_a_queued_verification_that_cannot_run_is_settled_with_why(project):
    """The loop runs queued verifications before its next sprint (verification.run_queued);
    one it cannot run is recorded as failed, with the reason, and never taken again."""
    from autosae.sprint import ideas, verification
    from autosae.sprint.engine import Engine
    from autosae.sprint.project import Project

    said = []
    engine = Engine(Project(project), status=said.append)
    n = ideas.request_verify(engine.project, "no-such-sprint", added_by="U0ALLOWED1", source="slack")
    assert verification.run_queued(engine) == 1
    (entry,) = committed_queue(project)
    assert (entry["n"], entry["kind"], entry["status"], entry["source"]) == (n, "verify", "failed", "slack")
    assert "no sprint matches 'no-such-sprint'" in entry["reason"]
    assert any("verify | failed" in line for line in said)
    assert verification.run_queued(engine) == 0  # settled: not run again
    # one left `running` by a loop that was killed is queued again by the next loop
    again = ideas.request_verify(engine.project, "no-such-sprint-either", added_by="U0ALLOWED1", source="slack")
    ideas.fold(engine.project, engine.repo)
    ideas.settle(engine.project, engine.repo, again, "running", sprint="no-such-sprint-either")
    assert ideas.next_verification(engine.project, engine.repo) is None
    ideas.requeue_running(engine.project, engine.repo)
    assert ideas.next_verification(engine.project, engine.repo).n == again
    assert not git.Repo(project).is_dirty(untracked_files=True)
