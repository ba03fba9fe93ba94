"""The bottom floor of the harness: one seed of a run, start to finish.

It starts the variant's process (autosae.harness.variant_process), streams hidden activations to
it through shared buffers, asks it to encode the eval samples, scores the returned latents
against the ground truth with autosae.bench.metrics, and saves the SAE under the seed's folder.
The variant's process never sees feature activations or feature vectors, and nothing it reports
is taken as a metric: what it says of itself is kept apart, under the record's
`reported_by_variant` (autosae.harness.reported). Where the seed runs (this process, a slot process, a launcher job) is the
business of the floors above: autosae.harness.local, .slots and .launch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from autosae.bench.metrics import Scorer
from autosae.bench.profiles import Profile
from autosae.harness.options import SeedSettings
from autosae.harness.reported import TrainLog, reported_fields
from autosae.harness.variant_process import SeedFailure, VariantProcess, from_variant
from autosae.jsonio import write_json
from autosae.records import REPORTED
from autosae.sae import export as sae_export
from autosae.sandboxed.spec import VariantSpec

CHUNK_BATCHES = 64  # training batches per shared buffer slot
EVAL_CHUNK_BATCHES = 16  # eval batches per round trip
LOG_EVERY = 50  # steps between train_log.jsonl entries
PROBE_ROWS, PROBE_DIMS = 64, 8
"""The probe sketch: the SAE's reconstructions of the first PROBE_ROWS eval samples, projected
on PROBE_DIMS fixed random directions. Two SAEs that behave the same have the same sketch."""


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


def run_seed(
    worker: VariantProcess,
    profile: Profile,
    model,
    pool,
    seed: int,
    settings: SeedSettings,
    on_ready: Callable[[], None] | None = None,
) -> dict:
    """Train, score and save one seed; raises SeedFailure with the reason otherwise.
    `on_ready` is called once the variant has built its SAE at the required width (run_in_turn
    starts the next seed's process then: a variant that fails to build starts no other)."""
    c, spec = profile.constraints, worker.spec
    started = time.monotonic()
    worker.limit_s = settings.time_limit_s or profile.time_limit_s
    worker.deadline = started + worker.limit_s
    ready = worker.wait("ready")
    startup_s = time.monotonic() - started
    check_width(ready["width"], c.width)  # fail before training; re-checked on the decoder
    if on_ready is not None:
        on_ready()
    train_s, dropped = train(worker, train_chunks(profile, model, pool, seed, spec.device), seed, settings)
    metrics, decoder = score(worker, profile, model)
    state = save_sae(worker, decoder)
    with from_variant("a report on itself"):
        reported = reported_fields(ready, state, worker.variant)
    worker.stop()
    record = {
        "seed": seed,
        "status": "ok",
        **metrics,
        "sandboxed": bool(worker.box.sandboxed),
        "wall_s": round(time.monotonic() - started, 2),
        "startup_s": round(startup_s, 2),
        "train_s": round(train_s, 2),
        "samples_per_s": round(spec.total_steps * c.batch_size / max(train_s, 1e-9)),
        "dead_window_steps": dead_window(spec),
    }
    if dropped:
        record["train_log_dropped"] = dropped
    record[REPORTED] = reported
    return record


def dead_window(spec: VariantSpec) -> int:
    """Steps without firing after which train_log.jsonl counts a latent as dead: SAELens's
    1000, or a tenth of training for short runs."""
    return max(1, min(1000, spec.total_steps // 10))


def train(
    worker: VariantProcess, chunks: Iterator[torch.Tensor], seed: int, settings: SeedSettings
) -> tuple[float, int]:
    """Stream the seed's training rows (`chunks`, each at most CHUNK_BATCHES batches) through
    the two shared slots: we fill one while the variant trains on the other. Returns the
    training time and the number of log entries dropped (see autosae.harness.reported.TrainLog)."""
    spec = worker.spec
    progress = Progress(settings.log, seed, spec.total_steps * spec.batch_size)
    started = time.monotonic()
    steps: dict[int, tuple[int, int]] = {}  # slot in use -> the steps its rows train
    sent = 0  # steps' worth of rows sent so far
    with open(worker.seed_dir / "train_log.jsonl", "w") as file:
        log = TrainLog(file, spec.batch_size, spec.width, spec.total_steps, LOG_EVERY)

        def collect() -> int:
            reply = worker.wait("trained")
            slot = reply["slot"]
            if slot not in steps:
                raise SeedFailure("failed", "protocol", f"the variant's process reported buffer {slot}, not in use")
            with from_variant("a training log"):
                for entry in log.add(reply["logs"], *steps.pop(slot)):
                    progress.update(entry)
            return slot

        free = [0, 1]
        for rows in chunks:
            if not free:
                free.append(collect())
            slot = free.pop()
            worker.slots[slot][: rows.shape[0]].copy_(rows)
            worker.send("train", slot=slot, rows=rows.shape[0])
            batches = -(-rows.shape[0] // spec.batch_size)
            steps[slot], sent = (sent + 1, sent + batches), sent + batches
        for _ in range(len(steps)):
            collect()
    return time.monotonic() - started, log.dropped


def score(worker: VariantProcess, profile: Profile, model) -> tuple[dict, torch.Tensor]:
    """Have the variant encode the eval samples, score its latents, check width and L0."""
    c = profile.constraints
    decoder = fetch_decoder(worker, c.width)
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
    overflow = [f"{k} = {v}" for k, v in metrics.items() if not math.isfinite(v)]
    if overflow:
        raise SeedFailure(
            "failed", "nan", f"the SAE's scores are not finite ({', '.join(overflow)}): its outputs overflow"
        )
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


def fetch_decoder(worker: VariantProcess, width: int) -> torch.Tensor:
    """The trained SAE's decoder directions (width, d_in), copied out of the shared buffer once
    their shape is checked: the width the run requires, the activations' dimension."""
    worker.send("decoder")
    shape = worker.wait("decoder")["shape"]
    if len(shape) != 2:
        raise SeedFailure("failed", "shape", f"decoder directions of shape {shape}: expected (width, d_in)")
    check_width(shape[0], width)
    if shape[1] != worker.spec.d_in:
        raise SeedFailure(
            "failed",
            "shape",
            f"decoder directions have dimension {shape[1]}, the hidden activations have {worker.spec.d_in}",
        )
    decoder = worker.buffers["decoder"].clone()
    broken = (~torch.isfinite(decoder).all(dim=1)).nonzero().flatten().tolist()
    if broken:
        raise SeedFailure(
            "failed",
            "nan",
            f"the SAE's decoder directions hold NaN or inf in {len(broken)} row(s) (the first: row {broken[0]})",
        )
    return decoder


def probe_sketch(recon: torch.Tensor) -> list[float]:
    """PROBE_ROWS x PROBE_DIMS numbers that fingerprint what the SAE computes (see verdict's
    no-op check): reconstructions times a fixed Gaussian matrix, to 6 significant digits."""
    gen = torch.Generator().manual_seed(20_240_601)
    directions = torch.randn(recon.shape[1], PROBE_DIMS, generator=gen, dtype=torch.float64)
    values = (recon.detach().to("cpu", torch.float64) @ directions).flatten().tolist()
    return [float(f"{v:.6g}") for v in values]


def save_sae(worker: VariantProcess, decoder: torch.Tensor) -> dict:
    """Write the SAE and its full state, from the safetensors files the variant wrote, read
    back as tensors and rewritten by us; returns the process's `state` reply (its peak memory
    and the lines of its file that ran, as it reports them). `sae/` is a SAELens folder (cfg.json + sae_weights.safetensors)
    only when the export passed autosae.sae.export.validate, so that it loads as the SAE that
    was scored; otherwise it holds NOT_SAELENS.json with the reason and decoder.safetensors,
    and no cfg.json that SAELens's loader would take for one of its own."""
    spec, out = worker.spec, worker.seed_dir
    worker.send("state")
    reply = worker.wait("state")
    state = worker.read_tensors("variant_state.safetensors")
    if state is None:
        raise SeedFailure("failed", "export", "the variant's process wrote no state")
    export, why_not = reply["export"], reply["not_exported"]
    weights = worker.read_tensors("sae_weights.safetensors") if export is not None else None
    if export is not None and weights is None:
        raise SeedFailure("failed", "export", "the variant exported a SAELens cfg without its weights")
    with from_variant("a state file"):
        save_file(state, out / "variant_state.safetensors")
    write_sae_folder(out / "sae", export, weights, why_not, decoder, spec.d_in, spec.width)
    return reply


def write_sae_folder(
    sae_dir: Path,
    export: dict | None,
    weights: dict[str, torch.Tensor] | None,
    why_not: str,
    decoder: torch.Tensor,
    d_in: int,
    width: int,
) -> None:
    """`sae/`: cfg.json + sae_weights.safetensors when the export validates, otherwise
    NOT_SAELENS.json (the reason) + decoder.safetensors, never a mix of the two."""
    cfg = None
    if export is not None and weights is not None:
        try:
            cfg = sae_export.validate(export, weights, d_in, width)
        except sae_export.NotExportable as exc:
            why_not = f"its export was refused: {exc}"
        except Exception as exc:  # validate reads the variant's own cfg: whatever it holds, no export
            why_not = f"its export was refused: {type(exc).__name__}: {str(exc)[:200]}"
    sae_dir.mkdir(exist_ok=True)
    for stale in ("cfg.json", "sae_weights.safetensors", sae_export.NOT_SAELENS, "decoder.safetensors"):
        (sae_dir / stale).unlink(missing_ok=True)
    if cfg is not None:
        save_file(weights, sae_dir / "sae_weights.safetensors")
        write_json(sae_dir / "cfg.json", cfg)
        return
    save_file({"W_dec": decoder.contiguous()}, sae_dir / "decoder.safetensors")
    note = {
        "reason": why_not or "the variant exported nothing",
        "d_in": d_in,
        "d_sae": width,
        "reload": "the variant's build(spec), then load_state_dict of ../variant_state.safetensors",
    }
    write_json(sae_dir / sae_export.NOT_SAELENS, note)


def start_variant(
    variant: Path, profile: Profile, seed: int, device: str, seed_dir: Path, settings: SeedSettings
) -> VariantProcess:
    c = profile.constraints
    spec = spec_for(profile, seed, device, dict(settings.variant_options))
    return VariantProcess(
        variant,
        spec,
        seed_dir,
        settings.confinement(),
        chunk_rows=c.batch_size * CHUNK_BATCHES,
        eval_rows=c.batch_size * EVAL_CHUNK_BATCHES,
        log_every=LOG_EVERY,
        dead_window=dead_window(spec),
    )


def spec_for(profile: Profile, seed: int, device: str, options: dict | None = None) -> VariantSpec:
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
        options=dict(options or {}),
    )


def failure_record(seed: int, exc: SeedFailure, worker: VariantProcess) -> dict:
    """The record of a seed that failed (the variant's doing, or a breached constraint)."""
    return {"seed": seed, "status": exc.status, "kind": exc.kind, "reason": exc.message, "log_tail": worker.log_tail()}
