"""What a report is rendered from, kept in the sprint folder so that `autosae report` can
re-render any recorded sprint from git alone:

- curves.json: each seed's training curves from the harness's train_log.jsonl, thinned to at
  most CURVE_POINTS points (a synth-16k seed logs thousands of entries), with the variant's
  own logged metrics (TrainOutput.metrics) apart under "variant", cleaned and bounded: the
  variant is untrusted, so its names are cut to a safe alphabet and length and its values
  kept only where finite;
- sprint.json: the sprint's own record (idea, hypothesis, parent, conclusion, cost, tokens)
  and its variant's diff against the parent's.
"""

from __future__ import annotations

import codecs
import difflib
import itertools
import json
import math
import re
from pathlib import Path

from autosae.sandboxed.protocol import VARIANT_METRIC_PREFIX

CURVE_POINTS = 400
CURVE_KEYS = ("samples", "loss", "l0", "dead", "k")
VARIANT_KEY = "variant"
"""Where a seed's curves keep the variant's own metrics: {name: [value or None, ...]}."""
MAX_VARIANT_METRICS = 12
"""The most variant metrics kept per seed (the first ones it logged); the rest are counted."""
MAX_METRIC_NAME = 40
COMPACT_POINTS = 6
"""Points per seed and curve that the conclude phase sees."""
DIFF_LINES = 400
"""The most lines of unified diff kept in sprint.json (the line counts are always whole)."""
DIFF_CHARS = 64_000
"""And the most characters of them (a line may be long)."""
DIFF_FILE_BYTES = 256 << 10
"""The most of one file of a sprint folder that the diff reads (the agent wrote it)."""
DIFF_FILES, DIFF_TOTAL_BYTES, DIFF_SCAN = 200, 4 << 20, 10_000
"""The most files, and bytes in all, that the diff reads of a folder, of the first DIFF_SCAN paths found."""


def read_curves(run_dir: Path | None) -> dict[str, dict]:
    """{seed: {samples, loss, l0, dead, k[, variant, variant_dropped]}} from
    run_dir/seed_*/train_log.jsonl; torn or missing lines are skipped, so a seed killed
    mid-write still shows what it logged. `variant` holds the variant's own metrics (see
    variant_series); `variant_dropped` counts the names beyond MAX_VARIANT_METRICS."""
    curves: dict[str, dict[str, list]] = {}
    if run_dir is None:
        return curves
    for log in sorted(run_dir.glob("seed_*/train_log.jsonl"), key=lambda p: _seed_key(p.parent.name)):
        entries = []
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "samples" in entry:
                entries.append(entry)
        if not entries:
            continue
        stride = max(1, -(-len(entries) // CURVE_POINTS))
        kept = entries[::stride]
        if kept[-1] is not entries[-1]:
            kept.append(entries[-1])
        seed = {k: [e.get(k) for e in kept] for k in CURVE_KEYS}
        series, dropped = variant_series(entries, kept)
        if series:
            seed[VARIANT_KEY] = series
        if dropped:
            seed["variant_dropped"] = dropped
        curves[log.parent.name.removeprefix("seed_")] = seed
    return curves


def metric_name(raw: str) -> str:
    """A variant's metric name, safe to print in Markdown, a PDF and a prompt: letters, digits
    and `_.-` only (anything else becomes `_`), at most MAX_METRIC_NAME characters."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)[:MAX_METRIC_NAME] or "_"


def finite_number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def variant_series(entries: list[dict], kept: list[dict]) -> tuple[dict[str, list], int]:
    """The variant's own metrics (the training log's `variant/<name>` fields) at the kept
    entries: ({name: [value or None per kept entry]}, how many more names were left out). Names
    are chosen in the order first logged, at most MAX_VARIANT_METRICS of them."""
    names: dict[str, str] = {}  # raw key -> clean name
    others: set[str] = set()
    for entry in entries:
        for key in entry:
            if not isinstance(key, str) or not key.startswith(VARIANT_METRIC_PREFIX) or key in names:
                continue
            clean = metric_name(key.removeprefix(VARIANT_METRIC_PREFIX))
            if len(names) < MAX_VARIANT_METRICS and clean not in names.values():
                names[key] = clean
            elif len(others) < 10_000:
                others.add(key)
    return {clean: [finite_number(e.get(key)) for e in kept] for key, clean in names.items()}, len(others)


def compact_curves(curves: dict | None, points: int = COMPACT_POINTS) -> dict[str, dict]:
    """A few evenly spaced points per seed of samples, loss, L0, dead latents and the
    variant's own metrics (4 significant digits): what the conclude phase reads."""

    def pick(values: list | None, idx: list[int], digits: int = 4) -> list:
        found = [finite_number(values[i]) if values and i < len(values) else None for i in idx]
        return [None if v is None else float(f"{v:.{digits}g}") for v in found]

    out = {}
    for seed, c in (curves if isinstance(curves, dict) else {}).items():
        if not isinstance(c, dict) or not isinstance(c.get("samples"), list):
            continue  # a hand-edited curves.json: what cannot be read is left out
        n = len(c.get("samples") or [])
        if not n:
            continue
        idx = sorted({round(i * (n - 1) / max(points - 1, 1)) for i in range(points)})
        row = {"samples": [int(v) if v is not None else None for v in pick(c.get("samples"), idx, 15)]}
        row |= {k: pick(c.get(k), idx) for k in ("loss", "l0", "dead")}
        row[VARIANT_KEY] = {name: pick(v, idx) for name, v in (c.get(VARIANT_KEY) or {}).items()}
        out[seed] = row
    return out


def _seed_key(name: str):
    tail = name.removeprefix("seed_")
    return (0, int(tail), "") if tail.isdigit() else (1, 0, tail)


def _lines(text: str | None) -> list[str]:
    return [] if text is None else text.splitlines(keepends=True)


def variant_diff(parent_label: str, parent_files: dict[str, str], files: dict[str, str]) -> dict:
    """Files and lines changed from the parent's sprint folder (or a baseline's variant.py) to
    this sprint's, with the unified diff of the Python files."""
    rows, text = [], []
    for path in sorted(set(parent_files) | set(files)):
        old, new = parent_files.get(path), files.get(path)
        if old == new:
            continue
        diff = list(
            difflib.unified_diff(
                _lines(old),
                _lines(new),
                f"parent/{path}" if old is not None else "/dev/null",
                f"sprint/{path}" if new is not None else "/dev/null",
                n=2,
            )
        )
        added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
        removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
        status = "added" if old is None else "removed" if new is None else "changed"
        rows.append({"path": path, "status": status, "added": added, "removed": removed})
        if path.endswith(".py"):
            text += [d if d.endswith("\n") else d + "\n" for d in diff]
    kept = "".join(text[:DIFF_LINES])
    return {
        "parent": parent_label,
        "files": rows,
        "added": sum(r["added"] for r in rows),
        "removed": sum(r["removed"] for r in rows),
        "text": kept[:DIFF_CHARS],
        "truncated": len(text) > DIFF_LINES or len(kept) > DIFF_CHARS,
    }


def folder_files(folder: Path, skip: tuple[str, ...]) -> dict[str, str]:
    """Text files of a sprint folder by relative path, without the orchestrator's own files.
    The agent wrote them, so each is read up to DIFF_FILE_BYTES (a sparse file of 450 MB costs
    it no disk; the cut is said in the text, so the diff shows it), at most DIFF_FILES files
    and DIFF_TOTAL_BYTES in all; the files beyond are listed, unread."""
    from autosae.bounded import read_prefix

    files: dict[str, str] = {}
    if folder.is_symlink() or not folder.is_dir():
        return files
    budget = DIFF_TOTAL_BYTES
    for path in sorted(itertools.islice(folder.rglob("*"), DIFF_SCAN)):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not path.is_file() or rel in skip or "__pycache__" in rel:
            continue  # never follow a link out of the folder (see engine.refuse_links)
        if len(files) >= DIFF_FILES or budget <= 0:
            files[rel] = f"<not read: more than {DIFF_FILES} files or {DIFF_TOTAL_BYTES:,} bytes in the folder>\n"
            continue
        try:
            found = read_prefix(path, min(DIFF_FILE_BYTES, budget))
        except OSError:
            files[rel] = "<unreadable file>\n"
            continue
        try:  # a cut may split a character: its start is left out, not taken for binary
            text = codecs.getincrementaldecoder("utf-8")().decode(found.data, final=not found.cut)
        except UnicodeDecodeError:
            text = None
        if text is None or "\0" in text:
            files[rel] = f"<binary file, {found.size:,} bytes>\n"
            continue
        budget -= len(found.data)
        files[rel] = text + (f"\n{found.note()}\n" if found.cut else "")
    return files
