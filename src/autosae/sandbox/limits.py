"""Resource bounds on one sandboxed process tree, besides the cgroup (cgroups.py): rlimits, the
fallbacks where no cgroup is writable, and the watchdog.

- Processes and memory: the cgroup bounds them when one is writable. Else rlimits: RLIMIT_NPROC
  (per user, so set to the user's current task count + the bound; the kernel exempts root) and,
  without a GPU, RLIMIT_AS per process (CUDA reserves huge address space); and the watchdog
  counts the tree's tasks and proportional memory (polled: not a hard bound).
- Breaches: the watchdog polls (every ~0.5 s) and kills the whole tree at the first one: a
  cgroup event (an OOM kill, a refused fork) or a fallback count past its bound. Killing a fork
  bomb at once rather than letting it spin at the limit is deliberate: the run is void anyway,
  and a bomb spinning at the limit eats every core.
- Disk: the same watchdog sums the bytes of every file (the larger of its apparent size and its
  allocation, hard links once, symlinks not followed) under the writable dirs and the tmp dir,
  plus deleted files the tree still holds open, and kills the tree once past disk_bytes. The
  apparent size, because that is what a reader of the file gets: a sparse file of 450 MB costs
  no disk, but the host would read it whole (a report's diff, a view tool, a commit). Between two polls a single file can grow at
  most to file_bytes (RLIMIT_FSIZE), but many files can together overshoot by what the disk
  writes in one poll interval: this is detection, not a hard quota. A last check when the
  command exits reports what a fast writer did between polls.
- RLIMIT_CORE is 0 always (a core dump of a big process would fill the disk).
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Callable

from autosae.sandbox.cgroups import Cgroups, human, read_file
from autosae.sandbox.policy import Limits

POLL_S = 0.5


def _user_tasks(uid: int) -> int:
    """Tasks (threads included) of this real uid: what RLIMIT_NPROC counts."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        text = read_file(f"/proc/{pid}/status") or ""
        uid_line = re.search(r"^Uid:\s+(\d+)", text, re.M)
        threads = re.search(r"^Threads:\s+(\d+)", text, re.M)
        if uid_line and threads and int(uid_line.group(1)) == uid:
            total += int(threads.group(1))
    return total


def plan(limits: Limits, gpu: bool, cg: Cgroups, sandboxed: bool) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """The rlimits for the launcher to set (name, value) and what `enforced` reports: how each
    bound holds ("cgroup v1", "rlimit ...", "watchdog ...") or "not enforced: <why>", and how
    kill() reaches every process ("cleanup")."""
    rlimits: list[tuple[str, int]] = [("RLIMIT_CORE", 0)]
    enforced: dict[str, str] = {}
    unset = "not enforced: no limit set"

    if limits.memory_bytes is None:
        enforced["memory"] = unset
    elif cg.memory:
        enforced["memory"] = f"cgroup {cg.memory[0]}"
    elif not gpu:
        rlimits.append(("RLIMIT_AS", limits.memory_bytes))
        enforced["memory"] = (
            "rlimit AS per process (a refused allocation fails inside, unreported) "
            "+ watchdog on the tree's total (polled)"
        )
    else:
        enforced["memory"] = "watchdog on the tree's total only (polled; RLIMIT_AS would break CUDA)"

    if limits.processes is None:
        enforced["processes"] = unset
    elif cg.pids:
        enforced["processes"] = f"cgroup {cg.pids[0]}"
    elif os.getuid() != 0:
        now = _user_tasks(os.getuid())
        rlimits.append(("RLIMIT_NPROC", now + limits.processes))
        enforced["processes"] = (
            f"rlimit NPROC (counts all of uid {os.getuid()}'s tasks: "
            f"{now} now + {limits.processes}) + watchdog on the tree's tasks"
        )
    else:
        enforced["processes"] = (
            "watchdog on the tree's tasks only (polled, not a hard bound: root is "
            "exempt from RLIMIT_NPROC and no cgroup pids controller is writable)"
        )

    enforced["disk"] = "watchdog" if limits.disk_bytes is not None else unset
    if limits.file_bytes is not None:
        rlimits.append(("RLIMIT_FSIZE", limits.file_bytes))
        enforced["file_bytes"] = "rlimit"
    else:
        enforced["file_bytes"] = unset

    tracked = f"cgroup {'v2' if any(_is_v2(d) for d in cg.dirs) else 'v1'}" if cg.dirs else ""
    if sandboxed:
        enforced["cleanup"] = "pid namespace" + (f" + {tracked}" if tracked else "")
    else:
        enforced["cleanup"] = tracked or (
            "not enforced: without the sandbox or a writable cgroup, children that setsid and re-parent escape kill()"
        )
    return rlimits, enforced


def _is_v2(d: str) -> bool:
    return os.path.exists(os.path.join(d, "cgroup.controllers"))


# ---------------------------------------------------------------------------------------------
# processes and the watchdog


def descendants(root: int) -> list[int]:
    """Every live descendant of `root` (by parent pid), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        text = read_file(f"/proc/{name}/stat")
        if text:
            # comm (field 2) may hold spaces and parens: parse after the last ")".
            ppid = int(text[text.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
    out: list[int] = []
    queue = [root]
    while queue:
        for child in children.get(queue.pop(0), []):
            out.append(child)
            queue.append(child)
    return out


def size(st: os.stat_result) -> int:
    """What a file counts against the disk bound: its allocation, or its apparent size when
    larger (a sparse file); a folder or other entry its allocation only."""
    allocated = st.st_blocks * 512
    return max(allocated, st.st_size) if stat.S_ISREG(st.st_mode) else allocated


def _open_deleted(pids: set[int], devices: set[int], seen: set[tuple[int, int]]) -> int:
    """Bytes of deleted files still held open by `pids` on the watched devices (a way to use
    disk that no directory walk sees)."""
    total = 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 0 and st.st_dev in devices and key not in seen:
                seen.add(key)
                total += size(st)
    return total


def _pss(pid: int) -> int:
    text = read_file(f"/proc/{pid}/smaps_rollup")
    found = re.search(r"^Pss:\s+(\d+) kB", text or "", re.M)
    if found:
        return int(found.group(1)) * 1024
    statm = (read_file(f"/proc/{pid}/statm") or "0 0").split()
    return int(statm[1]) * os.sysconf("SC_PAGE_SIZE")


class Watchdog:
    """Polls the cgroup events and the disk use of one sandbox; reports the first breach."""

    def __init__(
        self,
        roots: list[str],
        limits: Limits,
        cg: Cgroups,
        pids: Callable[[], set[int]],
        alive: Callable[[], bool],
        on_breach: Callable[[str], None],
    ):
        self.roots = [os.path.abspath(r) for r in roots]
        self.limits, self.cg = limits, cg
        self._pids, self._alive, self._on_breach = pids, alive, on_breach
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="autosae-sandbox-watchdog", daemon=True)

    @property
    def needed(self) -> bool:
        return any(
            v is not None
            for v in (self.limits.processes, self.limits.memory_bytes, self.limits.disk_bytes, self.limits.file_bytes)
        )

    def _tree(self) -> str | None:
        """Where no cgroup bounds them: the tree's tasks and memory (proportional set size, so
        pages shared after fork count once), against the limits."""
        watch_tasks = self.limits.processes is not None and not self.cg.pids
        watch_memory = self.limits.memory_bytes is not None and not self.cg.memory
        if not (watch_tasks or watch_memory):
            return None
        tasks = memory = 0
        for pid in self._pids():
            try:
                tasks += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                continue
            if watch_memory:
                memory += _pss(pid)
        if watch_tasks and tasks >= self.limits.processes:
            return f"processes: more than {self.limits.processes} tasks"
        if watch_memory and memory > self.limits.memory_bytes:
            return f"memory: the sandbox used more than {human(self.limits.memory_bytes)}"
        return None

    def start(self) -> None:
        if self.needed:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _scan(self) -> tuple[int, str | None]:
        """(bytes, by `size`; a file at or past file_bytes) under the roots."""
        seen: set[tuple[int, int]] = set()
        total, big = 0, None
        stack = list(self.roots)
        devices = set()
        while stack:
            d = stack.pop()
            try:
                entries = list(os.scandir(d))
                devices.add(os.stat(d).st_dev)
            except PermissionError:
                # The tree may chmod 000 a dir to hide what is in it from us: we own it, so
                # take read access back and count it anyway.
                try:
                    os.chmod(d, stat.S_IMODE(os.lstat(d).st_mode) | 0o700)
                    entries = list(os.scandir(d))
                except OSError:
                    continue
            except OSError:
                continue
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += size(st)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                elif (
                    self.limits.file_bytes is not None
                    and stat.S_ISREG(st.st_mode)
                    and st.st_size >= self.limits.file_bytes
                ):
                    big = entry.path
        total += _open_deleted(self._pids(), devices, seen)
        return total, big

    def check(self) -> str | None:
        """One poll: the breach message, or None."""
        with self._lock:
            message = self.cg.breach() or self._tree()
            if message:
                return message
            if self.limits.disk_bytes is None and self.limits.file_bytes is None:
                return None
            total, big = self._scan()
            if self.limits.disk_bytes is not None and total > self.limits.disk_bytes:
                return f"disk: more than {human(self.limits.disk_bytes)} written under {', '.join(self.roots)}"
            if big is not None:
                return f"file size: {big} reached the {human(self.limits.file_bytes)} limit"
            return None

    def _loop(self) -> None:
        interval = POLL_S
        while not self._stop.wait(interval):
            started = time.monotonic()
            message = self.check()
            if message:
                self._on_breach(message)
                return
            if not self._alive():
                return
            # A huge tree to walk must not eat a core: poll at most a third of the time.
            interval = max(POLL_S, 2 * (time.monotonic() - started))
