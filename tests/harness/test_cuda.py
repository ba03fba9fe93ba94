"""The CUDA-only parts of the harness: the same code paths as the CPU tests, on a GPU.

Skipped, with the reason, where no CUDA GPU is visible (CI has none); run them on a GPU
machine with `pytest tests/harness/test_cuda.py`."""

from __future__ import annotations

import pytest
import torch

from autosae.harness.run import RunOptions, run_variant
from autosae.harness.slots import SlotPool
from autosae.records import reported_by_variant
from autosae.variants import reference_variants

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
needs_gpu = pytest.mark.skipif(
    GPUS == 0, reason="no CUDA GPU visible: the CUDA IPC buffers and GPU memory accounting are exercised only on a GPU"
)


@pytest.fixture(scope="module")
def short_tiny():
    from autosae.bench.profiles import get_profile

    return get_profile("tiny", overrides=["training_samples=204800"])


@needs_gpu
def test_a_run_on_the_gpu_scores_like_the_cpu(tmp_path, short_tiny):
    variant = reference_variants()["batchtopk"]
    gpu = run_variant(
        variant, short_tiny, tmp_path / "gpu", RunOptions.make(seeds=[0], device="cuda", log=lambda _: None)
    )
    cpu = run_variant(
        variant, short_tiny, tmp_path / "cpu", RunOptions.make(seeds=[0], device="cpu", log=lambda _: None)
    )
    row = gpu["per_seed"][0]
    assert gpu["status"] == "ok" and reported_by_variant(row)["memory"]["peak_gpu_mb"] > 0
    assert row["f1"] == pytest.approx(cpu["per_seed"][0]["f1"], abs=0.03)


@needs_gpu
def test_tf32_in_the_variant_keeps_the_metrics(tmp_path, short_tiny):
    variant = reference_variants()["matryoshka"]
    full = run_variant(
        variant, short_tiny, tmp_path / "fp32", RunOptions.make(seeds=[0], device="cuda", log=lambda _: None)
    )
    tf32 = run_variant(
        variant,
        short_tiny,
        tmp_path / "tf32",
        RunOptions.make(seeds=[0], device="cuda", matmul_precision="high", log=lambda _: None),
    )
    for metric in ("f1", "mcc"):
        assert tf32["per_seed"][0][metric] == pytest.approx(full["per_seed"][0][metric], abs=0.01)


@pytest.mark.skipif(GPUS < 2, reason="fewer than two CUDA GPUs visible: seeds on several GPUs need two")
def test_seeds_on_every_gpu_at_once(tmp_path, short_tiny):
    devices = [f"cuda:{i}" for i in range(GPUS)]
    res = run_variant(
        reference_variants()["batchtopk"],
        short_tiny,
        tmp_path / "run",
        RunOptions.make(seeds=list(range(GPUS)), pool=SlotPool(devices), log=lambda _: None),
    )
    assert res["status"] == "ok" and sorted(res["devices"]) == sorted(devices)
