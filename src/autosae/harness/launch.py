"""Counted runs as Slurm jobs, through submitit (TASK.md `launcher:`).

The job runs the same harness (autosae.harness.run.run_variant) on the node, on its GPUs
(several GPUs on a node become device slots), and writes the run folder there; the project
and $AUTOSAE_CACHE must therefore sit on a file system the nodes share. The loop waits for
the job and reads its results.json like a local run's.

A job that dies without a result (preempted, node failure, time limit, killed) is submitted
again, up to `max_requeue` times; after that the run is recorded as failed with the reason,
never lost. The job's id is kept in the run folder's launcher.json as soon as it is
submitted, so a loop that is itself killed and resumed waits for the same Slurm job instead
of starting a second one.

`submitit-local` runs the same jobs through submitit's local executor: one machine, no
Slurm; the tests use it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed

if TYPE_CHECKING:
    from autosae.config import LauncherSettings
    from autosae.harness.run import RunOptions

POLL_S = 2.0


def job_main(variant: str, profile, out: str, seeds: list[int], settings: dict) -> dict:
    """What a job runs on its node: the counted run on the node's GPUs (or CPU). `settings`:
    the run's options (run.SLOT_SETTINGS and the time limit); the sandbox is resolved on the node."""
    import torch

    from autosae.harness.run import RunOptions, default_device, run_variant
    from autosae.harness.seal import read_verified
    from autosae.harness.slots import SlotPool

    def stop(signum, _frame):  # scancel / preemption / timeout: stop the variant's processes too
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, stop)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    pool = SlotPool([f"cuda:{i}" for i in range(gpus)]) if gpus > 1 else None
    opts = RunOptions(
        seeds=list(seeds), device=default_device(), pool=pool, **settings, log=lambda line: print(line, flush=True)
    )
    try:
        return run_variant(Path(variant), profile, Path(out), opts)
    except (VariantFailed, ConstraintBreach):
        return read_verified(Path(out) / "results.json") or {"status": "failed", "reason": "no results were recorded"}


def executor_for(settings: LauncherSettings, folder: Path):
    try:
        import submitit
    except ImportError:  # pragma: no cover - a dependency of autosae
        raise AutosaeError("launcher: submitit is not installed (pip install submitit)") from None
    folder.mkdir(parents=True, exist_ok=True)
    if settings.kind == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=settings.time_min, gpus_per_node=settings.gpus_per_node)
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = {
        "timeout_min": settings.time_min,
        "gpus_per_node": settings.gpus_per_node,
        "cpus_per_task": settings.cpus_per_task,
        "tasks_per_node": 1,
        "nodes": 1,
        "name": "autosae",
    }
    if settings.mem_gb:
        params["mem_gb"] = settings.mem_gb
    if settings.partition:
        params["slurm_partition"] = settings.partition
    if settings.account:
        params["slurm_account"] = settings.account
    executor.update_parameters(**params, **settings.extra)
    return executor


def job_class(settings: LauncherSettings):
    import submitit

    return submitit.LocalJob if settings.kind == "submitit-local" else submitit.SlurmJob


def submit_run(variant: Path, profile, out: Path, opts: RunOptions) -> dict:
    """run_variant's contract through the launcher: the results dict, or VariantFailed /
    ConstraintBreach after a results.json that says why."""
    from submitit.core.utils import UncompletedJobError

    from autosae.harness.run import portable_settings, write_json
    from autosae.report.record import read_json

    settings, folder = opts.launcher, Path(opts.launcher_folder)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "launcher.json"
    record = read_json(record_path) or {"kind": settings.kind, "jobs": []}
    executor = executor_for(settings, folder)
    job = None
    if record["jobs"] and record["jobs"][-1].get("outcome") is None:  # a job from before a restart
        last = record["jobs"][-1]
        job = job_class(settings)(folder=folder, job_id=last["job_id"])
        opts.log(f"launcher: waiting again for {settings.kind} job {last['job_id']}")
        if settings.kind == "submitit-local" and not (read_json(out / "results.json") or {}).get("status"):
            _end_local(last)  # a local job is not tracked across restarts: stop it, submit anew
            last["outcome"] = "lost with the loop that submitted it"
            job = None
    while True:
        if job is None:
            died = [j for j in record["jobs"] if j.get("outcome") not in (None, "finished")]
            if len(died) > settings.max_requeue:
                return _record_death(out, record, died, opts)
            try:
                run_settings = portable_settings(opts, time_limit_s=opts.time_limit_s, sandboxed=None)
                job = executor.submit(job_main, str(variant), profile, str(out), list(opts.seeds), run_settings)
            except Exception as exc:  # no sbatch, a refused partition or account, ...
                raise AutosaeError(
                    f"launcher {settings.kind}: the job could not be submitted: {_first_line(exc)}"
                ) from None
            entry = {"job_id": str(job.job_id), "submitted": time.time(), "outcome": None}
            proc = getattr(job, "_process", None)
            if proc is not None:
                entry["pid"] = proc.pid
            record["jobs"].append(entry)
            write_json(record_path, record)
            opts.log(
                f"launcher: submitted {settings.kind} job {job.job_id} "
                f"(attempt {len(record['jobs'])}, logs in {folder})"
            )
        entry = record["jobs"][-1]
        while not job.done():
            time.sleep(POLL_S)
        try:
            results = job.result()
        except UncompletedJobError as exc:  # died: preempted, killed, node failure, timeout
            entry["outcome"] = _first_line(exc)
            write_json(record_path, record)
            opts.log(f"launcher: job {entry['job_id']} died: {entry['outcome']}")
            job = None
            continue
        entry["outcome"] = "finished"
        write_json(record_path, record)
        return _as_local(results, out)


def _as_local(results: dict, out: Path) -> dict:
    if results.get("status") == "ok":
        return results
    where = f"(log: {out / ('seed_' + str((results.get('per_seed') or [{}])[-1].get('seed'))) / 'worker.log'})"
    err = ConstraintBreach if results.get("status") == "rejected" else VariantFailed
    raise err(f"{results.get('reason')} {where}")


def _record_death(out: Path, record: dict, died: list[dict], opts: RunOptions) -> dict:
    from autosae.harness.seal import write_sealed

    reason = (
        f"the {record['kind']} job died {len(died)} time{'s' if len(died) > 1 else ''} "
        f"(max_requeue {opts.launcher.max_requeue}); last: {died[-1]['outcome']}"
    )
    write_sealed(
        out / "results.json",
        {
            "status": "failed",
            "reason": reason,
            "failure_kind": "launcher",
            "per_seed": [],
            "summary": {},
            "seeds": list(opts.seeds),
            "counted": opts.counted,
            "launcher": record,
        },
    )
    raise VariantFailed(f"{reason} (jobs: {', '.join(j['job_id'] for j in died)})")


def _end_local(entry: dict) -> None:
    pid = entry.get("pid")
    if pid:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
