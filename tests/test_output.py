"""Quiet, useful output: off a terminal (a pipe, `make demo > log`, harness.log) no progress bar
reaches the output, only our own lines, one per phase; on a terminal, one line that updates.

The model build is where sae_lens draws its bar (forced on, whatever TQDM_DISABLE says), so each
test builds a small model under a model seed no other test uses: a real, fresh build, in seconds."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import run_cli

SMALL = ["num_features=64", "hidden_dim=16", "hierarchy_roots=2", "correlation_rank=4", "pool_samples=4096"]
LONGEST = 500  # characters in one line of output: a bar redrawn without a terminal runs to kilobytes


def build_args(seed: int) -> list[str]:
    return ["bench", "build", "tiny", "--model-seed", str(seed), *[a for item in SMALL for a in ("--set", item)]]


def assert_quiet(text: str) -> None:
    assert "\r" not in text, "a carriage return: a progress bar redrawn in the output"
    assert "Orthogonalizing" not in text and "it/s" not in text, "sae_lens's tqdm bar reached the output"
    longest = max((len(line) for line in text.splitlines()), default=0)
    assert longest <= LONGEST, f"a line of {longest} characters"


def test_a_model_build_into_a_pipe_prints_one_line_per_phase_and_no_bar():
    proc = run_cli(*build_args(4_100_001), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "cache_hit: no" in proc.stdout  # the model was really built, so sae_lens really ran
    assert_quiet(proc.stdout + proc.stderr)
    ours = [line for line in proc.stderr.splitlines() if not line.startswith("sae_lens: ")]  # its own warnings
    assert ours[0] == "model tiny: building with sae_lens (64 features)"
    assert ours[1] == "model tiny: sampling the pool"
    assert re.fullmatch(r"model tiny: built in \d+ s \(cached for the next runs\)", ours[2]) and len(ours) == 3, (
        proc.stderr
    )


def test_a_model_build_on_a_terminal_draws_our_line_instead_of_sae_lens_bar():
    """stderr is a pseudo-terminal: rich draws (and clears) one updating line, then the result stays."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "autosae", *build_args(4_100_002)],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "TERM": "xterm-256color"},  # not a dumb terminal, where rich would not redraw
    )
    os.close(follower)
    chunks: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block the build
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the build exited and closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(leader)
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))  # no colours
    assert proc.returncode == 0, drawn
    assert b"cache_hit: no" in out
    assert "Orthogonalizing" not in drawn  # sae_lens's bar feeds our line instead
    assert re.search(r"model tiny: building with sae_lens \(64 features\)\W+\d+/100 ", drawn), drawn  # its steps
    assert "model tiny: sampling the pool" in drawn
    assert re.search(r"\rmodel tiny: built in \d+ s \(cached for the next runs\)\r\n$", drawn), drawn[-300:]


@pytest.mark.slow
def test_a_first_research_loop_into_a_pipe_is_quiet(tmp_path):
    """`make demo`'s first run, output to a file: a fresh cache builds the model and trains the
    baselines (minutes), then one sprint. Neither the output nor harness.log carries a bar."""
    env = {**os.environ, "AUTOSAE_CACHE": str(tmp_path / "cache")}
    project = tmp_path / "demo"

    def autosae(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "autosae", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # as `make demo > log 2>&1`
            text=True,
            env=env,
            timeout=1800,
        )

    init = autosae("init", str(project), "--profile", "tiny", "--backend", "recipe")
    assert init.returncode == 0, init.stdout
    loop = autosae("loop", "--project", str(project), "--max-sprints", "1")
    assert loop.returncode == 0, loop.stdout[-2000:]
    assert "model tiny: built in" in loop.stdout
    assert_quiet(loop.stdout)
    assert_quiet((Path(project) / ".autosae" / "harness.log").read_text())
