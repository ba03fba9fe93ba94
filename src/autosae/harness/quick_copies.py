"""The copies of a run_experiment call's runs that the agent reads, in its worktree
(<worktree>/.quick/<n>/<arm>/seed_<s>/): written through folder descriptors that never follow
a link, so a link the agent left in the way is removed, not followed."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.harness.arms import COPY_BYTES, QUICK_DIR, slug
from autosae.harness.quick_table import seed_dir

if TYPE_CHECKING:
    from autosae.harness.arms import Job


# -- the copies the agent reads --------------------------------------------------------------


def _open_dir(parent: int, name: str, fresh: bool = False) -> int:
    """The folder `name` under the folder descriptor `parent`, made when missing; a link, a
    file or (with `fresh`) an old folder in its place is removed first. Never follows a link."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    for _ in range(5):
        try:
            if fresh:
                raise FileExistsError
            return os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            pass
        except (FileExistsError, NotADirectoryError, OSError):  # a link (ELOOP), a file, or to renew
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=parent)  # fd-based: never leaves the folder
                else:
                    os.unlink(name, dir_fd=parent)
        fresh = False
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            continue  # someone raced us: look again
        try:
            return os.open(name, flags, dir_fd=parent)
        except OSError:
            continue
    raise OSError(f"could not make the folder {name}")


def _copy_file(src: Path, folder: int, name: str) -> None:
    """Our own run file (no link followed, at most COPY_BYTES) into `folder`, a new file."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    with open(fd, "rb") as f:
        data = f.read(COPY_BYTES)
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
    with open(out, "wb") as f:
        f.write(data)


_copy_lock = threading.Lock()


def copy_runs(worktree: Path, n: int, jobs: list[Job]) -> str:
    """Each run's results.json and train_log.jsonl copied to <worktree>/.quick/<n>/<arm>/seed_<s>/;
    the worktree-relative folder. The worktree is the agent's: every folder is opened by
    descriptor without following links, so a link it left in the way is removed, not followed."""
    name = f"{n:03d}"
    fds: list[int] = []
    with _copy_lock:
        try:
            root = os.open(worktree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            fds.append(root)
            quick = _open_dir(root, QUICK_DIR)
            fds.append(quick)
            call = _open_dir(quick, name, fresh=True)
            fds.append(call)
            arm_dirs: dict[int, int] = {}
            for j in jobs:
                if j.folder is None:
                    continue
                if id(j.arm) not in arm_dirs:
                    index = len(arm_dirs)
                    arm_dirs[id(j.arm)] = _open_dir(call, f"{index:02d}-{slug(j.arm.label)}")
                    fds.append(arm_dirs[id(j.arm)])
                seed = _open_dir(arm_dirs[id(j.arm)], f"seed_{j.seed}")
                fds.append(seed)
                _copy_file(j.folder / "results.json", seed, "results.json")
                if (d := seed_dir(j)) is not None:
                    _copy_file(d / "train_log.jsonl", seed, "train_log.jsonl")
        finally:
            for fd in fds:
                os.close(fd)
    return f"{QUICK_DIR}/{name}"
