"""The variant's process: builds the variant's SAE and runs the harness's fixed training loop.

It runs inside the sandbox, under the import guard, and sees only hidden activations, in
buffers that the trusted process maps and fills (see autosae.sandboxed.protocol): commands
arrive as JSON lines on stdin, replies leave as JSON lines on stdout, and everything the
variant prints goes to stderr, the seed's worker.log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

import torch

from autosae.sae.base import StepInfo
from autosae.sandboxed import guard, integrity, protocol
from autosae.sandboxed.spec import VariantSpec

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
    if (
        isinstance(exc, (MemoryError, torch.OutOfMemoryError))
        or "out of memory" in text
        or "can't allocate memory" in text
    ):
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

    def __init__(
        self,
        sae: torch.nn.Module,
        spec: VariantSpec,
        log_every: int,
        dead_window: int,
        recorder: LineRecorder | None = None,
    ):
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
        integrity.harness_backward(out.loss)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.hook is not None:
            with torch.no_grad():  # as the contract says: renormalising or resampling in place needs no autograd
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
        entry.update(variant_metrics(out.metrics))
        return entry


def variant_metrics(metrics: dict) -> dict[str, float]:
    """The variant's own scalars as training-log fields under their own prefix, bounded in
    number and name length; a non-finite value is left out (it would break the reply line)."""
    out = {}
    for name, value in list(metrics.items())[: protocol.VARIANT_METRICS_PER_ENTRY]:
        number = float(value)
        if number == number and number not in (float("inf"), float("-inf")):
            out[f"{protocol.VARIANT_METRIC_PREFIX}{str(name)[:64]}"] = number
    return out


def main(argv: list[str]) -> None:
    """`python -I -m autosae.sandboxed.worker CONFIG`: stdin carries commands, stdout replies,
    stderr (the seed's worker.log) everything the variant prints."""
    config = json.loads(argv[1])
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # print() from the variant goes to the log, never into the reply channel
    sys.stdout = sys.stderr = open(2, "w", buffering=1, closefd=False)
    exit_when_orphaned()

    def send(message: dict) -> None:
        replies.write(protocol.encode(message))

    try:
        guard.install()
        integrity.install()
        spec = VariantSpec(**config["spec"])
        torch.set_num_threads(int(config["threads"]))
        torch.set_float32_matmul_precision(config["matmul_precision"])  # "high": TF32 on GPUs that have it
        serve(config, spec, send)
    except BaseException as exc:  # everything the variant can do wrong is reported, then we exit
        traceback.print_exc()
        try:
            send({"tag": "error", "kind": failure_kind(exc), "message": f"{type(exc).__name__}: {exc}"[:5000]})
        except OSError:
            pass
        sys.stderr.flush()
        os._exit(1)


def serve(config: dict, spec: VariantSpec, send) -> None:
    shapes = {name: tuple(shape) for name, shape in config["buffers"]["shapes"].items()}
    buffers = {
        name: protocol.map_buffer(Path(config["buffers"]["dir"]) / name, shape) for name, shape in shapes.items()
    }
    if spec.device.startswith("cuda"):
        for t in buffers.values():
            pin(t)
    out = Path(config["out"])
    variant_path = config["variant"]
    torch.manual_seed(spec.seed)
    sys.path.insert(0, str(Path(variant_path).parent))  # its own folder's *.py files (a copy)
    recorder = LineRecorder(variant_path)
    with recorder:
        module = load_variant(variant_path)
        sae = module.build(spec)
    missing = [m for m in REQUIRED if not callable(getattr(sae, m, None))]
    if missing or not isinstance(sae, torch.nn.Module):
        raise TypeError(
            f"build() must return an nn.Module with {', '.join(REQUIRED)}; missing: {', '.join(missing) or 'nn.Module'}"
        )
    sae.to(spec.device)
    trainer = Trainer(sae, spec, int(config["log_every"]), int(config["dead_window"]), recorder)
    integrity.arm(trainer.opt)
    evaluated = False
    n_params = sum(p.numel() for p in sae.parameters())
    send(
        {
            "tag": "ready",
            "architecture": type(sae).__name__,
            "parameters": n_params,
            "width": int(sae.decoder_directions().shape[0]),
        }
    )
    for line in sys.stdin.buffer:
        cmd = json.loads(line)
        match cmd.get("cmd"):
            case "train":
                slot, rows = int(cmd["slot"]), int(cmd["rows"])
                data = buffers[f"train{slot}"][:rows]
                logs = trainer.train_rows(data.to(spec.device, non_blocking=True))
                finish_reading(spec.device)
                send(
                    {
                        "tag": "trained",
                        "slot": slot,
                        "logs": logs,
                        "integrity": integrity.COUNTER.report(),
                        "note": integrity.COUNTER.first,
                    }
                )
            case "decoder":
                for name, p in sae.named_parameters():
                    if not torch.isfinite(p).all():
                        raise VariantNaN(f"parameter {name} holds NaN or inf after training")
                decoder = sae.decoder_directions().detach().float()
                if tuple(decoder.shape) == shapes["decoder"]:
                    buffers["decoder"].copy_(decoder.cpu())
                send({"tag": "decoder", "shape": list(decoder.shape)})
            case "eval":
                rows = int(cmd["rows"])
                latents, recon = buffers["eval_latents"], buffers["eval_recon"]
                if evaluated:
                    encode_rows(sae, spec, buffers["eval_in"][:rows], latents, recon)
                else:
                    with recorder:
                        encode_rows(sae, spec, buffers["eval_in"][:rows], latents, recon)
                    evaluated = True
                finish_reading(spec.device)
                send({"tag": "evaluated", "rows": rows})
            case "state":
                sample = buffers["eval_in"][: spec.batch_size].to(spec.device) if evaluated else None
                export, why_not = save_state(sae, out, sample)
                send(
                    {
                        "tag": "state",
                        "export": export,
                        "not_exported": why_not,
                        "memory": peak_memory(spec.device),
                        "lines": sorted(recorder.lines),
                        "integrity": integrity.COUNTER.report(),
                        "note": integrity.COUNTER.first,
                    }
                )
            case "stop":
                return
            case other:
                raise ValueError(f"unknown harness command {other!r}")


def save_state(sae: torch.nn.Module, out: Path, sample: torch.Tensor | None) -> tuple[dict | None, str]:
    """The module's full state (variant_state.safetensors) and, when it can export itself
    to SAELens's format, those weights (sae_weights.safetensors); returns the export's cfg, or
    None and why not. The trusted side reads both back as safetensors, which hold tensors and
    nothing else, and validates them. `sample` (a batch of eval inputs) checks that an export
    in autosae's own architecture encodes as the module does: a subclass that changed its
    encode gets no export rather than one that loads and computes something else."""
    from safetensors.torch import save_file

    from autosae.sae import export as sae_export

    state = {k: v.detach().cpu().contiguous().clone() for k, v in sae.state_dict().items()}
    save_file(state, str(out / "variant_state.safetensors"))
    exporter = getattr(sae, "sae_lens_export", None)
    if not callable(exporter):
        return None, f"{type(sae).__name__} has no sae_lens_export()"
    try:
        export = exporter()
        if export is None:
            return None, f"{type(sae).__name__}.sae_lens_export() returned None"
        cfg, weights = export
        json.dumps(cfg)  # must be plain JSON: it is sent as such
        if sample is not None:
            sae_export.check_matches(sae, cfg, weights, sample)
    except sae_export.NotExportable as exc:
        return None, str(exc)
    save_file(
        {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}, str(out / "sae_weights.safetensors")
    )
    return cfg, ""


def pin(t: torch.Tensor) -> None:
    """Page-lock a mapped buffer so that copies to and from the GPU run at full speed."""
    try:
        torch.cuda.cudart().cudaHostRegister(t.data_ptr(), t.numel() * t.element_size(), 0)
    except Exception as exc:  # pageable memory still works, only slower
        print(f"autosae: could not pin a shared buffer ({exc}); copies will be slower", file=sys.stderr)


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
        x = rows[start : start + spec.batch_size]
        z = sae.encode(x)
        z = z.to_dense() if z.is_sparse else z
        recon = sae.decode(z)
        if z.shape != (x.shape[0], spec.width) or recon.shape != x.shape:
            raise ValueError(
                f"encode/decode returned shapes {tuple(z.shape)} and "
                f"{tuple(recon.shape)} for a batch of {tuple(x.shape)}"
            )
        latents_out[start : start + x.shape[0]] = z.float()
        recon_out[start : start + x.shape[0]] = recon.float()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("autosae.sandboxed.worker is started by the harness (`autosae train`), not by hand")
    main(sys.argv)
