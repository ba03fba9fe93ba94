"""The one way autosae writes a JSON record: whole or not at all.

A record is written to a temporary file beside it and moved over the old one (os.replace), so
a reader, or a run resumed after a crash, sees the old record or the new one, never half of
each. With `durable`, the file and then its folder are fsynced before this returns, so the
record also survives a power cut: for what a resumed sprint relies on (sprint state, sealed
results, the ledger).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def dumps(data: Any) -> str:
    """A record as it is stored: indented, numpy and other number types as floats, a final newline."""
    return json.dumps(data, indent=2, default=float) + "\n"


def write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Replace `path` with `text` atomically (see the module's docstring for `durable`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two writers never share one
    try:
        with open(tmp, "w") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself, recorded in the folder
        finally:
            os.close(fd)


def write_json(path: Path, data: Any, *, durable: bool = False) -> None:
    """Write `data` as `path`'s JSON, atomically; fsynced when `durable`."""
    write_text(path, dumps(data), durable=durable)


def read_json(path: Path) -> Any:
    """The JSON at `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
