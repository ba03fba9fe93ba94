"""Looking for processes on the whole host, to show that nothing a sandbox started outlives it."""

from __future__ import annotations

import os
from pathlib import Path


def processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes, anywhere on the host, whose command line holds `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state not in ("Z", "X"):
            found.append(int(name))
    return found


def sleeper(marker: str, seconds: int = 300, started: str | None = None) -> str:
    """A bash command for a `sleep` that `processes_with(marker)` finds (its argv[0] is the
    marker; `sleep 300 marker` would fail at once, and a test looking for it could not fail).
    `started`: a file it creates first, for the test's command to wait on."""
    touch = f"touch {started}; " if started else ""
    return f"bash -c '{touch}exec -a {marker} sleep {seconds}'"
