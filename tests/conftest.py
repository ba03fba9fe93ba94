"""Shared fixtures: a private model cache for the session, recorded harness runs, CLI runner
and variant writer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REPLAY = TESTS / "replay"
"""Recordings of real harness runs that the engine, loop, CLI and report tests replay (see
autosae.harness.replay); a run with none is trained for real and recorded there, to commit."""
os.environ.setdefault("OMP_NUM_THREADS", "1")
"""Three xdist workers share two cores (make test): a torch thread pool per process would have
them spin against each other. Set before any test imports torch, and inherited by the autosae
processes the tests start (a variant's process gets its own count from the harness)."""
REAL_HARNESS_DIRS = ("harness", "bench")
"""The harness's and the benchmark's own tests: every test there trains for real."""


def pytest_collection_modifyitems(items):
    for item in items:
        if _in_real_dir(item):
            item.add_marker(pytest.mark.real_harness)


def _in_real_dir(node) -> bool:
    path = Path(str(getattr(node, "path", "") or getattr(node, "fspath", "")))
    try:
        return path.relative_to(TESTS).parts[0] in REAL_HARNESS_DIRS
    except (ValueError, IndexError):
        return False


def _trains_for_real(node) -> bool:
    return node.get_closest_marker("real_harness") is not None or _in_real_dir(node)


@contextlib.contextmanager
def _replay_env(real: bool):
    """AUTOSAE_REPLAY set (recorded runs) or unset (real training) while inside."""
    before = os.environ.get("AUTOSAE_REPLAY")
    if real:
        os.environ.pop("AUTOSAE_REPLAY", None)
    else:
        os.environ["AUTOSAE_REPLAY"] = str(REPLAY)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AUTOSAE_REPLAY", None)
        else:
            os.environ["AUTOSAE_REPLAY"] = before


@pytest.fixture(scope="session", autouse=True)
def autosae_cache(tmp_path_factory) -> Path:
    """Every test (and every autosae subprocess) uses one fresh cache folder (one per xdist
    worker: tmp_path_factory gives each its own, so no two processes build into one cache)."""
    path = tmp_path_factory.mktemp("autosae-cache")
    os.environ["AUTOSAE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_shared(autosae_cache, tmp_path_factory) -> None:
    """Under xdist (`-n 2`), the tiny benchmark's model is built once, under a lock in the
    session's shared folder, and copied into each worker's cache, rather than built by every
    worker (half a minute of both cores). Alone, the cache builds it when first needed."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    import fcntl
    import shutil

    from autosae.bench.build import build, entry_dir
    from autosae.bench.profiles import get_profile

    profile = get_profile("tiny")
    shared = tmp_path_factory.getbasetemp().parent / "shared-cache"
    shared.mkdir(exist_ok=True)
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.environ["AUTOSAE_CACHE"] = str(shared)
        try:
            built = build(profile, log=lambda line: None)
        finally:
            os.environ["AUTOSAE_CACHE"] = str(autosae_cache)
    if not entry_dir(profile).exists():
        shutil.copytree(built, entry_dir(profile))


@pytest.fixture(scope="module", autouse=True)
def harness_replay_module(request):
    """Module fixtures (a project with a sprint run once for many tests) replay recorded runs,
    unless the module is marked real_harness."""
    real = _trains_for_real(request.node)
    if real:
        request.getfixturevalue("tiny_model_shared")
    with _replay_env(real):
        yield


@pytest.fixture(autouse=True)
def harness_replay(request):
    """Tests replay recorded harness runs (AUTOSAE_REPLAY, inherited by the autosae
    subprocesses they start) unless marked real_harness."""
    real = _trains_for_real(request.node)
    if real:
        request.getfixturevalue("tiny_model_shared")
    with _replay_env(real):
        yield


@pytest.fixture(scope="session")
def tiny(tiny_model_shared):
    """The tiny profile with its model and pool built once for the session."""
    from autosae.bench.build import load
    from autosae.bench.profiles import get_profile

    profile = get_profile("tiny")
    model, pool = load(profile)
    return profile, model, pool


@pytest.fixture
def quick(tiny):
    """`tiny` shortened to 20,480 training and 4,096 eval samples: a run of seconds."""
    import dataclasses

    profile, _, _ = tiny
    return dataclasses.replace(
        profile, constraints=dataclasses.replace(profile.constraints, training_samples=20_480, eval_samples=4096)
    )


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `autosae` entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "autosae", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=os.environ.copy(),
    )


@pytest.fixture
def write_variant(tmp_path):
    """Write a variant.py from source text and return its path."""

    def write(*sources: str, name: str = "variant.py") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(textwrap.dedent(s) for s in sources))
        return path

    return write
