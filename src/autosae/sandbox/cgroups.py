"""The cgroup of one sandbox: processes and memory bounded from the command's first instruction.

Where: cgroup v2 when a writable v2 hierarchy has (or lets us enable) the pids/memory
controllers: a sibling of our own cgroup (the no-internal-processes rule keeps us from enabling
controllers in our own, which holds us), or below $AUTOSAE_SANDBOX_CGROUP (a delegated dir). Else
cgroup v1 (the pids and memory hierarchies, below our own cgroup in each). A v2 cgroup is made
even without controllers (e.g. the hybrid layout's empty "unified" hierarchy, or a container's
cgroup namespace): it lists every process of the tree, so kill() reaches setsid'ed children too.
The launcher (see _launcher.py) joins every dir made before it starts the command.

Breaches are read from the controllers' event counters: an OOM kill (v2 memory.events oom_kill,
v1 memory.oom_control oom_kill) or a refused fork (pids.events max).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from dataclasses import dataclass, field

ENV_CGROUP = "AUTOSAE_SANDBOX_CGROUP"
_counter = itertools.count()
_PREFIX = "autosae-sandbox-"


def human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def read_file(path: str) -> str | None:
    """The text of a small kernel file; None if it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def _keyed(path: str) -> dict[str, int]:
    """A flat-keyed cgroup file ("max 3\\noom_kill 1") as a dict."""
    out: dict[str, int] = {}
    for line in (read_file(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount point, root within the hierarchy, super options) of cgroup mounts."""
    found = []
    for line in (read_file("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        unescape = lambda s: s.replace("\\040", " ")  # noqa: E731
        found.append((rest[0], unescape(fields[4]), unescape(fields[3]), set(rest[2].split(","))))
    return found


def _own() -> dict[str, str]:
    """Our cgroup path per hierarchy: {"2": path, "pids": path, "memory": path, ...}."""
    out: dict[str, str] = {}
    for line in (read_file("/proc/self/cgroup") or "").splitlines():
        hid, controllers, path = line.split(":", 2)
        if hid == "0" and controllers == "":
            out["2"] = path
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def _on_disk(mount: str, root: str, path: str) -> str | None:
    rel = path[len(root) :] if root != "/" and (path + "/").startswith(root + "/") else path
    d = os.path.join(mount, rel.lstrip("/"))
    return d if os.path.isdir(d) else None


def _sweep(base: str) -> None:
    """Remove leftovers of sandboxes whose process died without cleaning up (empty ones only)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        m = re.fullmatch(_PREFIX + r"(\d+)-\d+", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            try:
                os.rmdir(os.path.join(base, name))
            except OSError:
                pass


def _mkdir(base: str, name: str) -> str | None:
    _sweep(base)
    path = os.path.join(base, name)
    try:
        os.mkdir(path)
        return path
    except OSError:
        return None


def _v2(name: str, want: set[str]) -> tuple[str, set[str]] | None:
    """A new v2 cgroup and which of `want` it has; None if no v2 hierarchy is writable for us."""
    mounts = [(m, r) for t, m, r, _ in _mounts() if t == "cgroup2"]
    own = _own().get("2")
    bases: list[str] = []
    if os.environ.get(ENV_CGROUP):
        bases.append(os.environ[ENV_CGROUP])
    if own is not None:
        for mount, root in mounts:
            d = _on_disk(mount, root, own)
            if d:
                # The root cgroup may hold processes and children with controllers; any other
                # may not, so our sandbox goes beside our own cgroup, below its parent.
                bases.append(d if own == "/" else os.path.dirname(d))
                break
    for base in bases:
        # Moving the launcher needs write access to the common ancestor's cgroup.procs.
        if not (os.access(base, os.W_OK) and os.access(os.path.join(base, "cgroup.procs"), os.W_OK)):
            continue
        available = set((read_file(os.path.join(base, "cgroup.controllers")) or "").split())
        control = os.path.join(base, "cgroup.subtree_control")
        for c in sorted(want & available - set((read_file(control) or "").split())):
            _write(control, f"+{c}")  # EBUSY where processes live in base: then we go without
        enabled = want & set((read_file(control) or "").split())
        path = _mkdir(base, name)
        if path:
            return path, enabled
    return None


def _v1(controller: str, name: str) -> str | None:
    own = _own().get(controller)
    if own is None:
        return None
    for fstype, mount, root, opts in _mounts():
        if fstype == "cgroup" and controller in opts:
            d = _on_disk(mount, root, own)
            if d and os.access(d, os.W_OK):
                return _mkdir(d, name)
    return None


@dataclass
class Cgroups:
    """The cgroup dirs made for one sandbox (possibly none)."""

    dirs: list[str] = field(default_factory=list)
    """Every dir made: the launcher joins each before starting the command."""
    pids: tuple[str, str, int] | None = None
    """(version "v1"/"v2", dir, bound) when the pids controller bounds the tree."""
    memory: tuple[str, str, int] | None = None
    """(version, dir, bound) when the memory controller bounds the tree."""

    @classmethod
    def create(cls, processes: int | None, memory_bytes: int | None) -> Cgroups:
        name = f"{_PREFIX}{os.getpid()}-{next(_counter)}"
        cg = cls()
        want = {c for c, v in (("pids", processes), ("memory", memory_bytes)) if v is not None}
        made = _v2(name, want)
        if made:
            path, enabled = made
            cg.dirs.append(path)
            if "pids" in enabled and _write(f"{path}/pids.max", str(processes)):
                cg.pids = ("v2", path, processes)
            if "memory" in enabled and _write(f"{path}/memory.max", str(memory_bytes)):
                _write(f"{path}/memory.swap.max", "0")  # swap would stretch the bound
                _write(f"{path}/memory.oom.group", "1")  # an OOM kills the whole tree
                cg.memory = ("v2", path, memory_bytes)
        if processes is not None and cg.pids is None:
            path = _v1("pids", name)
            if path:
                cg.dirs.append(path)
                if _write(f"{path}/pids.max", str(processes)):
                    cg.pids = ("v1", path, processes)
        if memory_bytes is not None and cg.memory is None:
            path = _v1("memory", name)
            if path:
                cg.dirs.append(path)
                if _write(f"{path}/memory.limit_in_bytes", str(memory_bytes)):
                    _write(f"{path}/memory.memsw.limit_in_bytes", str(memory_bytes))
                    cg.memory = ("v1", path, memory_bytes)
        if not cg.dirs:  # no bound asked or possible: still track the tree for kill()
            path = _v1("pids", name)
            if path:
                cg.dirs.append(path)
        return cg

    def procs(self) -> set[int]:
        pids: set[int] = set()
        for d in self.dirs:
            pids.update(int(p) for p in (read_file(f"{d}/cgroup.procs") or "").split())
        pids.discard(os.getpid())
        return pids

    def breach(self) -> str | None:
        if self.memory:
            version, d, bound = self.memory
            events = _keyed(f"{d}/memory.events" if version == "v2" else f"{d}/memory.oom_control")
            if events.get("oom_kill", 0) or events.get("oom_group_kill", 0):
                return f"memory: the sandbox used more than {human(bound)}"
        if self.pids:
            _, d, bound = self.pids
            if _keyed(f"{d}/pids.events").get("max", 0):
                return f"processes: more than {bound} tasks"
        return None

    def kill(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the cgroups, until they are empty; False if not in time."""
        for d in self.dirs:
            if os.path.exists(f"{d}/cgroup.kill"):  # v2, kernel >= 5.14: atomic, no fork race
                _write(f"{d}/cgroup.kill", "1")
        deadline = time.monotonic() + timeout
        while True:
            pids = self.procs()
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(100):  # rmdir fails (EBUSY) until the last task has gone
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self.dirs = []
