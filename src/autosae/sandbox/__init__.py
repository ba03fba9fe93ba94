"""OS-level confinement of everything the research agent writes or runs, with bubblewrap.

`spawn` starts one process tree in a sandbox (bwrap.py: namespaces, a filesystem with only what
the Policy lists, a scrubbed environment, no network, no terminal, never host root: identity.py)
under resource bounds
(limits.py: cgroup memory/pids, rlimits, a disk watchdog); `run` is the short-command
convenience (the agent's bash tool). With enabled=False only the namespaces are missing: the
bounds still apply. `Sandboxed.enforced` says which bounds hold on this machine and how;
`Sandboxed.breach` says which one was hit.

Processes start through a small launcher (_launcher.py) that joins the cgroups and sets the
rlimits before the command's first instruction, and stays its parent (so bwrap --die-with-parent
follows the launcher, not whichever harness thread happened to call spawn, and the tree dies
when our process dies).

Cleanup: kill() reaches every process of the tree, setsid'ed and double-forked ones included:
through the cgroup (every process in it), through bwrap (its pid 1 dies, and the kernel kills
the whole PID namespace), through the process group and the parent-pid tree. When sandboxed,
all of the tree also dies as soon as the command itself exits (PID namespace). Not sandboxed and
without any writable cgroup, a child that setsid's and is re-parented away escapes kill().
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from autosae.sandbox._launcher import launcher_argv
from autosae.sandbox.bwrap import availability, bwrap_binary, candidates, command, reset_cache, resolve
from autosae.sandbox.cgroups import Cgroups, human
from autosae.sandbox.identity import Identity, hand_over, sandbox_identity, userns_maps
from autosae.sandbox.limits import Watchdog, descendants, plan
from autosae.sandbox.policy import TMPFS_BYTES, Limits, Mode, Policy, SandboxUnavailable

__all__ = [
    "Identity",
    "Limits",
    "Mode",
    "Policy",
    "RunResult",
    "SandboxUnavailable",
    "Sandboxed",
    "TMPFS_BYTES",
    "availability",
    "bwrap_binary",
    "candidates",
    "command",
    "enforcement",
    "human",
    "reset_cache",
    "resolve",
    "run",
    "sandbox_identity",
    "spawn",
]


class Sandboxed:
    """One sandboxed process tree (everything it starts included). Use as a context manager,
    or call close(): the tree is killed and the cgroups removed."""

    def __init__(
        self,
        proc: subprocess.Popen,
        cgroups: Cgroups,
        limits: Limits,
        roots: list[str],
        enforced: dict[str, str],
        sandboxed: bool,
    ):
        self.proc = proc
        """The launcher (see _launcher.py): our child, the parent of bwrap (or of the command
        when not sandboxed); its exit status is the command's (bwrap reports a signal as 128+n)."""
        self.pid = proc.pid
        """The launcher's pid, also the process group of everything not in a new session."""
        self.breach: str | None = None
        """Set when a bound was hit ("memory: ...", "processes: ...", "disk: ...", "file size: ...")."""
        self.enforced = enforced
        """Which bounds hold and how ("cgroup v1", "watchdog", "rlimit", "not enforced: <why>")."""
        self.sandboxed = sandboxed
        self._cgroups = cgroups
        self._lock = threading.RLock()
        self._closed = False
        self._finished = False
        self._watchdog = Watchdog(roots, limits, cgroups, pids=self._tree, alive=self._alive, on_breach=self._report)
        self._watchdog.start()

    # -- state ------------------------------------------------------------------------------

    def _main_alive(self) -> bool:
        if self.proc.returncode is not None:
            return False
        try:  # WNOWAIT: look without reaping, so Popen still gets the status
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return False

    def _alive(self) -> bool:
        return self._main_alive() or bool(self._cgroups.procs())

    def _tree(self) -> set[int]:
        pids = self._cgroups.procs()
        if not self._cgroups.dirs and self._main_alive():
            pids.update(descendants(self.pid))
        return pids

    def _report(self, message: str) -> None:
        with self._lock:
            if self.breach is None:
                self.breach = message
        self.kill()

    def _finish(self) -> None:
        """Once the command has exited: one last look for a breach the watchdog had no time to
        see (an OOM kill, a fast write)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        if self._watchdog.needed:
            message = self._watchdog.check()
            if message:
                self._report(message)

    # -- Popen-like -------------------------------------------------------------------------

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None:
            self._finish()
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)  # raises subprocess.TimeoutExpired like Popen.wait
        self._finish()
        return code

    def kill(self) -> None:
        """SIGKILL every process of the tree, now; returns once they are gone (a few seconds
        at most). Idempotent, and safe after exit."""
        tree = descendants(self.pid) if self._main_alive() else []
        if self._main_alive():
            # The launcher first: bwrap dies with it (--die-with-parent), and with bwrap its pid 1
            # inside, whereupon the kernel kills the whole PID namespace.
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        # Once reaped, our pid may be reused; while a process of our group lives it cannot be,
        # so a live /proc/<pid> now would be someone else's: only then leave the group alone.
        if self.proc.returncode is None or not os.path.exists(f"/proc/{self.pid}"):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in reversed(tree):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._cgroups.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 2
        while tree and time.monotonic() < deadline:  # without a cgroup: wait for the ones we saw
            tree = [p for p in tree if _running(p)]
            if tree:
                time.sleep(0.01)

    def close(self) -> None:
        """kill(), stop the watchdog and remove the cgroups. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.kill()
        if self.proc.returncode is not None:
            self._finish()
        self._watchdog.stop()
        self._cgroups.remove()
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:  # unflushed data and nobody left to read it
                pass
        # stdout/stderr are left to the caller: a reader thread may still be draining them.

    def __enter__(self) -> Sandboxed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie is dead: it only awaits its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return False
    return text[text.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def spawn(
    argv: list[str], policy: Policy, limits: Limits, enabled: bool, *, stdin=None, stdout=None, stderr=None, pass_fds=()
) -> Sandboxed:
    """Start `argv` in a sandbox (enabled) or bare (not enabled), under `limits` either way.
    It has no controlling terminal (its own session); stdin defaults to /dev/null."""
    inner, env = command(argv, policy, limits, enabled)
    args_fd, maps = None, None
    roots = [str(p) for p in policy.writable]
    if enabled and policy.tmp is not None:
        roots.append(str(policy.tmp))
    if enabled:
        inner, args_fd = _options_through_fd(inner)
        pass_fds = (*pass_fds, args_fd)
        who = sandbox_identity()
        if who.dropped:
            maps = userns_maps(who)
            hand_over([Path(r) for r in roots], policy.read_only_within, who)
    cgroups = Cgroups.create(limits.processes, limits.memory_bytes)
    rlimits, enforced = plan(limits, policy.gpu, cgroups, sandboxed=enabled)
    try:
        proc = subprocess.Popen(
            launcher_argv(cgroups.dirs, rlimits, inner, maps),
            env=env,
            cwd=str(policy.cwd) if not enabled else "/",
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=pass_fds,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        cgroups.remove()
        raise
    finally:
        if args_fd is not None:
            os.close(args_fd)
    return Sandboxed(proc, cgroups, limits, roots, enforced, sandboxed=enabled)


def _options_through_fd(bwrap_argv: list[str]) -> tuple[list[str], int]:
    """bwrap's options (the environment's values among them) moved into a memfd read with
    `--args FD`: a command line is world-readable on the host (ps), an environment is not."""
    split = bwrap_argv.index("--")
    fd = os.memfd_create("autosae-bwrap-args")
    data = b"".join(os.fsencode(a) + b"\0" for a in bwrap_argv[1:split])
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return [bwrap_argv[0], "--args", str(fd), *bwrap_argv[split:]], fd


def enforcement(limits: Limits, gpu: bool = False, enabled: bool = True) -> dict[str, str]:
    """What `Sandboxed.enforced` would say for these limits on this machine, without starting
    anything (a cgroup is made and removed at once): to show the user, or to check first."""
    cgroups = Cgroups.create(limits.processes, limits.memory_bytes)
    try:
        return plan(limits, gpu, cgroups, sandboxed=enabled)[1]
    finally:
        cgroups.remove()


@dataclass
class RunResult:
    """The outcome of `run`."""

    output: bytes
    """stdout and stderr together, cut at output_limit."""
    returncode: int
    """The command's exit status (negative: killed by that signal; bwrap reports 128 + signal)."""
    timed_out: bool
    """True when the command was killed at timeout_s."""
    breach: str | None
    """The bound that was hit, if any (then the command was killed)."""
    truncated: bool = False
    """True when output was cut at output_limit."""


def run(
    argv: list[str], policy: Policy, limits: Limits, enabled: bool, timeout_s: float, output_limit: int = 1_000_000
) -> RunResult:
    """Run a short command to completion. The whole tree is killed when the command returns or
    times out (background and setsid'ed children included). The time limit counts from before
    the start (a slow start under load is the command's time too)."""
    deadline = time.monotonic() + timeout_s
    sandbox = spawn(argv, policy, limits, enabled, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks: list[bytes] = []
    size, truncated, timed_out = 0, False, False
    fd = sandbox.proc.stdout.fileno()
    os.set_blocking(fd, False)

    def drain(until: float) -> bool:
        """Read what is there until EOF (True) or `until` (False); keep at most output_limit."""
        nonlocal size, truncated
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([fd], [], [], min(left, 0.1))
            if not ready:
                if sandbox.poll() is not None:
                    return False  # exited; anything still writing is a background child
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                return True
            if size < output_limit:  # past the limit: keep reading (so the writer never
                chunks.append(data[: output_limit - size])  # blocks) but keep nothing
            truncated = truncated or size + len(data) > output_limit
            size = min(output_limit, size + len(data))

    try:
        drain(deadline)
        if sandbox.poll() is None:
            try:
                sandbox.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        sandbox.kill()  # background children go with the command
        drain(time.monotonic() + 1.0)  # what was written before the end; EOF now all are dead
        code = sandbox.wait()
    finally:
        sandbox.close()
        sandbox.proc.stdout.close()
    return RunResult(
        output=b"".join(chunks), returncode=code, timed_out=timed_out, breach=sandbox.breach, truncated=truncated
    )
