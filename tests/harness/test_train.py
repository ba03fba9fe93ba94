"""Counted runs end to end through the real CLI: records, output, exit codes, baselines."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

QUICK = ["--uncounted", "--samples", "40960", "--set", "eval_samples=8192"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    proc = run_cli("train", "lista_matryoshka", "--seeds", "2", "--out", str(out), *QUICK)
    return proc, out


def test_train_prints_greppable_results_and_writes_the_record(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert lines["status"] == "ok" and lines["counted"] == "no" and lines["seeds"] == "2"
    for key in (
        "f1",
        "f1_std",
        "mcc",
        "mcc_std",
        "precision",
        "recall",
        "l0",
        "dead_latents",
        "explained_variance",
        "wall_s",
    ):
        float(lines[key])
    assert "progress: seed=900000" in proc.stderr and "eta=" in proc.stderr  # quick seed 0 trains as 900000
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "ok" and len(results["variant_sha256"]) == 64
    assert [r["seed"] for r in results["per_seed"]] == [900_000, 900_001]  # quick seeds: no counted run's
    assert results["quick"]["requested_seeds"] == [0, 1] and results["quick"]["eval_set"] == "validation"
    assert results["summary"]["f1"]["n"] == 2
    assert results["summary"]["f1"]["mean"] == pytest.approx(float(lines["f1"]), abs=1e-5)


def test_each_seed_keeps_its_training_log_and_sae(quick_run):
    _, out = quick_run
    for seed in (900_000, 900_001):  # the quick seeds 0 and 1
        log = [json.loads(line) for line in (out / f"seed_{seed}" / "train_log.jsonl").read_text().splitlines()]
        assert log[-1]["samples"] == 40960
        assert {"loss", "l0", "dead", "k", "variant/mse"} <= set(log[0])  # the variant's own under its prefix
        assert log[0]["k"] > log[-1]["k"] == pytest.approx(5.0)  # the decreasing K is logged
        cfg = json.loads((out / f"seed_{seed}" / "sae" / "cfg.json").read_text())
        assert cfg["architecture"] == "autosae_batchtopk" and cfg["lista_iterations"] == 1
        assert (out / f"seed_{seed}" / "variant_state.safetensors").stat().st_size > 0


def test_a_lista_run_s_sae_loads_in_sae_lens_and_encodes_as_the_variant(quick_run):
    """The folder a real run wrote, loaded by SAELens, against the variant rebuilt from its
    full state: the same latents and reconstructions on the same batches."""
    import torch
    from sae_lens import SAE
    from safetensors.torch import load_file

    import autosae.saelens  # noqa: F401  (registers autosae's architecture)
    from autosae.sandboxed.spec import VariantSpec
    from autosae.sandboxed.worker import load_variant
    from autosae.variants import reference_variants

    _, out = quick_run
    loaded = SAE.load_from_disk(str(out / "seed_900000" / "sae"))
    d_in, width = loaded.cfg.d_in, loaded.cfg.d_sae
    spec = VariantSpec(
        d_in=d_in,
        width=width,
        k=loaded.cfg.k,
        batch_size=1024,
        total_steps=40,
        lr=0.01,
        seed=0,
        device="cpu",
        profile="tiny",
    )
    sae = load_variant(str(reference_variants()["lista_matryoshka"])).build(spec)
    sae.load_state_dict(load_file(out / "seed_900000" / "variant_state.safetensors"))
    torch.manual_seed(0)
    for x in torch.randn(3, 1024, d_in) * 3:
        with torch.no_grad():
            ours, theirs = sae.encode(x), loaded.encode(x)
            assert (ours != 0).any() and (theirs - ours).abs().max() <= 1e-6
            assert (loaded.decode(ours) - sae.decode(ours)).abs().max() <= 1e-6


def test_changing_a_constraint_of_a_counted_run_is_refused(tmp_path):
    proc = run_cli("train", "batchtopk", "--lr", "0.001", "--out", str(tmp_path / "run"))
    assert proc.returncode == 4
    assert proc.stderr.strip() == (
        "error: constraint lr: 0.001 requested, the tiny profile requires 0.01 (off by -0.009); "
        "pass --uncounted for an exploratory run that is not counted"
    )
    assert not (tmp_path / "run").exists()


def test_a_failing_variant_gives_one_line_and_a_failed_record(write_variant, tmp_path):
    path = write_variant("""
        def build(spec):
            raise RuntimeError("kaboom")
    """)
    proc = run_cli("train", str(path), "--out", str(tmp_path / "run"), *QUICK)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "RuntimeError: kaboom" in errors[0]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "failed" and "kaboom" in results["log_tail"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "batchtopk", "--device", "cuda"], "no CUDA GPU is visible"),
        (["train", "no_such_variant"], "neither a file nor a reference variant"),
        (["train", "batchtopk", "--profile", "huge"], "unknown profile 'huge'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_held_out_model_seed_is_recorded(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "batchtopk",
        "--seeds",
        "1",
        "--model-seed",
        "7",
        "--out",
        str(out),
        "--set",
        "pool_samples=16384",
        *QUICK,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model_seed"] == 7


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_matryoshka_beats_batchtopk_on_tiny_beyond_the_seed_spread():
    """The demo's claim, with the real 3-seed counted runs; the second call is cached."""
    proc = run_cli("baselines", "--profile", "tiny")
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    per_seed = {}
    for name in ("batchtopk", "matryoshka"):
        results = json.loads(open(lines[f"{name}_results"]).read())
        assert results["counted"] and results["status"] == "ok"
        per_seed[name] = [r["f1"] for r in results["per_seed"]]
        assert len(per_seed[name]) == 3
    spread = max(max(v) - min(v) for v in per_seed.values())
    gap = sum(per_seed["matryoshka"]) / 3 - sum(per_seed["batchtopk"]) / 3
    assert min(per_seed["matryoshka"]) > max(per_seed["batchtopk"])
    assert gap > 2 * spread, (gap, spread)
    again = run_cli("baselines", "--profile", "tiny")
    assert "batchtopk_cached: yes" in again.stdout and "matryoshka_cached: yes" in again.stdout
