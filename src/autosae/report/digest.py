"""reports/digest.md, the morning digest: what the night's sprints came to, as a reader
wants it over coffee. The night's lineage tree (reports/lineage.png, also a page of
progress.pdf), a table of the night's sprints, the best recipe with its ablation table, what
the notebook learned and where the loop got stuck.

**The night** is every sprint that finished in the NIGHT_HOURS before the latest recorded
sprint finished (or since `since`, `autosae report --digest --since ISO`). It is anchored on
the records, not on the clock, so `autosae report --all` renders the same digest again.
Rendered with the leaderboard after every sprint, from the ledger and the best sprint's
records: a few file reads and, where reports/notebook.md exists, one `git log`.
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from autosae.bounded import read_prefix
from autosae.sprint.ledger import best_row
from autosae.templating import render

NIGHT_HOURS = 24
NOTEBOOK = "reports/notebook.md"
NOTEBOOK_LINES = 40
"""The most lines of the notebook's night that the digest shows (the rest: see the file)."""
ABLATION_ROWS, ABLATION_COLUMNS = 30, 8
RECORD_BYTES = 4 << 20
"""The most of a sprint.json or verdict.json the digest reads."""


def parse_time(text: object) -> datetime | None:
    """An ISO time as the records write it (`2026-01-01T03:00:00Z`), None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def row_time(row: dict) -> datetime | None:
    return parse_time(row.get("finished")) or parse_time(row.get("started"))


def night_start(rows: list[dict], since: datetime | None = None, hours: float = NIGHT_HOURS) -> datetime | None:
    """Where the night begins: `since`, or `hours` before the latest recorded sprint finished
    (None: no sprint records a time, and every sprint is the night's)."""
    if since is not None:
        return since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    times = [t for t in map(row_time, rows) if t is not None]
    return max(times) - timedelta(hours=hours) if times else None


def night_rows(rows: list[dict], start: datetime | None) -> list[dict]:
    """The sprints of the night, in order; one that records no time is counted in it."""
    return [r for r in rows if start is None or (row_time(r) or start) >= start]


def _read(path: Path) -> dict:
    try:
        found = read_prefix(path, RECORD_BYTES)
        data = None if found.cut else json.loads(found.data)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def ablation_table(record: object) -> dict | None:
    """An ablation as {"columns", "rows"} (every cell a string, bounded), from a list of
    objects or {"rows": [...]}; None when there is none; {"unreadable": True} when it is in a
    form the digest cannot show."""
    if record is None:
        return None
    rows = record.get("rows") if isinstance(record, dict) else record
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows) or not rows:
        return {"unreadable": True}
    if isinstance(record, dict) and all("part" in r for r in rows):  # the ablating phase's own table
        return ablation_phase_table(record)
    columns: list[str] = []
    for r in rows:
        columns += [str(k) for k in r if str(k) not in columns]
    columns = columns[:ABLATION_COLUMNS]

    def cell(value: object) -> str:
        if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
            std = value.get("std")
            return f"{value['mean']:.4f}" + (f" ± {std:.4f}" if isinstance(std, (int, float)) else "")
        if isinstance(value, float):
            return f"{value:.4g}"
        return "—" if value is None else str(value)[:200]

    return {
        "columns": columns,
        "rows": [[cell(r.get(c)) for c in columns] for r in rows[:ABLATION_ROWS]],
        "more": max(0, len(rows) - ABLATION_ROWS),
    }


def ablation_phase_table(record: dict) -> dict:
    """The ablating phase's table (autosae.sprint.ablation) as report.md shows it: Δ signed,
    p as a p, the class, and each ablated variant's F1 and MCC."""
    from autosae.report.content import ablation_rows
    from autosae.report.format import fmt_delta, fmt_p, fmt_pm

    shown = ablation_rows({"ablation": record}) or {"rows": []}
    objective = str(record.get("objective") or "f1").upper()[:8]

    def number(value) -> float | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else None

    def stat(value) -> dict | None:  # a {mean, std, n} of numbers, else nothing (a malformed record)
        if not isinstance(value, dict) or number(value.get("mean")) is None:
            return None
        n = value.get("n")
        return {"mean": number(value["mean"]), "std": number(value.get("std")), "n": n if isinstance(n, int) else 0}

    return {
        "columns": ["part", "what", f"Δ {objective} (full − ablated)", "p", "class", "F1 without", "MCC without"],
        "rows": [
            [str(r["part"])[:40], str(r["what"])[:200], fmt_delta(number(r["delta"]), 4), fmt_p(number(r["p"]))]
            + [str(r["class"])[:40]]
            + [fmt_pm(stat(x.get(m)), 4) for m in ("f1", "mcc")]
            for r, x in zip(shown["rows"], record["rows"])
        ],
        "more": max(0, len(record["rows"]) - len(shown["rows"])),
        "note": str(shown.get("note", "")),
    }


def loop_end(root: Path, night: list[dict], start: datetime | None) -> str | None:
    """Why the last loop ended (.autosae/loop-end.json, sprint.loop.record_end), where it ended
    tonight after the night's last sprint; else None."""
    ended = _read(root / ".autosae" / "loop-end.json")
    at = parse_time(ended.get("at"))
    last = max((t for t in map(row_time, night) if t is not None), default=None)
    if at is None or not isinstance(ended.get("reason"), str) or (last and at < last) or (start and at < start):
        return None
    return f"{ended['reason']} (at {at.strftime('%Y-%m-%d %H:%M UTC')})"


def notebook_lines(root: Path, start: datetime | None) -> list[str] | None:
    """The entries (bullet lines) added to reports/notebook.md on this branch since `start`
    (None: no notebook): not its header or headings, which `autosae init` writes. Bounded to
    NOTEBOOK_LINES, the last ones kept."""
    if not (root / NOTEBOOK).is_file():
        return None
    args = ["git", "log", "--format=", "-p", "--no-color", "--no-ext-diff", "--reverse"]
    if start is not None:
        args.append(f"--since={start.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    try:
        out = subprocess.run(
            [*args, "--", NOTEBOOK], cwd=root, capture_output=True, text=True, errors="replace", timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    added = [line[1:] for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return [line for line in added if line.lstrip().startswith(("- ", "* "))][-NOTEBOOK_LINES:]


def stuck_events(night: list[dict]) -> list[str]:
    """What the records say about the loop being stuck: ladder events (a `ladder` key on a
    ledger row: a string, an object or a list of them), each as one line."""
    lines = []
    for row in night:
        ladder = row.get("ladder")
        for event in ladder if isinstance(ladder, list) else [ladder] if ladder else []:
            if isinstance(event, dict):
                text = ", ".join(f"{k}: {v}" for k, v in list(event.items())[:6])
            else:
                text = str(event)
            lines.append(f"{row.get('id')}: {text}"[:300])
    return lines[:30]


def ladder_lines(root: Path, start: datetime | None) -> list[tuple[str, str | None]]:
    """The stuck ladder's events tonight (.autosae/ladder.json), each as (one line, the stop
    reason where the event is the ladder's stop, else None)."""
    from autosae.jsonio import read_json

    try:
        data = read_json(Path(root) / ".autosae" / "ladder.json")
    except (OSError, ValueError):
        return []
    events = data.get("events") if isinstance(data, dict) and isinstance(data.get("events"), list) else []
    since = start.strftime("%Y-%m-%dT%H:%M:%S") if start else ""
    out = []
    for e in events:
        if not isinstance(e, dict) or str(e.get("at", "")) < since:
            continue
        rung, reason = str(e.get("rung", "?")), str(e.get("reason", ""))
        line = f"after sprint {e.get('sprint_count')}: rung {rung}, {reason}; {e.get('outcome', '')}"[:300]
        out.append((line, f"stuck: the ladder reached its stop ({reason})" if rung == "stop" else None))
    return out[-30:]


def longest_dry_run(night: list[dict]) -> int:
    """The most sprints in a row without a new best tonight."""
    run = best = 0
    for row in night:
        run = 0 if row.get("new_best") else run + 1
        best = max(best, run)
    return best


def digest_content(root: Path, rows: list[dict], objective: str = "f1", since: datetime | None = None) -> dict:
    """What digest.md shows, from the ledger `rows` (one setting, in order) and the project's files."""
    start = night_start(rows, since)
    night = night_rows(rows, start)
    numbers = {r.get("id"): n for n, r in enumerate(rows, 1)}
    best = best_row(rows, rows[-1].get("setting")) if rows else None
    best_info = None
    if best is not None:
        folder = root / "sprints" / str(best["id"])
        verdict, record = _read(folder / "verdict.json"), _read(folder / "sprint.json")
        ablation = verdict.get("ablation", record.get("ablation"))
        best_info = {
            "row": best,
            "number": numbers.get(best["id"]),
            "conclusion": best.get("conclusion_summary") or record.get("conclusion") or "",
            "ablation": ablation_table(ablation),
        }
    stops = [r.get("stop") for r in night if r.get("stop")]
    ladder_events = ladder_lines(root, start)
    if ladder_events and ladder_events[-1][1]:  # the ladder's stop came after the last sprint
        stops.append(ladder_events[-1][1])
    if (end := loop_end(root, night, start)) is not None:
        stops.append(end)
    return {
        "start": start.strftime("%Y-%m-%d %H:%M UTC") if start else None,
        "since_given": since is not None,
        "hours": NIGHT_HOURS,
        "night": [dict(r, number=numbers.get(r.get("id"))) for r in night],
        "total": len(rows),
        "objective": objective,
        "obj_name": objective.upper(),
        "counts": {
            v: sum(r.get("verdict") == v for r in night)
            for v in ("improved", "worse", "no change", "inconclusive", "failed")
        },
        "new_bests": sum(bool(r.get("new_best")) for r in night),
        "explore": sum(bool(r.get("explore")) for r in night),
        "dry": longest_dry_run(night),
        "best": best_info,
        "notebook": notebook_lines(root, start),
        "notebook_limit": NOTEBOOK_LINES,
        "ladder": (stuck_events(night) + [line for line, _ in ladder_events])[-30:],
        "stop": stops[-1] if stops else None,
    }


def render_digest(root: Path, rows: list[dict], objective: str = "f1", since: datetime | None = None) -> str:
    return render("digest.md.j2", root, **digest_content(root, rows, objective, since))
