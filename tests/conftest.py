"""Shared fixtures: a private model cache for the session, recorded harness runs, CLI runner
and variant writer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests import warm_cli

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


LONGEST_FIRST = (
    "harness/test_arms.py",
    "security/test_variant_attacks.py",
    "harness/test_failures.py",
    "sprint/test_engine.py",
    "security/test_agent_sprint.py",
    "security/test_variant_replies.py",
    "transfer/test_transfer.py",
    "harness/test_quick.py",
    "transfer/test_launch.py",
    "test_output.py",
    "agents/test_anthropic.py",
    "sprint/test_slack.py",
    "harness/test_train.py",
    "harness/test_slots.py",
    "sprint/test_loop_limits.py",
    "transfer/test_auto.py",
    "security/test_git_attacks.py",
    "report/test_rendered.py",
    "sprint/test_ideas.py",
    "agents/test_recipe.py",
    "sprint/test_crash_safety.py",
    "agents/test_claude_code.py",
    "agents/test_review.py",
    "sprint/test_ladder.py",
    "agents/test_sandbox.py",
    "report/test_report.py",
    "sandbox/test_sandbox.py",
    "bench/test_metrics_parity.py",
    "agents/test_literature.py",
    "sae/test_saelens.py",
    "sprint/test_old_project.py",
    "security/test_claude_code_session.py",
    "harness/test_replay.py",
    "security/test_host_root.py",
    "security/test_records.py",
)
"""The files that take longest (seconds on an xdist worker, 2 cores), handed to the workers
first: `--dist loadfile --no-loadscope-reorder` (make test) gives out files in collection
order, two to each worker and then one to each worker that finishes, and a long file given out
last leaves the other workers idle while it finishes. (Without --no-loadscope-reorder, xdist
sorts the files by their number of tests instead, and ignored this order.)"""


def pytest_collection_modifyitems(items):
    for item in items:
        if _in_real_dir(item):
            item.add_marker(pytest.mark.real_harness)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def order(item) -> int:
        try:
            relative = Path(str(item.path)).relative_to(TESTS).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(relative, len(rank))

    items.sort(key=order)  # stable: each file's tests keep their order, the other files theirs


def _in_real_dir(node) -> bool:
    path = Path(str(getattr(node, "path", "") or getattr(node, "fspath", "")))
    try:
        return path.relative_to(TESTS).parts[0] in REAL_HARNESS_DIRS
    except (ValueError, IndexError):
        return False


def _trains_for_real(node) -> bool:
    return node.get_closest_marker("real_harness") is not None or _in_real_dir(node)


CACHES: dict[bool, Path] = {}
"""This worker's two caches, by `real`: replayed tests and tests that train for real never share
one. A replayed result comes from another session's secret eval samples; mixed in one cache
with a result trained here (a baseline another test cached), a comparison of the two (the
no-op check's probe sketches) would compare different eval samples."""


@contextlib.contextmanager
def _replay_env(real: bool):
    """AUTOSAE_REPLAY set (recorded runs) or unset (real training), and the matching cache,
    while inside."""
    before = {k: os.environ.get(k) for k in ("AUTOSAE_REPLAY", "AUTOSAE_CACHE")}
    if real:
        os.environ.pop("AUTOSAE_REPLAY", None)
    else:
        os.environ["AUTOSAE_REPLAY"] = str(REPLAY)
    if real in CACHES:
        os.environ["AUTOSAE_CACHE"] = str(CACHES[real])
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def autosae_cache(tmp_path_factory) -> Path:
    """Every test (and every autosae subprocess) uses fresh cache folders: one per xdist worker
    (tmp_path_factory gives each its own, so no two processes build into one cache), and in it
    one for replayed tests and one for tests that train for real (CACHES)."""
    path = tmp_path_factory.mktemp("autosae-cache")
    CACHES[False], CACHES[True] = path, tmp_path_factory.mktemp("autosae-cache-real")
    os.environ["AUTOSAE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_shared(autosae_cache, tmp_path_factory) -> None:
    """The tiny benchmark's model, built once (under xdist: under a lock in the session's
    shared folder, rather than by every worker, half a minute of both cores) and copied into
    this worker's caches."""
    import fcntl
    import shutil

    from autosae.bench.build import build
    from autosae.bench.cache import entry_dir
    from autosae.bench.profiles import get_profile

    profile = get_profile("tiny")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = (tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()) / "shared-cache"
    shared.mkdir(exist_ok=True)
    before = os.environ["AUTOSAE_CACHE"]
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.environ["AUTOSAE_CACHE"] = str(shared)
        try:
            built = build(profile, log=lambda line: None)
        finally:
            os.environ["AUTOSAE_CACHE"] = before
    for cache in CACHES.values():
        target = cache / "models" / built.name
        if not target.exists():
            shutil.copytree(built, target)
    assert entry_dir(profile).exists()


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
    """Run the real `autosae` entry point in a process of its own (forked warm: tests/warm_cli.py)."""
    return warm_cli.run(list(args), cwd, os.environ.copy(), timeout)


@pytest.fixture
def write_variant(tmp_path):
    """Write a variant.py from source text and return its path."""

    def write(*sources: str, name: str = "variant.py") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(textwrap.dedent(s) for s in sources))
        return path

    return write


@pytest.fixture(scope="session", autouse=True)
def warm_cli_server(tmp_path_factory):
    """One warm CLI server (tests/warm_cli.py) for the session, all xdist workers together: in
    the session's shared folder, ended with the xdist controller (or with pytest without it)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = tmp_path_factory.getbasetemp()
    warm_cli.configure((base.parent if worker else base) / "warm-cli", os.getppid() if worker else os.getpid())
    yield
    warm_cli.stop()
