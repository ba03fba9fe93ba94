"""The lab notebook: reports/notebook.md, the project's memory across sprints and nights.

Four sections of bullets: established findings, refuted ideas and dead ends, open questions,
next candidates. Agents add entries when they conclude (and the stuck ladder may add its
review); each entry cites sprints, and autosae writes each cited sprint's numbers from the
ledger (an entry citing a sprint the ledger does not hold is refused). The researcher may
edit anything: autosae only ever inserts lines of its own at the end of a section (re-adding
a section at the end of the file when the researcher removed it), never rewrites or restores
a line, so their edits and deletions win. Every proposer reads the notebook as the main
checkout has it.

Agent text is untrusted: each entry is one line (md_cell: no newline, heading, table or HTML),
bounded in length, count and citations. The file is read bounded and never through a link; a
missing file is an empty notebook, a broken one never stops a sprint.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from autosae.bounded import read_prefix
from autosae.report.escape import md_cell, one_line

NOTEBOOK = "reports/notebook.md"
SECTIONS = {
    "findings": "Established findings",
    "refuted": "Refuted ideas and dead ends",
    "questions": "Open questions",
    "candidates": "Next candidates",
}
"""The section an entry names -> its heading (`## ...`)."""
CITING = ("findings", "refuted")
"""The sections whose entries must cite at least one sprint: a finding has its evidence."""
MAX_ENTRIES = 8
"""The most entries one update may add."""
TEXT_CHARS = 600
MAX_CITES = 6
READ_BYTES = 1 << 20
"""The most of the notebook autosae reads; a longer file gets no further entries (it is never
rewritten from a prefix) until the researcher shortens it."""
PROMPT_CHARS = 12_000
"""The most of the notebook a prompt shows (each section keeps its latest lines)."""

HEADER = """# Lab notebook

The project's memory: what the sprints established, what they refuted, what is still open
and what to try next. Agents add entries when they conclude a sprint, and autosae writes each
cited sprint's numbers from reports/ledger.jsonl. autosae only ever adds lines at the end of a
section; it never rewrites or restores one. You may edit, reorder or delete anything, and your
edits win: every proposer reads this file, as steering beside TASK.md.
"""


def empty() -> str:
    """A new notebook: the header and the four empty sections."""
    return HEADER + "".join(f"\n## {heading}\n" for heading in SECTIONS.values())


def read(root: Path) -> tuple[str, str]:
    """(the notebook's text, "" or why it cannot be used as it is): a missing file is an empty
    notebook; a link, a folder or a file over READ_BYTES is reported, never followed or cut."""
    try:
        found = read_prefix(Path(root) / NOTEBOOK, READ_BYTES)
    except FileNotFoundError:
        return "", ""
    except OSError as exc:
        return "", f"{NOTEBOOK} is not a regular file ({exc.strerror or exc})"
    if found.cut:
        return found.text(), f"{NOTEBOOK} has {found.size:,} bytes, more than the {READ_BYTES:,} autosae reads"
    return found.text(), ""


# -- entries ---------------------------------------------------------------------------------


def check_entries(raw: object, known: Collection[str], this_id: str | None = None) -> tuple[list[dict], list[str]]:
    """The agent's `notebook` answer as valid entries [{section, text, sprints}] and one line
    per problem (an entry with a problem is left out). `known`: the sprint ids the ledger
    holds; `this_id`, the sprint being concluded, may be cited too."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], ["notebook: expected a list of {section, text, sprints}"]
    entries, problems = [], []
    allowed = {*known, *([this_id] if this_id else [])}
    for n, item in enumerate(raw, 1):
        where = f"notebook entry {n}"
        if n > MAX_ENTRIES:
            problems.append(f"notebook: at most {MAX_ENTRIES} entries per sprint; {len(raw) - MAX_ENTRIES} left out")
            break
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object {{section, text, sprints}}")
            continue
        section, text, cites = item.get("section"), item.get("text"), item.get("sprints", [])
        if section not in SECTIONS:
            problems.append(f"{where}: section {one_line(section, 40)!r} is not one of {', '.join(SECTIONS)}")
            continue
        if not isinstance(text, str) or not one_line(text):
            problems.append(f"{where}: text: expected a non-empty string")
            continue
        if cites is None:
            cites = []
        if not isinstance(cites, list) or not all(isinstance(c, str) for c in cites):
            problems.append(f"{where}: sprints: expected a list of sprint ids")
            continue
        cites = list(dict.fromkeys(c.strip() for c in cites if c.strip()))
        unknown = [c for c in cites if c not in allowed]
        if unknown:
            problems.append(
                f"{where}: cites {', '.join(repr(one_line(c, 80)) for c in unknown[:3])}, not a recorded sprint "
                f"(cite sprint ids from the ledger, or this sprint's own id)"
            )
            continue
        if len(cites) > MAX_CITES:
            problems.append(f"{where}: cites {len(cites)} sprints; at most {MAX_CITES}")
            continue
        if section in CITING and not cites:
            problems.append(f"{where}: a {section} entry must cite the sprints that are its evidence")
            continue
        entries.append({"section": section, "text": one_line(text, TEXT_CHARS), "sprints": cites})
    return entries, problems


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def evidence(sprint_id: str, row: dict | None) -> str:
    """One cited sprint with its numbers from its ledger row: `id (F1 0.8123, +0.0270 vs
    parent, p 0.012; improved; held-out consistent)`."""
    from autosae.report.evidence import held_out_status

    if row is None:
        return f"{md_cell(sprint_id, 120)} (not in the ledger)"
    objective = row.get("objective") if row.get("objective") in ("f1", "mcc") else "f1"
    mean = _num((row.get(objective) or {}).get("mean")) if isinstance(row.get(objective), dict) else None
    delta, p = _num(row.get("delta_parent")), _num(row.get("p_value"))
    parts = [f"{objective.upper()} {mean:.4f}" if mean is not None else f"no {objective.upper()}"]
    if delta is not None:
        parts.append(f"{delta:+.4f} vs parent")
    if p is not None:
        parts.append(f"p {p:.3g}")
    verdict = md_cell(row.get("verdict") or "?", 40)
    return f"{md_cell(sprint_id, 120)} ({', '.join(parts)}; {verdict}; held-out {md_cell(held_out_status(row), 40)})"


def lines_for(entries: list[dict], rows: list[dict], by: str, sprint_id: str) -> list[dict]:
    """The entries as the notebook's lines [{section, line}], each cited sprint's numbers from
    `rows` (the ledger, with the concluding sprint's own row)."""
    by_id = {r.get("id"): r for r in rows if isinstance(r, dict)}
    out = []
    for e in entries:
        line = f"- {md_cell(e['text'], TEXT_CHARS)}"
        if e["sprints"]:
            line += " Evidence: " + "; ".join(evidence(c, by_id.get(c)) for c in e["sprints"]) + "."
        line += f" _({md_cell(by, 40)}, {md_cell(sprint_id, 120)})_"
        out.append({"section": e["section"], "line": line})
    return out


# -- the file --------------------------------------------------------------------------------

_HEADING = re.compile(r"^#{1,2}\s")


def insert(text: str, lines: list[dict]) -> str:
    """`text` with each line added at the end of its section (a missing section re-added at
    the end); a line the text already holds is not added again (a resumed sprint)."""
    doc = (text or empty()).split("\n")
    for item in lines:
        line, heading = item["line"], f"## {SECTIONS[item['section']]}"
        if line in doc:
            continue
        start = next((i for i, d in enumerate(doc) if d.strip().lower() == heading.lower()), None)
        if start is None:
            while doc and not doc[-1].strip():
                doc.pop()
            doc += ["", heading, "", line, ""]
            continue
        end = next((i for i in range(start + 1, len(doc)) if _HEADING.match(doc[i])), len(doc))
        at = end
        while at > start + 1 and not doc[at - 1].strip():
            at -= 1
        doc[at:at] = ["", line] if at == start + 1 else [line]
    out = "\n".join(doc)
    return out if out.endswith("\n") else out + "\n"


def write_lines(root: Path, repo, lines: list[dict], message: str) -> tuple[str | None, str]:
    """Add `lines` to the notebook in the main checkout and commit it alone (the caller holds
    the engine's lock: one writer at a time). Returns (the commit or None, "" or why nothing
    was written). The researcher's uncommitted edits of the file are kept and committed with it."""
    from autosae.jsonio import write_text
    from autosae.sprint.gitexact import commit_exact

    if not lines:
        return None, ""
    text, problem = read(root)
    if problem:
        return None, f"{problem}; the entries were not written"
    path = Path(root) / NOTEBOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    new = insert(text, lines)
    if new != text:
        write_text(path, new, durable=True)
    return commit_exact(repo, message, [NOTEBOOK]), ""


def append(root: Path, repo, entries: list[dict], sprint_id: str, by: str, lock=None) -> tuple[str | None, list[str]]:
    """The library's way in (the stuck ladder's review, say): check `entries` against the
    ledger on the main checkout, write them with their evidence under `lock`, commit. Returns
    (the commit or None, the problems: entries left out, or why nothing was written)."""
    import contextlib

    from autosae.sprint.ledger import read_ledger

    with lock if lock is not None else contextlib.nullcontext():
        rows = read_ledger(Path(root) / "reports" / "ledger.jsonl")
        good, problems = check_entries(entries, {r.get("id") for r in rows if isinstance(r, dict)}, sprint_id)
        commit, why = write_lines(root, repo, lines_for(good, rows, by, sprint_id), f"notebook: {sprint_id} ({by})")
    return commit, [*problems, *([why] if why else [])]


# -- reading it back -------------------------------------------------------------------------


def count_entries(text: str) -> int:
    """How many bullets the four sections hold."""
    headings = {f"## {h}".lower() for h in SECTIONS.values()}
    inside, n = False, 0
    for line in text.split("\n"):
        if _HEADING.match(line):
            inside = line.strip().lower() in headings
        elif inside and re.match(r"^\s{0,3}[-*+]\s", line):
            n += 1
    return n


def render_for_prompt(root: Path | None, limit: int = PROMPT_CHARS) -> str:
    """The notebook for a prompt, at most about `limit` characters: where it is longer, each
    section keeps its heading and its latest lines, with a note of what was left out; "" where
    there is no notebook."""
    if root is None:
        return ""
    text, problem = read(root)
    if problem and not text:
        return f"({problem}; autosae shows nothing of it)"
    text = text.strip()
    if len(text) <= limit:
        return text
    blocks: list[list[str]] = [[]]
    for line in text.split("\n"):
        if _HEADING.match(line) and blocks[-1]:
            blocks.append([])
        blocks[-1].append(line)
    share = limit // len(blocks)
    out = []
    for block in blocks:
        head, kept, size = block[0], [], len(block[0])
        for line in reversed(block[1:]):
            if size + len(line) + 1 > share:
                break
            kept.insert(0, line)
            size += len(line) + 1
        left = len(block) - 1 - len(kept)
        out += [head, *([f"[... {left} earlier lines of this section left out]"] if left else []), *kept]
    return "\n".join(out) + f"\n[autosae showed part of {NOTEBOOK}'s {len(text):,} characters]"
