"""Research projects in temporary folders: real git, real harness runs on a shortened tiny."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import git
import pytest

from tests import warm_cli

FAST_FRONT = """---
profile: tiny
objective: {objective}
seeds: 2
significance: 0.05
constraints:
  training_samples: 204800
agent:
  backend: {backend}
  seed: 0
  options: {options}
loop:
  max_consecutive_failures: {max_failures}
heldout:
  auto: {heldout_auto}
  models: 2
---
"""

BODY = """# Task

## Goal
Beat the Matryoshka baseline on F1.

## Ideas to try
- anything from the component library

## Do not
- change the constraints
"""


def autosae(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own (forked warm: tests/warm_cli.py)."""
    return warm_cli.run(list(args), cwd, {**os.environ, **(env or {})}, timeout)


def autosae_running(*args: str, cwd: Path, env: dict | None = None, stderr=subprocess.STDOUT) -> subprocess.Popen:
    """The real CLI in a subprocess left running (a loop the test acts on meanwhile); its
    stderr joins stdout unless `stderr` says otherwise (forked warm: tests/warm_cli.py)."""
    return warm_cli.start(list(args), cwd, {**os.environ, **(env or {})}, stderr)


def write_task(
    root: Path,
    backend: str = "scripted",
    objective: str = "f1",
    max_failures: int = 3,
    options: dict | None = None,
    body: str = BODY,
    heldout: bool = False,
) -> None:
    if options is None:
        options = {"script": "script.yaml"} if backend == "scripted" else {}
    (root / "TASK.md").write_text(
        FAST_FRONT.format(
            objective=objective,
            backend=backend,
            max_failures=max_failures,
            options=json.dumps(options),
            heldout_auto=str(heldout).lower(),
        )
        + body
    )


COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}
"""A git identity for the tests' own commits (a CI machine may have none)."""


def commit(root: Path, message: str, *paths: str) -> None:
    repo = git.Repo(root)
    repo.git.add(*paths)
    repo.git.commit("-q", "-m", message, env=COMMIT_ENV)


def shorten_training(root: Path, samples: int = 51_200) -> None:
    """A real-training test whose assertions do not depend on how well the SAE trains: a
    quarter of FAST_FRONT's training samples (its baselines and its sprint alike), committed."""
    task = root / "TASK.md"
    task.write_text(task.read_text().replace("training_samples: 204800", f"training_samples: {samples}", 1))
    commit(root, "shorter training", "TASK.md")


def write_script(root: Path, actions: list[dict]) -> None:
    import yaml

    (root / "script.yaml").write_text(yaml.safe_dump(actions))


def ledger(root: Path) -> list[dict]:
    path = root / "reports" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def head_ledger(root: Path) -> list[dict]:
    try:
        text = git.Repo(root).git.show("HEAD:reports/ledger.jsonl")
    except git.GitCommandError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sprint_commits(root: Path) -> list[str]:
    """Subjects of the sprint commits on the main branch."""
    log = git.Repo(root).git.log("--format=%s", "main")
    return [s for s in log.splitlines() if s.startswith("sprint ")]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


SPRINT_ID = re.compile(r"^sprint: (\S+)$", re.M)


@pytest.fixture
def project(tmp_path) -> Path:
    """An initialised project using the scripted agent with a default script. Made by
    `autosae init`'s own function in this process (the command itself is tested in
    test_engine.py): a third of a second of CPU less for each of the ~40 tests that use it."""
    from autosae.sprint.project import init_project

    root = tmp_path / "research"
    init_project(root)
    write_task(root)
    write_script(
        root,
        [{"title": "seed recipe", "idea": "LISTA-Matryoshka with the seed's settings", "variant": "lista_matryoshka"}],
    )
    repo = git.Repo(root)
    repo.git.add("TASK.md", "script.yaml")
    repo.git.commit(
        "-q",
        "-m",
        "fast test task",
        env=COMMIT_ENV,
    )
    return root
