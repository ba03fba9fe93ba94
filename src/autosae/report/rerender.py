"""`autosae report`: render recorded sprints' reports again, from what their folders on the
main branch hold (results.json, verdict.json, sprint.json, curves.json), and then the
leaderboard; so that a template change (autosae's, or the project's own in templates/)
reaches old sprints. The new files are committed."""

from __future__ import annotations

import re

from autosae.errors import AutosaeError
from autosae.jsonio import read_json
from autosae.report.leaderboard import write_leaderboard
from autosae.report.record import read_curves
from autosae.report.sprint import write_report
from autosae.sprint import gitops
from autosae.sprint.ledger import in_setting, read_ledger
from autosae.sprint.project import Project

RECORD_KEYS = (
    "id",
    "title",
    "idea",
    "hypothesis",
    "plan",
    "parent",
    "backend",
    "profile",
    "objective",
    "seeds",
    "started",
    "finished",
    "cost_usd",
    "tokens",
    "branch",
    "config",
    "stop",
    "queued_idea",
)


def _old_conclusion(report_md: str) -> str | None:
    """The conclusion from a report rendered before sprint.json existed."""
    found = re.search(r"^## Conclusions[^\n]*\n(.*?)(?=^## |\Z)", report_md, re.S | re.M)
    return found.group(1).strip() if found else None


def sprint_record(project: Project, row: dict) -> dict:
    """sprint.json, or for a sprint recorded before it existed, what the ledger row and the
    old report still say (the rest shows as missing)."""
    folder = project.sprints_dir / row["id"]
    record = read_json(folder / "sprint.json")
    if record is None:
        record = {k: row.get(k) for k in RECORD_KEYS}
        try:
            record["conclusion"] = _old_conclusion((folder / "report.md").read_text())
        except OSError:
            record["conclusion"] = None
    return record


def rerender(project: Project, ids: list[str] | None, log=print, since=None) -> list[str]:
    """Re-render the given sprints (all when None; [] for none) and the leaderboard with the
    morning digest (its night from `since` where given); returns the ids done."""
    rows = read_ledger(project.ledger_path)
    by_id = {r["id"]: r for r in rows}
    unknown = [i for i in ids or [] if i not in by_id]
    if unknown:
        raise AutosaeError(
            f"no recorded sprint {unknown[0]!r} in {project.ledger_path} "
            f"(`autosae leaderboard` lists the recorded ones)"
        )
    if not rows:
        raise AutosaeError("no sprints are recorded yet: nothing to render")
    done, paths = [], []
    for sid in [r["id"] for r in rows] if ids is None else ids:
        folder = project.sprints_dir / sid
        verdict = read_json(folder / "verdict.json")
        if verdict is None:
            raise AutosaeError(
                f"sprint {sid}: {folder / 'verdict.json'} is missing or unreadable; its report cannot be rendered"
            )
        results = read_json(folder / "results.json")
        curves = read_json(folder / "curves.json")
        if curves is None:  # recorded before curves.json: the local run folder may still have them
            curves = read_curves(project.runs_dir / sid)
        write_report(folder, sprint_record(project, by_id[sid]), results, verdict, curves, project.root)
        log(f"{sid}: {folder / 'report.md'}, report.pdf")
        done.append(sid)
        paths.append(f"sprints/{sid}")
    last = rows[-1]
    latest = read_json(project.sprints_dir / last["id"] / "verdict.json") or {}
    written = write_leaderboard(
        project.reports_dir,
        in_setting(rows, last.get("setting")),
        latest.get("baselines"),
        last.get("objective") or "f1",
        since,
    )
    repo = gitops.open_repo(project.root)
    names = ", ".join(done) if len(done) <= 3 else f"{len(done)} sprints"
    gitops.commit_paths(
        repo,
        f"report: re-rendered {names or 'no sprint'}, the leaderboard and the digest",
        [*paths, *(p.relative_to(project.root).as_posix() for p in written)],
    )
    return done
