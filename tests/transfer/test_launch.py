"""A transfer through TASK.md's launcher: the SAEs train in a submitit-local job (the same code
path as a Slurm job), whose sealed records the command then reads back without training."""

from __future__ import annotations

import git

from autosae.harness.seal import read_verified
from tests.sprint.conftest import SPRINT_ID, autosae, commit
from tests.transfer.test_transfer import set_transfer, write_lm


def test_a_transfer_runs_as_a_launcher_job_and_is_read_back(project, tmp_path):
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stderr
    sid = SPRINT_ID.search(proc.stdout).group(1)
    model, tokens = write_lm(tmp_path / "lm")
    set_transfer(project, model, tokens, l0s=[2])
    task = project / "TASK.md"
    task.write_text(
        task.read_text().replace("\n---\n", "\nlauncher: {kind: submitit-local, folder: .autosae/jobs}\n---\n", 1)
    )
    commit(project, "through the launcher", "TASK.md")

    proc = autosae("transfer", sid, cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "transfer: submitted submitit-local job" in proc.stderr
    assert "transfer: loading" not in proc.stderr  # this process trained nothing: the job did
    assert proc.stderr.count("recorded earlier, reused") == 2, proc.stderr
    data = read_verified(project / "sprints" / sid / "transfer.json")
    assert data is not None and [r["status"] for r in data["runs"]] == ["ok", "ok"]
    logs = "".join(p.read_text() for p in (project / ".autosae" / "jobs").glob("*_log.out"))
    assert "transfer: loading" in logs and "training on cpu" in logs  # the job did
    assert "transfer " + sid in git.Repo(project).git.log("--format=%s", "-3")
