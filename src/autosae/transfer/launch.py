"""A transfer's SAEs as one Slurm (or submitit-local) job, as counted runs go through TASK.md's
launcher (autosae.harness.launch): the job runs autosae.transfer.runs.run_all on its node, on
the node's GPUs, and seals each run's record in the project's run folder, which must sit on a
file system the nodes share (as for counted runs). The caller then reads the records back as a
resume does. A job that dies is submitted again, up to the launcher's `max_requeue`; what it
finished before dying is reused, never trained twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError, first_line
from autosae.harness.launch import POLL_S, executor_for, job_payload
from autosae.harness.options import SeedSettings
from autosae.transfer.settings import TransferSettings

if TYPE_CHECKING:
    from autosae.config import LauncherSettings
    from autosae.transfer.runs import Job


def job_main(jobs: list[dict], folder: str, settings: dict, root: str, seed_settings: dict) -> int:
    """What the job runs on its node: every job of the transfer not yet recorded, on the node's
    GPUs (one SAE at a time on each) or its CPU. Returns how many records there are."""
    import torch

    from autosae.transfer.runs import Job, run_all

    def stop(signum, _frame):  # scancel / preemption / timeout: stop the variant's processes too
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, stop)
    from autosae import sandbox

    log = lambda line: print(line, flush=True)  # noqa: E731
    payload = dict(seed_settings)
    payload.pop("counted", None)
    payload["sandboxed"] = sandbox.resolve(payload["sandbox"], log)  # this node's bubblewrap
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = [f"cuda:{i}" for i in range(gpus)] or ["cpu"]
    runs = run_all(
        [Job(j["kind"], Path(j["variant"]), j["l0"], j["seed"]) for j in jobs],
        Path(folder),
        TransferSettings.model_validate(settings),
        devices,
        Path(root),
        SeedSettings(**payload, log=log),
        log,
    )
    return len(runs)


def submit_transfer(
    jobs: list[Job],
    folder: Path,
    settings: TransferSettings,
    root: Path,
    seed_settings: SeedSettings,
    launcher: LauncherSettings,
    job_folder: Path,
    log: Callable[[str], None],
) -> None:
    """Run the transfer's jobs as launcher jobs until one finishes (each attempt resumes the
    last); AutosaeError when it cannot be submitted or died more than max_requeue times."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    executor = executor_for(launcher, job_folder)
    spec = [{"kind": j.kind, "variant": str(j.variant), "l0": j.l0, "seed": j.seed} for j in jobs]
    payload = job_payload(seed_settings, counted=False)
    died: list[str] = []
    while len(died) <= launcher.max_requeue:
        try:
            job = executor.submit(job_main, spec, str(folder), settings.model_dump(), str(root), payload)
        except Exception as exc:  # no sbatch, a refused partition or account, ...
            raise AutosaeError(
                f"launcher {launcher.kind}: the transfer could not be submitted: {first_line(exc)}"
            ) from None
        log(f"transfer: submitted {launcher.kind} job {job.job_id} (attempt {len(died) + 1}, logs in {job_folder})")
        while not job.done():
            time.sleep(POLL_S)
        try:
            job.result()
            return
        except FailedJobError as exc:  # the job's own error (the model, the data): as a local transfer's
            raise AutosaeError(f"transfer job {job.job_id}: {_last_line(exc)}") from None
        except UncompletedJobError as exc:  # preempted, killed, node failure, timeout
            died.append(first_line(exc))
            log(f"transfer: job {job.job_id} died: {died[-1]}")
    raise AutosaeError(
        f"the transfer's {launcher.kind} job died {len(died)} times (max_requeue {launcher.max_requeue}); "
        f"last: {died[-1]}; `autosae transfer` again resumes it"
    )


def _last_line(exc: BaseException) -> str:
    """The error a failed job raised: the last line of the traceback submitit hands back."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__).removeprefix("autosae.errors.")[:300]
