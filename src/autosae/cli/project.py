"""`autosae init`, `status`, `leaderboard` and `show`: set up a project and read its record."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from autosae.cli.common import ProjectDir, emit
from autosae.errors import AutosaeError


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the research project (created if missing).")] = Path("."),
    profile: Annotated[str, typer.Option("--profile", "-p", help="Benchmark profile written into TASK.md.")] = "tiny",
    backend: Annotated[
        str | None, typer.Option(help="Agent backend written into TASK.md (default: automatic).")
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per counted run.")] = 3,
    force: Annotated[bool, typer.Option(help="Replace an existing TASK.md.")] = False,
) -> None:
    """Make or adopt a git repository for research: TASK.md, sprints/, reports/, .gitignore."""
    from autosae.bench.profiles import get_profile
    from autosae.sprint.project import init_project

    get_profile(profile)  # a clear error before anything is written
    project, done = init_project(directory, profile=profile, backend=backend, seeds=seeds, force=force)
    for line in done:
        typer.echo(line)
    typer.echo(f'next: edit {project.task_path}, then `autosae loop` (or `autosae sprint --idea "..."`)')


def _elapsed(since: str) -> str:
    start = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    s = int((datetime.now(timezone.utc) - start).total_seconds())
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def status(project_dir: ProjectDir = None) -> None:
    """The current sprint, its phase and elapsed time, the loop, and the best so far."""
    from autosae.report import fmt_pm
    from autosae.sprint.ledger import best_row, read_ledger, token_totals
    from autosae.sprint.project import Project, ProjectLock
    from autosae.sprint.state import StateStore

    project = Project.find(project_dir)
    emit("project", project.root)
    holder = ProjectLock(project, "status").live_holder()
    running = holder is not None
    emit("running", f"{holder['command']} (pid {holder['pid']}, since {holder['started']})" if running else "no")
    if project.stop_path.exists():
        emit("stop", "requested: the loop stops after its current sprint")
    for state in StateStore(project.state_dir).unfinished():
        since = state.phase_started.get(state.phase, state.started)
        emit("current", state.id)
        emit("title", state.title)
        emit("phase", f"{state.phase} (for {_elapsed(since)}; sprint started {_elapsed(state.started)} ago)")
        emit("agent", f"{state.backend}, ${state.cost_usd:.2f} so far{_tokens(state.tokens)}")
        emit(
            "sandboxed",
            {True: "yes", False: "NO: the agent and the variant run without the OS sandbox"}.get(
                state.sandboxed, "not yet known"
            ),
        )
        if not running:
            emit("resume", "interrupted: `autosae resume` continues it from this phase")
    rows = read_ledger(project.ledger_path)
    emit(
        "sprints",
        f"{len(rows)} recorded ({sum(r['verdict'] == 'improved' for r in rows)} improved, "
        f"{sum(r['verdict'] == 'failed' for r in rows)} failed), "
        f"cost ${sum(r.get('cost_usd') or 0 for r in rows):.2f}" + _tokens(token_totals(rows)),
    )
    refused = project.refused_path
    count = len(refused.read_text().splitlines()) if refused.is_file() else 0
    emit(
        "refused repeats",
        f"{count} proposals refused as repeats of past sprints" + (f" (see {refused})" if count else ""),
    )
    from autosae.sprint.notebook import NOTEBOOK, count_entries, read

    text, problem = read(project.root)
    emit("notebook", problem or f"{count_entries(text)} entries in {NOTEBOOK}")
    explored = sum(bool(r.get("explore")) for r in rows)
    emit("exploration", f"{explored} of {len(rows)} sprints explored far from the best")
    from autosae.config import load_task
    from autosae.errors import AutosaeError
    from autosae.sprint import ladder

    try:
        emit("stuck", ladder.status_line(project, load_task(project.task_path).config, rows))
    except AutosaeError as exc:
        emit("stuck", f"not known: {exc}")
    bare = [r["id"] for r in rows if r.get("sandboxed") is False]
    emit(
        "unsandboxed",
        f"{len(bare)} of {len(rows)} sprints ran without the OS sandbox"
        + (f" ({', '.join(bare[-3:])}{', ...' if len(bare) > 3 else ''})" if bare else ""),
    )
    from autosae.sandbox import availability

    emit("sandbox", availability()[1])
    if rows:
        emit("latest", latest_line(rows[-1]))
    best = best_row(rows, rows[-1]["setting"]) if rows else None
    if best:
        obj = best.get("objective", "f1")
        emit("best", f"{best['id']}: {obj.upper()} {fmt_pm(best.get(obj), 4)} ({best['title']})")
    else:
        emit("best", "the Matryoshka baseline (no sprint has improved on it yet)")


def latest_line(row: dict) -> str:
    """The last recorded sprint in one line: verdict, score, difference, p and noise floor (a
    single seed's std and noise floor are "not measurable (n = 1)", never 0)."""
    from autosae.report.format import fmt_delta, fmt_p, fmt_pm, fmt_row_floor

    obj = row.get("objective", "f1")
    return (
        f"{row['id']}: {row.get('verdict')}, {obj.upper()} {fmt_pm(row.get(obj), 4)}, "
        f"Δ parent {fmt_delta(row.get('delta_parent'), 4)}, p {fmt_p(row.get('p_value'))}, "
        f"noise floor {fmt_row_floor(row)}"
    )


def _tokens(tokens: dict | None) -> str:
    tokens = tokens or {}
    if not any(tokens.values()):
        return ""
    return (
        f" ({tokens.get('input_tokens', 0):,} input, {tokens.get('output_tokens', 0):,} output, "
        f"{tokens.get('cache_read_input_tokens', 0):,} cached tokens)"
    )


def leaderboard(
    project_dir: ProjectDir = None,
    all_settings: Annotated[
        bool, typer.Option("--all", help="Include sprints from other models or constraints.")
    ] = False,
) -> None:
    """Every sprint's idea, F1 and MCC (mean ± std), verdict and cost, best first."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from autosae.report import fmt_pm, leaderboard_rows
    from autosae.report.escape import one_line
    from autosae.sprint.ledger import in_setting, read_ledger, token_totals
    from autosae.sprint.project import Project
    from autosae.transfer.record import leaderboard_mark

    project = Project.find(project_dir)
    rows = read_ledger(project.ledger_path)
    if not rows:
        typer.echo("no sprints recorded yet: run `autosae sprint` or `autosae loop`")
        return
    if not all_settings:
        rows = in_setting(rows, rows[-1]["setting"])
    objective = rows[-1].get("objective", "f1")
    table = Table(
        title=f"autosae leaderboard ({rows[-1]['profile']}, by {objective.upper()})",
        caption=f"agent cost ${sum(r.get('cost_usd') or 0 for r in rows):.2f}" + _tokens(token_totals(rows)),
    )
    for col in ("#", "sprint", "idea", "F1", "MCC", "verdict", "Δ parent", "LLM", "cost"):
        table.add_column(col, justify="right" if col in ("#", "F1", "MCC", "Δ parent", "cost") else "left")
    for i, row in enumerate(leaderboard_rows(rows, objective), 1):
        delta = row.get("delta_parent")
        verdict = row["verdict"] + (" (no-op)" if row.get("noop") else "") + (" ★" if row.get("new_best") else "")
        table.add_row(
            str(i),
            row["id"],
            Text(one_line(row.get("title", ""))),  # the agent's: never read as rich markup
            fmt_pm(row.get("f1"), 4),
            fmt_pm(row.get("mcc"), 4),
            verdict,
            "—" if delta is None else f"{delta:+.4f}",
            leaderboard_mark(project.sprints_dir / row["id"]),
            f"${row.get('cost_usd') or 0:.2f}",
        )
    Console(width=200).print(table)
    typer.echo(f"full report: {project.reports_dir / 'leaderboard.md'}")


def show(
    sprint_id: Annotated[str, typer.Argument(help="Sprint id, or any unique part of it.")],
    project_dir: ProjectDir = None,
) -> None:
    """One sprint: idea, hypothesis, verdict, scores, branch and report."""
    from autosae.report import fmt_pm
    from autosae.report.format import fmt_row_floor
    from autosae.sprint.ledger import read_ledger
    from autosae.sprint.project import Project
    from autosae.sprint.state import StateStore
    from autosae.sprint.verification import resolve_id

    project = Project.find(project_dir)
    rows = {r["id"]: r for r in read_ledger(project.ledger_path)}
    states = {s.id: s for s in StateStore(project.state_dir).all()}
    sid = resolve_id(sprint_id, {*rows, *states})
    row, state = rows.get(sid), states.get(sid)
    src = row or {}
    emit("id", sid)
    emit("title", src.get("title") or state.title)
    emit("idea", src.get("idea") or state.idea)
    if state:
        emit("hypothesis", state.hypothesis)
    emit("parent", src.get("parent") or (state.parent if state else "—"))
    if row is None:
        emit("phase", f"{state.phase} (not recorded yet)")
    else:
        emit(
            "verdict",
            row["verdict"] + (" (no-op)" if row.get("noop") else "") + (" — new best" if row.get("new_best") else ""),
        )
        emit("reason", row.get("reason") or "")
        emit("f1", fmt_pm(row.get("f1"), 4))
        emit("mcc", fmt_pm(row.get("mcc"), 4))
        emit("delta_parent", "—" if row.get("delta_parent") is None else f"{row['delta_parent']:+.4f}")
        emit("p_value", "—" if row.get("p_value") is None else f"{row['p_value']:.3g}")
        emit("noise_floor", fmt_row_floor(row))
        emit("cost_usd", f"{row.get('cost_usd') or 0:.2f}")
        if row.get("tokens"):
            emit(
                "tokens",
                ", ".join(f"{k.removesuffix('_tokens').replace('_input', '')} {v}" for k, v in row["tokens"].items()),
            )
        emit("report", project.sprints_dir / sid / "report.md")
    emit("branch", src.get("branch") or state.branch)


def report(
    sprint_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Sprint to re-render (default: the latest).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Re-render every recorded sprint.")] = False,
    digest: Annotated[
        bool, typer.Option("--digest", help="Render only the leaderboard and the morning digest (reports/digest.md).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="The digest's night starts here (ISO time, UTC unless it says; default: 24 h before the latest sprint)."
        ),
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Render recorded sprints' report.md and report.pdf again, and the leaderboard and the
    morning digest, from their results; the new files are committed (so a template change
    reaches old sprints)."""
    from autosae.report.digest import parse_time
    from autosae.report.rerender import rerender
    from autosae.sprint.ledger import read_ledger
    from autosae.sprint.project import Project, ProjectLock
    from autosae.sprint.verification import resolve_id

    if sum(map(bool, (sprint_id, all_, digest))) > 1:
        raise AutosaeError("give one of a sprint ID, --all or --digest")
    start = parse_time(since) if since else None
    if since and start is None:
        raise AutosaeError(f"--since {since[:60]!r} is not an ISO time (for example 2026-01-31T22:00:00Z)")
    project = Project.find(project_dir)
    with ProjectLock(project, "autosae report"):
        if digest:
            ids = []
        elif all_:
            ids = None
        else:
            rows = read_ledger(project.ledger_path)
            if sprint_id:
                ids = [resolve_id(sprint_id, {r["id"] for r in rows})]
            else:
                ids = [rows[-1]["id"]] if rows else None
        done = rerender(project, ids, log=lambda line: emit("rendered", line), since=start)
    emit("sprints", len(done))
    emit("leaderboard", project.reports_dir / "leaderboard.md")
    emit("progress", project.reports_dir / "progress.pdf")
    emit("digest", project.reports_dir / "digest.md")


def verify(
    sprint_id: Annotated[str, typer.Argument(help="Sprint id, or any unique part of it.")],
    project_dir: ProjectDir = None,
) -> None:
    """Train a recorded sprint's variant and its parent's on the held-out suite (TASK.md's
    heldout settings), record the outcome in its verdict.json, ledger row and report, and
    commit. A sprint the held-out models do not confirm is no longer the new best."""
    from autosae.report import fmt_pm
    from autosae.sprint.engine import Engine
    from autosae.sprint.project import Project, ProjectLock
    from autosae.sprint.verification import verify_recorded

    project = Project.find(project_dir)
    with ProjectLock(project, "autosae verify"):
        engine = Engine(project, status=typer.echo, detail=lambda line: typer.echo(line, err=True))
        sid, out = verify_recorded(engine, sprint_id)
    for m in out["models"]:
        emit(f"held-out {m['name']}", f"F1 {fmt_pm(m['f1'], 4)} vs parent {fmt_pm(m['parent_f1'], 4)}, {m['verdict']}")
    emit("held-out outcome", out["outcome"])
    emit("confirmed", "yes" if out["confirmed"] else "no")
    emit("reason", out["reason"])
    emit("report", project.sprints_dir / sid / "report.md")
