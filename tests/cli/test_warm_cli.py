"""tests/warm_cli.py, which most tests run their `autosae` commands through, gives what a cold
`python -m autosae` gives: the same output, exit code, working folder and environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests import warm_cli


def cold(args: list[str], cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autosae", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],  # rich's help screen: prog name from argv[0], width off a terminal
        ["status"],  # not a project: a one-line error and its exit code
        ["nope"],  # a usage error: click's message and exit 2
        ["init", "research", "--profile", "tiny", "--backend", "recipe"],  # writes into the working folder
    ],
)
def test_a_warm_command_gives_what_a_cold_one_gives(args, tmp_path):
    env = {**os.environ, "COLUMNS": "100"}
    results = []
    for name, runner in (("cold", cold), ("warm", lambda a, c, e: warm_cli.run(a, c, e, 120))):
        folder = tmp_path / name
        folder.mkdir()
        results.append(runner(args, folder, env))
        if args[0] == "init":
            assert (folder / "research" / "TASK.md").is_file()
    (c, w) = results

    def same(text: str) -> str:  # the folders' names and init's commit (its time) differ
        return re.sub(r"commit: [0-9a-f]+", "commit: C", text.replace("/cold", "/warm"))

    assert (w.returncode, same(w.stdout), same(w.stderr)) == (c.returncode, same(c.stdout), same(c.stderr))


def test_the_command_sees_the_environment_it_is_given_and_its_exit_code_comes_back(tmp_path):
    """A missing project is one line and a non-zero exit; a variable the server never had
    (the git author) reaches the command and what it starts."""
    env = {k: v for k, v in os.environ.items() if k != "AUTOSAE_DEBUG"}
    proc = warm_cli.run(["status", "--project", str(tmp_path / "none")], tmp_path, env, 60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    here = warm_cli.run(
        ["init", "p"], tmp_path, {**env, "GIT_AUTHOR_NAME": "Warm Author", "GIT_AUTHOR_EMAIL": "warm@example.org"}, 60
    )
    assert here.returncode == 0, here.stderr
    log = subprocess.run(["git", "log", "--format=%an"], cwd=tmp_path / "p", capture_output=True, text=True)
    assert log.stdout.strip() == "Warm Author"


@pytest.mark.parametrize("stderr", [subprocess.STDOUT, subprocess.PIPE])
def test_a_warm_command_left_running_answers_as_popen(stderr, tmp_path):
    """warm_cli.start, for the tests that watch a command as it runs: its output on pipes (stderr
    joined to stdout or apart), its pid, its exit code through wait/poll/communicate."""
    env = dict(os.environ)
    cold_proc = subprocess.Popen(
        [sys.executable, "-m", "autosae", "status"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    warm = warm_cli.start(["status"], tmp_path, env, stderr)
    assert warm.pid > 0 and warm.pid != os.getpid()
    assert warm.communicate(timeout=60) == cold_proc.communicate(timeout=60)
    assert warm.returncode == cold_proc.returncode != 0 and warm.poll() == warm.returncode


def test_poll_sees_a_command_end(tmp_path):
    """poll() answers the exit code once the command has ended, also when the server's two lines
    (pid, exit code) came in one read (a command that ends at once); the loop tests check that it
    is None while one runs."""
    import time

    quick = warm_cli.start(["status"], tmp_path, dict(os.environ))
    deadline = time.monotonic() + 60
    while quick.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert quick.returncode != 0 and "no TASK.md" in quick.stdout.read()
    quick.stdout.close()


def test_a_command_past_its_timeout_raises_as_subprocess_run_does(tmp_path):
    """Killed at its timeout (even before it opened its output files), TimeoutExpired as
    subprocess.run raises it; the server goes on serving."""
    env = dict(os.environ)
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        warm_cli.run(["status"], tmp_path, env, 0.001)
    assert raised.value.timeout == 0.001 and isinstance(raised.value.stderr, str)
    assert warm_cli.run(["status"], tmp_path, env, 60).returncode != 0  # a one-line error, as before
