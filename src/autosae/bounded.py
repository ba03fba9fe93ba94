"""Reading a file that an agent or a variant wrote: a bounded prefix, never the whole file.

A disk bound counts the blocks a file occupies, but a sparse file (`truncate -s 450M big.py`)
occupies none and still reads as 450 MB of zeros: read whole, it costs the trusted process that
much memory (several times over, decoded and split into lines) and time. So the host reads
such files through `read_prefix`, which also refuses anything but a regular file (a named pipe
would block the reader for ever) and a link in the file's own place (the agent's link to a
secret of the host); a link higher up the path is the caller's to refuse
(agents.sandbox.Files.resolve, report.record.folder_files, sprint.engine.real_folders).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

PREFIX_BYTES = 256 << 10
"""What the host reads of one agent-written file by default: far more than any variant needs."""


class NotRegular(OSError):
    """The path is not a regular file (a folder, a named pipe, a device, a socket)."""


@dataclass(frozen=True)
class Prefix:
    data: bytes
    size: int
    """The file's apparent size (st_size), whatever it occupies on disk."""

    @property
    def cut(self) -> bool:
        return self.size > len(self.data)

    def text(self) -> str:
        return self.data.decode(errors="replace")

    def note(self) -> str:
        """One line saying what was left out ("" when nothing was)."""
        if not self.cut:
            return ""
        return f"[autosae read only the first {len(self.data):,} of this file's {self.size:,} bytes]"


def read_prefix(path: Path, limit: int = PREFIX_BYTES) -> Prefix:
    """At most `limit` bytes from the start of the regular file `path`, and its size.
    Opened without blocking and without following a link in its place, so that a named pipe
    cannot stall the reader nor a link lead it out; NotRegular for anything but a regular file
    (OSError ELOOP for a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(f"{path}: not a regular file")
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return Prefix(b"".join(chunks), info.st_size)
    finally:
        os.close(fd)


def text_prefix(path: Path, limit: int = PREFIX_BYTES) -> str:
    """The file's first `limit` bytes as text (undecodable bytes replaced), with a last line
    saying what was cut where it was."""
    found = read_prefix(path, limit)
    return found.text() + (f"\n{found.note()}\n" if found.cut else "")
