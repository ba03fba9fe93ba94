"""`autosae transfer ID`: a recorded sprint's variant, its parent and the Matryoshka baseline
trained on a real language model's activations at several L0s and seeds, judged across them,
and recorded in the sprint's folder (transfer.json, sealed; transfer.md; transfer.pdf).

Runs live under .autosae/runs/transfer/<id>/<settings>/ (git-ignored; the SAEs are large), one
folder per (SAE, L0, seed) with its sealed result.json, so that a killed transfer resumes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from autosae.errors import AutosaeError
from autosae.harness.options import sha256_file
from autosae.harness.seal import write_sealed
from autosae.sprint.ledger import read_ledger
from autosae.sprint.project import Project
from autosae.sprint.verification import resolve_id
from autosae.transfer import verdict as stats
from autosae.transfer.record import recorded
from autosae.transfer.settings import TransferSettings
from autosae.variants import reference_variants

BASELINE = "matryoshka"
FILES = ("transfer.json", "transfer.md", "transfer.pdf")


def sae_files(project: Project, row: dict) -> list[tuple[str, Path]]:
    """(kind, variant file) of each SAE a transfer trains: the sprint's variant, its parent
    (left out when it is the baseline itself), the Matryoshka baseline."""
    variant = project.sprints_dir / row["id"] / "variant.py"
    if not variant.is_file():
        raise AutosaeError(f"sprint {row['id']} has no variant.py to transfer")
    parent = project.parent_variant(row.get("parent") or f"baseline:{BASELINE}")
    if not parent.is_file():
        raise AutosaeError(f"sprint {row['id']}: its parent's variant {parent} is missing")
    baseline = reference_variants()[BASELINE]
    files = [("variant", variant)]
    if sha256_file(parent) != sha256_file(baseline):
        files.append(("parent", parent))
    files.append(("baseline", baseline))
    return files


def transfer_sprint(
    project: Project,
    row: dict,
    settings: TransferSettings,
    devices: list[str],
    opts,
    alpha: float,
    log: Callable[[str], None],
) -> dict:
    """Run (or resume) the transfer of the sprint of ledger row `row` on `devices`, or as a job
    of `opts`' launcher (autosae.harness.run.RunOptions), and write its records; returns
    transfer.json."""
    from autosae.transfer.report import write_reports
    from autosae.transfer.runs import Job, run_all

    sid = row["id"]
    files = sae_files(project, row)
    seeds = settings.seed_list()
    jobs = [Job(kind, path, l0, seed) for l0 in settings.l0s for seed in seeds for kind, path in files]
    started = time.monotonic()
    folder = project.runs_dir / "transfer" / sid
    launcher = opts.where.launcher
    if launcher is not None:  # the SAEs train in a launcher job; their sealed records are read back here
        from autosae.transfer.launch import submit_transfer

        job_folder = Path(opts.where.launcher_folder)
        submit_transfer(jobs, folder, settings, project.root, opts.settings, launcher, job_folder, log)
    runs = run_all(jobs, folder, settings, devices, project.root, opts.settings, log, failed_too=launcher is not None)
    kinds = [kind for kind, _ in files]
    others = [k for k in kinds if k != "variant"]
    comparisons = stats.judge(runs, others, alpha, len(settings.l0s))
    primary = comparisons[others[0]][settings.metric]
    failed = [r for r in runs if r.get("status") != "ok"]
    data = {
        "sprint": sid,
        "variant_sha256": sha256_file(files[0][1]),
        "title": row.get("title", ""),
        "parent": row.get("parent"),
        "parent_is_baseline": "parent" not in kinds,
        "settings": settings.model_dump(),
        "device": devices[0] if len(devices) == 1 else ",".join(devices),
        "alpha": alpha,
        "kinds": kinds,
        "runs": runs,
        "failed": len(failed),
        "comparisons": comparisons,
        "verdict": primary["verdict"],
        "verdict_against": others[0],
        "verdict_metric": settings.metric,
        "cost": stats.cost(runs, devices[0], len(kinds), len(settings.l0s), len(seeds), primary["seeds_needed"]),
        "wall_s": round(time.monotonic() - started, 2),
    }
    folder = project.sprints_dir / sid
    data = write_sealed(folder / "transfer.json", data)
    write_reports(folder, data)
    return data


def run_options_for(cfg, project: Project, backend: str | None, log: Callable[[str], None]):
    """How and where the transfer's SAEs run, as a counted run's seeds do: TASK.md's sandbox
    (for the sprint's backend), its limits and its launcher (its jobs' folder included); the
    sandbox is resolved here (`required` without bubblewrap stops with one line)."""
    from autosae import sandbox
    from autosae.harness.run import task_run_options
    from autosae.sprint import gitops

    project_id = gitops.root_commit(gitops.open_repo(project.root))
    opts = task_run_options(
        cfg, "cpu", None, project_root=project.root, project_id=project_id, backend=backend, log=log
    )
    return opts.replace(sandboxed=sandbox.resolve(opts.settings.sandbox, log))


def record_transfer(project: Project, sid: str, data: dict, log: Callable[[str], None]) -> None:
    """Commit the transfer's files, then re-render the sprint's report and the leaderboard
    (their LLM lines come from transfer.json). The caller holds the project's lock."""
    from autosae.report.rerender import rerender
    from autosae.sprint import gitops

    repo = gitops.open_repo(project.root)
    gitops.commit_paths(
        repo,
        f"transfer {sid}: {data['verdict']} on {data['settings']['model']} "
        f"({stats.LABELS[data['verdict_metric']]} against its {data['verdict_against']})",
        [f"sprints/{sid}/{name}" for name in FILES],
    )
    rerender(project, [sid], log=log)


def run_and_record(
    project: Project, cfg, sprint_id: str, settings: TransferSettings, devices: list[str], lock, log
) -> dict:
    """The whole of `autosae transfer` and of the loop's automatic transfer: train (outside
    `lock`, a context manager guarding the project's git), then record under it."""
    rows = {r["id"]: r for r in read_ledger(project.ledger_path)}
    row = rows[resolve_id(sprint_id, rows)]
    opts = run_options_for(cfg, project, row.get("backend"), log)
    data = transfer_sprint(project, row, settings, devices, opts, cfg.significance, log)
    with lock:
        record_transfer(project, row["id"], data, log)
    return data


def due(project: Project) -> list[str]:
    """Sprints the loop transfers when TASK.md's transfer.auto is on: every new best that the
    held-out models did not turn down, without a transfer of ours yet."""
    return [
        r["id"]
        for r in read_ledger(project.ledger_path)
        if r.get("new_best") and r.get("confirmed") is not False and recorded(project.sprints_dir / r["id"]) is None
    ]


_taken: set[str] = set()
"""Sprints a lane of this loop has taken to transfer (so that no other lane takes them too,
and a failed one is not tried again before the loop restarts)."""


def transfer_due(engine) -> int:
    """The loop's automatic transfers (TASK.md transfer.auto), after each recorded sprint:
    every due sprint (see `due`) in turn, trained outside the engine's lock and recorded
    under it. A transfer that fails is said and left; it never stops the loop. Returns how
    many were tried."""
    from autosae.config import load_task

    cfg = load_task(engine.project.task_path).config
    if not cfg.transfer.auto:
        return 0
    tried = 0
    while True:
        with engine.lock:
            sid = next((s for s in due(engine.project) if s not in _taken), None)
            if sid is None:
                return tried
            _taken.add(sid)
        tried += 1
        engine.say(sid, "transfer", f"on {cfg.transfer.model} ({cfg.transfer.hook}), TASK.md transfer.auto")
        try:
            data = run_and_record(
                engine.project, cfg, sid, cfg.transfer, transfer_devices(cfg), engine.lock, engine.detail
            )
        except Exception as exc:  # noqa: BLE001 (said; the loop goes on)
            why = str(exc) if isinstance(exc, AutosaeError) else f"{type(exc).__name__}: {exc}"
            engine.say(sid, "transfer", f"failed: {why}")
        else:
            engine.say(sid, "transfer", f"{stats.SYMBOLS[data['verdict']]} {data['verdict']}")


def transfer_devices(cfg, device: str | None = None) -> list[str]:
    """Where a transfer's SAEs train: `device` when given, else TASK.md's gpus (one SAE at a
    time on each), else its device (cuda when visible)."""
    from autosae.harness.devices import check_devices, parse_gpus, resolve_device

    if device is None and cfg.gpus is not None:
        return check_devices(parse_gpus(cfg.gpus))
    return [resolve_device(device or cfg.device)]
