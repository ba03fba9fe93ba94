"""A research project: a git repository with TASK.md, sprints/, reports/ and templates/ (the
project's own copies of autosae's templates, see autosae.templating; a project made before
templates/ existed works without it).

Everything the orchestrator keeps for itself lives under .autosae/ (git-ignored, out of the
agent's worktree): sprint state, worktrees, harness runs, the loop lock and the STOP file.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from autosae.errors import AutosaeError

IGNORE_LINES = ("/.autosae/", "__pycache__/", "*.pyc")
"""What `init` adds to .gitignore: orchestrator state, worktrees and runs, Python caches."""


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project that holds `start` (default: the current folder): the nearest folder
        upwards with a TASK.md inside a git repository."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "TASK.md").is_file():
                if not (folder / ".git").exists():
                    raise AutosaeError(
                        f"{folder} has a TASK.md but is not the top of a git repository; run `autosae init {folder}`"
                    )
                return cls(folder)
        raise AutosaeError(f"no TASK.md in {here} or above; run `autosae init` to start a project")

    @property
    def task_path(self) -> Path:
        return self.root / "TASK.md"

    @property
    def sprints_dir(self) -> Path:
        return self.root / "sprints"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def ledger_path(self) -> Path:
        return self.reports_dir / "ledger.jsonl"

    @property
    def private(self) -> Path:
        return self.root / ".autosae"

    @property
    def state_dir(self) -> Path:
        return self.private / "state"

    @property
    def worktrees_dir(self) -> Path:
        return self.private / "worktrees"

    @property
    def runs_dir(self) -> Path:
        return self.private / "runs"

    @property
    def stop_path(self) -> Path:
        return self.private / "STOP"

    @property
    def refused_path(self) -> Path:
        """Proposals refused as repeats, one JSON line each (`autosae status` counts them)."""
        return self.private / "refused.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.private / "lock"

    def parent_variant(self, parent: str) -> Path:
        """The variant file of a sprint's parent: a reference variant ("baseline:matryoshka")
        or a recorded sprint's variant.py."""
        from autosae.variants import reference_variants

        if parent.startswith("baseline:"):
            ref = reference_variants().get(parent.removeprefix("baseline:"))
            if ref is None:
                raise AutosaeError(f"unknown baseline {parent}")
            return ref
        return self.sprints_dir / parent / "variant.py"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class ProjectLock:
    """Keeps a second sprint or loop out of one project. The lock file names its holder; a
    lock whose process is gone (killed, machine rebooted) is stale and taken over."""

    def __init__(self, project: Project, command: str, log=lambda line: None):
        self.path, self.command, self.log = project.lock_path, command, log
        self.held = False

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def live_holder(self) -> dict | None:
        """The holder while its process runs (None: free, or a stale lock)."""
        holder = self.holder()
        return holder if holder is not None and pid_alive(int(holder.get("pid", 0))) else None

    def acquire(self) -> ProjectLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self.holder()
                if other is None:  # being written right now, or garbage: look again
                    time.sleep(0.2)
                    other = self.holder()
                if other is not None and (other.get("host") != me["host"] or pid_alive(int(other["pid"]))):
                    raise AutosaeError(
                        f"another autosae is running in this project (`{other.get('command')}`, pid "
                        f"{other.get('pid')} on {other.get('host')}, since {other.get('started')}); "
                        f"`autosae stop` asks a loop to finish its sprint and stop"
                    ) from None
                self.log(f"lock: taking over a stale lock from pid {other and other.get('pid')} (that process is gone)")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise AutosaeError(f"could not take the project lock {self.path}; remove it if no autosae is running")

    def release(self) -> None:
        if self.held:
            holder = self.holder()
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> ProjectLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def init_project(
    root: Path, profile: str = "tiny", backend: str | None = None, seeds: int = 3, force: bool = False
) -> tuple[Project, list[str]]:
    """Make (or adopt) a git repository for research: TASK.md from the template, sprints/,
    reports/, templates/ with a README of what can be overridden, and ignore entries,
    committed on the current branch. Returns what was done."""
    from autosae.config import parse_task, render_task_template
    from autosae.sprint import gitops
    from autosae.templating import project_templates, readme

    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    project, done = Project(root), []
    if project.task_path.exists() and not force:
        raise AutosaeError(f"{project.task_path} exists; pass --force to replace it with the template")
    repo = gitops.init_repo(root)
    done.append(f"git repository: {'adopted' if gitops.has_commits(repo) else 'created'} ({root})")
    text = render_task_template(profile=profile, backend=backend, seeds=seeds)
    parse_task(text, project.task_path)  # the template must always parse
    project.task_path.write_text(text)
    done.append(f"TASK.md: written for profile {profile}")
    for folder in (project.sprints_dir, project.reports_dir):
        folder.mkdir(exist_ok=True)
        keep = folder / ".gitkeep"
        if not any(folder.iterdir()):
            keep.write_text("")
    from autosae.sprint.notebook import NOTEBOOK, empty

    notebook = root / NOTEBOOK
    if not notebook.exists() and not notebook.is_symlink():  # the researcher's notebook is kept
        notebook.write_text(empty())
        done.append(f"{NOTEBOOK}: the lab notebook, yours to edit")
    guide = project_templates(root) / "README.md"
    if not guide.exists():  # the researcher's own notes there are kept
        guide.parent.mkdir(exist_ok=True)
        guide.write_text(readme())
        done.append("templates/: README.md lists the templates this project can override")
    ignore = root / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    missing = [line for line in IGNORE_LINES if line not in lines]
    if missing:
        ignore.write_text("\n".join([*lines, *missing]) + "\n")
        done.append(f".gitignore: added {', '.join(missing)}")
    folders = ("sprints", "reports", "templates")
    paths = ["TASK.md", ".gitignore", *(p for p in folders if any((root / p).iterdir()))]
    commit = gitops.commit_paths(repo, "autosae init: TASK.md, sprints/, reports/, templates/", paths)
    done.append(f"commit: {commit[:10]}" if commit else "commit: nothing new to commit")
    from autosae.sprint.project_secrets import draw_all

    files = draw_all(gitops.root_commit(repo))  # held-out and eval seeds, before any agent runs
    done.append(f"secrets: held-out model seeds and the eval seed in {files[0].parent} (outside the project)")
    return project, done
