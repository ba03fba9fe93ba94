"""Device slots on CPU: seeds at once as processes, fair turns, a failing slot retired."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from autosae.errors import AutosaeError, VariantFailed
from autosae.harness.devices import parse_gpus
from autosae.harness.run import RunOptions, run_variant
from autosae.harness.slots import SlotPool
from autosae.variants import reference_variants


@pytest.fixture(scope="module")
def short_tiny():
    from autosae.bench.profiles import get_profile

    return get_profile("tiny", overrides=["training_samples=51200"])


def test_parse_gpus():
    assert parse_gpus("0,1") == ["cuda:0", "cuda:1"]
    assert parse_gpus([0, "cuda:3"]) == ["cuda:0", "cuda:3"]
    assert parse_gpus("cpu,cpu") == ["cpu", "cpu"]
    assert parse_gpus(None) is None
    with pytest.raises(AutosaeError, match="a GPU is named twice"):
        parse_gpus("1,1")
    with pytest.raises(AutosaeError, match="expected GPU indices"):
        parse_gpus("gpu0")


def test_a_free_slot_goes_to_the_run_holding_fewest():
    pool = SlotPool(["cpu", "cpu"])
    a1, a2 = pool.acquire("A"), pool.acquire("A")
    got: list[str] = []

    def want(owner: str) -> None:
        device = pool.acquire(owner)
        got.append(owner)
        pool.release(owner, device)

    third_a = threading.Thread(target=want, args=("A",))
    third_a.start()
    time.sleep(0.2)  # A's third seed queues first...
    first_b = threading.Thread(target=want, args=("B",))
    first_b.start()
    time.sleep(0.2)
    pool.release("A", a1)  # ...but B, holding nothing, gets the freed slot
    first_b.join(timeout=5)
    third_a.join(timeout=5)
    pool.release("A", a2)
    assert got == ["B", "A"]


def test_retired_slots_are_not_handed_out():
    pool = SlotPool(["cpu", "cuda:9"])
    assert {pool.acquire("A"), pool.acquire("A")} == {"cpu", "cuda:9"}
    pool.release("A", "cuda:9", error="CUDA error: device lost")
    pool.release("A", "cpu")
    assert pool.alive == ["cpu"] and pool.retired == {"cuda:9": "CUDA error: device lost"}
    for owner in ("B", "C", "B"):  # every later run gets the live slot, never the retired one
        assert pool.acquire(owner) == "cpu"
        pool.release(owner, "cpu")
    # with the live slot taken, a run waits for it (it is not handed cuda:9) until it gives up
    assert pool.acquire("B") == "cpu"
    gave_up = threading.Event()
    threading.Timer(0.3, gave_up.set).start()
    assert pool.acquire("C", gave_up) is None
    pool.release("B", "cpu")
    assert pool.acquire("C") == "cpu"


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_seeds_on_slots_match_seeds_in_turn_and_a_failing_slot_is_retired(tmp_path, short_tiny):
    """Two CPU slots train the seeds at once, as processes, to the metrics of seeds in turn.
    cuda:9 does not exist here (nor on a one-GPU machine): the trusted side fails on it, the
    slot is retired, and the seed it had moves to a CPU slot."""
    variant = reference_variants()["batchtopk"]
    seq = run_variant(variant, short_tiny, tmp_path / "seq", RunOptions.make(seeds=[0, 1], log=lambda _: None))
    pool, lines = SlotPool(["cuda:9", "cpu", "cpu"]), []
    par = run_variant(variant, short_tiny, tmp_path / "par", RunOptions.make(seeds=[0, 1], pool=pool, log=lines.append))
    assert par["status"] == "ok" and par["devices"] == ["cpu"]
    assert [r["seed"] for r in par["per_seed"]] == [0, 1]
    for a, b in zip(seq["per_seed"], par["per_seed"]):
        assert b["device"] == "cpu"
        assert b["f1"] == pytest.approx(a["f1"], abs=0.01) and b["mcc"] == pytest.approx(a["mcc"], abs=0.01)
    for seed in (0, 1):
        assert (tmp_path / "par" / f"seed_{seed}" / "sae" / "sae_weights.safetensors").is_file()
    assert "cuda:9" in pool.retired
    assert any(line.startswith("slot cuda:9 retired:") for line in lines)


def test_no_slot_left_fails_the_run_with_the_reason(tmp_path, short_tiny):
    pool = SlotPool(["cuda:9"])
    with pytest.raises(VariantFailed, match="no device slot left: cuda:9"):
        run_variant(
            reference_variants()["batchtopk"],
            short_tiny,
            tmp_path / "run",
            RunOptions.make(seeds=[0], pool=pool, log=lambda _: None),
        )


def test_a_crashing_seed_stops_the_seeds_still_running(tmp_path, write_variant, short_tiny):
    """Seed 1 crashes at once; seed 0 would hang for ten minutes: the run fails in seconds."""
    variant = write_variant("""
        import time
        from autosae.sae import BatchTopKSAE

        def build(spec):
            if spec.seed == 1:
                raise RuntimeError("seed one is broken")
            time.sleep(600)
    """)
    profile = dataclasses.replace(short_tiny, time_limit_s=900)
    started = time.monotonic()
    with pytest.raises(VariantFailed, match="seed 1: RuntimeError: seed one is broken"):
        run_variant(
            variant,
            profile,
            tmp_path / "run",
            RunOptions.make(seeds=[0, 1], pool=SlotPool(["cpu", "cpu"]), log=lambda _: None),
        )
    assert time.monotonic() - started < 90


def test_closing_the_pool_stops_its_runs_at_once(tmp_path, write_variant, short_tiny):
    """What Ctrl-C does to `loop --parallel`: the slot processes (and the variant's) stop now."""
    variant = write_variant("""
        import time

        def build(spec):
            time.sleep(600)
    """)
    pool, outcome = SlotPool(["cpu"]), {}

    def run() -> None:
        try:
            run_variant(
                variant, short_tiny, tmp_path / "run", RunOptions.make(seeds=[0, 1], pool=pool, log=lambda _: None)
            )
        except BaseException as exc:  # noqa: BLE001 - the test looks at what came out
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(8)  # the first seed's variant is hanging in build() by now
    started = time.monotonic()
    pool.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and time.monotonic() - started < 30
    assert isinstance(outcome.get("error"), KeyboardInterrupt)
    assert pool.acquire("late") is None
