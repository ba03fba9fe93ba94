"""One seed's variant process, seen from the trusted side: started in the sandbox, fed through
mapped buffers, answered in checked JSON.

The process runs autosae.sandboxed.worker under bubblewrap (autosae.sandbox): it sees the
system and the venv read-only, a copy of the variant's Python files read-only, its own work
folder and the buffers read-write, a private /tmp inside the work folder, no network, no
other process, no model cache, and not the files of the trusted modules or of
sae_lens.synthetic. Its memory, tasks, disk and file sizes are bounded, and it dies with us.

Nothing it sends is unpickled (see autosae.sandboxed.protocol): replies are JSON lines checked
against their schema by a reader thread, tensors come back in the buffers we created, and
the module's state in safetensors files, read back with a size cap and rewritten by us.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from autosae.harness.options import Confinement
from autosae.sandboxed import protocol
from autosae.sandboxed.spec import VariantSpec

POLL_S = 0.25
MAX_STATE_BYTES = 4 << 30
"""The largest safetensors file we read back from a variant."""
WORKER_MODULE = "autosae.sandboxed.worker"


class SeedFailure(Exception):
    def __init__(self, status: str, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


@contextmanager
def from_variant(what: str):
    """Around code that handles what the variant's process sent (a reply's fields, its log
    entries, its state files, its decoder): any exception there is the variant's failed seed
    (`protocol`), never ours. Kept this narrow so that a bug of the harness's own elsewhere
    still surfaces as one."""
    try:
        yield
    except SeedFailure:
        raise
    except Exception as exc:
        raise SeedFailure(
            "failed",
            "protocol",
            f"the variant's process sent {what} that the harness could not handle "
            f"({type(exc).__name__}: {protocol.one_line(exc)})",
        ) from None


def hidden_from_variants() -> list[Path]:
    """Installed files a variant must not read even though the venv is visible: the trusted
    harness and benchmark code, and sae_lens's synthetic-model generator (the import guard
    blocks them by name; hiding them stops loading them by path)."""
    import importlib.util

    import autosae

    package = Path(autosae.__file__).parent
    paths = [package / "harness", package / "bench"]
    found = importlib.util.find_spec("sae_lens")
    if found is not None and found.submodule_search_locations:
        paths += [Path(p) / "synthetic" for p in found.submodule_search_locations]
    return [p for p in paths if p.exists()]


def default_memory() -> int:
    """A variant's sandbox may use 3/4 of this machine's memory unless told otherwise."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 / 4)


def variant_env(threads: int) -> dict[str, str]:
    """The variant's whole environment: nothing inherited but the GPUs it may use."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env


def buffer_dir(fallback: Path) -> Path:
    """Where the shared buffers live: RAM (/dev/shm) when the host has it."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="autosae-buffers-", dir=shm))
    fallback.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="buffers-", dir=fallback))


class VariantProcess:
    """One seed's variant process and the buffers it trains from."""

    def __init__(
        self,
        variant: Path,
        spec: VariantSpec,
        seed_dir: Path,
        opts: Confinement,
        chunk_rows: int,
        eval_rows: int,
        log_every: int,
        dead_window: int,
    ):
        from autosae.sandbox import Limits, Policy, spawn

        self.variant, self.spec, self.seed_dir = variant, spec, seed_dir
        seed_dir.mkdir(parents=True, exist_ok=True)
        self.work = seed_dir / "work"
        shutil.rmtree(self.work, ignore_errors=True)
        (self.work / "tmp").mkdir(parents=True)
        self.log_path = seed_dir / "worker.log"
        shapes = protocol.buffer_shapes(spec.d_in, spec.width, chunk_rows, eval_rows)
        self.buffer_dir = buffer_dir(self.work)
        for name, (rows, cols) in shapes.items():
            with open(self.buffer_dir / name, "wb") as f:
                f.truncate(rows * cols * 4)
        self.buffers = {name: protocol.map_buffer(self.buffer_dir / name, shape) for name, shape in shapes.items()}
        cuda = spec.device.startswith("cuda")
        if cuda:
            from autosae.sandboxed.worker import pin

            for t in self.buffers.values():
                pin(t)
        self.slots = [self.buffers["train0"], self.buffers["train1"]]
        threads = (opts.cpu_threads or max(1, (os.cpu_count() or 2) - 1)) if not cuda else 1
        config = {
            "variant": str(variant),
            "spec": {k: v for k, v in asdict(spec).items() if k != "options" or v},  # a counted run's as before
            "out": str(self.work),
            "buffers": {"dir": str(self.buffer_dir), "shapes": shapes},
            "threads": threads,
            "matmul_precision": opts.matmul_precision,
            "log_every": log_every,
            "dead_window": dead_window,
        }
        policy = Policy(
            cwd=self.work,
            env=variant_env(threads),
            writable=[self.work, self.buffer_dir],
            readable=[variant.parent],
            hidden=hidden_from_variants(),
            tmp=self.work / "tmp",
            network=False,
            gpu=cuda,
        )
        gib = 2**30
        limits = Limits(
            memory_bytes=int(opts.memory_limit_gb * gib) if opts.memory_limit_gb else default_memory(),
            processes=opts.max_processes,
            disk_bytes=int(opts.disk_limit_gb * gib) + protocol.buffer_bytes(shapes),
            # one file, worker.log included (it lies outside the watched folders)
            file_bytes=int(min(opts.disk_limit_gb, 2) * gib),
        )
        self.file_bytes = limits.file_bytes
        self.log = open(self.log_path, "wb")
        try:
            self.box = spawn(
                [sys.executable, "-I", "-m", WORKER_MODULE, json.dumps(config)],
                policy,
                limits,
                opts.sandboxed,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
            )
        except BaseException:  # nothing started: leave no buffers in RAM behind
            self.log.close()
            shutil.rmtree(self.buffer_dir, ignore_errors=True)
            raise
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, name=f"variant-replies-{spec.seed}", daemon=True).start()
        self.limit_s, self.deadline = float("inf"), float("inf")

    # -- the channel ------------------------------------------------------------------

    def _read(self) -> None:
        stream = self.box.proc.stdout
        try:
            while True:
                line = stream.readline(protocol.MAX_LINE + 1)
                if not line:
                    break
                try:
                    self.replies.put(protocol.parse_reply(line))
                except Exception as exc:  # whatever the line held: the seed fails, this thread goes on to say so
                    if not isinstance(exc, protocol.ProtocolError):
                        exc = f"a reply the harness could not read ({type(exc).__name__}: {protocol.one_line(exc)})"
                    self.replies.put({"tag": "protocol", "message": protocol.one_line(exc, 300)})
                    break
        except (OSError, ValueError):
            pass
        self.replies.put(None)  # end of stream

    def send(self, cmd: str, **args) -> None:
        if self.spec.device != "cpu":
            torch.cuda.synchronize()  # our copies into the buffers are done before the variant reads them
        try:
            self.box.proc.stdin.write(protocol.encode({"cmd": cmd, **args}))
            self.box.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._died() from None

    def wait(self, tag: str) -> dict:
        """The variant's next reply, which must be `tag`; failures become SeedFailure."""
        while True:
            if time.monotonic() > self.deadline:
                self.kill()
                raise SeedFailure("failed", "timeout", f"the variant exceeded its time limit of {self.limit_s:g} s")
            try:
                msg = self.replies.get(timeout=POLL_S)
            except queue.Empty:
                if self.box.breach:
                    raise self._died() from None
                continue
            if msg is None:
                raise self._died()
            if msg["tag"] == "protocol":
                self.kill()
                raise SeedFailure("failed", "protocol", f"the variant's process sent {msg['message']}")
            if msg["tag"] == "error":
                raise SeedFailure("failed", msg["kind"], msg["message"])
            if msg["tag"] != tag:
                self.kill()
                raise SeedFailure(
                    "failed", "protocol", f"expected {tag!r} from the variant's process, got {msg['tag']!r}"
                )
            if "integrity" in msg:
                with from_variant(f"a {tag!r} reply"):
                    check_integrity(msg)
            return msg

    def _died(self) -> SeedFailure:
        try:
            code = self.box.wait(timeout=5)
        except Exception:
            self.kill()
            code = self.box.poll()
        breach = self.box.breach
        try:
            if breach is None and self.log_path.stat().st_size >= self.file_bytes:
                breach = f"file size: its log reached the bound of {self.file_bytes / 2**20:.0f} MiB on one file"
        except OSError:
            pass
        if breach:
            kind = "out_of_memory" if breach.startswith("memory") else "resource_limit"
            return SeedFailure("failed", kind, f"the variant's sandbox hit a bound: {breach}")
        return SeedFailure("failed", "crashed", f"the variant's process died (exit code {code})")

    # -- results ------------------------------------------------------------------------

    def read_tensors(self, name: str) -> dict[str, torch.Tensor] | None:
        """A safetensors file the variant wrote in its work folder, read safely (a regular
        file, not a link, at most MAX_STATE_BYTES); None when it is not there."""
        from safetensors.torch import load

        path = self.work / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a named pipe must not block us
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SeedFailure("failed", "export", f"{name}: not a regular file the harness can read ({exc})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_STATE_BYTES:
                raise SeedFailure("failed", "export", f"{name}: not a regular file of at most {MAX_STATE_BYTES} bytes")
            data = f.read(MAX_STATE_BYTES + 1)
        try:
            return load(data)
        except Exception as exc:  # a malformed file is the variant's failure, not ours
            raise SeedFailure("failed", "export", f"{name}: not a valid safetensors file ({str(exc)[:200]})") from None

    def log_tail(self, lines: int = 25) -> str:
        from autosae.redaction import redact

        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 64_000))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return redact("\n".join(text.splitlines()[-lines:]))

    # -- the end --------------------------------------------------------------------------

    def stop(self) -> None:
        if self.box.poll() is None:
            try:
                self.send("stop")
                self.box.wait(timeout=10)
            except Exception:
                pass
        self.kill()

    def kill(self) -> None:
        self.box.close()
        for stream in (self.box.proc.stdin, self.box.proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self.log.close()
        shutil.rmtree(self.buffer_dir, ignore_errors=True)
        shutil.rmtree(self.work / "tmp", ignore_errors=True)


def check_integrity(msg: dict) -> None:
    """Optimisation outside the harness's step rejects the run (see autosae.sandboxed.integrity)."""
    counts = msg["integrity"]
    extra, foreign = int(counts.get("extra_backward", 0)), int(counts.get("foreign_steps", 0))
    if extra or foreign:
        raise SeedFailure(
            "rejected",
            "constraint:training",
            f"training outside the harness's step: {extra} extra backward pass"
            f"{'' if extra == 1 else 'es'} and {foreign} optimiser step{'' if foreign == 1 else 's'} "
            f"not the harness's (first: {msg.get('note') or 'unknown'})",
        )
