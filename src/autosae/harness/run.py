"""The top floor of the harness: run_variant, which checks a run and decides where it executes.

The floors below, each importing only those under it:
- autosae.harness.seed: one seed, start to finish (the variant's process fed, scored, saved);
- autosae.harness.local: a run on this machine, its seeds in turn on one device or at once on
  device slots (autosae.harness.slots schedules those), results.json written and sealed;
- autosae.harness.launch: a run as a Slurm (or submitit-local) job, which runs
  autosae.harness.local on its node.

A run's options say what runs (its seeds, whether it counts), how each seed runs
(SeedSettings) and where (Placement). This module is the harness's front door: callers import
run_variant, RunOptions and what they read of a run (METRICS, sha256_file, resolve_device) here.

Only a run that trains imports the floors below (and with them torch, 1.5 s of CPU): the CLI's
other commands, the ledger, reports and replayed runs import this module without them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.bench.cache import cache_root
from autosae.bench.profiles import Profile
from autosae.errors import AutosaeError
from autosae.harness import replay
from autosae.harness.devices import resolve_device
from autosae.harness.options import METRICS, SeedSettings, sha256_file
from autosae.harness.validation import check_counted_seeds, validation_run

if TYPE_CHECKING:
    from autosae.config import LauncherSettings, TaskConfig
    from autosae.harness.slots import SlotPool

__all__ = [
    "METRICS",
    "Placement",
    "RunOptions",
    "SeedSettings",
    "resolve_device",
    "run_variant",
    "sha256_file",
    "task_run_options",
]


@dataclass(frozen=True)
class Placement:
    """Where a run executes: on one device here, on a pool's device slots, or as launcher jobs."""

    device: str | None = "cpu"
    """cpu, cuda or cuda:N (None: cuda when visible, else cpu); unused on a pool or a launcher."""
    pool: SlotPool | None = None
    """Device slots to spread the seeds over (see autosae.harness.slots); None: every seed
    in turn on `device`, fed from this process."""
    launcher: LauncherSettings | None = None
    """Run as a Slurm (or submitit-local) job instead (see autosae.harness.launch)."""
    launcher_folder: str | None = None
    """submitit's folder for the launcher's jobs."""


@dataclass(frozen=True)
class RunOptions:
    """What runs (seeds, whether it counts), how each seed runs, and where. Build one with
    RunOptions.make(seeds=..., device=..., log=...), naming any field of the three."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    counted: bool = True
    """Counted runs are the benchmark's; uncounted (quick) ones are moved onto the validation
    samples and quick seeds (autosae.harness.validation), whatever the caller asked."""
    settings: SeedSettings = field(default_factory=SeedSettings)
    where: Placement = field(default_factory=Placement)

    @classmethod
    def make(cls, seeds: list[int] | None = None, counted: bool = True, **changes) -> RunOptions:
        opts = cls(counted=counted) if seeds is None else cls(seeds=list(seeds), counted=counted)
        return opts.replace(**changes)

    def replace(self, **changes) -> RunOptions:
        """A copy with `changes`, each named as a field of RunOptions, SeedSettings or Placement."""
        parts: dict[str, dict] = {"top": {}, "settings": {}, "where": {}}
        for name, value in changes.items():
            part = next((p for p, cls in _PARTS.items() if name in cls.__dataclass_fields__), None)
            if part is None or name in ("settings", "where"):
                raise TypeError(f"RunOptions has no setting {name!r}")
            parts[part][name] = value
        return dataclasses.replace(
            self,
            **parts["top"],
            settings=dataclasses.replace(self.settings, **parts["settings"]),
            where=dataclasses.replace(self.where, **parts["where"]),
        )

    @property
    def log(self):
        return self.settings.log


_PARTS = {"top": RunOptions, "settings": SeedSettings, "where": Placement}


def run_variant(variant: Path, profile: Profile, out: Path, opts: RunOptions) -> dict:
    """Train and score `variant` on `profile` for every seed; write results.json and return it.

    Raises VariantFailed / ConstraintBreach after writing a results.json that says why."""
    if replay.active():  # the test suite's recorded runs (AUTOSAE_REPLAY), see harness.replay
        return replay.run(run_variant, variant, profile, out, opts)
    variant = variant.resolve()
    if not variant.is_file():
        raise AutosaeError(f"variant file not found: {variant}")
    seeds, quick = list(opts.seeds), None  # an uncounted run never sees a counted run's seeds or eval samples
    if opts.counted:
        check_counted_seeds(seeds)
    else:
        profile, seeds, quick = validation_run(profile, seeds)
    where = opts.where
    if where.launcher is not None and where.launcher.kind != "local":
        from autosae.harness.launch import submit_run

        if where.launcher_folder is None:
            raise AutosaeError(f"launcher {where.launcher.kind}: no folder for its jobs was given")
        folder = Path(where.launcher_folder)
        return submit_run(
            variant, profile, out, seeds, opts.settings, counted=opts.counted, launcher=where.launcher, folder=folder
        )
    from autosae.harness.local import run_here

    return run_here(
        variant,
        profile,
        out,
        seeds,
        opts.settings,
        counted=opts.counted,
        device=where.device,
        pool=where.pool,
        quick=quick,
    )


def task_run_options(
    cfg: TaskConfig,
    device: str | None,
    pool: SlotPool | None,
    *,
    project_root: Path,
    project_id: str,
    backend: str | None = None,
    launch: bool = True,
    **changes,
) -> RunOptions:
    """The options TASK.md asks for: its launcher for counted runs (when `launch`), its sandbox
    for the sprint's backend (`backend`) and its limits; `changes` as for RunOptions.replace
    (seeds, counted, time_limit_s, log, ...). The launcher's jobs go to TASK.md's
    launcher.folder (relative to `project_root`), else to $AUTOSAE_CACHE/slurm/<project_id>,
    out of the agent's worktree."""
    launcher = cfg.launcher if launch and cfg.launcher.kind != "local" else None
    folder = None
    if launcher is not None:
        folder = str(project_root / launcher.folder if launcher.folder else cache_root() / "slurm" / project_id)
    return RunOptions.make(
        device=device,
        pool=pool,
        launcher=launcher,
        launcher_folder=folder,
        sandbox=cfg.sandbox_mode(backend),
        memory_limit_gb=cfg.limits.memory_gb,
        disk_limit_gb=cfg.limits.disk_gb,
        max_processes=cfg.limits.processes,
        **changes,
    )
