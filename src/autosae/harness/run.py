"""The trusted side of a counted run: data producer, scorer and constraint checks.

For each seed it starts the variant's process (autosae.harness.worker), streams hidden
activations to it through shared buffers, asks it to encode the eval samples, scores the
returned latents against the ground truth with autosae.bench.metrics, and records
everything under the run folder. The variant's process never sees feature activations or
feature vectors, and nothing it reports is taken as a metric.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import queue
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import torch
from safetensors.torch import save_file

from autosae.bench.profiles import PROFILES, Profile
from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.spec import VariantSpec

if TYPE_CHECKING:
    from autosae.config import LauncherSettings
    from autosae.harness.slots import SlotPool

METRICS = ("f1", "mcc", "precision", "recall", "accuracy", "l0", "true_l0", "dead_latents",
           "explained_variance", "shrinkage", "uniqueness")
CHUNK_BATCHES = 64       # training batches per shared buffer slot
EVAL_CHUNK_BATCHES = 16  # eval batches per round trip
LOG_EVERY = 50           # steps between train_log.jsonl entries
PROBE_ROWS, PROBE_DIMS = 64, 8
"""The probe sketch: the SAE's reconstructions of the first PROBE_ROWS eval samples, projected
on PROBE_DIMS fixed random directions. Two SAEs that behave the same have the same sketch."""
POLL_S = 0.25


@dataclass
class RunOptions:
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str = "cpu"
    time_limit_s: float | None = None
    """Per-seed limit; the profile's when None."""
    memory_limit_gb: float | None = None
    """Address-space cap for the variant's process on CPU (None: no cap)."""
    counted: bool = True
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    pool: "SlotPool | None" = None
    """Device slots to spread the seeds over (see autosae.harness.slots); None: every seed
    in turn on `device`, fed from this process."""
    cpu_threads: int | None = None
    """Threads of a variant on CPU (default: all cores but one)."""
    matmul_precision: str = "highest"
    """torch.set_float32_matmul_precision in the variant's process: "high" allows TF32 on
    GPUs. The harness's data and scoring always run at full precision."""
    launcher: "LauncherSettings | None" = None
    """Run as a Slurm (or submitit-local) job instead (see autosae.harness.launch)."""
    launcher_folder: str | None = None


class SeedFailure(Exception):
    def __init__(self, status: str, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> str:
    device = device or default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AutosaeError(f"--device {device}: no CUDA GPU is visible "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    if device != "cpu" and not device.startswith("cuda"):
        raise AutosaeError(f"--device {device}: expected cpu, cuda or cuda:N")
    return device


class Worker:
    """One seed's variant process and the shared buffers it trains from."""

    def __init__(self, variant: Path, spec: VariantSpec, seed_dir: Path, opts: RunOptions):
        self.spec, self.seed_dir = spec, seed_dir
        seed_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = seed_dir / "worker.log"
        self.log_path.write_text("")
        device, rows = spec.device, spec.batch_size * CHUNK_BATCHES
        eval_rows = spec.batch_size * EVAL_CHUNK_BATCHES

        def buffer(*shape):
            t = torch.zeros(*shape, device=device)
            return t if device != "cpu" else t.share_memory_()

        self.slots = [buffer(rows, spec.d_in) for _ in range(2)]
        self.eval_in = buffer(eval_rows, spec.d_in)
        self.eval_latents = buffer(eval_rows, spec.width)
        self.eval_recon = buffer(eval_rows, spec.d_in)
        ctx = mp.get_context("spawn")
        self.cmd_q, self.reply_q = ctx.Queue(), ctx.Queue()
        threads = (opts.cpu_threads or max(1, (os.cpu_count() or 2) - 1)) if device == "cpu" else 1
        mem = int(opts.memory_limit_gb * 2**30) if opts.memory_limit_gb and device == "cpu" else None
        from autosae.harness import worker

        self.proc = ctx.Process(
            target=worker.main, daemon=True,
            args=(str(variant), asdict(spec), str(self.log_path), threads, mem, self.cmd_q,
                  self.reply_q, self.slots, self.eval_in, self.eval_latents, self.eval_recon,
                  LOG_EVERY, dead_window(spec), opts.matmul_precision))
        self.proc.start()
        self.limit_s, self.deadline = math.inf, math.inf

    def send(self, *cmd) -> None:
        if self.spec.device != "cpu":
            torch.cuda.synchronize()
        self.cmd_q.put(cmd)

    def wait(self, tag: str):
        """The worker's next reply, which must be `tag`; failures become SeedFailure."""
        while True:
            if time.monotonic() > self.deadline:
                self.kill()
                raise SeedFailure("failed", "timeout",
                                  f"the variant exceeded its time limit of {self.limit_s:g} s")
            try:
                msg = self.reply_q.get(timeout=POLL_S)
            except queue.Empty:
                if self.proc.is_alive():
                    continue
                try:  # the error report may have landed just before the exit
                    msg = self.reply_q.get(timeout=1.0)
                except queue.Empty:
                    raise SeedFailure("failed", "crashed",
                                      f"the variant's process died (exit code {self.proc.exitcode})") from None
            if msg[0] == "error":
                raise SeedFailure("failed", msg[1], msg[2])
            if msg[0] != tag:
                raise SeedFailure("failed", "protocol", f"expected {tag!r} from the worker, got {msg[0]!r}")
            return msg

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.is_alive():
            self.cmd_q.put(("stop",))
            self.proc.join(timeout=10)
        self.kill()

    def kill(self) -> None:
        if self.proc.pid is not None and self.proc.exitcode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            self.proc.join(timeout=5)
        for q in (self.cmd_q, self.reply_q):
            q.cancel_join_thread()
            q.close()


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
                parts.append(pool[order[used:used + take]])
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
        self.log(f"progress: seed={self.seed} samples={done:,}/{self.total:,} "
                 f"loss={entry['loss']:.4g} l0={entry['l0']:.2f} dead={entry['dead']} eta={eta:.0f}s")


def check_width(width: int, required: int) -> None:
    if width != required:
        raise SeedFailure("rejected", "constraint:width",
                          f"width: the SAE has {width} latents, the profile requires "
                          f"{required} (off by {width - required:+d})")


def run_seed(worker: Worker, profile: Profile, model, pool, seed: int, opts: RunOptions) -> dict:
    """Train, score and save one seed; raises SeedFailure with the reason otherwise."""
    c, spec = profile.constraints, worker.spec
    started = time.monotonic()
    worker.limit_s = opts.time_limit_s or profile.time_limit_s
    worker.deadline = started + worker.limit_s
    ready = worker.wait("ready")[1]
    startup_s = time.monotonic() - started
    check_width(ready["width"], c.width)  # fail before training; re-checked on the decoder
    train_s = train(worker, profile, model, pool, seed, opts)
    metrics, decoder = score(worker, profile, model)
    worker_memory, executed_lines = save_sae(worker, decoder)
    worker.stop()
    return {"seed": seed, "status": "ok", **metrics,
            "wall_s": round(time.monotonic() - started, 2), "startup_s": round(startup_s, 2),
            "train_s": round(train_s, 2),
            "samples_per_s": round(spec.total_steps * c.batch_size / max(train_s, 1e-9)),
            "architecture": ready["architecture"], "parameters": ready["parameters"],
            "dead_window_steps": dead_window(spec), "worker_memory": worker_memory,
            "executed_lines": executed_lines}


def dead_window(spec: VariantSpec) -> int:
    """Steps without firing after which train_log.jsonl counts a latent as dead: SAELens's
    1000, or a tenth of training for short runs."""
    return max(1, min(1000, spec.total_steps // 10))


def train(worker: Worker, profile: Profile, model, pool, seed: int, opts: RunOptions) -> float:
    """Stream the seed's training rows through the two shared slots: we fill one while the
    variant trains on the other. Returns the training time."""
    spec = worker.spec
    progress = Progress(opts.log, seed, spec.total_steps * spec.batch_size)
    started = time.monotonic()
    with open(worker.seed_dir / "train_log.jsonl", "w") as train_log:

        def collect() -> int:
            _, slot, logs = worker.wait("trained")
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
            worker.slots[slot][:rows.shape[0]].copy_(rows)
            worker.send("train", slot, rows.shape[0])
            in_flight += 1
        for _ in range(in_flight):
            collect()
    return time.monotonic() - started


def score(worker: Worker, profile: Profile, model) -> tuple[dict, torch.Tensor]:
    """Have the variant encode the eval samples, score its latents, check width and L0."""
    from autosae.bench.metrics import Scorer

    c, spec = profile.constraints, worker.spec
    worker.send("decoder")
    decoder = worker.wait("decoder")[1]
    check_width(decoder.shape[0], c.width)
    if decoder.shape[1] != spec.d_in:
        raise SeedFailure("failed", "shape", f"decoder directions have dimension {decoder.shape[1]}, "
                                             f"the hidden activations have {spec.d_in}")
    features = model.feature_dict.feature_vectors.detach()
    scorer = Scorer(decoder.to(features.device), features)
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []
    sketch: list[float] = []

    def flush() -> None:
        rows = sum(h.shape[0] for _, h in pending)
        worker.eval_in[:rows].copy_(torch.cat([h for _, h in pending]))
        worker.send("eval", rows)
        worker.wait("evaluated")
        latents, recon = worker.eval_latents[:rows], worker.eval_recon[:rows]
        if not (torch.isfinite(latents).all() and torch.isfinite(recon).all()):
            raise SeedFailure("failed", "nan", "the SAE produced NaN or inf on the eval samples")
        if not sketch:
            sketch.extend(probe_sketch(recon[:PROBE_ROWS]))
        at = 0
        for feature_acts, hidden in pending:
            n = hidden.shape[0]
            scorer.add_batch(feature_acts, hidden, latents[at:at + n].to(hidden.device),
                             recon[at:at + n].to(hidden.device))
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
        raise SeedFailure("rejected", "constraint:l0",
                          f"l0: measured {metrics['l0']:.3f}, the profile requires {c.k:g} ± "
                          f"{tolerance:.3g} (off by {metrics['l0'] - c.k:+.3f})")
    return metrics, decoder


def probe_sketch(recon: torch.Tensor) -> list[float]:
    """PROBE_ROWS x PROBE_DIMS numbers that fingerprint what the SAE computes (see verdict's
    no-op check): reconstructions times a fixed Gaussian matrix, to 6 significant digits."""
    gen = torch.Generator().manual_seed(20_240_601)
    directions = torch.randn(recon.shape[1], PROBE_DIMS, generator=gen, dtype=torch.float64)
    values = (recon.detach().to("cpu", torch.float64) @ directions).flatten().tolist()
    return [float(f"{v:.6g}") for v in values]


def save_sae(worker: Worker, decoder: torch.Tensor) -> tuple[dict, list[int]]:
    """Write the SAE (SAELens format when the variant can export to it) and its full
    state; returns the variant process's peak memory and the lines of its file that ran."""
    spec, out = worker.spec, worker.seed_dir
    worker.send("state")
    _, state, export, worker_memory, executed_lines = worker.wait("state")
    sae_dir = out / "sae"
    sae_dir.mkdir(exist_ok=True)
    try:  # what the variant hands back is checked like everything else it reports
        save_file(state, out / "variant_state.safetensors")
        if export is not None:
            cfg, weights = export
            save_file({k: v.contiguous() for k, v in weights.items()}, sae_dir / "sae_weights.safetensors")
        else:
            cfg = {"architecture": "autosae-variant", "d_in": spec.d_in, "d_sae": spec.width,
                   "note": "not representable in SAELens; reload with the variant's build() and "
                           "variant_state.safetensors"}
            save_file({"W_dec": decoder.contiguous()}, sae_dir / "sae_weights.safetensors")
        (sae_dir / "cfg.json").write_text(json.dumps(cfg, indent=2))
    except (TypeError, ValueError, AttributeError) as exc:
        raise SeedFailure("failed", "export", f"the SAE could not be saved: {exc}") from None
    return worker_memory, executed_lines


def summarize(per_seed: list[dict]) -> dict:
    ok = [r for r in per_seed if r.get("status") == "ok"]
    summary = {}
    for key in METRICS:
        values = [float(r[key]) for r in ok if key in r]
        if values:
            summary[key] = {"mean": statistics.fmean(values),
                            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                            "n": len(values)}
    return summary


def is_counted(profile: Profile) -> bool:
    """Runs count only under the named profile's own constraints (model overrides make
    held-out models and stay counted)."""
    base = PROFILES.get(profile.name)
    return base is not None and base.constraints == profile.constraints \
        and base.data == profile.data and base.pool_samples == profile.pool_samples


def run_variant(variant: Path, profile: Profile, out: Path, opts: RunOptions) -> dict:
    """Train and score `variant` on `profile` for every seed; write results.json and return it.

    Raises VariantFailed / ConstraintBreach after writing a results.json that says why."""
    from autosae import __version__

    variant = variant.resolve()
    if not variant.is_file():
        raise AutosaeError(f"variant file not found: {variant}")
    if opts.launcher is not None and opts.launcher.kind != "local":
        from autosae.harness.launch import submit_run

        return submit_run(variant, profile, out, opts)
    out.mkdir(parents=True, exist_ok=True)
    pool = opts.pool
    device = resolve_device(opts.device) if pool is None else pool.alive[0] if pool.alive else "none"
    started = time.monotonic()
    results: dict = {
        "status": "running", "reason": None, "counted": opts.counted and is_counted(profile),
        "profile": profile.name, "model_hash": profile.model_hash(), "model_seed": profile.model.seed,
        "constraints": asdict(profile.constraints), "variant": str(variant),
        "variant_sha256": sha256_file(variant), "seeds": list(opts.seeds), "device": device,
        "versions": {"autosae": __version__, "torch": torch.__version__},
    }
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
    write_json(out / "results.json", results)
    if failed is not None:
        where = f"(log: {out / ('seed_' + str(failed['seed'])) / 'worker.log'})"
        err = ConstraintBreach if failed["status"] == "rejected" else VariantFailed
        raise err(f"{results['reason']} {where}")
    return results


def spec_for(profile: Profile, seed: int, device: str) -> VariantSpec:
    c = profile.constraints
    return VariantSpec(d_in=profile.model.hidden_dim, width=c.width, k=c.k, batch_size=c.batch_size,
                       total_steps=c.training_samples // c.batch_size, lr=c.lr, seed=seed, device=device,
                       profile=profile.name)


def _run_here(variant: Path, profile: Profile, out: Path, opts: RunOptions, device: str) -> list[dict]:
    """Every seed in turn on one device, fed from this process; stops at the first failure."""
    workers: list[Worker] = []

    def start(i: int) -> None:
        if i < len(opts.seeds):
            seed = opts.seeds[i]
            workers.append(Worker(variant, spec_for(profile, seed, device), out / f"seed_{seed}", opts))

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
                per_seed.append({"seed": seed, "status": exc.status, "kind": exc.kind,
                                 "reason": exc.message, "log_tail": workers[i].log_tail()})
                break
    finally:  # on success, failure or Ctrl-C: no variant process outlives the run
        for w in workers:
            w.kill()
    return per_seed


def _run_on_slots(variant: Path, profile: Profile, out: Path, opts: RunOptions, pool: "SlotPool") -> list[dict]:
    """The seeds at once, one per free slot of the pool, each in a trusted slot process; the
    first failure of the variant stops the others. Records come back in seed order."""
    from autosae.harness.slots import SlotRun, slot_main

    ctx = mp.get_context("spawn")
    limit = opts.time_limit_s or profile.time_limit_s

    def start_job(seed: int, device: str):
        reply = ctx.Queue()
        proc = ctx.Process(target=slot_main, daemon=False,
                           args=(str(variant), profile, str(out), seed, device, limit, opts.memory_limit_gb,
                                 pool.cpu_threads(), opts.counted, reply, opts.matmul_precision))
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
