"""Who a sandboxed process is on the host: never root.

Started by an unprivileged user, bwrap maps that user into the sandbox and the sandbox holds no
more than the user does. Started by root (most rented GPU boxes and containers), bwrap would map
root to root: the sandbox would be host uid 0, and the kernel checks several knobs by uid, not by
capability (a `kernel.core_pattern` written through /proc/sys runs a program as host root in the
host's namespaces, whatever `--cap-drop ALL` says). So under a root autosae every sandbox runs
as a dedicated unprivileged host uid instead, the *sandbox user*:

- its ids: those of an account named `autosae-sandbox` when the host has one (an admin may
  create it to choose them), else DEFAULT_ID, an id that Debian-style hosts leave unassigned
  (above 65535, below the subordinate-id ranges that start at 100000), refused if the host has
  an account or group on it. Not `nobody`: that is the kernel's overflow id inside namespaces,
  and files the sandbox leaves would read as belonging to a shared account;
- how: a user namespace that maps the sandbox user to itself (and host root to 65534, see
  `userns_maps`), which our launcher creates as root and hands to bwrap (`--userns`) with
  `--uid`/`--gid` the sandbox user. bwrap switches to that uid *before* it sets the sandbox up,
  keeping its capabilities in that namespace only, so it can still bind folders under a 0700
  /root (capabilities apply to inodes whose owner the namespace maps) while every process of
  the sandbox, its pid 1 included, is the sandbox user with no capability at all. The
  namespace's own limit on further user namespaces is set to 0 before bwrap enters it (bwrap's
  `--disable-userns` needs a namespace bwrap made itself), and bwrap asserts it holds;
- what it may write: `hand_over` gives the policy's writable folders to it before each start
  (each folder keeps its owner, gets the sandbox group and g+rwx, so that git run by root on a
  worktree still sees a folder of its own; everything inside becomes the sandbox user's).
  Everything else it sees is root's, so other-permissions apply: it reads what is world-readable
  and writes nothing.

Dropping privileges before bwrap (bwrap run as the sandbox user) was the other way: it needs
unprivileged user namespaces for that uid (refused on Ubuntu 24.04 unless bwrap has an AppArmor
profile) and cannot bind anything under a 0700 /root, where a root user's venv and projects live.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from autosae.sandbox.policy import SandboxUnavailable

ACCOUNT = "autosae-sandbox"
DEFAULT_ID = 99_999
ROOT_INSIDE = 65_534
"""What host root (uid and gid 0) is called inside the sandbox's user namespace: the overflow id,
so files of root's read as `nobody`'s, as they would if root were not mapped at all. Root must be
mapped for bwrap's set-up to reach root's folders; no process inside can become it (no capability,
no_new_privs, nosuid mounts)."""

GIT_SAFE = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
"""Inside the sandbox the project's git files are another user's (root's), and git refuses such
repositories ("dubious ownership") unless told they are safe; inside, the sandbox user is alone."""


@dataclass(frozen=True)
class Identity:
    """The host ids of every sandboxed process, and whether they differ from ours."""

    uid: int
    gid: int
    dropped: bool
    """True when autosae runs as root and the sandbox as the sandbox user."""

    def describe(self) -> str:
        """One line for `autosae status` and the README's promise."""
        if self.dropped:
            return f"as uid {self.uid}, gid {self.gid} (unprivileged; autosae runs as root)"
        return f"as uid {self.uid} (yours, unprivileged)"


@functools.lru_cache(maxsize=1)
def sandbox_identity() -> Identity:
    """Who the sandbox runs as on this host (see the module's docstring); raises
    SandboxUnavailable when the default id belongs to someone."""
    if os.geteuid() != 0:
        return Identity(os.geteuid(), os.getegid(), dropped=False)
    try:
        account = pwd.getpwnam(ACCOUNT)
    except KeyError:
        account = None
    if account is not None:
        if account.pw_uid == 0 or account.pw_gid == 0:
            raise SandboxUnavailable(f"the {ACCOUNT} account must not have uid or gid 0")
        return Identity(account.pw_uid, account.pw_gid, dropped=True)
    for lookup, kind in ((pwd.getpwuid, "account"), (grp.getgrgid, "group")):
        try:
            taken = lookup(DEFAULT_ID)
        except KeyError:
            continue
        raise SandboxUnavailable(
            f"the sandbox's default uid/gid {DEFAULT_ID} belongs to the {kind} {taken[0]!r}; "
            f"create a dedicated account for it: useradd --system --no-create-home {ACCOUNT}"
        )
    return Identity(DEFAULT_ID, DEFAULT_ID, dropped=True)


def userns_maps(who: Identity) -> dict[str, str]:
    """uid_map and gid_map of the sandbox's user namespace (written by our launcher, as root):
    the sandbox user as itself, host root as ROOT_INSIDE."""
    return {
        "uid_map": f"{ROOT_INSIDE} 0 1\n{who.uid} {who.uid} 1\n",
        "gid_map": f"{ROOT_INSIDE} 0 1\n{who.gid} {who.gid} 1\n",
    }


def hand_over(roots: list[Path], keep: list[Path], who: Identity) -> None:
    """Let the sandbox user write under `roots`: each root keeps its owner and gets the sandbox
    group with g+rwx; everything below becomes the sandbox user's, except `keep` (e.g. a
    worktree's .git pointer file, which stays root's). Walks by directory descriptors without
    following links, so a folder swapped for a link by a sandbox running meanwhile cannot send
    a chown outside the root."""
    if not who.dropped:
        return
    kept = {os.path.realpath(p) for p in keep}
    for root in roots:
        top = os.path.realpath(root)
        try:
            st = os.lstat(top)
        except FileNotFoundError:
            continue
        os.chown(top, st.st_uid, who.gid, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            os.chown(top, who.uid, who.gid, follow_symlinks=False)
            continue
        os.chmod(top, stat.S_IMODE(st.st_mode) | 0o070)
        for folder, dirs, files, fd in os.fwalk(top, follow_symlinks=False):
            for name in list(dirs):
                if os.path.join(folder, name) in kept:
                    dirs.remove(name)
            for name in (*dirs, *files):
                if os.path.join(folder, name) in kept:
                    continue
                try:
                    os.chown(name, who.uid, who.gid, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:  # gone meanwhile
                    pass
