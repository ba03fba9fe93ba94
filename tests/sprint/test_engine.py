"""Whole sprints through the real CLI: git, worktrees, the harness, verdicts, records."""

from __future__ import annotations

import json
import os

import git
import pytest

from autosae.sprint.engine import PHASES, PROPOSED
from tests.sprint.conftest import (
    SPRINT_ID,
    autosae,
    head_ledger,
    ledger,
    one_line_error,
    shorten_training,
    sprint_commits,
    write_script,
    write_task,
)


def test_init_makes_a_project_and_refuses_to_overwrite(tmp_path):
    root = tmp_path / "p"
    proc = autosae("init", str(root), "--profile", "synth-16k", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for path in ("TASK.md", "sprints", "reports", ".gitignore"):
        assert (root / path).exists()
    assert "/.autosae/" in (root / ".gitignore").read_text()
    repo = git.Repo(root)
    assert repo.active_branch.name == "main" and not repo.is_dirty(untracked_files=True)
    assert "profile: synth-16k" in (root / "TASK.md").read_text()
    again = autosae("init", str(root), cwd=tmp_path)
    assert again.returncode == 1 and "--force" in one_line_error(again)
    assert autosae("init", str(root), "--force", cwd=tmp_path).returncode == 0


@pytest.mark.real_harness  # the one end-to-end sprint with real training (baselines included)
def test_a_full_sprint_is_recorded_on_main(project):
    shorten_training(project, 20_480)
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sid = SPRINT_ID.search(proc.stdout).group(1)
    # every phase says what it does (verifying and ablating only for a new best)
    for phase in (PROPOSED, *(name for name, _ in PHASES if name not in ("verifying", "ablating")), "done"):
        assert f"{sid} | {phase}" in proc.stdout
    repo = git.Repo(project)
    folder = project / "sprints" / sid
    for name in ("README.md", "variant.py", "results.json", "verdict.json", "report.md", "report.pdf", "DONE"):
        assert (folder / name).is_file(), name
        repo.git.cat_file("-e", f"HEAD:sprints/{sid}/{name}")
    # one commit on main, touching only sprints/ and reports/
    changed = repo.git.show("--name-only", "--format=", "HEAD").split()
    assert changed and all(p.startswith(("sprints/", "reports/")) for p in changed)
    assert sprint_commits(project) == [repo.head.commit.summary]
    rows = ledger(project)
    assert [r["id"] for r in rows] == [sid] == [r["id"] for r in head_ledger(project)]
    row = rows[0]
    assert row["verdict"] in ("improved", "no change", "worse", "inconclusive")
    assert row["parent"] == "baseline:matryoshka" and len(row["per_seed"]["f1"]) == 2
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "ok" and results["summary"]["f1"]["mean"] == row["f1"]["mean"]
    assert "replayed" not in results and "Replayed, not trained" not in (folder / "report.md").read_text()
    # the branch is kept, the worktree is gone, the tree is clean
    assert f"sprint/{sid}" in [b.name for b in repo.branches]
    assert not (project / ".autosae" / "worktrees" / sid).exists()
    assert not repo.is_dirty(untracked_files=True)
    assert (project / "reports" / "leaderboard.md").read_text().count(sid) >= 1
    show = autosae("show", sid[-11:], cwd=project)
    assert show.returncode == 0 and f"id: {sid}" in show.stdout and "f1: " in show.stdout
    board = autosae("leaderboard", cwd=project)
    assert board.returncode == 0 and "seed recipe" in board.stdout
    status = autosae("status", cwd=project)
    assert status.returncode == 0 and "sprints: 1 recorded" in status.stdout and "running: no" in status.stdout
    who = (
        "as uid 99999, gid 99999 (unprivileged; autosae runs as root)"
        if os.geteuid() == 0
        else f"as uid {os.geteuid()}"
    )
    assert f"sandboxes run {who}" in status.stdout  # who the sandbox is on the host


def test_a_crashing_variant_is_a_recorded_failure(project):
    write_script(
        project,
        [
            {
                "title": "broken",
                "idea": "a variant that raises",
                "variant": "def build(spec):\n    raise RuntimeError('boom')\n",
            }
        ],
    )
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (row,) = ledger(project)
    assert row["verdict"] == "failed" and "boom" in row["reason"]
    sid = row["id"]
    report = (project / "sprints" / sid / "report.md").read_text()
    assert "boom" in report
    assert sprint_commits(project)


def test_an_agent_that_cannot_implement_is_a_recorded_failure(project):
    write_script(project, [{"title": "no code", "idea": "nothing", "fail": "implement"}])
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (row,) = ledger(project)
    assert row["verdict"] == "failed" and "could not implement" in row["reason"]


def test_a_dirty_tree_is_refused_and_nothing_is_recorded(project):
    (project / "sprints" / "notes.txt").write_text("mine")
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 1
    assert "uncommitted changes" in one_line_error(proc) and "sprints/notes.txt" in proc.stderr
    assert ledger(project) == [] and (project / "sprints" / "notes.txt").read_text() == "mine"


def test_a_malformed_task_md_names_the_line_and_field(project):
    text = (project / "TASK.md").read_text().replace("objective: f1", "objective: accuracy")
    (project / "TASK.md").write_text(text)
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 1
    message = one_line_error(proc)
    assert "line 3" in message and "objective" in message
    assert ledger(project) == []


def test_repeated_ideas_are_refused_and_counted(project):
    write_script(
        project,
        [
            {"title": "LISTA", "idea": "LISTA-Matryoshka with the seed's settings", "variant": "lista_matryoshka"},
            {
                "title": "LISTA again",
                "idea": "LISTA-Matryoshka, with the seed's settings",
                "variant": "lista_matryoshka",
            },
        ],
    )
    assert autosae("sprint", cwd=project).returncode == 0
    proc = autosae("sprint", "--idea", "LISTA-Matryoshka with the seed's settings!", cwd=project)
    assert proc.returncode == 1
    assert "repeats sprint" in one_line_error(proc)
    assert len(ledger(project)) == 1
    status = autosae("status", cwd=project)
    assert "refused repeats: 1 proposals refused as repeats of past sprints" in status.stdout
    # the agent itself proposing a repeat: refused, asked again, and given up after 3 tries
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 1 and "proposed only repeats" in one_line_error(proc)
    assert proc.stdout.count("| refused | 'LISTA again' repeats") == 3
    assert "refused repeats: 4 proposals" in autosae("status", cwd=project).stdout
    assert len(ledger(project)) == 1


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_a_task_md_edit_steers_the_next_sprint(project):
    write_script(
        project,
        [
            {"title": "first", "idea": "seed recipe", "variant": "lista_matryoshka"},
            {"title": "second", "idea": "plain matryoshka", "variant": "matryoshka"},
        ],
    )
    assert autosae("sprint", cwd=project).returncode == 0
    write_task(project, objective="mcc", body="# Task\n\nFocus on MCC now.\n")
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stderr
    first, second = ledger(project)
    assert first["objective"] == "f1" and second["objective"] == "mcc"
    state = json.loads((project / ".autosae" / "state" / f"{second['id']}.json").read_text())
    assert state["task_body"].strip() == "# Task\n\nFocus on MCC now."
    # matryoshka's own source: flagged as a no-op against the baseline it copies
    assert second["noop"] and second["verdict"] == "no change"


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_the_recipe_agent_runs_two_sprints_at_once_as_jobs(project):
    """`loop --parallel 2` on two CPU slots, the counted runs as submitit-local jobs (the
    Slurm path without Slurm): two distinct sprints (the second proposer sees the first in
    flight), recorded one after the other."""
    pytest.importorskip("submitit")
    write_task(project, backend="recipe")
    task = (project / "TASK.md").read_text()
    (project / "TASK.md").write_text(task.replace("seeds: 2\n", "seeds: 2\nlauncher: submitit-local\n", 1))
    proc = autosae("loop", "--max-sprints", "2", "--parallel", "2", "--gpus", "cpu,cpu", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 sprints at once on 2 device slots (cpu, cpu)" in proc.stdout
    rows = ledger(project)
    assert len(rows) == 2 and len(sprint_commits(project)) == 2
    configs = [json.dumps(r["config"], sort_keys=True) for r in rows]
    assert len(set(configs)) == 2
    assert "--max-sprints 2 reached" in proc.stdout
    repo = git.Repo(project)
    assert len(repo.git.worktree("list").splitlines()) == 1
    spans = []
    for row in rows:
        state = json.loads((project / ".autosae" / "state" / f"{row['id']}.json").read_text())
        spans.append((state["phase_started"]["implementing"], state["finished"]))
        jobs = json.loads((project / ".autosae" / "runs" / row["id"] / "launcher.json").read_text())["jobs"]
        assert [j["outcome"] for j in jobs] == ["finished"]
    spans.sort()
    assert spans[1][0] < spans[0][1], "the second sprint started only after the first had finished"
    for row in rows:
        assert (project / "sprints" / row["id"] / "variant.py").read_text().startswith('"""')
