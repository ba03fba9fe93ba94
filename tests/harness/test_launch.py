"""Counted runs as jobs through submitit's local executor: the Slurm path without Slurm."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from autosae.config import LauncherSettings
from autosae.errors import VariantFailed
from autosae.harness.run import RunOptions, run_variant

pytest.importorskip("submitit")

# Builds a BatchTopK SAE, except on the first attempt: then it records the pid of the
# trusted process that started it (the job) and hangs, so that the test can kill the job.
DIES_ONCE = """
import os, time
from pathlib import Path
from autosae.sae import BatchTopKSAE

MARK = Path({mark!r})

def build(spec):
    if not MARK.exists() or {always}:
        MARK.write_text(str(os.getppid()))
        time.sleep(600)
    return BatchTopKSAE(spec.d_in, spec.width, spec.k)
"""


@pytest.fixture(scope="module")
def short_tiny():
    from autosae.bench.profiles import get_profile

    return get_profile("tiny", overrides=["training_samples=51200"])


def opts_for(tmp_path, **launcher) -> RunOptions:
    return RunOptions(seeds=[0], launcher=LauncherSettings(kind="submitit-local", **launcher),
                      launcher_folder=str(tmp_path / "jobs"), log=lambda _: None)


def kill_job_when_it_hangs(mark) -> threading.Thread:
    """SIGKILL the job's process once the variant says it is hanging: a node failure."""

    def kill() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if mark.exists() and mark.read_text().strip():
                os.kill(int(mark.read_text()), signal.SIGKILL)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_job_that_dies_is_submitted_again_then_recorded_as_failed(tmp_path, write_variant, short_tiny):
    """Every attempt hangs and is killed (a node failure): with max_requeue 1 the job is
    submitted twice, then the run is recorded as failed, with the reason."""
    mark = tmp_path / "hung"
    variant = write_variant(DIES_ONCE.format(mark=str(mark), always=True))
    killers = []

    def kill_each_attempt() -> None:
        for _ in range(2):
            killers.append(kill_job_when_it_hangs(mark))
            killers[-1].join(timeout=120)
            mark.unlink(missing_ok=True)

    watcher = threading.Thread(target=kill_each_attempt, daemon=True)
    watcher.start()
    with pytest.raises(VariantFailed, match=r"the submitit-local job died 2 times \(max_requeue 1\)"):
        run_variant(variant, short_tiny, tmp_path / "run", opts_for(tmp_path, max_requeue=1))
    watcher.join(timeout=5)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "failed" and results["failure_kind"] == "launcher"
    jobs = results["launcher"]["jobs"]
    assert len(jobs) == 2 and all(j["outcome"] not in (None, "finished") for j in jobs)
    assert len(list((tmp_path / "jobs").glob("*_log.out"))) == 2
