"""The command line itself: help, listings and start-up cost."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import typer
from typer.testing import CliRunner

from autosae.cli import app
from tests.conftest import run_cli

HEAVY = ("torch", "sae_lens", "safetensors", "matplotlib", "scipy", "submitit")
"""Packages that take seconds to import (sae_lens about 7): commands import them when they run."""


def listed(help_text: str) -> set[str]:
    """The command names in a --help screen's Commands panel (rows of `│ name  description`)."""
    return set(re.findall(r"^[│|] (\w[\w-]*) ", help_text, re.M)) - {"help"}


def groups(command: click.Group, path: tuple[str, ...] = ()):
    """(path, group) for the top-level group and every sub-group (e.g. `bench`)."""
    yield path, command
    for name, sub in command.commands.items():
        if isinstance(sub, click.Group):
            yield from groups(sub, (*path, name))


def test_help_lists_every_registered_command():
    for path, group in groups(typer.main.get_command(app)):
        proc = run_cli(*path, "--help")
        assert proc.returncode == 0, proc.stderr
        assert listed(proc.stdout) == set(group.commands), (path, proc.stdout)
    assert len(typer.main.get_command(app).commands) >= 14


def test_every_command_has_help():
    runner = CliRunner()
    for path, group in groups(typer.main.get_command(app)):
        for name in group.commands:
            result = runner.invoke(app, [*path, name, "--help"])
            assert result.exit_code == 0 and "Usage:" in result.output, (path, name, result.output)


def test_help_does_not_import_torch_or_sae_lens():
    """Start-up stays fast without a clock to flake: `autosae --help` imports none of HEAVY."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "autosae", "--help"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "autosae.cli" in imported  # the report is read right
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, f"`autosae --help` imports {heavy[:5]}"


def test_variants_lists_the_reference_variants():
    proc = run_cli("variants")
    assert proc.returncode == 0
    for name in ("batchtopk", "matryoshka", "lista_matryoshka"):
        assert name in proc.stdout


def test_an_unknown_option_is_a_usage_error_without_traceback():
    proc = run_cli("train", "batchtopk", "--bogus")
    assert proc.returncode == 2 and "No such option" in proc.stderr
    assert "Traceback" not in proc.stderr
