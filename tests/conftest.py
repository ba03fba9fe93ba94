"""Shared fixtures: a private model cache for the session, CLI runner and variant writer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def autosae_cache(tmp_path_factory) -> Path:
    """Every test (and every autosae subprocess) uses one fresh cache folder."""
    path = tmp_path_factory.mktemp("autosae-cache")
    os.environ["AUTOSAE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny():
    """The tiny profile with its model and pool built once for the session."""
    from autosae.bench.build import load
    from autosae.bench.profiles import get_profile

    profile = get_profile("tiny")
    model, pool = load(profile)
    return profile, model, pool


@pytest.fixture
def quick(tiny):
    """`tiny` shortened to 20,480 training and 4,096 eval samples: a run of seconds."""
    import dataclasses

    profile, _, _ = tiny
    return dataclasses.replace(
        profile, constraints=dataclasses.replace(profile.constraints, training_samples=20_480, eval_samples=4096)
    )


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `autosae` entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "autosae", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=os.environ.copy(),
    )


@pytest.fixture
def write_variant(tmp_path):
    """Write a variant.py from source text and return its path."""

    def write(*sources: str, name: str = "variant.py") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(textwrap.dedent(s) for s in sources))
        return path

    return write
