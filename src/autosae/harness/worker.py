"""The variant's process: builds the variant's SAE and runs the harness's fixed training loop.

It runs under the import guard and sees only hidden activations, handed over in shared
buffers (shared memory on CPU, CUDA IPC on GPU) that the trusted process fills. It talks to
the trusted process through two queues:

    trusted -> worker: ("train", slot, rows) | ("decoder",) | ("eval", rows) | ("state",) | ("stop",)
    worker -> trusted: ("ready", info) | ("trained", slot, logs) | ("decoder", W) |
                       ("evaluated", rows) | ("state", tensors, export, memory, lines) | ("error", kind, message)

Everything the variant prints goes to the seed's worker.log, not to the user's terminal.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

import torch

from autosae.harness import guard
from autosae.harness.spec import VariantSpec
from autosae.sae.base import StepInfo

REQUIRED = ("encode", "decode", "training_loss", "decoder_directions")


class VariantNaN(RuntimeError):
    pass


def load_variant(path: str):
    spec = importlib.util.spec_from_file_location("autosae_variant", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import variant file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["autosae_variant"] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "build", None)):
        raise TypeError(f"{path} defines no build(spec) function")
    return module


def failure_kind(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in text \
            or "can't allocate memory" in text:
        return "out_of_memory"
    if isinstance(exc, VariantNaN):
        return "nan"
    if isinstance(exc, guard.GroundTruthImportError):
        return "blocked_import"
    return "error"


TRACED_STEPS = 24
"""Training steps (evenly spaced, the first and last included) run under the line tracer."""


class LineRecorder:
    """Which lines of the variant's file ran: the evidence behind the no-op check that lines
    a sprint added never executed. Used on the import, build(), TRACED_STEPS training steps
    and the first eval batch, so that tracing costs almost nothing."""

    def __init__(self, path: str):
        self.path = os.path.realpath(path)
        self.lines: set[int] = set()
        self._ours: dict[str, bool] = {}  # filename -> is the variant's file (one realpath each)

    def _global(self, frame, event, arg):
        name = frame.f_code.co_filename
        ours = self._ours.get(name)
        if ours is None:
            ours = self._ours[name] = os.path.realpath(name) == self.path
        if not ours:
            return None
        self.lines.add(frame.f_lineno)
        return self._local

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines.add(frame.f_lineno)
        return self._local

    def __enter__(self):
        self._previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(self._previous)
        return False


def traced_steps(total: int) -> set[int]:
    if total <= TRACED_STEPS:
        return set(range(total))
    return {round(i * (total - 1) / (TRACED_STEPS - 1)) for i in range(TRACED_STEPS)}


class Trainer:
    """The fixed part of training: Adam at the profile's lr, grad-norm clipping at 1.0
    (as SAELens's trainer), and logging of loss, L0, dead latents and K."""

    def __init__(self, sae: torch.nn.Module, spec: VariantSpec, log_every: int, dead_window: int,
                 recorder: LineRecorder | None = None):
        self.sae, self.spec = sae, spec
        self.recorder = recorder
        self.traced = traced_steps(spec.total_steps) if recorder is not None else set()
        self.params = [p for p in sae.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=spec.lr)
        self.step = 0
        self.log_every, self.dead_window = log_every, dead_window
        width = sae.decoder_directions().shape[0]
        self.last_fired = torch.zeros(width, dtype=torch.long, device=spec.device)
        self.hook = getattr(sae, "on_step_end", None)

    def train_rows(self, rows: torch.Tensor) -> list[dict]:
        logs = []
        self.sae.train()
        for x in rows.split(self.spec.batch_size):
            if self.step in self.traced:
                with self.recorder:
                    out = self._step(x)
            else:
                out = self._step(x)
            with torch.no_grad():
                self.last_fired.masked_fill_((out.latents != 0).any(dim=0), self.step)  # no host sync
            self.step += 1
            if self.step % self.log_every == 0 or self.step in (1, self.spec.total_steps):
                logs.append(self._log(out, x.shape[0]))
        return logs

    def _step(self, x: torch.Tensor):
        info = StepInfo(step=self.step, total_steps=self.spec.total_steps)
        out = self.sae.training_loss(x, info)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.hook is not None:
            self.hook(info)
        return out

    @torch.no_grad()
    def _log(self, out, batch: int) -> dict:
        loss = float(out.loss.detach())
        if loss != loss or loss in (float("inf"), float("-inf")):
            raise VariantNaN(f"training loss became {loss} at step {self.step}")
        entry = {
            "step": self.step,
            "samples": self.step * self.spec.batch_size,
            "loss": loss,
            "l0": float((out.latents != 0).sum()) / batch,
            "dead": int((self.step - self.last_fired > self.dead_window).sum()),
        }
        k = getattr(self.sae, "current_k", None)
        if k is not None:
            entry["k"] = float(k)
        entry.update({name: float(v) for name, v in out.metrics.items()})
        return entry


def main(variant_path: str, spec_dict: dict, log_path: str, threads: int,
         memory_limit_bytes: int | None, cmd_q, reply_q, train_slots, eval_in, eval_latents,
         eval_recon, log_every: int, dead_window: int, matmul_precision: str = "highest") -> None:
    os.setpgrp()  # so that the trusted side can kill the variant and anything it started
    exit_when_orphaned()
    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    guard.install()
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(matmul_precision)  # "high": TF32 on GPUs that have it
    if memory_limit_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    try:
        serve(variant_path, VariantSpec(**spec_dict), cmd_q, reply_q, train_slots, eval_in,
              eval_latents, eval_recon, log_every, dead_window)
    except BaseException as exc:  # everything the variant can do wrong is reported, then we exit
        traceback.print_exc()
        reply_q.put(("error", failure_kind(exc), f"{type(exc).__name__}: {exc}"))
        reply_q.close()
        reply_q.join_thread()  # the report must reach the pipe before we exit
        log.flush()
        os._exit(1)


def serve(variant_path, spec: VariantSpec, cmd_q, reply_q, train_slots, eval_in, eval_latents,
          eval_recon, log_every, dead_window) -> None:
    torch.manual_seed(spec.seed)
    recorder = LineRecorder(variant_path)
    with recorder:
        module = load_variant(variant_path)
        sae = module.build(spec)
    missing = [m for m in REQUIRED if not callable(getattr(sae, m, None))]
    if missing or not isinstance(sae, torch.nn.Module):
        raise TypeError(f"build() must return an nn.Module with {', '.join(REQUIRED)}; "
                        f"missing: {', '.join(missing) or 'nn.Module'}")
    sae.to(spec.device)
    trainer = Trainer(sae, spec, log_every, dead_window, recorder)
    evaluated = False
    n_params = sum(p.numel() for p in sae.parameters())
    reply_q.put(("ready", {"architecture": type(sae).__name__, "parameters": n_params,
                           "width": int(sae.decoder_directions().shape[0]), "spec": asdict(spec)}))
    while True:
        cmd = cmd_q.get()
        match cmd[0]:
            case "train":
                _, slot, rows = cmd
                logs = trainer.train_rows(train_slots[slot][:rows])
                finish_reading(spec.device)
                reply_q.put(("trained", slot, logs))
            case "decoder":
                for name, p in sae.named_parameters():
                    if not torch.isfinite(p).all():
                        raise VariantNaN(f"parameter {name} holds NaN or inf after training")
                reply_q.put(("decoder", sae.decoder_directions().detach().float().cpu().clone()))
            case "eval":
                _, rows = cmd
                if evaluated:
                    encode_rows(sae, spec, eval_in[:rows], eval_latents, eval_recon)
                else:
                    with recorder:
                        encode_rows(sae, spec, eval_in[:rows], eval_latents, eval_recon)
                    evaluated = True
                finish_reading(spec.device)
                reply_q.put(("evaluated", rows))
            case "state":
                state = {k: v.detach().cpu().contiguous().clone() for k, v in sae.state_dict().items()}
                exporter = getattr(sae, "sae_lens_export", None)
                export = exporter() if callable(exporter) else None
                reply_q.put(("state", state, export, peak_memory(spec.device), sorted(recorder.lines)))
            case "stop":
                return
            case _:
                raise ValueError(f"unknown harness command {cmd[0]!r}")


def exit_when_orphaned(cleanup=None, interval_s: float = 1.0) -> None:
    """Exit (after `cleanup`) once the process that started us is gone: a trusted side that
    was SIGKILLed (a killed loop, a Slurm job that died) leaves no training behind."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                if cleanup is not None:
                    cleanup()
                os._exit(1)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def finish_reading(device: str) -> None:
    """On CUDA, wait for our kernels on the shared buffers before the trusted side reuses
    them (kernels are asynchronous; the reply must mean the buffer is really done)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory(device: str) -> dict:
    """This process's peak memory: GPU allocations on CUDA, resident set size on CPU."""
    if device.startswith("cuda"):
        return {"peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    return {"peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident set: VmHWM, which starts afresh at exec (ru_maxrss keeps
    the high-water mark of the process we were forked from)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@torch.no_grad()
def encode_rows(sae, spec: VariantSpec, rows, latents_out, recon_out) -> None:
    """Encode eval rows batch by batch (batch top-k sees eval batches of the training size,
    as in SAELens's evaluation) into the shared output buffers."""
    sae.eval()
    for start in range(0, rows.shape[0], spec.batch_size):
        x = rows[start:start + spec.batch_size]
        z = sae.encode(x)
        z = z.to_dense() if z.is_sparse else z
        recon = sae.decode(z)
        if z.shape != (x.shape[0], spec.width) or recon.shape != x.shape:
            raise ValueError(f"encode/decode returned shapes {tuple(z.shape)} and "
                             f"{tuple(recon.shape)} for a batch of {tuple(x.shape)}")
        latents_out[start:start + x.shape[0]] = z.float()
        recon_out[start:start + x.shape[0]] = recon.float()


if __name__ == "__main__":  # pragma: no cover - the harness starts this through multiprocessing
    sys.exit("autosae.harness.worker is started by `autosae train`, not by hand")
