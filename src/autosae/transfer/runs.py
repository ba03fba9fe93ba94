"""A transfer's SAEs, each trained in the variant's sandboxed process as a counted seed is: one
run per (SAE, L0, seed), fed SAELens's activations of the language model, saved as the harness
saves a seed's SAE, and evaluated by SAELens's evaluation in this trusted process on the SAE
as SAELens loads it from that folder (autosae.transfer.lm). Each run's record is
sealed (autosae.harness.seal), so a transfer killed part way resumes where it was: a run is
reused only when its sealed record names the same variant files, settings and versions. Runs
under other settings live in another folder (runs/transfer/<id>/<settings>/): nothing earlier
is overwritten."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from autosae.errors import AutosaeError, first_line
from autosae.harness.local import stage_variant
from autosae.harness.options import SeedSettings, sha256_file, staged_files
from autosae.harness.seal import read_verified, write_sealed
from autosae.harness.seed import CHUNK_BATCHES, LOG_EVERY, check_width, dead_window, fetch_decoder, save_sae, train
from autosae.harness.slots import wait_all
from autosae.harness.variant_process import SeedFailure, VariantProcess
from autosae.jsonio import read_json
from autosae.sae.export import NOT_SAELENS
from autosae.sandboxed.spec import VariantSpec
from autosae.transfer import lm
from autosae.transfer.settings import TransferSettings

EVAL_ROWS = 4096
"""The most training rows the variant's process checks its export on."""
TRAINING_KEYS = (
    "model",
    "model_class",
    "hook",
    "dataset",
    "context_size",
    "tokens",
    "width",
    "lr",
    "batch_size",
    "eval_batches",
    "eval_batch_prompts",
    "prepend_bos",
    "l0_tolerance",
)
"""The settings that change what a run trains or measures: a run recorded under others is not reused."""


@dataclass(frozen=True)
class Job:
    kind: str
    """variant, parent or baseline."""
    variant: Path
    l0: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.kind}-l0_{self.l0}-seed_{self.seed}"


def settings_key(settings: TransferSettings) -> str:
    """The settings and versions that decide what a run trains and measures, hashed: a run
    recorded under others is not reused, and lives in another folder."""
    from importlib.metadata import version

    from autosae import __version__

    data = {k: getattr(settings, k) for k in TRAINING_KEYS}
    data["versions"] = {"autosae": __version__, "sae_lens": version("sae-lens"), "torch": torch.__version__}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def sources_sha(variant: Path) -> str:
    """The variant's file and the Python files beside it that stage_variant copies with it."""
    listing = {name: sha256_file(path) for name, path in staged_files(variant).items()}
    return hashlib.sha256(json.dumps([variant.name, listing], sort_keys=True).encode()).hexdigest()


def run_key(job: Job, settings_hash: str) -> str:
    """What a run's sealed record must name to be reused: the variant's files, the SAE, L0 and
    seed, and `settings_hash` (settings_key)."""
    data = {"sources": sources_sha(job.variant), "kind": job.kind, "l0": job.l0, "seed": job.seed}
    data["settings"] = settings_hash
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


def reusable(out: Path, key: str, failed_too: bool = False) -> dict | None:
    """The run's sealed, successful record under the same key (or any sealed record under it,
    `failed_too`); None means train it (again)."""
    record = read_verified(out / "result.json")
    if record is None or record.get("key") != key or not (failed_too or record.get("status") == "ok"):
        return None
    return record


class Session:
    """The model, its held-out prompts and the device, loaded once for all of a transfer's runs."""

    def __init__(self, settings: TransferSettings, device: str, root: Path, log: Callable[[str], None]):
        lm.quiet_third_party()
        self.settings, self.device, self.log = settings, device, log
        log(f"transfer: loading {settings.model} on {device}")
        self.model = lm.load_model(settings, device, root)
        self.d_in = lm.d_in_of(self.model, settings)
        held_out = settings.eval_batches * settings.eval_batch_prompts
        self.train_rows, eval_rows = lm.load_tokens(settings, root, held_out)
        self.prompts = lm.eval_prompts(self.model, eval_rows, settings, self.d_in, device)

    def evaluate(self, sae_dir: Path, k: int) -> dict:
        """SAELens's evaluation of the SAE in `sae_dir` as SAELens loads it, never of the
        variant's own code. The SAE must keep the run's k (an export of autosae's or SAELens's
        top-k architectures) and its L0 on the evaluation prompts may exceed k by at most
        transfer.l0_tolerance: more active latents would buy reconstruction."""
        cfg = read_json(sae_dir / "cfg.json")
        if cfg is None:
            why = (read_json(sae_dir / NOT_SAELENS) or {}).get("reason", "no export")
            raise SeedFailure(
                "failed", "export", f"its SAE does not load in SAELens ({why}): a transfer evaluates the exported SAE"
            )
        if "k" in cfg and cfg["k"] != k:
            raise SeedFailure(
                "rejected", "constraint:k", f"its exported SAE keeps k = {cfg['k']}, the run requires {k}"
            )
        try:
            sae = lm.load_sae(sae_dir, self.settings.hook, self.device)
            metrics = lm.evaluate(sae, self.model, self.prompts, self.settings)
        except AutosaeError:
            raise
        except Exception as exc:  # what the variant exported breaks SAELens: its failure, not ours
            raise SeedFailure(
                "failed", "evaluation", f"SAELens could not load or evaluate its SAE: {first_line(exc)}"
            ) from None
        if not all(math.isfinite(v) for v in metrics.values()):
            raise SeedFailure("failed", "nan", f"the evaluation gave NaN or inf: {metrics}")
        most = k * (1 + self.settings.l0_tolerance)
        if not metrics["l0"] <= most:
            raise SeedFailure(
                "rejected",
                "constraint:l0",
                f"l0: measured {metrics['l0']:.3f} on the evaluation prompts, the run allows at most {most:.4g} (k = {k})",
            )
        return metrics

    def run(self, job: Job, key: str, out: Path, seed_settings: SeedSettings) -> dict:
        """Train and evaluate one SAE (`key`: its run_key); the record (ok or failed) is sealed
        in out/result.json."""
        s = self.settings
        staged = stage_variant(job.variant, out / "variant")
        record = {
            "key": key,
            "kind": job.kind,
            "l0_target": job.l0,
            "seed": job.seed,
            "variant_sha256": sha256_file(staged),
            "device": self.device,
        }
        steps = max(1, s.tokens // s.batch_size)
        spec = VariantSpec(
            d_in=self.d_in,
            width=s.width,
            k=job.l0,
            batch_size=s.batch_size,
            total_steps=steps,
            lr=s.lr,
            seed=job.seed,
            device=self.device,
            profile="transfer",
        )
        started = time.monotonic()
        worker = VariantProcess(
            staged,
            spec,
            out,
            seed_settings.confinement(),
            chunk_rows=s.batch_size * CHUNK_BATCHES,
            eval_rows=EVAL_ROWS,
            log_every=LOG_EVERY,
            dead_window=dead_window(spec),
        )
        try:
            worker.limit_s = s.time_limit_min * 60
            worker.deadline = started + worker.limit_s
            check_width(worker.wait("ready")["width"], s.width)
            rng = lm.RunRng(job.seed)
            with rng.active(), lm.dataset_errors(s):
                store = lm.activation_store(
                    self.model, self.train_rows, s, self.d_in, self.device, steps * s.batch_size
                )
            chunks = lm.training_chunks(store, rng, s, steps, CHUNK_BATCHES)
            train_s, _ = train(worker, chunks, job.seed, seed_settings)
            decoder = fetch_decoder(worker, s.width)
            with rng.active():  # for the variant's check that its export encodes as it does: training rows,
                sample = store.next_batch()[:EVAL_ROWS].float().cpu()  # never the evaluation prompts
            worker.buffers["eval_in"][: sample.shape[0]].copy_(sample)
            worker.send("eval", rows=sample.shape[0])
            worker.wait("evaluated")
            save_sae(worker, decoder)
            worker.stop()
            worker.kill()  # its memory (a GPU's) back before the evaluation
            metrics = self.evaluate(out / "sae", job.l0)
            record.update(status="ok", **metrics, train_s=round(train_s, 2))
        except SeedFailure as exc:
            record.update(status=exc.status, failure_kind=exc.kind, reason=exc.message, log_tail=worker.log_tail())
        finally:
            worker.kill()
        record["wall_s"] = round(time.monotonic() - started, 2)
        return write_sealed(out / "result.json", record)


def run_all(
    jobs: list[Job],
    folder: Path,
    settings: TransferSettings,
    devices: list[str],
    root: Path,
    seed_settings: SeedSettings,
    log: Callable[[str], None],
    failed_too: bool = False,
) -> list[dict]:
    """Every job's record, reusing the sealed successful ones of an earlier (killed) transfer
    (and the failed ones too with `failed_too`: a launcher job's records, read back). The
    others train on `devices` (TASK.md's gpus, else its one device), a job at a time on each:
    one thread per device, each with its own copy of the model, loaded only when a job is left."""
    settings_hash = settings_key(settings)
    folder = folder / settings_hash
    keys = [run_key(job, settings_hash) for job in jobs]
    records: list[dict | None] = []
    for job, key in zip(jobs, keys):
        found = reusable(folder / job.name, key, failed_too)
        if found is not None:
            log(f"transfer: {job.name}: recorded earlier, reused")
        records.append(found)
    pending = deque(i for i, r in enumerate(records) if r is None)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(device: str) -> None:
        session = None
        while True:
            with lock:
                if not pending or errors:
                    return
                i = pending.popleft()
            job = jobs[i]
            try:
                session = session or Session(settings, device, root, log)
                log(f"transfer: {job.name}: training on {device} ({i + 1} of {len(jobs)})")
                records[i] = record = session.run(job, keys[i], folder / job.name, seed_settings)
            except BaseException as exc:  # the trusted side failed (the model, the data): stop
                with lock:
                    errors.append(exc)
                return
            log(f"transfer: {job.name}: {summary(record)}")

    if len(devices) == 1:
        work(devices[0])
    else:
        wait_all([threading.Thread(target=work, args=(d,), name=f"transfer-{d}", daemon=True) for d in devices])
    if errors:
        raise errors[0]
    return [r for r in records if r is not None]


def summary(record: dict) -> str:
    if record["status"] != "ok":
        return f"{record['status']}: {record['reason']} ({record['wall_s']:.0f} s)"
    return (
        f"CE loss recovered {record['ce_loss_score']:.4f}, explained variance {record['explained_variance']:.4f}, "
        f"L0 {record['l0']:.1f} ({record['wall_s']:.0f} s)"
    )
