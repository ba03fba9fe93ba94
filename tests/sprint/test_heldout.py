"""The held-out suite: a new best is trained beside its parent on models the agent never saw
before it is confirmed; the secret seeds stay out of everything the agent can read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import git
import pytest

from autosae.bench.profiles import get_profile
from autosae.sprint.heldout import SUITE, judge, suite
from autosae.sprint.project_secrets import eval_seed, secrets_path
from tests.sprint.conftest import SPRINT_ID, autosae, ledger, write_script, write_task


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_a_truly_better_variant_is_confirmed_on_held_out_models(project):
    write_task(project, heldout=True)  # one held-out model here (2 in conftest's task): enough to test the phase
    task = project / "TASK.md"
    # three seeds at alpha 0.1: enough to call Matryoshka's lead over BatchTopK on the short tiny
    task.write_text(
        task.read_text()
        .replace("seeds: 2\n", "seeds: 3\n", 1)
        .replace("significance: 0.05", "significance: 0.1")
        .replace("  models: 2\n", "  models: 1\n")
    )
    write_script(
        project,
        [
            {
                "title": "nested dictionaries",
                "idea": "Matryoshka levels over plain BatchTopK",
                "parent": "baseline:batchtopk",
                "variant": "matryoshka",
            }
        ],
    )
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sid = SPRINT_ID.search(proc.stdout).group(1)
    assert f"{sid} | verifying | 1 held-out models, 2 seeds each" in proc.stdout
    (row,) = ledger(project)
    assert row["verdict"] == "improved" and row["new_best"] and row["confirmed"] is True
    verdict = json.loads((project / "sprints" / sid / "verdict.json").read_text())
    assert [m["name"] for m in verdict["held_out"]] == ["heldout-a"]
    for m in verdict["held_out"]:
        assert m["f1"]["n"] == 2 and m["parent_f1"]["n"] == 2 and m["delta_parent"] > 0
    assert verdict["held_out_reason"].startswith("confirmed on 1 held-out models")
    md = (project / "sprints" / sid / "report.md").read_text()
    assert "## Held-out models" in md and "| the benchmark's model |" in md and "| heldout-a |" in md
    # the secret seeds are in the cache folder, and in nothing committed or under the project
    repo = git.Repo(project)
    key = repo.git.rev_list("--max-parents=0", "HEAD")
    path = secrets_path(key)
    assert path.parent == Path(os.environ["AUTOSAE_CACHE"]) / "secrets" and path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert len(data["heldout_seeds"]) == len(SUITE)
    seeds = data["heldout_seeds"] + [eval_seed()]  # the eval samples' seed is as secret
    for seed in seeds:
        assert not repo.git.grep("-l", str(seed), "HEAD", with_exceptions=False)
        assert not any(str(seed) in p.read_text(errors="ignore") for p in project.rglob("*.json"))
    # `autosae verify` again: the cached runs answer at once, with the same numbers
    again = autosae("verify", sid[-12:], cwd=project)
    assert again.returncode == 0, again.stderr
    assert "confirmed: yes" in again.stdout and "held-out heldout-a: F1 " in again.stdout
    assert not repo.git.status("--porcelain", "sprints", "reports")  # committed


def test_the_suite_and_its_judgement():
    tiny = get_profile("tiny")
    models = suite(tiny, "project-key-for-a-test", 5)
    assert [m.name for m in models] == list(SUITE)
    hashes = {m.profile.model_hash() for m in models} | {tiny.model_hash()}
    assert len(hashes) == 6  # all different from each other and from the benchmark's model
    by = {m.name: m.profile.model for m in models}
    assert by["correlated"].correlation_scale == 3 * tiny.model.correlation_scale
    assert by["superposed"].hidden_dim == 48 and by["shallow"].max_depth == tiny.model.max_depth - 1
    assert suite(tiny, "project-key-for-a-test", 2)[1].profile == models[1].profile  # seeds are kept
    good = [
        {"name": "a", "delta_parent": 0.02, "verdict": "improved"},
        {"name": "b", "delta_parent": 0.001, "verdict": "no change"},
    ]
    assert judge(good, "f1")["confirmed"]
    worse = good + [{"name": "c", "delta_parent": -0.05, "verdict": "worse"}]
    out = judge(worse, "f1")
    assert not out["confirmed"] and out["reason"] == "not confirmed: c says worse or failed"
    flat = [{"name": "a", "delta_parent": -0.001, "verdict": "no change"}]
    assert not judge(flat, "f1")["confirmed"] and not judge([], "f1")["confirmed"]
