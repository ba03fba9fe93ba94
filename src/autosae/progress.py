"""Our progress on a terminal: one line at the foot of the output that updates (what runs now,
its seeds' samples, loss and time left, the time so far), under the lines the command prints.

Off a terminal (a pipe, `make demo > log`, a nohup'd loop) nothing is drawn and every line is
printed as it was: a line per phase, the harness's `progress:` lines where they went before.
A model build inside a sprint draws into this same line (bench.build.BuildProgress asks
`active()`), so two bars never fight over one terminal.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import TextIO

PHASE = re.compile(r"^\d\d:\d\d:\d\d (\S+) \| ([^|]+?)(?: \| |$)")
"""A sprint's status line: `HH:MM:SS <sprint id or 'baselines'> | <phase> | <text>`."""
SEED_PROGRESS = re.compile(r"progress: seed=(\d+) samples=([\d,]+)/([\d,]+) loss=(\S+) l0=(\S+) dead=(\d+) eta=(\d+)s")
"""The harness's progress line for a seed (harness.seed.Progress), every two seconds."""

_active: LiveLine | None = None
_lock = threading.Lock()


def active() -> LiveLine | None:
    """The line being drawn in this process, if any."""
    return _active


class LiveLine:
    """`with LiveLine() as line:` then `line.status(text)` for a line of the command's output and
    `line.detail(text)` for the harness's lines (shown only as the updating line)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self.bar = self.task = None
        self.base = ""

    def __enter__(self) -> LiveLine:
        global _active
        with _lock:
            if self.tty and _active is None:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    Progress,
                    SpinnerColumn,
                    TaskProgressColumn,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self.bar = Progress(
                    SpinnerColumn(),
                    TextColumn("{task.description}", markup=False),
                    BarColumn(bar_width=10),
                    TaskProgressColumn(),
                    TimeElapsedColumn(),
                    console=Console(file=self.stream),
                    transient=True,  # gone when the command ends: the printed lines stay
                )
                self.bar.start()
                _active = self
        return self

    def __exit__(self, *_) -> None:
        global _active
        with _lock:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None
                _active = None

    def status(self, text: str) -> None:
        """A line of output: printed (above the drawn line); a sprint's phase line also starts a
        new phase on the drawn line."""
        if self.bar is None:
            print(text, file=self.stream, flush=True)
            return
        self.bar.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        found = PHASE.match(text)
        if found:  # the phase alone: the sprint's id is on the line just printed
            who, phase = found.groups()
            self.phase(f"{who}: {phase}" if who == "baselines" else phase)

    def phase(self, text: str) -> None:
        """A new phase on the drawn line: its text, its own clock, no steps yet."""
        if self.bar is None:
            return
        self.base = text
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(text, total=None)
        self.bar.refresh()  # drawn now: a phase shorter than a tick is still seen

    def show(self, text: str, done: int | None = None, total: int | None = None) -> None:
        """What the current phase is doing now (a model build's step, a seed's samples)."""
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task(text, total=None)
        self.bar.update(self.task, description=text, completed=done or 0, total=total, refresh=True)

    def detail(self, text: str) -> bool:
        """A harness line: a seed's progress updates the drawn line. True when it was shown."""
        found = SEED_PROGRESS.search(text)
        if self.bar is None or not found:
            return False
        seed, done, total, loss, l0, _, eta = found.groups()
        base = f"{self.base}, " if self.base else ""
        self.show(
            f"{base}seed {seed}: loss {loss}, L0 {l0}, {eta} s left",
            int(done.replace(",", "")),
            int(total.replace(",", "")),
        )
        return True
