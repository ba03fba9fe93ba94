"""TASK.md's sandbox setting where bubblewrap cannot run ($AUTOSAE_BWRAP names a binary that is
not there): `required` refuses to start in one line, `auto` goes on with a loud warning and
every record says the sprint ran without the sandbox."""

from __future__ import annotations

import json

import git

from tests.sprint.conftest import autosae, ledger, one_line_error, write_task

NO_BWRAP = {"AUTOSAE_BWRAP": "/nonexistent/bwrap", "ANTHROPIC_API_KEY": "sk-ant-fake-0123456789"}


def test_required_refuses_to_start_in_one_line(project):
    write_task(project, backend="anthropic")  # an LLM backend: required by default
    git.Repo(project).git.commit("-q", "-am", "anthropic task")
    proc = autosae("sprint", cwd=project, env=NO_BWRAP)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = one_line_error(proc)
    assert "sandbox" in line and "/nonexistent/bwrap" in line and "fix:" in line, line
    assert ledger(project) == [] and not list((project / ".autosae").glob("state/*.json"))  # nothing started


def test_auto_runs_with_a_warning_and_every_record_says_so(project):
    proc = autosae("sprint", cwd=project, env=NO_BWRAP)  # the scripted backend: auto by default
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" in proc.stdout + proc.stderr
    [row] = ledger(project)
    assert row["sandboxed"] is False
    folder = project / "sprints" / row["id"]
    assert "Ran without the OS sandbox" in (folder / "report.md").read_text()
    results = json.loads((folder / "results.json").read_text())
    assert results["sandbox"] == {"mode": "auto", "enabled": False}
    assert all(seed["sandboxed"] is False for seed in results["per_seed"])
    assert "(unsandboxed)" in (project / "reports" / "leaderboard.md").read_text()
    status = autosae("status", cwd=project, env=NO_BWRAP)
    assert "unsandboxed: 1 of 1 sprints ran without the OS sandbox" in status.stdout, status.stdout
