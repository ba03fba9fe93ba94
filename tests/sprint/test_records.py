"""The pieces under the engine: verdicts, repeats, the ledger, ids and the lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from autosae.errors import AutosaeError
from autosae.sprint.ledger import best_row, find_duplicate, parse_ledger
from autosae.sprint.project import Project, ProjectLock
from autosae.sprint.state import new_sprint_id
from autosae.sprint.verdict import Reference, compute_verdict, welch_p

PARENT = Reference("baseline:matryoshka", {"f1": [0.760, 0.765, 0.755], "mcc": [0.7, 0.71, 0.69]}, "aaa")


def judge(f1, mcc=(0.7, 0.7, 0.7), sha="bbb", alpha=0.05):
    results = {
        "status": "ok",
        "variant_sha256": sha,
        "per_seed": [{"seed": i, "status": "ok", "f1": a, "mcc": b} for i, (a, b) in enumerate(zip(f1, mcc))],
    }
    return compute_verdict(results, "s", PARENT, None, {"matryoshka": PARENT}, "f1", alpha)


def test_verdicts():
    assert judge([0.80, 0.81, 0.805])["verdict"] == "improved"
    assert judge([0.70, 0.71, 0.705])["verdict"] == "worse"
    assert judge([0.761, 0.766, 0.754])["verdict"] == "no change"
    # beyond the noise floor, but three noisy seeds cannot confirm it
    assert judge([0.77, 0.81, 0.85])["verdict"] == "inconclusive"
    # one lucky seed, within the parent's spread or far beyond it: never a finding
    for lucky in ([0.762], [0.90]):
        single = judge(lucky, mcc=[0.7])
        assert single["verdict"] == "inconclusive" and "a single seed never counts" in single["reason"]
        assert not single["new_best"]
        # no noise floor from one seed: None and why, never 0.0
        assert single["noise_floor"] is None and single["noise_floor_note"] == "not measurable (n = 1)"
        assert "noise floor not measurable (n = 1)" in single["reason"] and "0.0000" not in single["reason"]
    assert judge([0.80, 0.81, 0.805])["noise_floor"] > 0 and judge([0.80, 0.81, 0.805])["noise_floor_note"] is None
    failed = compute_verdict({"status": "failed", "reason": "seed 0: NaN"}, "s", PARENT, None, {}, "f1", 0.05)
    assert failed["verdict"] == "failed" and failed["reason"] == "seed 0: NaN"


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy's own, for seeds 1e-4 apart
def test_welch_p_is_scipys_welch_t_test():
    """welch_p computes Welch's test itself (sparing each sprint the import of scipy.stats):
    the same p-values as scipy's, for seed counts and spreads a sprint meets."""
    import random

    from scipy import stats

    rng = random.Random(0)
    for _ in range(200):
        a = [rng.gauss(0.76, rng.choice([1e-4, 0.005, 0.05])) for _ in range(rng.randint(2, 6))]
        b = [
            rng.gauss(rng.choice([0.76, 0.77, 0.9]), rng.choice([1e-4, 0.005, 0.05])) for _ in range(rng.randint(2, 6))
        ]
        assert welch_p(a, b) == pytest.approx(
            float(stats.ttest_ind(a, b, equal_var=False).pvalue), rel=1e-9, abs=1e-300
        )
    assert welch_p([0.8, 0.8], [0.7, 0.71]) == pytest.approx(
        stats.ttest_ind([0.8, 0.8], [0.7, 0.71], equal_var=False).pvalue
    )
    assert welch_p([0.8, 0.8], [0.8, 0.8]) == 1.0 and welch_p([0.8, 0.8], [0.7, 0.7]) == 0.0
    assert welch_p([0.8], [0.7, 0.71]) is None


def test_no_ops_are_flagged_not_reported_as_findings():
    same_code = judge([0.80, 0.81, 0.805], sha="aaa")
    assert same_code["noop"] and same_code["verdict"] == "no change" and "byte-for-byte" in same_code["noop_reason"]
    same_scores = judge(PARENT.values["f1"], PARENT.values["mcc"])
    assert same_scores["noop"] and "exactly" in same_scores["noop_reason"]


def test_a_new_best_must_be_significant_and_above_the_best():
    assert judge([0.80, 0.81, 0.805])["new_best"]
    best = Reference("s1", {"f1": [0.85, 0.85, 0.85]})
    results = {
        "status": "ok",
        "per_seed": [{"seed": i, "status": "ok", "f1": v, "mcc": 0.7} for i, v in enumerate([0.80, 0.81, 0.805])],
    }
    verdict = compute_verdict(results, "s", PARENT, best, {}, "f1", 0.05)
    assert verdict["verdict"] == "improved" and not verdict["new_best"] and verdict["delta_best"] < 0


def test_repeats_by_configuration_or_by_text():
    rows = [
        {"id": "a", "idea": "a one-step LISTA encoder", "title": "LISTA", "config": {"x": 1}},
        {"id": "b", "idea": "TERM loss with tilt 2e-3", "title": "TERM", "config": None},
    ]
    assert find_duplicate(rows, "anything", {"x": 1})[0]["id"] == "a"
    assert find_duplicate(rows, "3 levels", {"x": 2}) is None  # configs decide when both have one
    assert find_duplicate(rows, "TERM loss, with tilt 2e-3!", None)[0]["id"] == "b"
    assert find_duplicate(rows, "sort the levels by frequency", None) is None


def test_the_best_is_the_latest_new_best_in_the_setting():
    rows = [
        {"id": "a", "setting": "x", "new_best": True},
        {"id": "b", "setting": "x", "new_best": True},
        {"id": "c", "setting": "y", "new_best": True},  # later, but another model or constraints
        {"id": "d", "setting": "x", "new_best": False},
        {"id": "e", "setting": "x"},  # a row from before new_best existed
    ]
    assert best_row(rows, "x")["id"] == "b" and best_row(rows, "y")["id"] == "c" and best_row(rows, "z") is None
    assert best_row(rows[:1] + rows[2:], "x")["id"] == "a"


def test_a_corrupt_ledger_line_is_named():
    with pytest.raises(AutosaeError, match="line 2"):
        parse_ledger('{"id": "a"}\n{oops\n')


def test_ids_are_sortable_and_unique():
    now = datetime(2026, 11, 25, 1, 2, 3, tzinfo=timezone.utc)
    first = new_sprint_id("One-step LISTA (eta 0.3)!", set(), now)
    assert first == "2026-11-25--01-02-03-one-step-lista-eta-0-3"
    assert new_sprint_id("One-step LISTA (eta 0.3)!", {first}, now) == first + "-2"


def test_the_lock(tmp_path):
    project = Project(tmp_path)
    with ProjectLock(project, "autosae loop"):
        holder = json.loads(project.lock_path.read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(AutosaeError, match="another autosae is running"):
            ProjectLock(project, "autosae sprint").acquire()
    assert not project.lock_path.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    project.lock_path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "x"}))
    notes = []
    with ProjectLock(project, "autosae loop", log=notes.append):
        assert json.loads(project.lock_path.read_text())["pid"] == os.getpid()
    assert "stale" in notes[0]
