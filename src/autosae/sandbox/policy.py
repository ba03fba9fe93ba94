"""What a sandbox may see and use: the Policy (files, environment, network, GPU) and the Limits
(memory, processes, disk, file size), plus the error raised when a sandbox is required but
bubblewrap cannot start one.

These are plain data; `bwrap.py` turns a Policy into a bwrap command line and `limits.py` turns
Limits into cgroups, rlimits and a watchdog."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from autosae.errors import AutosaeError

Mode = Literal["required", "auto", "off"]

TMPFS_BYTES = 64 * 2**20
"""Size of the private tmpfs at /tmp (when Policy.tmp is None) and at /dev/shm: both live in
memory, so they are bounded even when no memory cgroup is available."""


class SandboxUnavailable(AutosaeError):
    """A sandbox is required but bubblewrap cannot start one here; the message (one line) says
    why and how to fix it."""


@dataclass
class Limits:
    """Bounds on the whole sandboxed process tree; None means unbounded. Which ones actually
    hold on this machine, and how, is reported in `Sandboxed.enforced`."""

    memory_bytes: int | None = None
    """Memory of the whole sandbox (cgroup memory controller; RLIMIT_AS per process as a fallback
    when no cgroup is available and the policy has no GPU)."""

    processes: int | None = 512
    """Tasks (processes and threads: torch starts many threads) in the sandbox (cgroup pids
    controller; RLIMIT_NPROC as a fallback for non-root users)."""

    disk_bytes: int | None = None
    """Total bytes allocated under the policy's writable dirs and its tmp dir (files that were
    there before the run count too), polled by a watchdog that kills the tree when past it."""

    file_bytes: int | None = None
    """RLIMIT_FSIZE: the largest single file a process of the tree may write (EFBIG past it);
    bounds what one write can add between two polls of the disk watchdog."""


@dataclass
class Policy:
    """What the sandboxed command sees. Nothing of the host is visible unless listed here,
    except the read-only system (/usr, /etc with secrets masked, ...) and, with `python`, this
    interpreter's own directories."""

    cwd: Path
    """Working directory inside (it must be visible: usually one of `writable`)."""

    env: dict[str, str]
    """The complete environment inside; the caller scrubs it (nothing of ours leaks in)."""

    writable: list[Path] = field(default_factory=list)
    """Bound read-write at the same path; counted by the disk watchdog."""

    readable: list[Path] = field(default_factory=list)
    """Bound read-only at the same path (besides the system and python)."""

    read_only_within: list[Path] = field(default_factory=list)
    """Paths inside a writable dir re-bound read-only after it (e.g. a git worktree's `.git`
    pointer file, so the agent cannot repoint it)."""

    hidden: list[Path] = field(default_factory=list)
    """Made invisible after everything else: an empty read-only dir over a dir, /dev/null over a
    file (reading it fails). Paths that do not exist, or that no bind would show, are ignored."""

    replaced: dict[Path, Path] = field(default_factory=dict)
    """{path inside: host file} shown read-only in place of a visible file, after `hidden` (e.g.
    a git config without its remotes' credentials, where an unreadable one would break git)."""

    tmp: Path | None = None
    """Host dir bound at /tmp (counted by the disk watchdog); None: a private tmpfs of
    TMPFS_BYTES. Only used when sandboxed."""

    network: bool = False
    """False: a network namespace of its own (no network at all, not even the host's loopback)."""

    gpu: bool = False
    """Dev-bind /dev/nvidia* and bind /sys read-only, so CUDA works inside."""

    python: bool = True
    """Bind read-only what this interpreter needs: its prefixes and the entries of sys.path."""

    def __post_init__(self) -> None:
        # Accept str as well as Path everywhere (callers build these from config strings).
        self.cwd = Path(self.cwd)
        self.writable = [Path(p) for p in self.writable]
        self.readable = [Path(p) for p in self.readable]
        self.read_only_within = [Path(p) for p in self.read_only_within]
        self.hidden = [Path(p) for p in self.hidden]
        self.replaced = {Path(k): Path(v) for k, v in self.replaced.items()}
        self.tmp = None if self.tmp is None else Path(self.tmp)
