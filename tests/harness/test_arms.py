"""run_experiment's arms × seeds: one real multi-arm, multi-seed call on tiny at full budget
(the table, paired deltas and p, curves, the copies in the worktree, the sprint's record),
the paired t-test against scipy, and the agent's arguments refused in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from scipy import stats

from autosae.agents.sandbox import Files
from autosae.errors import AutosaeError
from autosae.harness import arms as A
from autosae.harness import quick_copies as C
from autosae.harness import quick_table as T
from autosae.harness.experiment import experimenter
from autosae.harness.quick import default_samples
from autosae.harness.run import RunOptions
from autosae.variants import reference_variants

KNOB = """
from autosae.sae import BatchTopKSAE


def build(spec):
    print(f"OPTIONS {sorted(spec.options.items())}")
    return BatchTopKSAE(spec.d_in, spec.width, spec.k, dead_steps=int(spec.options.get("dead_steps", 1000)))
"""


def test_one_call_returns_a_multi_arm_multi_seed_table_at_full_budget(tiny, tmp_path):
    profile, _, _ = tiny
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / "knob.py").write_text(KNOB)
    variant = worktree / "variant.py"
    variant.write_text(reference_variants()["matryoshka"].read_text())
    records: list[dict] = []
    short = ["training_samples=204800"]  # tiny as the sprint tests shorten it: its full budget, a third of the time
    experiment = experimenter(
        "tiny",
        None,
        short,
        "baseline:batchtopk",
        reference_variants()["batchtopk"],
        tmp_path / "runs",
        lambda **kw: RunOptions.make(counted=False, device="cpu", sandbox="auto", **kw),
        worktree=worktree,
        on_record=records.append,
    )
    arms = ["variant", "parent", {"arm": "knob.py", "options": {"dead_steps": 50}, "label": "knob"}]
    report = experiment(variant, seeds=2, arms=arms, resolve_path=Files(worktree).resolve)

    assert report["status"] == "ok", report
    assert report["full_budget"] and report["training_samples"] == 204_800 < profile.constraints.training_samples
    assert report["seeds"] == [0, 1] and report["train_seeds"] == [900_000, 900_001]
    rows = {r["arm"]: r for r in report["arms"]}
    assert list(rows) == ["variant", "parent", "knob"]
    for row in rows.values():
        assert row["status"] == "ok" and row["metrics"]["f1"]["n"] == 2 and 0.3 < row["metrics"]["f1"]["mean"] <= 1
    assert "delta_vs_parent" not in rows["parent"]
    delta = rows["variant"]["delta_vs_parent"]["f1"]
    assert delta["n"] == 2 and 0 <= delta["p"] <= 1
    assert delta["mean"] == pytest.approx(
        rows["variant"]["metrics"]["f1"]["mean"] - rows["parent"]["metrics"]["f1"]["mean"], abs=1e-5
    )
    assert rows["knob"]["options"] == {"dead_steps": 50} and rows["knob"]["source"] == "knob.py"
    assert "| knob |" in report["table"] and "p=" in report["table"]
    # the knob reached build() as spec.options
    knob_logs = list((tmp_path / "runs").rglob("worker.log"))
    assert any("OPTIONS [('dead_steps', 50)]" in p.read_text() for p in knob_logs)
    # curves: thinned, the mean over seeds, the last point the end of training
    for label in rows:
        curve = report["curves"][label]
        assert 2 <= len(curve["samples"]) <= A.CURVE_POINTS and curve["samples"] == sorted(set(curve["samples"]))
        assert len(curve["loss"]) == len(curve["dead"]) == len(curve["samples"])
    # the copies the agent reads, in its worktree
    assert report["run_folder"] == ".quick/000"
    copied = worktree / ".quick" / "000"
    for i, label in enumerate(rows):
        for s in (0, 1):
            seed_dir = copied / f"{i:02d}-{A.slug(label)}" / f"seed_{s}"
            assert json.loads((seed_dir / "results.json").read_text())["status"] == "ok"
            assert (seed_dir / "train_log.jsonl").stat().st_size > 0
    # the record for the evidence: the schema of SprintState.quick_runs
    (rec,) = records
    assert set(rec) == {"n", "at", "profile", "training_samples", "seeds", "wall_s", "arms", "curves"}
    assert rec["n"] == 0 and rec["arms"] == report["arms"] and rec["curves"] == report["curves"]
    json.dumps(rec, allow_nan=False)
    # asked again: the parent's runs come from the cache
    again = experiment(variant, seeds=2, arms=["parent"], resolve_path=Files(worktree).resolve)
    assert again["parent"]["cached"] is True and again["run_folder"] == ".quick/001"
    assert again["arms"][0]["metrics"] == rows["parent"]["metrics"]


def test_the_default_budget_is_full_on_tiny_and_a_tenth_above_the_threshold(tiny):
    c = tiny[0].constraints
    assert default_samples(c) == c.training_samples
    assert default_samples(c, threshold=c.training_samples - 1) == c.training_samples // 10


def test_the_paired_test_matches_scipy():
    a, b = [0.71, 0.74, 0.69, 0.73], [0.70, 0.71, 0.69, 0.70]
    got = T.paired(a, b)
    want = stats.ttest_rel(a, b)
    assert got["p"] == pytest.approx(want.pvalue, rel=1e-9) and got["n"] == 4
    assert got["mean"] == pytest.approx(0.0175)
    assert T.paired([1.0], [0.5])["p"] is None
    assert T.paired([1.0, 2.0], [0.0, 1.0])["p"] == 0.0 and T.paired([1.0, 2.0], [1.0, 2.0])["p"] == 1.0


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ("variant", "expected a non-empty list"),
        ([], "expected a non-empty list"),
        (["variant"] * 9, "at most 8"),
        ([{"arm": "variant", "evil": 1}], "unknown key"),
        ([{"arm": 3}], "expected a string or"),
        ([{"arm": "variant", "options": {"a b": 1}}], "identifiers"),
        ([{"arm": "variant", "options": {"x": [1]}}], "expected a number, string"),
        ([{"arm": "variant", "options": {"x": float("nan")}}], "finite"),
        ([{"arm": "variant", "options": {f"k{i}": i for i in range(17)}}], "at most 16"),
        ([{"arm": "variant", "options": {"x": "y" * 201}}], "longer than 200"),
        ([{"arm": "x" * 201}], "1 to 200"),
    ],
)
def test_bad_arms_are_one_line(arms, message, tmp_path):
    with pytest.raises(AutosaeError, match=message) as info:
        A.resolve_arms(arms, tmp_path / "v.py", Files(tmp_path).resolve, tmp_path)
    assert "\n" not in str(info.value)


def test_arms_that_cannot_be_found_are_failed_rows_not_errors(tmp_path):
    worktree, main = tmp_path / "worktree", tmp_path / "main"
    (main / "sprints" / "s1").mkdir(parents=True)
    (main / "sprints" / "s1" / "variant.py").write_text("x = 1\n")
    (main / "sprints" / "linked").symlink_to(main / "sprints" / "s1")
    worktree.mkdir()
    (worktree / "out").symlink_to("/etc/passwd")
    raw = [
        "baseline:nope",
        "sprint:s1",
        "sprint:../s1",
        "sprint:linked",
        "sprint:missing",
        "out",
        "variant",
        "variant",
    ]
    arms = A.resolve_arms(raw, worktree / "variant.py", Files(worktree).resolve, main)
    errors = {a.label: a.error for a in arms}
    assert "unknown reference variant" in errors["baseline:nope"]
    assert errors["sprint:s1"] is None and arms[1].variant == main / "sprints" / "s1" / "variant.py" and arms[1].cached
    assert "not a sprint id" in errors["sprint:../s1"] and "a link" in errors["sprint:linked"]
    assert "no such sprint" in errors["sprint:missing"]
    assert "outside" in errors["out"]
    assert [a.label for a in arms[-2:]] == ["variant", "variant #7"]
    (escape,) = A.resolve_arms(["../../etc/passwd"], worktree / "variant.py", Files(worktree).resolve, main)
    assert "outside" in escape.error
    with pytest.raises(AutosaeError, match="seeds: 1 to 8"):
        A.check_seeds(9, 0)
    with pytest.raises(AutosaeError, match="quick seeds are 0 to 999"):
        A.check_seeds(3, 998)
    with pytest.raises(AutosaeError, match="seeds: expected an integer"):
        A.check_seeds(True, 0)


def _job(tmp_path: Path) -> A.Job:
    """A finished job whose run folder holds a results.json and a train log."""
    run = tmp_path / "run"
    (run / "seed_900000").mkdir(parents=True, exist_ok=True)
    (run / "results.json").write_text('{"status": "ok"}')
    (run / "seed_900000" / "train_log.jsonl").write_text('{"step": 1, "samples": 1024, "loss": 2.0}\n')
    return A.Job(A.Arm("variant", "variant"), 0, {"status": "ok"}, run)


@pytest.mark.parametrize("target", ["etc", "main"])
def test_the_copies_never_follow_a_link_the_agent_left_in_the_worktree(target, tmp_path):
    """The agent pre-creates .quick (or the call's folder, or a file in it) as a link to /etc or
    to the main checkout: the copies land in the worktree, the link's target is untouched."""
    worktree, outside = tmp_path / "worktree", tmp_path / target
    worktree.mkdir()
    outside.mkdir()
    (outside / "keep").write_text("mine")
    dest = "/etc" if target == "etc" else str(outside)
    os.symlink(dest, worktree / ".quick")
    before = sorted(os.listdir(dest))
    assert C.copy_runs(worktree, 0, [_job(tmp_path)]) == ".quick/000"
    assert not (worktree / ".quick").is_symlink() and sorted(os.listdir(dest)) == before
    copied = worktree / ".quick" / "000" / "00-variant" / "seed_0"
    assert (copied / "results.json").read_text() == '{"status": "ok"}' and (copied / "train_log.jsonl").is_file()
    # deeper: the call's folder and a seed file as links, made before the call
    (worktree / ".quick" / "001").symlink_to(outside)
    assert C.copy_runs(worktree, 1, [_job(tmp_path)]) == ".quick/001"
    assert not (worktree / ".quick" / "001").is_symlink() and os.listdir(outside) == ["keep"]
    seed = worktree / ".quick" / "001" / "00-variant" / "seed_0"
    (seed / "results.json").unlink()
    (seed / "results.json").symlink_to(outside / "keep")
    C.copy_runs(worktree, 1, [_job(tmp_path)])
    assert (outside / "keep").read_text() == "mine" and not (seed / "results.json").is_symlink()


def test_a_link_in_the_run_folder_is_not_copied(tmp_path):
    job = _job(tmp_path)
    (job.folder / "results.json").unlink()
    (job.folder / "results.json").symlink_to("/etc/passwd")
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    C.copy_runs(worktree, 0, [job])
    assert not (worktree / ".quick" / "000" / "00-variant" / "seed_0" / "results.json").exists()


def test_a_curve_is_thinned_to_twelve_points_ending_at_the_last(tmp_path):
    job = _job(tmp_path)
    lines = [json.dumps({"samples": 1024 * i, "loss": float(i), "l0": 5.0, "dead": i % 3}) for i in range(1, 101)]
    (job.folder / "seed_900000" / "train_log.jsonl").write_text("\n".join(lines) + "\nnot json\n")
    curve = T.curve([job])
    assert len(curve["samples"]) == A.CURVE_POINTS and curve["samples"][-1] == 102_400
    assert curve["loss"][0] == 1.0 and curve["loss"][-1] == 100.0
