"""The ledger: reports/ledger.jsonl on the main branch, one row per finished sprint.

It is the project's research record and the only input for "the best so far", the parent of
a new idea and the past that ideation sees. Rows are written by the orchestrator only.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from autosae.agents.base import PastSprint
from autosae.errors import AutosaeError
from autosae.jsonio import write_text
from autosae.sprint.verdict import Reference

DUPLICATE_RATIO = 0.9
"""Ideas whose normalised text matches a past one this closely are refused as repeats."""


def parse_ledger(text: str, where: str = "reports/ledger.jsonl") -> list[dict]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise AutosaeError(f"{where} line {n}: not a JSON object ({exc.msg}); fix or remove the line") from None
    return rows


def read_ledger(path: Path) -> list[dict]:
    try:
        return parse_ledger(path.read_text(), str(path))
    except FileNotFoundError:
        return []


def dump_row(row: dict) -> str:
    """One ledger line: the row's JSON with sorted keys (so rows diff well in git)."""
    return json.dumps(row, sort_keys=True, default=float) + "\n"


def write_ledger(path: Path, rows: list[dict]) -> None:
    """Replace the ledger with `rows`, atomically and durably: it is the project's record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(dump_row(r) for r in rows), durable=True)


def in_setting(rows: list[dict], setting: str) -> list[dict]:
    return [r for r in rows if r.get("setting") == setting]


def best_row(rows: list[dict], setting: str) -> dict | None:
    """The latest new best in this setting: each one beat its parent significantly and had a
    higher mean than every best before it."""
    best = None
    for row in in_setting(rows, setting):
        if row.get("new_best"):
            best = row
    return best


def reference(row: dict) -> Reference:
    return Reference(row["id"], row.get("per_seed") or {}, row.get("variant_sha256"))


PAST_METRICS = ("f1", "mcc", "precision", "recall", "dead_latents")
"""The summaries a ledger row keeps and the propose phase shows for each past sprint."""
SUMMARY_CHARS = 160
"""The most characters of a past sprint's one-line summary in the propose prompt."""


def one_line(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The first sentence of `text` on one line, cut at `limit` characters."""
    flat = " ".join((text or "").split())
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat, maxsplit=1)[0]  # "e.g. the" is one sentence
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


RECORD_BYTES = 8 << 20
"""The most of a committed sprint.json that an old sprint's lessons are read from."""


def recorded_lessons(row: dict, sprints_dir: Path | None) -> tuple[str, str, str]:
    """(conclusion, next step, pilot notes) of a sprint: its ledger row's, or for a row written
    before they were kept there, read from its committed sprint.json (bounded; "" where none)."""
    from autosae.report.evidence import CONCLUSION_CHARS, NEXT_STEP_CHARS, PILOT_CHARS, conclusion_parts, first_sentence

    found = (row.get("conclusion_summary"), row.get("next_step"), row.get("pilot_notes"))
    if any(isinstance(v, str) for v in found) or sprints_dir is None or row.get("verdict") == "in progress":
        limits = (CONCLUSION_CHARS, NEXT_STEP_CHARS, PILOT_CHARS)
        return tuple(first_sentence(v, n) if isinstance(v, str) else "" for v, n in zip(found, limits))
    from autosae.bounded import read_prefix
    from autosae.report.evidence import pilot_summary

    try:
        prefix = read_prefix(Path(sprints_dir) / str(row.get("id")) / "sprint.json", RECORD_BYTES)
        record = None if prefix.cut else json.loads(prefix.data)
    except (OSError, ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        return "", "", ""
    return (*conclusion_parts(record.get("conclusion")), pilot_summary(record.get("amendments")))


def past_sprint(row: dict, sprints_dir: Path | None = None) -> PastSprint:
    """A ledger row as agents see it; rows written before a field existed give None ("-"),
    their lessons read from the committed sprint folder in `sprints_dir` where given."""
    from autosae.report.evidence import held_out_status

    def stat(metric: str) -> dict | None:
        value = row.get(metric)
        if isinstance(value, dict) and value.get("mean") is not None:
            return value
        return {"mean": value} if isinstance(value, (int, float)) else None

    stats = {m: stat(m) for m in PAST_METRICS if stat(m) is not None}
    return PastSprint(
        id=row["id"],
        title=row.get("title", ""),
        verdict=row.get("verdict", ""),
        f1=(stats.get("f1") or {}).get("mean"),
        mcc=(stats.get("mcc") or {}).get("mean"),
        config=row.get("config"),
        idea=row.get("idea", ""),
        parent=row.get("parent"),
        f1_std=(stats.get("f1") or {}).get("std"),
        mcc_std=(stats.get("mcc") or {}).get("std"),
        noop=bool(row.get("noop")),
        stats=stats,
        delta_parent=row.get("delta_parent"),
        p_value=row.get("p_value"),
        noise_floor=row.get("noise_floor"),
        noise_floor_note=row.get("noise_floor_note"),
        objective=row.get("objective") or "",
        summary=one_line(row.get("idea") or row.get("title") or ""),
        **dict(zip(("conclusion", "next_step", "pilot"), recorded_lessons(row, sprints_dir))),
        held_out="in progress" if row.get("verdict") == "in progress" else held_out_status(row),
    )


def normalise_text(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9.]+", text.lower()))


def find_duplicate(
    rows: list[dict], idea: str, config: dict | None, title: str | None = None
) -> tuple[dict, str] | None:
    """The past sprint that `idea`/`config` repeats, and how; None if it is new. Two sprints
    that both carry a configuration are compared by it alone (generated titles such as "3
    levels" and "5 levels" read alike); otherwise by the normalised text of the idea and the
    title against each past sprint's idea and title."""
    key = json.dumps(config, sort_keys=True) if config is not None else None
    texts = [t for t in (normalise_text(idea), normalise_text(title or "")) if t]
    for row in rows:
        if key is not None and row.get("config") is not None:
            if json.dumps(row["config"], sort_keys=True) == key:
                return row, "the same configuration"
            continue
        for field in ("idea", "title"):
            theirs = normalise_text(row.get(field) or "")
            for mine in texts if theirs else ():
                ratio = difflib.SequenceMatcher(None, mine, theirs).ratio()
                if ratio >= DUPLICATE_RATIO:
                    return row, f"a near-identical idea ({ratio:.0%} similar)"
    return None


def token_totals(rows: list[dict]) -> dict[str, int]:
    """The agents' token usage summed over ledger rows."""
    return {
        k: sum((r.get("tokens") or {}).get(k, 0) for r in rows)
        for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    }
