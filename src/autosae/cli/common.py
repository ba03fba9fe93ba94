"""Options shared by several commands, and the greppable `key: value` printer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Profile = Annotated[str, typer.Option("--profile", "-p", help="Benchmark profile (see `autosae bench list`).")]
ModelSeed = Annotated[int | None, typer.Option(help="Seed of the synthetic model: another seed is a held-out model.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a model or profile field, e.g. --set correlation_scale=0.2 (repeatable)."),
]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda when visible, else cpu).")]
Gpus = Annotated[
    str | None,
    typer.Option(
        help="Device slots to run seeds on at once: GPU indices (0,1), all, or cpu entries (cpu,cpu: CPU slots as processes). Default: one device."
    ),
]
Seeds = Annotated[int, typer.Option("--seeds", "-s", min=1, help="Number of seeds (0, 1, ... N-1).")]
Sandbox = Annotated[
    str, typer.Option(help="Run the variant under bubblewrap: required, auto (fall back with a warning) or off.")
]


def sandbox_mode(value: str) -> str:
    from autosae.errors import AutosaeError

    if value not in ("required", "auto", "off"):
        raise AutosaeError(f"--sandbox {value}: expected required, auto or off")
    return value


def emit(key: str, value) -> None:
    """One greppable result line on stdout: a value an agent wrote (a title with a newline, a
    terminal escape) stays on its line and cannot forge another key's."""
    from autosae.report.escape import one_line

    if isinstance(value, float):
        value = f"{value:.6g}"
    typer.echo(f"{key}: {one_line(value)}")


ProjectDir = Annotated[
    Path | None,
    typer.Option("--project", "-C", help="Research project folder (default: the one holding the current folder)."),
]
