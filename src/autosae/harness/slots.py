"""Device slots: several seeds, or several sprints, training at once, one per slot.

A slot is a device: `cuda:N` for a GPU, or `cpu` (a CPU slot is a process of its own; the
tests use CPU slots to exercise the same scheduling on machines without a GPU). A SlotPool
is shared by every run of one autosae process (the seeds of a run, the runs of parallel
sprints, baselines and held-out runs) and hands slots out fairly: when one frees, it goes
to the waiting run that holds the fewest slots, the earliest among equals, so that one
sprint's seeds cannot starve another's.

Each seed on a slot runs in a trusted slot process (autosae.harness.local.slot_main): it
loads the benchmark model on its device and runs the seed exactly as the single-device path
does (autosae.harness.seed), and reports the seed's record back. A slot whose trusted side
fails (a GPU error, a dead process) is retired and the seed goes to another slot; when no
slot is left the run fails with the reason.

This module only schedules: it imports neither torch nor the harness that trains, so that
the CLI and the loop can make a pool cheaply.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field

from autosae.errors import AutosaeError
from autosae.harness.devices import check_devices, parse_gpus
from autosae.records import is_ok


def pool_for_gpus(gpus) -> SlotPool | None:
    """The SlotPool that `--gpus` / TASK.md `gpus` ask for (visible GPUs only), or None: one
    device, seeds in turn."""
    devices = parse_gpus(gpus)
    return SlotPool(check_devices(devices)) if devices else None


def wait_all(threads: list[threading.Thread]) -> None:
    """Start the threads and wait for them in short joins, so that Ctrl-C reaches the
    caller (a plain join() defers it until the thread ends)."""
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.5)


@dataclass
class SlotPool:
    devices: list[str]
    retired: dict[str, str] = field(default_factory=dict)
    """Slots taken out of service, with the error that retired them."""

    def __post_init__(self):
        if not self.devices:
            raise AutosaeError("a slot pool needs at least one device")
        self._free = list(self.devices)
        self._held: dict[str, int] = {}
        self._waiting: list[tuple[int, str]] = []
        self._tickets = itertools.count()
        self._cond = threading.Condition()
        self._runs: set[SlotRun] = set()
        self.closed = False

    @property
    def alive(self) -> list[str]:
        return [d for d in self.devices if d not in self.retired]

    def cpu_threads(self) -> int:
        """Threads for a variant on a CPU slot: the cores shared among the CPU slots."""
        cpu_slots = sum(1 for d in self.alive if d == "cpu") or 1
        return max(1, ((os.cpu_count() or 2) - 1) // cpu_slots)

    def acquire(self, owner: str, cancelled: threading.Event | None = None) -> str | None:
        """A free slot for `owner` (a run), waiting for one; None when every slot is retired
        or `cancelled` is set."""
        with self._cond:
            ticket = (next(self._tickets), owner)
            self._waiting.append(ticket)
            try:
                while True:
                    if self.closed or not self.alive or (cancelled is not None and cancelled.is_set()):
                        return None
                    if self._free and self._next() == ticket:
                        device = self._free.pop(0)
                        self._held[owner] = self._held.get(owner, 0) + 1
                        return device
                    self._cond.wait(timeout=0.5)
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()

    def _next(self) -> tuple[int, str]:
        """Fair share: the waiter whose run holds the fewest slots, the earliest first."""
        return min(self._waiting, key=lambda t: (self._held.get(t[1], 0), t[0]))

    def close(self) -> None:
        """Ctrl-C: hand out no more slots and stop every run's slot processes now."""
        with self._cond:
            self.closed = True
            runs = list(self._runs)
            self._cond.notify_all()
        for run in runs:
            run.cancel()

    def register(self, run: SlotRun, active: bool) -> None:
        with self._cond:
            (self._runs.add if active else self._runs.discard)(run)

    def release(self, owner: str, device: str, error: str | None = None) -> None:
        with self._cond:
            self._held[owner] -= 1
            if error is not None:
                self.retired[device] = error
            elif device not in self.retired:
                self._free.append(device)
            self._cond.notify_all()


class SlotRun:
    """The seeds of one run spread over a pool's slots (see autosae.harness.local.run_on_slots):
    `start_job(seed, device)` starts a slot process and returns it with its reply queue."""

    def __init__(self, pool: SlotPool, owner: str, start_job, log):
        self.pool, self.owner, self.start_job, self.log = pool, owner, start_job, log
        self.cancelled = threading.Event()
        self.records: dict[int, dict] = {}
        self.lock = threading.Lock()
        self.procs: set = set()

    def run(self, seeds: list[int], guard_s: float) -> dict[int, dict]:
        self.pool.register(self, True)
        try:
            wait_all([threading.Thread(target=self._seed, args=(s, guard_s), daemon=True) for s in seeds])
        except BaseException:  # Ctrl-C: stop every seed of this run
            self.cancel()
            raise
        finally:
            self.pool.register(self, False)
        if self.pool.closed:
            raise KeyboardInterrupt("the device slots were closed")
        return self.records

    def cancel(self) -> None:
        self.cancelled.set()
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            stop_process(proc)

    def _seed(self, seed: int, guard_s: float) -> None:
        while not self.cancelled.is_set():
            device = self.pool.acquire(self.owner, self.cancelled)
            if device is None:
                if not (self.cancelled.is_set() or self.pool.closed):
                    self._record(
                        seed,
                        {
                            "seed": seed,
                            "status": "failed",
                            "kind": "device",
                            "reason": "no device slot left: "
                            + "; ".join(f"{d}: {e}" for d, e in self.pool.retired.items()),
                            "log_tail": "",
                        },
                    )
                return
            error = None
            try:
                outcome = self._attempt(seed, device, guard_s)
                if outcome[0] == "seed":
                    self._record(seed, outcome[1])
                    return
                error = outcome[1]
            finally:
                self.pool.release(self.owner, device, error if not self.cancelled.is_set() else None)
            if error is not None:
                self.log(f"slot {device} retired: {error}; seed {seed} moves to another slot")

    def _attempt(self, seed: int, device: str, guard_s: float) -> tuple[str, object]:
        with self.lock:
            if self.cancelled.is_set():
                return "cancelled", None
            # SIGINT blocked while the slot process starts (it inherits the mask and unblocks
            # it once in a process group of its own): a Ctrl-C meant for the loop must not
            # land in its bootstrap. The loop stops it through cancel().
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                proc, reply = self.start_job(seed, device)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            self.procs.add(proc)
        deadline = time.monotonic() + guard_s
        finished = False
        try:
            while True:
                if self.cancelled.is_set():
                    return "cancelled", None
                try:
                    msg = reply.get(timeout=0.5)
                except queue.Empty:
                    if time.monotonic() > deadline:
                        return "slot_error", f"the slot process gave no result in {guard_s:.0f} s"
                    if not proc.is_alive():
                        try:
                            msg = reply.get(timeout=1.0)
                        except queue.Empty:
                            return "slot_error", f"the slot process died (exit code {proc.exitcode})"
                    else:
                        continue
                if msg[0] == "log":
                    self.log(f"[{device}] {msg[1]}")
                    continue
                finished = True
                return msg[0], msg[1]
        finally:
            stop_process(proc, grace_s=30 if finished else 0)
            with self.lock:
                self.procs.discard(proc)
            reply.cancel_join_thread()
            reply.close()

    def _record(self, seed: int, record: dict) -> None:
        with self.lock:
            self.records[seed] = record
        if not is_ok(record):  # one failed seed fails the run: stop the others
            self.cancel()


def stop_process(proc, grace_s: float = 0) -> None:
    """End a slot process: let it finish for `grace_s`, then SIGTERM (it kills the variant's
    process), then SIGKILL."""
    if grace_s:
        proc.join(timeout=grace_s)
    if proc.exitcode is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    proc.join(timeout=10)
    if proc.exitcode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.join(timeout=5)
