"""What a report is rendered from, kept in the sprint folder so that `autosae report` can
re-render any recorded sprint from git alone:

- curves.json: each seed's training curves from the harness's train_log.jsonl, thinned to at
  most CURVE_POINTS points (a synth-16k seed logs thousands of entries);
- sprint.json: the sprint's own record (idea, hypothesis, parent, conclusion, cost, tokens)
  and its variant's diff against the parent's.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

CURVE_POINTS = 400
CURVE_KEYS = ("samples", "loss", "l0", "dead", "k")
DIFF_LINES = 400
"""The most lines of unified diff kept in sprint.json (the line counts are always whole)."""


def read_curves(run_dir: Path | None) -> dict[str, dict[str, list]]:
    """{seed: {samples, loss, l0, dead, k}} from run_dir/seed_*/train_log.jsonl; torn or
    missing lines are skipped, so a seed killed mid-write still shows what it logged."""
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
        curves[log.parent.name.removeprefix("seed_")] = {k: [e.get(k) for e in kept] for k in CURVE_KEYS}
    return curves


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
        diff = list(difflib.unified_diff(_lines(old), _lines(new), f"parent/{path}" if old is not None else "/dev/null",
                                         f"sprint/{path}" if new is not None else "/dev/null", n=2))
        added = sum(1 for d in diff if d.startswith("+") and not d.startswith("+++"))
        removed = sum(1 for d in diff if d.startswith("-") and not d.startswith("---"))
        status = "added" if old is None else "removed" if new is None else "changed"
        rows.append({"path": path, "status": status, "added": added, "removed": removed})
        if path.endswith(".py"):
            text += [d if d.endswith("\n") else d + "\n" for d in diff]
    return {"parent": parent_label, "files": rows, "added": sum(r["added"] for r in rows),
            "removed": sum(r["removed"] for r in rows), "text": "".join(text[:DIFF_LINES]),
            "truncated": len(text) > DIFF_LINES}


def folder_files(folder: Path, skip: tuple[str, ...]) -> dict[str, str]:
    """Text files of a sprint folder by relative path, without the orchestrator's own files."""
    files = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not path.is_file() or rel in skip or "__pycache__" in rel:
            continue  # never follow a link out of the folder (see engine.refuse_links)
        try:
            files[rel] = path.read_text()
        except (UnicodeDecodeError, OSError):
            files[rel] = f"<binary file, {path.stat().st_size} bytes>\n"
    return files


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
