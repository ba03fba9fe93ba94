"""Typed records read what every release wrote and write it back without losing a key; the one
JSON writer replaces a file whole or not at all."""

from __future__ import annotations

import json
import os

import pytest

from autosae.harness.seal import read_verified, seal, write_sealed
from autosae.jsonio import read_json, write_json
from autosae.records import LedgerRow, Results, SeedResult, Verdict, is_ok, ok_seeds
from autosae.sprint.reporting import ledger_row
from autosae.sprint.state import SprintState, StateStore
from autosae.sprint.verdict import Reference, compute_verdict

RESULTS = {  # as harness.run writes it, keys in its order, plus a key from some later release
    "status": "ok",
    "reason": None,
    "counted": True,
    "profile": "tiny",
    "model_hash": "0123456789abcdef",
    "model_seed": 0,
    "constraints": {"width": 512, "k": 16},
    "variant": "/runs/s/variant/variant.py",
    "variant_sha256": "ab" * 32,
    "seeds": [0, 1],
    "device": "cpu",
    "versions": {"autosae": "0.1", "torch": "2.4"},
    "sandbox": {"mode": "auto", "enabled": True},
    "per_seed": [
        {"seed": 0, "status": "ok", "f1": 0.8, "mcc": 0.7, "l0": 16.0, "probe_sketch": [0.1], "train_s": 3.2},
        {"seed": 1, "status": "ok", "f1": 0.82, "mcc": 0.71, "l0": 15.5, "probe_sketch": [0.2], "train_s": 3.1},
    ],
    "summary": {"f1": {"mean": 0.81, "std": 0.014, "n": 2}, "mcc": {"mean": 0.705, "std": 0.007, "n": 2}},
    "wall_s": 7.5,
    "from_the_future": {"kept": [1, 2]},
}


def state(**kw) -> SprintState:
    base = dict(
        id="2026-11-25--01-02-03-lista",
        phase="reporting",
        title="LISTA",
        idea="a one-step LISTA encoder",
        hypothesis="h",
        plan="p",
        parent="baseline:matryoshka",
        config=None,
        backend="scripted",
        profile="tiny",
        objective="f1",
        seeds=[0, 1],
        setting="abc",
        base_branch="main",
        branch="sprint/x",
        task_sha256="0" * 64,
        cost_usd=0.123456,
        tokens={"input_tokens": 5},
        sandboxed=True,
        finished="2026-11-25T01:10:00Z",
    )
    return SprintState(**(base | kw))


def test_results_read_and_written_back_unchanged_key_for_key_and_in_order():
    sealed = seal(RESULTS)
    back = Results.from_dict(sealed).to_dict()
    assert back == sealed and list(back) == list(sealed)
    assert [list(r) for r in back["per_seed"]] == [list(r) for r in sealed["per_seed"]]
    typed = Results.from_dict(sealed)
    assert typed.ok and [s.seed for s in typed.ok_seeds()] == [0, 1] and typed.stat("f1")["n"] == 2
    assert typed.per_seed[0].extra["probe_sketch"] == [0.1]  # unknown to the type, kept
    failed = {"status": "failed", "reason": "no results were recorded"}  # what a lost run reads as
    assert Results.from_dict(failed).to_dict() == failed and not Results.from_dict(failed).ok


def test_one_predicate_says_which_seeds_and_runs_scored():
    assert is_ok({"status": "ok"}) and not is_ok({"status": "failed"}) and not is_ok(None) and not is_ok({})
    assert [
        r["seed"] for r in ok_seeds({"per_seed": [{"seed": 0, "status": "crashed"}, {"seed": 1, "status": "ok"}]})
    ] == [1]
    assert ok_seeds(None) == [] and ok_seeds({"per_seed": None}) == []
    assert SeedResult.from_dict({"seed": 3, "status": "ok", "f1": 0.5}).ok
    fresh = SeedResult(seed=2, status="failed", kind="crash", reason="boom").to_dict()
    assert fresh == {"seed": 2, "status": "failed", "kind": "crash", "reason": "boom"}


def test_a_verdict_is_the_dict_compute_verdict_always_wrote():
    parent = Reference("baseline:matryoshka", {"f1": [0.76, 0.765, 0.755], "mcc": [0.7, 0.71, 0.69]}, "aaa")
    results = {
        "status": "ok",
        "variant_sha256": "bbb",
        "per_seed": [{"seed": i, "status": "ok", "f1": f, "mcc": 0.7} for i, f in enumerate([0.8, 0.81, 0.805])],
    }
    v = compute_verdict(results, "s", parent, None, {"matryoshka": parent}, "f1", 0.05)
    assert list(v) == [
        "verdict", "objective", "alpha", "parent", "delta_parent", "p_value", "noise_floor", "noise_floor_note",
        "noop", "noop_reason", "best", "delta_best", "new_best", "baselines", "coverage", "reason",
    ]  # fmt: skip
    assert v["verdict"] == "improved" and v["new_best"] and "held_out" not in v  # not verified yet
    assert Verdict.from_dict(v).to_dict() == v


def test_an_old_verdict_gains_only_what_is_recorded_on_it():
    old = {"verdict": "improved", "new_best": True, "reason": "F1 +0.05", "a_key_we_dropped": 1}
    assert Verdict.from_dict(old).to_dict() == old  # no defaults added to what an old release wrote
    v = Verdict.from_dict(old)
    v.record_heldout([{"name": "heldout-a", "verdict": "worse"}], False, "not confirmed: heldout-a says worse")
    out = v.to_dict()
    assert out["new_best"] is False and out["confirmed"] is False and out["a_key_we_dropped"] == 1
    assert set(out) == set(old) | {"held_out", "confirmed", "held_out_reason", "held_out_outcome"}
    assert out["held_out_outcome"] == "not confirmed"
    v = Verdict.from_dict(old)
    v.record_heldout([], True, "confirmed on 1 held-out models")
    assert v.new_best is True and v.confirmed is True


def test_the_ledger_row_is_the_engines_row():
    results = RESULTS | {"summary": RESULTS["summary"] | {"l0": {"mean": 15.75, "std": 0.3, "n": 2}}}
    s = state(verdict={"verdict": "improved", "new_best": True, "delta_parent": 0.05, "p_value": 0.01})
    row = LedgerRow.from_sprint(s, results).to_dict()
    assert row == ledger_row(s, results) and row["l0"] == 15.75 and row["per_seed"]["f1"] == [0.8, 0.82]
    failed = state(verdict=None, failure="the agent gave up")
    assert LedgerRow.from_sprint(failed, None).to_dict() == ledger_row(failed, None)
    stored = json.loads(json.dumps(row)) | {"added_by_a_later_release": "x"}
    assert LedgerRow.from_dict(stored).to_dict() == stored


def test_write_json_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "verdict.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2, "f": 0.5}, durable=True)
    assert read_json(path) == {"a": 2, "f": 0.5} and path.read_text().endswith("}\n")
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})  # fails half-way through serialising
    assert read_json(path) == {"a": 2, "f": 0.5}  # the old record, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verdict.json"]  # no temporary file left
    assert read_json(tmp_path / "missing.json") is None


def test_sealed_files_of_the_old_writer_still_verify(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps(seal(RESULTS), indent=2))  # as write_sealed wrote it before: no newline
    assert read_verified(old) == seal(RESULTS)
    new = tmp_path / "new.json"
    assert write_sealed(new, RESULTS) == read_verified(new)


def test_state_is_saved_durably_and_loads_back(tmp_path):
    store = StateStore(tmp_path / "state")
    s = state()
    store.save(s)
    assert store.load(s.id) == s and [x.id for x in store.all()] == [s.id]
    assert os.listdir(store.folder) == [f"{s.id}.json"]
