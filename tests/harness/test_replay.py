"""The test suite's stand-in for the harness (autosae.harness.replay): a miss trains for real and
records; a hit leaves what the real run left, returns or raises as it did, and says it replayed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from autosae.errors import VariantFailed
from autosae.harness import replay
from autosae.harness.run import RunOptions, run_variant
from autosae.harness.seal import read_verified
from autosae.report.record import read_curves
from autosae.variants import reference_variants


@pytest.fixture
def recordings(tmp_path, monkeypatch):
    folder = tmp_path / "recordings"
    monkeypatch.setenv(replay.ENV, str(folder))
    return folder


def test_a_miss_trains_and_records_then_a_hit_replays_it(quick, recordings, tmp_path, capfd):
    variant = reference_variants()["batchtopk"]
    opts = RunOptions(seeds=[0], counted=False)
    real = run_variant(variant, quick, tmp_path / "real", opts)
    assert "replayed" not in real and real["status"] == "ok"
    (saved,) = recordings.glob("*.json")
    assert "no recording of batchtopk.py on tiny" in capfd.readouterr().err
    assert str(tmp_path) not in saved.read_text()  # the run folder is a placeholder

    again = run_variant(variant, quick, tmp_path / "again", opts)
    assert again["replayed"] is True and capfd.readouterr().err == ""
    assert {k: v for k, v in again.items() if k not in ("replayed", "variant")} == {
        k: v for k, v in real.items() if k != "variant"
    }
    assert again["variant"] == str((tmp_path / "again" / "variant" / "batchtopk.py").resolve())
    sealed = read_verified(tmp_path / "again" / "results.json")  # sealed with this cache's key
    assert {k: v for k, v in sealed.items() if k != "seal"} == again
    assert read_curves(tmp_path / "again") == read_curves(tmp_path / "real")
    assert (tmp_path / "again" / "variant" / "batchtopk.py").read_text() == variant.read_text()
    assert [p.name for p in recordings.glob("*.json")] == [saved.name]


def test_a_failure_is_recorded_and_raised_again(quick, recordings, write_variant, tmp_path):
    variant = write_variant("def build(spec):\n    raise ValueError('boom in build')\n")
    opts = RunOptions(seeds=[0], counted=False)
    with pytest.raises(VariantFailed) as real:
        run_variant(variant, quick, tmp_path / "real", opts)
    with pytest.raises(VariantFailed) as again:
        run_variant(variant, quick, tmp_path / "again", opts)
    assert str(again.value) == str(real.value).replace(str(tmp_path / "real"), str(tmp_path / "again"))
    assert "boom in build" in str(again.value)
    replayed = read_verified(tmp_path / "again" / "results.json")
    assert replayed["status"] == "failed" and replayed["replayed"] is True
    assert "boom in build" in replayed["log_tail"]


def test_the_key_names_what_decides_the_outcome(quick, write_variant, tmp_path):
    variant = write_variant("from autosae.variants.batchtopk import build\n")
    opts = RunOptions.make(seeds=[0, 1])
    key = replay.run_key(variant, quick, opts, "cpu")
    same = replay.digest(key)
    assert replay.digest(replay.run_key(variant, quick, opts, "cpu")) == same
    changes = [
        replay.run_key(variant, quick, opts.replace(seeds=[0]), "cpu"),
        replay.run_key(variant, quick, opts.replace(counted=False), "cpu"),
        replay.run_key(variant, quick, opts.replace(time_limit_s=5), "cpu"),
        replay.run_key(variant, dataclasses.replace(quick, eval_seed=7), opts, "cpu"),
        replay.run_key(variant, quick, opts, "cuda"),
    ]
    (tmp_path / "helper.py").write_text("X = 1\n")  # a neighbour the variant could import
    changes.append(replay.run_key(variant, quick, opts, "cpu"))
    assert len({replay.digest(k) for k in changes} | {same}) == len(changes) + 1
    # a session's secret eval seed is named by its role, so recordings outlive the session
    from autosae.sprint.project_secrets import eval_seed

    secret = dataclasses.replace(quick, eval_seed=eval_seed())
    assert replay.run_key(variant, secret, opts, "cpu")["eval_seed"] == "secret"
    assert json.dumps(replay.run_key(variant, secret, opts, "cpu")).find(str(eval_seed())) == -1


def test_without_the_variable_it_stays_out_of_the_way(monkeypatch):
    monkeypatch.delenv(replay.ENV, raising=False)
    assert not replay.active()
    monkeypatch.setenv(replay.ENV, "/nonexistent")
    assert replay.active()
