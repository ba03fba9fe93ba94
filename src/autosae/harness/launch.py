"""Counted runs as Slurm jobs, through submitit (TASK.md `launcher:`).

The job runs the same harness as a local run (autosae.harness.local.run_here) on the node, on
its GPUs (several GPUs on a node become device slots), and writes the run folder there; the project
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

import torch

from autosae.bench.profiles import Profile
from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed, first_line
from autosae.harness.devices import default_device
from autosae.harness.local import run_here
from autosae.harness.options import SeedSettings
from autosae.harness.seal import read_verified, write_sealed
from autosae.harness.slots import SlotPool
from autosae.harness.validation import validation_run
from autosae.jsonio import read_json, write_json
from autosae.records import is_ok

if TYPE_CHECKING:
    from autosae.config import LauncherSettings

POLL_S = 2.0


def job_payload(settings: SeedSettings, counted: bool) -> dict:
    """job_main's `settings`: the SeedSettings a node needs, and whether the run counts. The
    sandbox is resolved on the node, the CPU threads are the node's."""
    payload = settings.portable() | {"sandboxed": None, "counted": counted}
    del payload["cpu_threads"]
    return payload


def job_main(variant: str, profile: Profile, out: str, seeds: list[int], settings: dict) -> dict:
    """What a job runs on its node: the run on the node's GPUs (or CPU), as a local run.

    The arguments are pickled into the job when it is submitted, and a resumed loop waits for
    jobs submitted by an earlier autosae: keep this signature, and `settings` as job_payload
    writes it (SeedSettings fields but log and cpu_threads, plus `counted`)."""

    def stop(signum, _frame):  # scancel / preemption / timeout: stop the variant's processes too
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, stop)
    settings = dict(settings)
    counted = settings.pop("counted")
    seed_settings = SeedSettings(**settings, log=lambda line: print(line, flush=True))
    quick = None
    if not counted:  # the seeds are moved already (validation_run keeps them); this is its record
        profile, seeds, quick = validation_run(profile, list(seeds))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    pool = SlotPool([f"cuda:{i}" for i in range(gpus)]) if gpus > 1 else None
    try:
        return run_here(
            Path(variant),
            profile,
            Path(out),
            list(seeds),
            seed_settings,
            counted=counted,
            device=default_device(),
            pool=pool,
            quick=quick,
        )
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


def submit_run(
    variant: Path,
    profile: Profile,
    out: Path,
    seeds: list[int],
    run_settings: SeedSettings,
    *,
    counted: bool,
    launcher: LauncherSettings,
    folder: Path,
) -> dict:
    """run_variant's contract through the launcher: the results dict, or VariantFailed /
    ConstraintBreach after a results.json that says why."""
    from submitit.core.utils import UncompletedJobError

    settings, log = launcher, run_settings.log
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "launcher.json"
    record = read_json(record_path) or {"kind": settings.kind, "jobs": []}
    executor = executor_for(settings, folder)
    job = None
    if record["jobs"] and record["jobs"][-1].get("outcome") is None:  # a job from before a restart
        last = record["jobs"][-1]
        job = job_class(settings)(folder=folder, job_id=last["job_id"])
        log(f"launcher: waiting again for {settings.kind} job {last['job_id']}")
        if settings.kind == "submitit-local" and not (read_json(out / "results.json") or {}).get("status"):
            _end_local(last)  # a local job is not tracked across restarts: stop it, submit anew
            last["outcome"] = "lost with the loop that submitted it"
            job = None
    while True:
        if job is None:
            died = [j for j in record["jobs"] if j.get("outcome") not in (None, "finished")]
            if len(died) > settings.max_requeue:
                return _record_death(out, record, died, seeds, counted, settings.max_requeue)
            try:
                payload = job_payload(run_settings, counted)
                job = executor.submit(job_main, str(variant), profile, str(out), list(seeds), payload)
            except Exception as exc:  # no sbatch, a refused partition or account, ...
                raise AutosaeError(
                    f"launcher {settings.kind}: the job could not be submitted: {first_line(exc)}"
                ) from None
            entry = {"job_id": str(job.job_id), "submitted": time.time(), "outcome": None}
            proc = getattr(job, "_process", None)
            if proc is not None:
                entry["pid"] = proc.pid
            record["jobs"].append(entry)
            write_json(record_path, record, durable=True)
            log(
                f"launcher: submitted {settings.kind} job {job.job_id} "
                f"(attempt {len(record['jobs'])}, logs in {folder})"
            )
        entry = record["jobs"][-1]
        while not job.done():
            time.sleep(POLL_S)
        try:
            results = job.result()
        except UncompletedJobError as exc:  # died: preempted, killed, node failure, timeout
            entry["outcome"] = first_line(exc)
            write_json(record_path, record, durable=True)
            log(f"launcher: job {entry['job_id']} died: {entry['outcome']}")
            job = None
            continue
        entry["outcome"] = "finished"
        write_json(record_path, record, durable=True)
        return _as_local(results, out)


def _as_local(results: dict, out: Path) -> dict:
    if is_ok(results):
        return results
    where = f"(log: {out / ('seed_' + str((results.get('per_seed') or [{}])[-1].get('seed'))) / 'worker.log'})"
    err = ConstraintBreach if results.get("status") == "rejected" else VariantFailed
    raise err(f"{results.get('reason')} {where}")


def _record_death(out: Path, record: dict, died: list[dict], seeds: list[int], counted: bool, max_requeue: int) -> dict:
    reason = (
        f"the {record['kind']} job died {len(died)} time{'s' if len(died) > 1 else ''} "
        f"(max_requeue {max_requeue}); last: {died[-1]['outcome']}"
    )
    write_sealed(
        out / "results.json",
        {
            "status": "failed",
            "reason": reason,
            "failure_kind": "launcher",
            "per_seed": [],
            "summary": {},
            "seeds": list(seeds),
            "counted": counted,
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
