"""`autosae idea add | list | drop`: the researcher's queue of ideas, run before the agent's own."""

from __future__ import annotations

from typing import Annotated

import typer

from autosae.cli.common import ProjectDir, emit

app = typer.Typer(
    help="Queue ideas for the loop: its next sprints run them before the agent proposes its own.",
    no_args_is_help=True,
)


def _fold_if_free(project) -> bool:
    """Fold the inbox into ideas.jsonl and commit it, unless a loop holds the project (then
    the loop does it before its next sprint). True when folded here."""
    from autosae.errors import AutosaeError
    from autosae.sprint import gitops, ideas
    from autosae.sprint.project import ProjectLock

    try:
        with ProjectLock(project, "autosae idea"):
            ideas.fold(project, gitops.open_repo(project.root))
            return True
    except AutosaeError:  # a loop or a sprint holds the project
        return False


@app.command("add")
def add(
    text: Annotated[str, typer.Argument(help="The idea, in a sentence or a paragraph.")],
    priority: Annotated[bool, typer.Option("--priority", help="Run it before the ideas queued without.")] = False,
    project_dir: ProjectDir = None,
) -> None:
    """Queue an idea: the next sprint that starts runs it (a running loop's next one included)."""
    from autosae.sprint import ideas
    from autosae.sprint.project import Project

    project = Project.find(project_dir)
    n = ideas.request_add(project, text, priority=priority)
    emit("idea", n)
    emit("queued", "committed to ideas.jsonl" if _fold_if_free(project) else "the running loop takes it next")


@app.command("list")
def list_ideas(project_dir: ProjectDir = None) -> None:
    """The queue: every idea with its number, who added it, and what became of it."""
    from autosae.sprint import ideas
    from autosae.sprint.project import Project

    project = Project.find(project_dir)
    _fold_if_free(project)
    listed = {i.n: i for i in ideas.read_queue(project)}
    waiting = [
        ideas.QueuedIdea.from_dict({**r, "status": "queued (waiting for the loop)"})
        for _, r in ideas.waiting_requests(project)
        if r.get("op") == "add" and r.get("n") not in listed
    ]
    rows = sorted([*listed.values(), *waiting], key=lambda i: i.n)
    if not rows:
        typer.echo('no ideas queued (`autosae idea add "..."` queues one)')
        return
    for i in rows:
        what = i.status + (f": sprint {i.sprint}" if i.sprint else "") + (f" ({i.reason})" if i.reason else "")
        mark = " [priority]" if i.priority else ""
        kind = "" if i.kind == "idea" else f"[{i.kind}] "
        typer.echo(
            f"{i.n:>3}. {kind}{i.text}{mark}\n     added by {i.added_by} from {i.source} at {i.added_at}; {what}"
        )


@app.command("drop")
def drop(
    n: Annotated[int, typer.Argument(help="The idea's number (see `autosae idea list`).")],
    project_dir: ProjectDir = None,
) -> None:
    """Drop a queued idea before a sprint takes it."""
    from autosae.sprint import ideas
    from autosae.sprint.project import Project

    project = Project.find(project_dir)
    ideas.request_drop(project, n)
    emit("dropped", n if _fold_if_free(project) else f"{n} (the running loop drops it before its next sprint)")
