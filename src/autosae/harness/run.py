"""The trusted side of a counted run: data producer, scorer and constraint checks.

For each seed it starts the variant's process (autosae.harness.worker), streams hidden
activations to it through shared buffers, asks it to encode the eval samples, scores the
returned latents against the ground truth with autosae.bench.metrics, and records
everything under the run folder. The variant's process never sees feature activations or
feature vectors, and nothing it reports is taken as a metric.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from autosae.bench.profiles import PROFILES, Profile
from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.variant_process import Confinement, SeedFailure, VariantProcess
from autosae.sandboxed.spec import VariantSpec

if TYPE_CHECKING:
    from autosae.config import LauncherSettings
    from autosae.harness.slots import SlotPool

METRICS = (
    "f1",
    "mcc",
    "precision",
    "recall",
    "accuracy",
    "l0",
    "true_l0",
    "dead_latents",
    "explained_variance",
    "shrinkage",
    "uniqueness",
)
CHUNK_BATCHES = 64  # training batches per shared buffer slot
EVAL_CHUNK_BATCHES = 16  # eval batches per round trip
LOG_EVERY = 50  # steps between train_log.jsonl entries
PROBE_ROWS, PROBE_DIMS = 64, 8
"""The probe sketch: the SAE's reconstructions of the first PROBE_ROWS eval samples, projected
on PROBE_DIMS fixed random directions. Two SAEs that behave the same have the same sketch."""
MAX_VARIANT_FILES, MAX_VARIANT_BYTES = 200, 4 << 20
"""The most Python files (and bytes each) copied from a variant's folder into its run."""


@dataclass
class RunOptions:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str = "cpu"
    time_limit_s: float | None = None
    """Per-seed limit; the profile's when None."""
    memory_limit_gb: float | None = None
    """Memory cap for each variant's sandbox, in GiB (None: 3/4 of this machine's memory)."""
    disk_limit_gb: float = 8.0
    """Most a variant's process may write (its work folder and /tmp), in GiB."""
    max_processes: int = 512
    """Most tasks (processes and threads) in a variant's sandbox: no fork bomb."""
    sandbox: str = "auto"
    """required | auto | off: run variants under bubblewrap (see autosae.sandbox)."""
    sandboxed: bool | None = None
    """Whether this run's variants are sandboxed (resolved from `sandbox` when the run starts)."""
    counted: bool = True
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    pool: SlotPool | None = None
    """Device slots to spread the seeds over (see autosae.harness.slots); None: every seed
    in turn on `device`, fed from this process."""
    cpu_threads: int | None = None
    """Threads of a variant on CPU (default: all cores but one)."""
    matmul_precision: str = "highest"
    """torch.set_float32_matmul_precision in the variant's process: "high" allows TF32 on
    GPUs. The harness's data and scoring always run at full precision."""
    launcher: LauncherSettings | None = None
    """Run as a Slurm (or submitit-local) job instead (see autosae.harness.launch)."""
    launcher_folder: str | None = None


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> str:
    device = device or default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AutosaeError(
            f"--device {device}: no CUDA GPU is visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise AutosaeError(f"--device {device}: expected cpu, cuda or cuda:N")
    return device


def train_chunks(profile: Profile, model, pool, seed: int, device: str) -> Iterator[torch.Tensor]:
    """The seed's training rows, CHUNK_BATCHES batches at a time."""
    c = profile.constraints
    total = (c.training_samples // c.batch_size) * c.batch_size
    chunk = c.batch_size * CHUNK_BATCHES
    if pool is not None:
        gen = torch.Generator().manual_seed(seed)
        order, used = torch.randperm(pool.shape[0], generator=gen), 0
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            parts = []
            while n:
                if used == order.numel():
                    order, used = torch.randperm(pool.shape[0], generator=gen), 0
                take = min(n, order.numel() - used)
                parts.append(pool[order[used : used + take]])
                used, n = used + take, n - take
            yield torch.cat(parts).to(device, non_blocking=True)
    else:
        torch.manual_seed(10_000 + seed)
        step = 4096 if device == "cpu" else chunk
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            yield torch.cat([model.sample(min(step, n - i)) for i in range(0, n, step)]).float()


def eval_batches(profile: Profile, model) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(feature_acts, hidden) eval batches, drawn exactly as sae_lens's
    eval_sae_on_synthetic_data draws them after torch.manual_seed(profile.eval_seed)."""
    c = profile.constraints
    torch.manual_seed(profile.eval_seed)
    done = 0
    while done < c.eval_samples:
        n = min(c.batch_size, c.eval_samples - done)
        feature_acts = model.activation_generator.sample(n)
        yield feature_acts, model.feature_dict(feature_acts)
        done += n


class Progress:
    def __init__(self, log: Callable[[str], None], seed: int, total: int):
        self.log, self.seed, self.total = log, seed, total
        self.start, self.last = time.monotonic(), 0.0

    def update(self, entry: dict, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 2.0:
            return
        self.last = now
        done = entry["samples"]
        eta = (now - self.start) / max(done, 1) * (self.total - done)
        self.log(
            f"progress: seed={self.seed} samples={done:,}/{self.total:,} "
            f"loss={entry['loss']:.4g} l0={entry['l0']:.2f} dead={entry['dead']} eta={eta:.0f}s"
        )


def check_width(width: int, required: int) -> None:
    if width != required:
        raise SeedFailure(
            "rejected",
            "constraint:width",
            f"width: the SAE has {width} latents, the profile requires {required} (off by {width - required:+d})",
        )


def run_seed(worker: VariantProcess, profile: Profile, model, pool, seed: int, opts: RunOptions) -> dict:
    """Train, score and save one seed; raises SeedFailure with the reason otherwise."""
    c, spec = profile.constraints, worker.spec
    started = time.monotonic()
    worker.limit_s = opts.time_limit_s or profile.time_limit_s
    worker.deadline = started + worker.limit_s
    ready = worker.wait("ready")
    startup_s = time.monotonic() - started
    check_width(ready["width"], c.width)  # fail before training; re-checked on the decoder
    train_s = train(worker, profile, model, pool, seed, opts)
    metrics, decoder = score(worker, profile, model)
    worker_memory, executed_lines = save_sae(worker, decoder)
    worker.stop()
    return {
        "seed": seed,
        "status": "ok",
        **metrics,
        "sandboxed": bool(worker.box.sandboxed),
        "wall_s": round(time.monotonic() - started, 2),
        "startup_s": round(startup_s, 2),
        "train_s": round(train_s, 2),
        "samples_per_s": round(spec.total_steps * c.batch_size / max(train_s, 1e-9)),
        "architecture": ready["architecture"],
        "parameters": ready["parameters"],
        "dead_window_steps": dead_window(spec),
        "worker_memory": worker_memory,
        "executed_lines": executed_lines,
    }


def dead_window(spec: VariantSpec) -> int:
    """Steps without firing after which train_log.jsonl counts a latent as dead: SAELens's
    1000, or a tenth of training for short runs."""
    return max(1, min(1000, spec.total_steps // 10))


def train(worker: VariantProcess, profile: Profile, model, pool, seed: int, opts: RunOptions) -> float:
    """Stream the seed's training rows through the two shared slots: we fill one while the
    variant trains on the other. Returns the training time."""
    spec = worker.spec
    progress = Progress(opts.log, seed, spec.total_steps * spec.batch_size)
    started = time.monotonic()
    with open(worker.seed_dir / "train_log.jsonl", "w") as train_log:

        def collect() -> int:
            reply = worker.wait("trained")
            slot, logs = reply["slot"], reply["logs"]
            if slot not in (0, 1) or slot in free:
                raise SeedFailure("failed", "protocol", f"the variant's process reported buffer {slot}, not in use")
            for entry in logs:
                train_log.write(json.dumps(entry) + "\n")
                progress.update(entry)
            return slot

        free, in_flight = [0, 1], 0
        for rows in train_chunks(profile, model, pool, seed, spec.device):
            if not free:
                free.append(collect())
                in_flight -= 1
            slot = free.pop()
            worker.slots[slot][: rows.shape[0]].copy_(rows)
            worker.send("train", slot=slot, rows=rows.shape[0])
            in_flight += 1
        for _ in range(in_flight):
            collect()
    return time.monotonic() - started


def score(worker: VariantProcess, profile: Profile, model) -> tuple[dict, torch.Tensor]:
    """Have the variant encode the eval samples, score its latents, check width and L0."""
    from autosae.bench.metrics import Scorer

    c, spec = profile.constraints, worker.spec
    worker.send("decoder")
    shape = worker.wait("decoder")["shape"]
    if len(shape) != 2:
        raise SeedFailure("failed", "shape", f"decoder directions of shape {shape}: expected (width, d_in)")
    check_width(shape[0], c.width)
    if shape[1] != spec.d_in:
        raise SeedFailure(
            "failed", "shape", f"decoder directions have dimension {shape[1]}, the hidden activations have {spec.d_in}"
        )
    decoder = worker.buffers["decoder"].clone()
    features = model.feature_dict.feature_vectors.detach()
    scorer = Scorer(decoder.to(features.device), features)
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []
    sketch: list[float] = []

    def flush() -> None:
        rows = sum(h.shape[0] for _, h in pending)
        worker.buffers["eval_in"][:rows].copy_(torch.cat([h for _, h in pending]))
        worker.send("eval", rows=rows)
        if worker.wait("evaluated")["rows"] != rows:
            raise SeedFailure("failed", "protocol", "the variant's process evaluated another number of rows")
        # copies: the variant's process could still write to the shared buffers while we score
        latents, recon = worker.buffers["eval_latents"][:rows].clone(), worker.buffers["eval_recon"][:rows].clone()
        if not (torch.isfinite(latents).all() and torch.isfinite(recon).all()):
            raise SeedFailure("failed", "nan", "the SAE produced NaN or inf on the eval samples")
        if not sketch:
            sketch.extend(probe_sketch(recon[:PROBE_ROWS]))
        at = 0
        for feature_acts, hidden in pending:
            n = hidden.shape[0]
            scorer.add_batch(
                feature_acts, hidden, latents[at : at + n].to(hidden.device), recon[at : at + n].to(hidden.device)
            )
            at += n
        pending.clear()

    for batch in eval_batches(profile, model):
        pending.append(batch)
        if len(pending) == EVAL_CHUNK_BATCHES:
            flush()
    if pending:
        flush()
    metrics = scorer.compute()
    metrics["probe_sketch"] = sketch
    tolerance = c.l0_tolerance * c.k
    if abs(metrics["l0"] - c.k) > tolerance:
        raise SeedFailure(
            "rejected",
            "constraint:l0",
            f"l0: measured {metrics['l0']:.3f}, the profile requires {c.k:g} ± "
            f"{tolerance:.3g} (off by {metrics['l0'] - c.k:+.3f})",
        )
    return metrics, decoder


def probe_sketch(recon: torch.Tensor) -> list[float]:
    """PROBE_ROWS x PROBE_DIMS numbers that fingerprint what the SAE computes (see verdict's
    no-op check): reconstructions times a fixed Gaussian matrix, to 6 significant digits."""
    gen = torch.Generator().manual_seed(20_240_601)
    directions = torch.randn(recon.shape[1], PROBE_DIMS, generator=gen, dtype=torch.float64)
    values = (recon.detach().to("cpu", torch.float64) @ directions).flatten().tolist()
    return [float(f"{v:.6g}") for v in values]


def save_sae(worker: VariantProcess, decoder: torch.Tensor) -> tuple[dict, list[int]]:
    """Write the SAE (SAELens format when the variant can export to it) and its full state,
    from the safetensors files the variant wrote, read back as tensors and rewritten by us;
    returns the variant process's peak memory and the lines of its file that ran."""
    spec, out = worker.spec, worker.seed_dir
    worker.send("state")
    reply = worker.wait("state")
    state = worker.read_tensors("variant_state.safetensors")
    if state is None:
        raise SeedFailure("failed", "export", "the variant's process wrote no state")
    export = reply["export"]
    weights = worker.read_tensors("sae_weights.safetensors") if export is not None else None
    if export is not None and weights is None:
        raise SeedFailure("failed", "export", "the variant exported a SAELens cfg without its weights")
    sae_dir = out / "sae"
    sae_dir.mkdir(exist_ok=True)
    save_file(state, out / "variant_state.safetensors")
    if export is not None:
        cfg = export
        save_file(weights, sae_dir / "sae_weights.safetensors")
    else:
        cfg = {
            "architecture": "autosae-variant",
            "d_in": spec.d_in,
            "d_sae": spec.width,
            "note": "not representable in SAELens; reload with the variant's build() and variant_state.safetensors",
        }
        save_file({"W_dec": decoder.contiguous()}, sae_dir / "sae_weights.safetensors")
    (sae_dir / "cfg.json").write_text(json.dumps(cfg, indent=2))
    return reply["memory"], reply["lines"]


def summarize(per_seed: list[dict]) -> dict:
    ok = [r for r in per_seed if r.get("status") == "ok"]
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


def run_variant(variant: Path, profile: Profile, out: Path, opts: RunOptions) -> dict:
    """Train and score `variant` on `profile` for every seed; write results.json and return it.

    Raises VariantFailed / ConstraintBreach after writing a results.json that says why."""
    from autosae import __version__, sandbox
    from autosae.harness import replay
    from autosae.harness.seal import write_sealed
    from autosae.harness.validation import check_counted_seeds, validation_run

    if replay.active():  # the test suite's recorded runs (AUTOSAE_REPLAY), see harness.replay
        return replay.run(run_variant, variant, profile, out, opts)
    variant = variant.resolve()
    if not variant.is_file():
        raise AutosaeError(f"variant file not found: {variant}")
    quick = None  # an uncounted run never sees a counted run's seeds or eval samples (see harness.quick)
    if opts.counted:
        check_counted_seeds(opts.seeds)
    else:
        profile, opts, quick = validation_run(profile, opts)
    if opts.launcher is not None and opts.launcher.kind != "local":
        from autosae.harness.launch import submit_run

        return submit_run(variant, profile, out, opts)
    if opts.sandboxed is None:
        opts = dataclasses.replace(opts, sandboxed=sandbox.resolve(opts.sandbox, opts.log))
    out.mkdir(parents=True, exist_ok=True)
    variant = stage_variant(variant, out / "variant")
    pool = opts.pool
    device = resolve_device(opts.device) if pool is None else pool.alive[0] if pool.alive else "none"
    started = time.monotonic()
    results: dict = {
        "status": "running",
        "reason": None,
        "counted": opts.counted and is_counted(profile),
        "profile": profile.name,
        "model_hash": profile.model_hash(),
        "model_seed": profile.model.seed,
        "constraints": asdict(profile.constraints),
        "variant": str(variant),
        "variant_sha256": sha256_file(variant),
        "seeds": list(opts.seeds),
        "device": device,
        "versions": {"autosae": __version__, "torch": torch.__version__},
        "sandbox": {"mode": opts.sandbox, "enabled": opts.sandboxed},
    }
    if quick is not None:
        results["quick"] = quick
    from importlib.metadata import version

    results["versions"]["sae_lens"] = version("sae-lens")
    if pool is None:
        per_seed = _run_here(variant, profile, out, opts, device)
    else:
        per_seed = _run_on_slots(variant, profile, out, opts, pool)
        results["devices"] = sorted({r["device"] for r in per_seed if r.get("device")})
    failed = next((r for r in per_seed if r.get("status") != "ok"), None)
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


SLOT_SETTINGS = (
    "memory_limit_gb",
    "disk_limit_gb",
    "max_processes",
    "sandbox",
    "sandboxed",
    "counted",
    "matmul_precision",
)
"""The RunOptions a slot process or a launcher job needs (the rest, a log function and the
pool, stay here)."""


def portable_settings(opts: RunOptions, **extra) -> dict:
    """SLOT_SETTINGS of `opts` as plain keyword arguments for RunOptions in another process."""
    return {name: getattr(opts, name) for name in SLOT_SETTINGS} | extra


def start_variant(
    variant: Path, profile: Profile, seed: int, device: str, seed_dir: Path, opts: RunOptions
) -> VariantProcess:
    c = profile.constraints
    spec = spec_for(profile, seed, device)
    confinement = Confinement(
        bool(opts.sandboxed),
        opts.memory_limit_gb,
        opts.disk_limit_gb,
        opts.max_processes,
        opts.cpu_threads,
        opts.matmul_precision,
    )
    return VariantProcess(
        variant,
        spec,
        seed_dir,
        confinement,
        chunk_rows=c.batch_size * CHUNK_BATCHES,
        eval_rows=c.batch_size * EVAL_CHUNK_BATCHES,
        log_every=LOG_EVERY,
        dead_window=dead_window(spec),
    )


def stage_variant(variant: Path, folder: Path) -> Path:
    """Copy the variant's Python files (regular files only, no links) into the run: the
    sandbox shows the variant this copy, never the folder it came from, and what ran is what
    the run's hash names."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sources = sorted(p for p in variant.parent.glob("*.py") if p.is_file() and not p.is_symlink())
    for path in sources[:MAX_VARIANT_FILES]:
        if path.stat().st_size <= MAX_VARIANT_BYTES or path == variant:
            shutil.copyfile(path, folder / path.name)
    if variant.is_symlink() or not (folder / variant.name).is_file():
        shutil.copyfile(variant, folder / variant.name)
    return folder / variant.name


def spec_for(profile: Profile, seed: int, device: str) -> VariantSpec:
    c = profile.constraints
    return VariantSpec(
        d_in=profile.model.hidden_dim,
        width=c.width,
        k=c.k,
        batch_size=c.batch_size,
        total_steps=c.training_samples // c.batch_size,
        lr=c.lr,
        seed=seed,
        device=device,
        profile=profile.name,
    )


def _run_here(variant: Path, profile: Profile, out: Path, opts: RunOptions, device: str) -> list[dict]:
    """Every seed in turn on one device, fed from this process; stops at the first failure."""
    workers: list[VariantProcess] = []

    def start(i: int) -> None:
        if i < len(opts.seeds):
            seed = opts.seeds[i]
            workers.append(start_variant(variant, profile, seed, device, out / f"seed_{seed}", opts))

    per_seed: list[dict] = []
    start(0)  # the variant's process imports and builds while we load the model
    try:
        from autosae.bench.build import load

        model, pool = load(profile, device=device, log=opts.log)
        for i, seed in enumerate(opts.seeds):
            start(i + 1)  # warm the next seed's process while this one trains
            try:
                per_seed.append(run_seed(workers[i], profile, model, pool, seed, opts))
            except SeedFailure as exc:
                per_seed.append(
                    {
                        "seed": seed,
                        "status": exc.status,
                        "kind": exc.kind,
                        "reason": exc.message,
                        "log_tail": workers[i].log_tail(),
                    }
                )
                break
    finally:  # on success, failure or Ctrl-C: no variant process outlives the run
        for w in workers:
            w.kill()
    return per_seed


def _run_on_slots(variant: Path, profile: Profile, out: Path, opts: RunOptions, pool: SlotPool) -> list[dict]:
    """The seeds at once, one per free slot of the pool, each in a trusted slot process; the
    first failure of the variant stops the others. Records come back in seed order."""
    from autosae.harness.slots import SlotRun, slot_main

    ctx = mp.get_context("spawn")
    limit = opts.time_limit_s or profile.time_limit_s

    def start_job(seed: int, device: str):
        reply = ctx.Queue()
        settings = portable_settings(opts, time_limit_s=limit, cpu_threads=pool.cpu_threads())
        proc = ctx.Process(
            target=slot_main, daemon=False, args=(str(variant), profile, str(out), seed, device, settings, reply)
        )
        proc.start()
        return proc, reply

    owner = f"{out}#{time.monotonic_ns()}"
    records = SlotRun(pool, owner, start_job, opts.log).run(list(opts.seeds), guard_s=limit + 900)
    per_seed = [records[s] for s in opts.seeds if s in records]
    failed = [r for r in per_seed if r.get("status") != "ok"]
    return [r for r in per_seed if r.get("status") == "ok"] + failed[:1] if failed else per_seed


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)
