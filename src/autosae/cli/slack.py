"""`autosae slack`: the project's Slack app (autosae.slack), in its own terminal or started by
`autosae loop --slack` beside the loop."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from autosae.cli.common import ProjectDir, emit
from autosae.errors import AutosaeError

Channel = Annotated[
    str | None,
    typer.Option(help="Slack channel id (C0123ABCD) to answer in and post to (default: TASK.md's slack.channel)."),
]
STOP_WAIT_S = 60.0
"""How long `autosae loop --slack` waits, after the loop, for the app to post what is left."""


def check_installed() -> None:
    if importlib.util.find_spec("slack_bolt") is None or importlib.util.find_spec("slack_sdk") is None:
        raise AutosaeError("the Slack app needs slack-bolt and slack-sdk: pip install 'autosae[slack]'")


def preflight(project, channel: str | None):
    """What the app needs before it starts, checked in one line each: the packages, the
    tokens, the channel."""
    from autosae.slack.app import channel_for, tokens_from_env

    check_installed()
    tokens = tokens_from_env()
    return tokens, channel_for(project, channel)


@contextmanager
def single_app(project):
    """One app per project: a second would post every thread twice."""
    folder = project.private / "slack"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "app.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise AutosaeError(
                f"another `autosae slack` runs for this project (pid {lock.read().strip() or '?'})"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def slack(
    channel: Channel = None,
    poll_seconds: Annotated[float, typer.Option(min=0.1, help="How often the sprint threads look for news.")] = 2.0,
    ping_seconds: Annotated[float, typer.Option(min=0.5, hidden=True, help="Socket Mode ping interval.")] = 10.0,
    project_dir: ProjectDir = None,
) -> None:
    """Run the project's Slack app until Ctrl-C: a thread per sprint, and commands from the
    channel (idea: ..., status, leaderboard, show, verify, stop). Tokens: SLACK_BOT_TOKEN and
    SLACK_APP_TOKEN in the environment."""
    from autosae.slack.app import serve
    from autosae.sprint.project import Project

    project = Project.find(project_dir)
    tokens, channel = preflight(project, channel)
    with single_app(project):
        serve(project, channel, tokens, say=typer.echo, interval=poll_seconds, ping_interval=ping_seconds)


@contextmanager
def beside_the_loop(project, enabled: bool, channel: str | None = None):
    """`autosae loop --slack`: the app in a child process while the loop runs (the loop never
    waits on Slack, and a Slack failure never stops it); told to stop after the loop, with a
    minute to post the last sprint's verdict and report."""
    if not enabled:
        yield
        return
    preflight(project, channel)
    log = project.private / "slack" / "slack.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "autosae", "slack", "--project", str(project.root)]
    command += ["--channel", channel] if channel else []
    with open(log, "a") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    emit("slack", f"the Slack app runs beside the loop (pid {child.pid}, log {_shown(log)})")
    try:
        yield
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.returncode not in (0, -signal.SIGTERM, 130):
            typer.echo(f"slack: the Slack app exited with {child.returncode}; see {_shown(log)}", err=True)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
