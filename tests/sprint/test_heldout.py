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
from autosae.variants import reference_variants
from tests.sprint.conftest import SPRINT_ID, autosae, ledger, write_script, write_task

# BatchTopK on the benchmark's seeds (2 and 3 below), a crash on any other: a variant that
# beats its parent (Matryoshka, after the short training below) on the benchmark and does
# not hold up on the held-out models (seeds 0 and 1).
BENCHMARK_ONLY = (
    reference_variants()["batchtopk"].read_text()
    + """

_batchtopk = build


def build(spec):
    if spec.seed < 2:
        raise RuntimeError("tuned to the benchmark's seeds only")
    return _batchtopk(spec)
"""
)


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
    assert judge(good, "f1")["confirmed"] and judge(good, "f1")["outcome"] == "confirmed"
    worse = good + [{"name": "c", "delta_parent": -0.05, "verdict": "worse"}]
    out = judge(worse, "f1")
    assert not out["confirmed"] and out["reason"] == "contradicted: c says worse"
    flat = [{"name": "a", "delta_parent": -0.001, "verdict": "no change"}]
    assert judge(flat, "f1")["outcome"] == "contradicted" and judge([], "f1")["outcome"] == "not confirmed"
    failed = good + [{"name": "c", "delta_parent": None, "verdict": "failed"}]
    assert judge(failed, "f1")["outcome"] == "not confirmed" and not judge(failed, "f1")["confirmed"]


def test_held_out_models_never_confirm_a_sprint_that_is_not_itself_an_improvement():
    """The overclaim the issue found: an inconclusive sprint (p = 0.13) whose held-out models are
    not significant either (p = 0.83, 0.13, 0.08) was printed as `confirmed: yes`."""
    rows = [
        {"name": "heldout-a", "delta_parent": 0.004, "p_value": 0.83, "verdict": "inconclusive"},
        {"name": "correlated", "delta_parent": 0.02, "p_value": 0.13, "verdict": "inconclusive"},
        {"name": "superposed", "delta_parent": 0.03, "p_value": 0.08, "verdict": "inconclusive"},
    ]
    for own in ("inconclusive", "no change", "worse"):
        out = judge(rows, "f1", own)
        assert not out["confirmed"] and out["outcome"] == "consistent", (own, out)
        assert out["reason"].startswith(f"consistent: with its own verdict ({own})")
    assert judge(rows, "f1", "improved")["outcome"] == "confirmed"
    significant = rows + [{"name": "shallow", "delta_parent": 0.05, "p_value": 0.001, "verdict": "improved"}]
    for own in ("inconclusive", "no change", "worse"):
        out = judge(significant, "f1", own)
        assert out["outcome"] == "contradicted" and "shallow says significantly" in out["reason"], out
    down = [{"name": "heldout-a", "delta_parent": -0.05, "p_value": 0.001, "verdict": "worse"}]
    assert judge(down, "f1", "worse")["outcome"] == "consistent"
    assert judge(down, "f1", "no change")["outcome"] == "contradicted"


@pytest.mark.slow  # a sprint, its baselines and a held-out run: minutes on two busy cores
def test_autosae_verify_that_does_not_confirm_takes_the_new_best_away(project):
    task = project / "TASK.md"
    task.write_text(
        task.read_text()
        .replace("seeds: 2\n", "seeds: [2, 3]\n", 1)
        .replace("significance: 0.05", "significance: 0.45")
        .replace("training_samples: 204800", "training_samples: 20480")
        .replace("  models: 2\n", "  models: 1\n")
    )  # heldout.auto is false: the sprint is recorded as a new best, unverified
    write_script(
        project,
        [
            {
                "title": "benchmark-only",
                "idea": "BatchTopK tuned to the benchmark",
                "parent": "baseline:matryoshka",
                "variant": BENCHMARK_ONLY,
            }
        ],
    )
    proc = autosae("sprint", cwd=project, timeout=1500)  # a fresh cache: the model and baselines too
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sid = SPRINT_ID.search(proc.stdout).group(1)
    (before,) = ledger(project)
    assert before["verdict"] == "improved" and before["new_best"] and before["confirmed"] is None, before
    assert f"best: {sid}" in autosae("status", cwd=project).stdout

    proc = autosae("verify", sid, cwd=project, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "confirmed: no" in proc.stdout and "held-out outcome: not confirmed" in proc.stdout
    assert "heldout-a says failed" in proc.stdout
    verdict = json.loads((project / "sprints" / sid / "verdict.json").read_text())
    assert verdict["confirmed"] is False and verdict["new_best"] is False
    assert verdict["verdict"] == "improved" and verdict["held_out"][0]["verdict"] == "failed"
    (after,) = ledger(project)
    assert after["new_best"] is False and after["confirmed"] is False
    assert after["held_out_outcome"] == "not confirmed"
    # every other key of the row is kept as it was
    assert {k: v for k, v in after.items() if k not in ("new_best", "confirmed", "held_out_outcome")} == {
        k: v for k, v in before.items() if k not in ("new_best", "confirmed")
    }
    status = autosae("status", cwd=project).stdout
    assert "best: the Matryoshka baseline" in status, status
    lines = [x for x in (project / "reports" / "leaderboard.md").read_text().splitlines() if f"[{sid}]" in x]
    assert any("(held-out ✗)" in x for x in lines) and not any("★" in x for x in lines), lines
    assert not git.Repo(project).git.status("--porcelain", "sprints", "reports")  # committed


def test_a_recorded_sprint_the_held_out_models_do_not_confirm_loses_its_new_best(tmp_path):
    from autosae.jsonio import write_json
    from autosae.records import LedgerRow
    from autosae.sprint.heldout import apply_heldout, record_heldout
    from autosae.sprint.ledger import best_row, read_ledger, write_ledger
    from autosae.sprint.state import SprintState
    from autosae.sprint.verdict import Reference, compute_verdict

    parent = Reference("baseline:matryoshka", {"f1": [0.76, 0.765, 0.755], "mcc": [0.7, 0.71, 0.69]}, "aaa")
    rows, verdicts = [], {}
    for sid, f1 in (("a", [0.80, 0.81, 0.805]), ("b", [0.85, 0.86, 0.855])):
        results = {
            "status": "ok",
            "variant_sha256": f"sha-of-{sid}",
            "per_seed": [{"seed": i, "status": "ok", "f1": f, "mcc": 0.7} for i, f in enumerate(f1)],
        }
        best = Reference("a", {"f1": [0.80, 0.81, 0.805]}) if rows else None
        verdicts[sid] = compute_verdict(results, sid, parent, best, {}, "f1", 0.05)
        state = SprintState(
            sid, "reporting", sid, "idea", "h", "p", "baseline:matryoshka", None, "scripted", "tiny", "f1",
            [0, 1, 2], "x", "main", f"sprint/{sid}", "0" * 64, verdict=verdicts[sid],
        )  # fmt: skip
        rows.append(LedgerRow.from_sprint(state, results).to_dict() | {"a_later_key": sid})
    assert verdicts["a"]["new_best"] and verdicts["b"]["new_best"] and best_row(rows, "x")["id"] == "b"
    ledger_path = tmp_path / "reports" / "ledger.jsonl"
    write_ledger(ledger_path, rows)
    first_line = ledger_path.read_text().splitlines()[0]
    folder = tmp_path / "sprints" / "b"
    folder.mkdir(parents=True)
    write_json(folder / "verdict.json", verdicts["b"])

    out = judge([{"name": "heldout-a", "delta_parent": -0.02, "verdict": "worse"}], "f1")
    out["models"] = [{"name": "heldout-a", "verdict": "worse", "delta_parent": -0.02}]
    verdict = record_heldout(folder, ledger_path, "b", out)
    assert json.loads((folder / "verdict.json").read_text()) == verdict
    assert verdict["new_best"] is False and verdict["confirmed"] is False and verdict["verdict"] == "improved"
    assert verdict["held_out_reason"] == "contradicted: heldout-a says worse"
    assert verdict["held_out_outcome"] == "contradicted"
    after = read_ledger(ledger_path)
    assert after[1] == rows[1] | {"new_best": False, "confirmed": False, "held_out_outcome": "contradicted"}
    assert ledger_path.read_text().splitlines()[0] == first_line  # the other rows, byte for byte
    assert best_row(after, "x")["id"] == "a"  # the best is the sprint before it again
    # a confirmed sprint stays the new best
    kept = apply_heldout(verdicts["b"], {"models": [], "confirmed": True, "reason": "confirmed"})
    assert kept["new_best"] is True and kept["confirmed"] is True
