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


def on_a_terminal(*args: str, stream: str = "stderr", cwd: Path | None = None) -> tuple[int, str, str]:
    """Run `autosae ARGS` with `stream` (stdout or stderr) on a pseudo-terminal and the other on a
    pipe: (exit code, what the pipe got, what the terminal got with colours taken out)."""
    leader, follower = pty.openpty()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: follower}
    proc = subprocess.Popen(
        [sys.executable, "-m", "autosae", *args],
        cwd=cwd,
        env={**os.environ, "TERM": "xterm-256color"},  # not a dumb terminal, where rich would not redraw
        **streams,
    )
    os.close(follower)
    chunks: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block the command
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the command exited and closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, err = proc.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(leader)
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))  # no colours
    return proc.returncode, (err if stream == "stdout" else out).decode(errors="replace"), drawn


def test_a_model_build_on_a_terminal_draws_our_line_instead_of_sae_lens_bar():
    """stderr is a pseudo-terminal: rich draws (and clears) one updating line, then the result stays."""
    code, out, drawn = on_a_terminal(*build_args(4_100_002))
    assert code == 0, drawn
    assert "cache_hit: no" in out
    assert "Orthogonalizing" not in drawn  # sae_lens's bar feeds our line instead
    assert re.search(r"model tiny: building with sae_lens \(64 features\)\W+\d+/100 ", drawn), drawn  # its steps
    assert "model tiny: sampling the pool" in drawn
    assert re.search(r"\rmodel tiny: built in \d+ s \(cached for the next runs\)\r\n$", drawn), drawn[-300:]


@pytest.mark.real_harness
def test_training_on_a_terminal_is_one_line_of_seed_progress(tmp_path):
    """`autosae train` with stderr on a terminal: the harness's progress lines become one line
    that updates (the seed, its loss and L0, time left, the share done), not a line every two
    seconds; the greppable results on stdout are as they always were."""
    code, out, drawn = on_a_terminal(
        "train", "lista_matryoshka", "--seeds", "1", "--uncounted", "--samples", "81920", "--out", str(tmp_path / "run")
    )
    assert code == 0, drawn
    assert "status: ok" in out and "counted: no" in out and "progress:" not in out
    assert "progress: seed=" not in drawn  # the raw lines are not printed on the terminal
    assert re.search(r"\r\S seed \d+: loss [\d.e+-]+, L0 [\d.]+, \d+ s left\W+\d+%", drawn), drawn[-600:]
    assert max(len(line) for line in re.split(r"[\r\n]", drawn)) <= 80  # one terminal line, never wrapped


def test_a_sprint_on_a_terminal_prints_its_phases_above_one_updating_line(tmp_path):
    """`autosae sprint` with stdout on a terminal: every phase line is printed whole, as off a
    terminal, and one line under them shows the phase now running; nothing is left of it at the end."""
    from tests.sprint.conftest import autosae, write_script, write_task

    root = tmp_path / "research"
    assert autosae("init", str(root), cwd=tmp_path).returncode == 0
    write_task(root)
    write_script(root, [{"title": "seed recipe", "idea": "LISTA-Matryoshka", "variant": "lista_matryoshka"}])
    subprocess.run(["git", "add", "TASK.md", "script.yaml"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "task"], cwd=root, check=True)
    code, err, drawn = on_a_terminal("sprint", stream="stdout", cwd=root)
    assert code == 0, drawn + err
    printed = [line.split("\r")[-1] for line in drawn.split("\r\n")]  # each line as it stays on screen
    sid = next(line.split()[-1] for line in printed if line.startswith("sprint: "))
    for phase in ("proposed", "implementing", "training", "scoring", "reporting", "done"):
        assert sum(re.match(rf"\d\d:\d\d:\d\d {sid} \| {phase}( \||$)", line) is not None for line in printed) == 1
        assert re.search(rf"\r\S {phase} ", drawn), phase  # the updating line showed the phase (spinner first)
    assert [line.split(":")[0] for line in printed[-6:]] == ["sprint", "verdict", "f1", "mcc", "report", ""]


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
