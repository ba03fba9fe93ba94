"""The red team's kit: a shortened tiny profile, a loopback listener that must stay silent, and
runs of hostile variants through the real harness in the real sandbox."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from autosae.errors import ConstraintBreach, VariantFailed
from autosae.harness.run import RunOptions, run_variant
from autosae.harness.validation import quick_seed
from tests.sprint.conftest import project  # noqa: F401  (the fixture)

HONEST = """
from autosae.sae import BatchTopKSAE

def build(spec):
    return BatchTopKSAE(spec.d_in, spec.width, spec.k)
"""


def attack(path: Path, profile, out: Path, **opts) -> dict:
    """Run a hostile variant sandboxed; its results.json, whether the run failed or not."""
    opts = {"seeds": [0], "counted": False, "sandbox": "required", **opts}
    try:
        run_variant(path, profile, out, RunOptions.make(**opts))
    except (VariantFailed, ConstraintBreach):
        pass
    return json.loads((out / "results.json").read_text())


def seed_dir(out: Path, seed: int = 0) -> Path:
    """The run's folder for `seed`: attacks are uncounted runs, whose seed s trains as the
    quick seed harness.validation.quick_seed(s)."""
    return out / f"seed_{quick_seed(seed)}"


def worker_log(out: Path, seed: int = 0) -> str:
    return (seed_dir(out, seed) / "worker.log").read_text(errors="replace")


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections: a sandboxed process must never reach it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()
