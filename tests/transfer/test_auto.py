"""TASK.md's transfer.auto: the loop transfers each new best right after recording it."""

from __future__ import annotations

import git

from autosae.harness.seal import read_verified
from tests.sprint.conftest import autosae, commit, ledger, write_script
from tests.transfer.test_transfer import set_transfer, write_lm


def test_the_loop_transfers_each_new_best_when_task_md_asks(project, tmp_path):
    task = project / "TASK.md"  # as tests/sprint/test_heldout.py: Matryoshka beats its BatchTopK parent
    task.write_text(
        task.read_text().replace("seeds: 2\n", "seeds: 3\n", 1).replace("significance: 0.05", "significance: 0.1")
    )
    write_script(
        project,
        [
            {
                "title": "nested",
                "idea": "Matryoshka over BatchTopK",
                "parent": "baseline:batchtopk",
                "variant": "matryoshka",
            }
        ],
    )
    commit(project, "a sprint that becomes the new best", "TASK.md", "script.yaml")
    model, tokens = write_lm(tmp_path / "lm")
    set_transfer(project, model, tokens, l0s=[4], auto=True)
    proc = autosae("loop", "--max-sprints", "1", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = ledger(project)
    assert row["new_best"], row
    sid = row["id"]
    assert f"{sid} | transfer | on {model}" in proc.stdout
    data = read_verified(project / "sprints" / sid / "transfer.json")
    assert data is not None and data["kinds"] == ["variant", "parent", "baseline"]
    assert [r["status"] for r in data["runs"]] == ["ok"] * 3
    assert data["verdict"] == "inconclusive at this budget"  # one pair of runs: no test to decide with
    assert f"{sid} | transfer | ? inconclusive at this budget" in proc.stdout
    assert "transfer " + sid in git.Repo(project).git.log("--format=%s", "-3")
