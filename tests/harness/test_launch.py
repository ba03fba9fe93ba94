"""Counted runs as jobs through submitit's local executor: the Slurm path without Slurm."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from autosae.config import LauncherSettings, parse_task
from autosae.errors import VariantFailed
from autosae.harness.launch import executor_for, job_main, job_payload
from autosae.harness.run import RunOptions, run_variant, task_run_options
from autosae.harness.seal import read_verified
from autosae.harness.seed import SeedSettings
from autosae.variants import reference_variants

pytest.importorskip("submitit")

# Hangs, and says so in its log (the variant is sandboxed: the log is all it can reach), so
# that the test can kill the job that runs it.
HANGS = """
import time

def build(spec):
    print("HANGING", flush=True)
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def short_tiny():
    from autosae.bench.profiles import get_profile

    return get_profile("tiny", overrides=["training_samples=51200"])


def opts_for(tmp_path, **launcher) -> RunOptions:
    return RunOptions.make(
        seeds=[0],
        launcher=LauncherSettings(kind="submitit-local", **launcher),
        launcher_folder=str(tmp_path / "jobs"),
        log=lambda _: None,
    )


EARLIER_PAYLOAD = {
    "memory_limit_gb": None,
    "disk_limit_gb": 8.0,
    "max_processes": 512,
    "sandbox": "auto",
    "sandboxed": None,
    "counted": True,
    "matmul_precision": "highest",
    "time_limit_s": None,
}
"""job_main's settings as autosae 0.1.0 pickled them into a job (a resumed loop waits for such jobs)."""


def test_the_job_payload_keeps_the_format_of_jobs_already_submitted():
    assert job_payload(SeedSettings(sandboxed=True, cpu_threads=3), counted=True) == EARLIER_PAYLOAD


def test_task_run_options_follow_task_md(tmp_path):
    cfg = parse_task("---\nlauncher: slurm\nsandbox: 'off'\nlimits: {disk_gb: 2, processes: 64}\n---\n").config
    opts = task_run_options(cfg, "cpu", None, project_root=tmp_path, project_id="abc", seeds=[4], log=print)
    assert opts.seeds == [4] and opts.counted and opts.log is print
    assert (opts.settings.sandbox, opts.settings.disk_limit_gb, opts.settings.max_processes) == ("off", 2, 64)
    assert opts.where.launcher.kind == "slurm" and opts.where.launcher_folder.endswith("slurm/abc")
    local = task_run_options(cfg, "cpu", None, project_root=tmp_path, project_id="abc", launch=False, counted=False)
    assert local.where.launcher is None and not local.counted and local.settings.sandbox == "off"
    with pytest.raises(TypeError, match="no setting 'gpu'"):
        local.replace(gpu=0)


def kill_jobs_when_they_hang(run, attempts: int) -> threading.Thread:
    """SIGKILL each job's process once its variant says it is hanging: a node failure."""

    def kill() -> None:
        killed: set[str] = set()
        deadline = time.monotonic() + 240
        while len(killed) < attempts and time.monotonic() < deadline:
            log = run / "seed_0" / "worker.log"
            try:
                jobs = json.loads((run / "launcher.json").read_text())["jobs"]
                # this job's variant says so (not the log of the attempt before it)
                hanging = "HANGING" in log.read_text() and log.stat().st_mtime >= jobs[-1]["submitted"]
            except (OSError, ValueError, KeyError, IndexError):
                jobs, hanging = [], False
            if jobs and hanging and jobs[-1]["job_id"] not in killed and jobs[-1].get("pid"):
                os.kill(int(jobs[-1]["pid"]), signal.SIGKILL)
                killed.add(jobs[-1]["job_id"])
            time.sleep(0.2)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_a_job_that_dies_is_submitted_again_then_recorded_as_failed(tmp_path, write_variant, short_tiny):
    """Every attempt hangs and is killed (a node failure): with max_requeue 1 the job is
    submitted twice, then the run is recorded as failed, with the reason."""
    variant = write_variant(HANGS)
    watcher = kill_jobs_when_they_hang(tmp_path / "run", attempts=2)
    with pytest.raises(VariantFailed, match=r"the submitit-local job died 2 times \(max_requeue 1\)"):
        run_variant(variant, short_tiny, tmp_path / "run", opts_for(tmp_path, max_requeue=1))
    watcher.join(timeout=5)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "failed" and results["failure_kind"] == "launcher"
    jobs = results["launcher"]["jobs"]
    assert len(jobs) == 2 and all(j["outcome"] not in (None, "finished") for j in jobs)
    assert len(list((tmp_path / "jobs").glob("*_log.out"))) == 2


@pytest.mark.slow
def test_a_job_submitted_by_an_earlier_autosae_still_runs(tmp_path, short_tiny):
    """A job pickled with the payload of earlier releases runs the current job_main to a
    sealed result, which is what the loop that waits for it reads."""
    executor = executor_for(LauncherSettings(kind="submitit-local"), tmp_path / "jobs")
    variant = reference_variants()["batchtopk"]
    job = executor.submit(job_main, str(variant), short_tiny, str(tmp_path / "run"), [0], dict(EARLIER_PAYLOAD))
    results = job.result()
    assert results["status"] == "ok" and results["seeds"] == [0] and "quick" not in results
    sealed = read_verified(tmp_path / "run" / "results.json")
    assert sealed is not None and {k: v for k, v in sealed.items() if k != "seal"} == json.loads(json.dumps(results))
