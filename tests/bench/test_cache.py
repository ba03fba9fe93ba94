"""The model cache: keyed by config hash, instant on a hit, corrupt entries rebuilt."""

from __future__ import annotations

import json
import time

from autosae.bench.build import POOL_FILE, build, entry_dir, load, verify
from autosae.bench.profiles import get_profile
from tests.conftest import run_cli

SMALL = ["num_features=64", "hidden_dim=16", "hierarchy_roots=2", "correlation_rank=4", "pool_samples=4096"]


def small_profile(seed: int):
    return get_profile("tiny", model_seed=seed, overrides=SMALL)


def test_second_build_is_a_cache_hit():
    profile = small_profile(101)
    logs: list[str] = []
    path = build(profile, log=logs.append)
    manifest = json.loads((path / "manifest.json").read_text())
    assert POOL_FILE in manifest["files"] and verify(path) is None
    stamp = (path / "manifest.json").stat().st_mtime_ns
    started = time.monotonic()
    assert build(profile, log=logs.append) == path
    assert time.monotonic() - started < 1.0
    assert (path / "manifest.json").stat().st_mtime_ns == stamp
    assert logs == []


def test_a_corrupt_cache_file_is_detected_and_rebuilt():
    profile = small_profile(102)
    path = build(profile)
    good = (path / POOL_FILE).read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still a loadable safetensors file
    (path / POOL_FILE).write_bytes(bytes(data))
    assert "does not match its checksum" in verify(path)
    logs: list[str] = []
    model, pool = load(profile, log=logs.append)
    assert any("unusable" in line and "rebuilding" in line for line in logs)
    assert verify(path) is None and (path / POOL_FILE).read_bytes() == good
    assert pool.shape == (4096, 16)


def test_a_truncated_or_half_written_entry_is_rebuilt():
    profile = small_profile(103)
    path = build(profile)
    (path / "synthetic_model.safetensors").write_bytes(b"\x00" * 10)
    logs: list[str] = []
    build(profile, log=logs.append)
    assert verify(path) is None and len(logs) == 1
    (path / "manifest.json").unlink()  # as if a build had died before finishing
    build(profile, log=logs.append)
    assert verify(path) is None and "no manifest" in logs[-1]


def test_different_configs_get_different_entries():
    assert entry_dir(small_profile(1)) != entry_dir(small_profile(2))


def test_bench_cli_build_twice_reports_the_hit():
    args = ["bench", "build", "tiny", "--model-seed", "104", *sum((["--set", s] for s in SMALL), [])]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "cache_hit: no" in first.stdout
    second = run_cli(*args)
    assert "cache_hit: yes" in second.stdout
    listed = run_cli("bench", "list")
    assert listed.returncode == 0 and "tiny" in listed.stdout and "synth-16k" in listed.stdout
    info = run_cli("bench", "info", "synth-16k")
    assert "constraints.width: 4096" in info.stdout and "model.num_features: 16384" in info.stdout
