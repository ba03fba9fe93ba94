"""The middle floor of the harness: a run executed on this machine, its seeds in turn on one
device (run_in_turn) or at once on a pool's device slots (run_on_slots), and its results.json
written and sealed (run_here). A launcher job runs run_here on its node (autosae.harness.launch);
autosae.harness.run decides where a run goes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import stat
import statistics
import time
from dataclasses import asdict, replace
from importlib.metadata import version
from pathlib import Path

import torch

from autosae import __version__, sandbox
from autosae.bench.build import load
from autosae.bench.profiles import PROFILES, Profile
from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.devices import resolve_device
from autosae.harness.options import MAX_VARIANT_BYTES, METRICS, SeedSettings, sha256_file, staged_files
from autosae.harness.seal import write_sealed
from autosae.harness.seed import SeedFailure, failure_record, run_seed, start_variant
from autosae.harness.slots import SlotPool, SlotRun
from autosae.harness.variant_process import VariantProcess
from autosae.records import is_ok


def run_here(
    variant: Path,
    profile: Profile,
    out: Path,
    seeds: list[int],
    settings: SeedSettings,
    *,
    counted: bool,
    device: str | None = None,
    pool: SlotPool | None = None,
    quick: dict | None = None,
) -> dict:
    """Train and score `variant` for every seed on this machine: on `pool`'s slots, else in
    turn on `device`. Writes the sealed results.json and returns it; raises VariantFailed /
    ConstraintBreach after writing one that says why. `quick`: an uncounted run's record of
    its validation samples and seeds (see autosae.harness.validation)."""
    if settings.sandboxed is None:
        settings = replace(settings, sandboxed=sandbox.resolve(settings.sandbox, settings.log))
    out.mkdir(parents=True, exist_ok=True)
    variant = stage_variant(variant, out / "variant")
    device = resolve_device(device) if pool is None else pool.alive[0] if pool.alive else "none"
    started = time.monotonic()
    results: dict = {
        "status": "running",
        "reason": None,
        "counted": counted and is_counted(profile),
        "profile": profile.name,
        "model_hash": profile.model_hash(),
        "model_seed": profile.model.seed,
        "constraints": asdict(profile.constraints),
        "variant": str(variant),
        "variant_sha256": sha256_file(variant),
        "seeds": list(seeds),
        "device": device,
        "versions": {"autosae": __version__, "torch": torch.__version__},
        "sandbox": {"mode": settings.sandbox, "enabled": settings.sandboxed},
    }
    if quick is not None:
        results["quick"] = quick
    if settings.variant_options:  # knobs a quick run's arm passed to build() (VariantSpec.options)
        results["variant_options"] = dict(settings.variant_options)
    results["versions"]["sae_lens"] = version("sae-lens")
    if pool is None:
        per_seed = run_in_turn(variant, profile, out, seeds, settings, device)
    else:
        per_seed = run_on_slots(variant, profile, out, seeds, settings, pool)
        results["devices"] = sorted({r["device"] for r in per_seed if r.get("device")})
    failed = next((r for r in per_seed if not is_ok(r)), None)
    results["per_seed"] = per_seed
    results["summary"] = summarize(per_seed)
    results["wall_s"] = round(time.monotonic() - started, 2)
    if failed is not None:
        results["status"] = failed["status"]
        results["reason"] = f"seed {failed['seed']}: {failed['reason']}"
        results["failure_kind"] = failed["kind"]
        results["log_tail"] = failed.get("log_tail", "")
    else:
        results["status"] = "ok"
    write_sealed(out / "results.json", results)
    if failed is not None:
        where = f"(log: {out / ('seed_' + str(failed['seed'])) / 'worker.log'})"
        err = ConstraintBreach if failed["status"] == "rejected" else VariantFailed
        raise err(f"{results['reason']} {where}")
    return results


def run_in_turn(
    variant: Path, profile: Profile, out: Path, seeds: list[int], settings: SeedSettings, device: str
) -> list[dict]:
    """Every seed in turn on one device, fed from this process; stops at the first failure."""
    workers: list[VariantProcess] = []

    def start(i: int) -> None:
        if i < len(seeds):
            workers.append(start_variant(variant, profile, seeds[i], device, out / f"seed_{seeds[i]}", settings))

    per_seed: list[dict] = []
    threads = torch.get_num_threads()
    if device == "cpu":  # the variant has all cores but one (variant_process): this process keeps
        torch.set_num_threads(1)  # to the last, or two thread pools spin on the same cores
    start(0)  # the variant's process imports and builds while we load the model
    try:
        model, pool = load(profile, device=device, log=settings.log)
        for i, seed in enumerate(seeds):
            try:  # the next seed's process warms up while this one trains, once this one has built
                per_seed.append(run_seed(workers[i], profile, model, pool, seed, settings, lambda i=i: start(i + 1)))
            except SeedFailure as exc:
                per_seed.append(failure_record(seed, exc, workers[i]))
                break
    finally:  # on success, failure or Ctrl-C: no variant process outlives the run
        for w in workers:
            w.kill()
        torch.set_num_threads(threads)
    return per_seed


def run_on_slots(
    variant: Path, profile: Profile, out: Path, seeds: list[int], settings: SeedSettings, pool: SlotPool
) -> list[dict]:
    """The seeds at once, one per free slot of the pool, each in a trusted slot process
    (slot_main); the first failure of the variant stops the others. Records come back in seed
    order, a failed seed's last."""
    ctx = slot_context(list(pool.devices))
    limit = settings.time_limit_s or profile.time_limit_s
    portable = replace(settings, time_limit_s=limit, cpu_threads=pool.cpu_threads()).portable()
    environ = dict(os.environ)  # now: the fork server was started with the environment of its day

    def start_job(seed: int, device: str):
        reply = ctx.Queue()
        proc = ctx.Process(
            target=slot_main,
            daemon=False,
            args=(str(variant), profile, str(out), seed, device, portable, reply, environ),
        )
        proc.start()
        return proc, reply

    owner = f"{out}#{time.monotonic_ns()}"
    records = SlotRun(pool, owner, start_job, settings.log).run(list(seeds), guard_s=limit + 900)
    per_seed = [records[s] for s in seeds if s in records]
    failed = [r for r in per_seed if not is_ok(r)]
    return [r for r in per_seed if is_ok(r)] + failed[:1] if failed else per_seed


SLOT_PRELOAD = ["autosae.harness.local", "autosae.bench.build", "sae_lens.synthetic", "sae_lens.evals"]
"""What the CPU slots' fork server imports once, so that each slot process starts with it
(torch and sae_lens: 5 s of CPU a slot, every seed, when each was a fresh interpreter)."""


def slot_context(devices: list[str]):
    """CPU slot processes fork from a server that imported SLOT_PRELOAD instead of starting a
    fresh interpreter each. GPU slots start fresh (spawn): those imports ask CUDA whether a
    device is there (torch.cuda.is_available initialises the driver), and CUDA does not
    survive a fork after that."""
    if any(d.startswith("cuda") for d in devices):
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(SLOT_PRELOAD)
    return ctx


def slot_main(
    variant: str, profile: Profile, out: str, seed: int, device: str, settings: dict, reply, environ: dict
) -> None:
    """One seed on one slot, in a process of its own: the trusted producer and scorer for
    that seed. Reports ("log", line)*, then ("seed", record) or ("slot_error", message).
    `settings`: the run's SeedSettings.portable(), its time limit and CPU threads set;
    `environ`: the run's environment (the fork server keeps the one it started with)."""
    from autosae.sandboxed.worker import exit_when_orphaned

    os.environ.clear()
    os.environ.update(environ)
    os.setpgrp()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    workers: list = []

    def bail(*_):  # cancelled: the variant's process goes first (it has a process group of its own)
        for w in workers:
            w.kill()
        raise SystemExit(143)  # unwinds, so that multiprocessing cleans up after us

    signal.signal(signal.SIGTERM, bail)
    exit_when_orphaned(lambda: [w.kill() for w in workers])  # the loop was killed: so is the variant
    torch.set_num_threads(1 if device != "cpu" else max(1, settings["cpu_threads"] // 2))
    seed_settings = SeedSettings(**settings, log=lambda line: reply.put(("log", line)))
    try:
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        worker = start_variant(Path(variant), profile, seed, device, Path(out) / f"seed_{seed}", seed_settings)
        workers.append(worker)
        try:
            model, pool = load(profile, device=device, log=seed_settings.log)  # while the variant imports and builds
            record = run_seed(worker, profile, model, pool, seed, seed_settings)
        except SeedFailure as exc:
            record = failure_record(seed, exc, worker)
        finally:
            worker.kill()
        record["device"] = device
        reply.put(("seed", record))
    except SystemExit:
        raise
    except BaseException as exc:  # the trusted side failed on this slot: not the variant's doing
        reply.put(("slot_error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500]))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # done: a late cancel must not break the exit
        reply.close()
        reply.join_thread()


def summarize(per_seed: list[dict]) -> dict:
    ok = [r for r in per_seed if is_ok(r)]
    summary = {}
    for key in METRICS:
        values = [float(r[key]) for r in ok if key in r]
        if values:
            summary[key] = {
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "n": len(values),
            }
    return summary


def is_counted(profile: Profile) -> bool:
    """Runs count only under the named profile's own constraints (model overrides make
    held-out models and stay counted)."""
    base = PROFILES.get(profile.name)
    return (
        base is not None
        and base.constraints == profile.constraints
        and base.data == profile.data
        and base.pool_samples == profile.pool_samples
    )


def stage_variant(variant: Path, folder: Path) -> Path:
    """Copy the variant's Python files (regular files only, no links) into the run: the
    sandbox shows the variant this copy, never the folder it came from, and what ran is what
    the run's hash names. The folder may be an agent's, with the agent's processes running (a
    Claude Code session asks for quick runs while it works): so the copy reads through a
    descriptor of the folder, reached without following any link, and opens each file
    without following a link and without blocking, and copies it only if it is then a
    regular file of at most MAX_VARIANT_BYTES. A file swapped for a link to a root-only file
    while we stage is refused, never copied; the variant itself must pass, or the run is
    refused with one line."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names = staged_files(variant)
    source = folder_fd(Path(os.path.realpath(variant.parent)))
    try:
        for name in names:
            data = regular_file(source, name)
            if data is None and name == variant.name:
                raise AutosaeError(
                    f"{variant}: not a regular file of at most {MAX_VARIANT_BYTES:,} bytes when the harness copied it"
                )
            if data is not None:
                (folder / name).write_bytes(data)
    finally:
        os.close(source)
    return folder / variant.name


def folder_fd(folder: Path) -> int:
    """A descriptor of `folder` (an absolute path), each component opened without following a
    link: a component swapped for a link since the path was resolved is refused."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in folder.parts[1:]:
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise AutosaeError(
                    f"{folder}: cannot be read as a folder without following a link ({exc.strerror})"
                ) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def regular_file(folder: int, name: str) -> bytes | None:
    """The bytes of `name` in the folder `folder` (a descriptor) if, once opened without
    following a link and without blocking, it is a regular file of at most MAX_VARIANT_BYTES."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_VARIANT_BYTES:
            return None
        data = f.read(MAX_VARIANT_BYTES + 1)
    return data if len(data) <= MAX_VARIANT_BYTES else None
