"""`autosae sprint`, `loop`, `resume` and `stop`: run research, one sprint or many."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Annotated

import typer

from autosae import progress
from autosae.cli.common import Gpus, ProjectDir, emit
from autosae.errors import AutosaeError
from autosae.harness.slots import pool_for_gpus

Backend = Annotated[
    str | None,
    typer.Option(help="Agent backend: anthropic, claude_code, recipe, scripted (default: TASK.md's, else automatic)."),
]
Model = Annotated[str | None, typer.Option(help="Model for the LLM backends (default: TASK.md's agent.model).")]
MaxTurns = Annotated[
    int | None, typer.Option(min=1, help="Most model calls per phase (default: TASK.md's agent.max_turns).")
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", help="Benchmark profile (default: TASK.md's).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Also print the harness's progress lines.")]


def _status(line: str) -> None:
    """A phase line: above the updating line on a terminal (autosae.progress), else printed."""
    live = progress.active()
    if live is not None:
        live.status(line)
    else:
        typer.echo(line)


def _detail(project, verbose: bool):
    os.environ.setdefault("TQDM_DISABLE", "1")  # model builds log to harness.log, not progress bars
    log = project.private / "harness.log"

    def write(line: str) -> None:
        project.private.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(line + "\n")
        live = progress.active()
        if live is not None:
            live.detail(line)  # a seed's progress, shown on the updating line
        if verbose:
            print(line, file=sys.stderr, flush=True)

    return write


def _interrupted(engine_store) -> None:
    for state in engine_store.unfinished():
        print(
            f"interrupted: sprint {state.id} is left in phase {state.phase}; `autosae resume` continues it",
            file=sys.stderr,
        )


@contextmanager
def _locked_engine(project_dir, command: str, verbose: bool, gpus: str | None = None):
    """The project, locked for `command`, and its engine; Ctrl-C says what is left to resume."""
    from autosae.sprint.engine import Engine
    from autosae.sprint.project import Project, ProjectLock

    project = Project.find(project_dir)
    with progress.LiveLine(), ProjectLock(project, command, log=_status):
        engine = Engine(project, status=_status, detail=_detail(project, verbose), pool=pool_for_gpus(gpus))
        try:
            yield project, engine
        except KeyboardInterrupt:
            _interrupted(engine.store)
            raise


def _summary(project, state) -> None:
    from autosae.report import fmt_pm
    from autosae.sprint.ledger import read_ledger

    row = next((r for r in read_ledger(project.ledger_path) if r["id"] == state.id), {})
    emit("sprint", state.id)
    emit("verdict", (row.get("verdict") or "?") + (" (no-op)" if row.get("noop") else ""))
    emit("f1", fmt_pm(row.get("f1"), 4))
    emit("mcc", fmt_pm(row.get("mcc"), 4))
    emit("report", project.sprints_dir / state.id / "report.md")


def sprint(
    idea: Annotated[str | None, typer.Option(help="The idea to try (default: the agent proposes one).")] = None,
    backend: Backend = None,
    profile: ProfileOpt = None,
    allow_duplicate: Annotated[bool, typer.Option(help="Run --idea even if it repeats a past sprint.")] = False,
    model: Model = None,
    max_turns: MaxTurns = None,
    gpus: Gpus = None,
    project_dir: ProjectDir = None,
    verbose: Verbose = False,
) -> int:
    """Run one sprint: ideation, branch and worktree, implement, counted run, verdict, report, record."""
    from autosae.sprint.ideation import SprintRequest

    with _locked_engine(project_dir, "autosae sprint", verbose, gpus) as (project, engine):
        pending = engine.store.unfinished()
        if pending:
            raise AutosaeError(
                f"sprint {pending[0].id} was interrupted in phase {pending[0].phase}; "
                f"`autosae resume` finishes it (or `autosae resume --abandon` gives it up)"
            )
        state = engine.run(engine.start(SprintRequest(idea, backend, profile, allow_duplicate, model, max_turns)))
    _summary(project, state)
    return 3 if state.verdict and state.verdict["verdict"] == "failed" else 0


def resume(
    project_dir: ProjectDir = None,
    abandon: Annotated[bool, typer.Option(help="Give the interrupted sprint up instead (its branch is kept).")] = False,
    gpus: Gpus = None,
    verbose: Verbose = False,
) -> None:
    """Continue an interrupted sprint from its last completed phase."""
    with _locked_engine(project_dir, "autosae resume", verbose, gpus) as (project, engine):
        pending = engine.store.unfinished()
        if not pending:
            typer.echo("nothing to resume: no sprint was interrupted")
            return
        for state in pending:
            if abandon:
                engine.abandon(state)
                typer.echo(f"abandoned {state.id} (branch {state.branch} is kept)")
                continue
            typer.echo(f"resuming {state.id} from phase {state.phase}")
            _summary(project, engine.run(state))


def loop(
    max_sprints: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Start at most this many sprints (a resumed sprint counts; an attempt that starts none does not).",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Start no sprint after this time: HH:MM or an ISO date-time.")
    ] = None,
    budget_usd: Annotated[
        float | None, typer.Option(min=0, help="Stop once this loop has spent this much on the agent.")
    ] = None,
    backend: Backend = None,
    profile: ProfileOpt = None,
    model: Model = None,
    max_turns: MaxTurns = None,
    parallel: Annotated[
        int, typer.Option(min=1, help="Sprints at once, each in its own worktree, sharing the device slots.")
    ] = 1,
    gpus: Gpus = None,
    slack: Annotated[
        bool, typer.Option("--slack", help="Run the project's Slack app beside the loop (see `autosae slack`).")
    ] = False,
    project_dir: ProjectDir = None,
    verbose: Verbose = False,
) -> None:
    """Run sprints until a limit, `autosae stop`, Ctrl-C, or too many failures in a row."""
    from autosae.cli.slack import beside_the_loop
    from autosae.sprint.ideation import SprintRequest
    from autosae.sprint.loop import LoopLimits, parse_until, run_loop
    from autosae.sprint.project import Project
    from autosae.sprint.state import StateStore

    project = Project.find(project_dir)
    limits = LoopLimits(max_sprints, parse_until(until) if until else None, budget_usd)
    try:
        with beside_the_loop(project, slack), progress.LiveLine():
            outcome = run_loop(
                project,
                limits,
                SprintRequest(backend=backend, profile=profile, model=model, max_turns=max_turns),
                status=_status,
                detail=_detail(project, verbose),
                parallel=parallel,
                pool=pool_for_gpus(gpus),
            )
    except KeyboardInterrupt:
        _interrupted(StateStore(project.state_dir))
        raise
    emit("loop", f"stopped after {outcome.sprints} sprints: {outcome.reason}")
    emit("leaderboard", project.reports_dir / "leaderboard.md")


def stop(project_dir: ProjectDir = None) -> None:
    """Ask the running loop to stop after its current sprint."""
    from autosae.sprint.ideas import who
    from autosae.sprint.loop import request_stop
    from autosae.sprint.project import Project

    project = Project.find(project_dir)
    holder = request_stop(project, who(project))
    if holder is None:
        typer.echo("no loop is running in this project")
        return
    typer.echo(f"stop requested: {holder} stops after its current sprint")
