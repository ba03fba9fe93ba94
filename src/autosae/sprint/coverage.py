"""Did the sprint's change run? The lines a sprint added or changed in variant.py, against
the lines the harness saw running (import, build(), sampled training steps, the first eval
batch; see harness.worker.LineRecorder)."""

from __future__ import annotations

import difflib
import types


def changed_lines(old: str, new: str) -> set[int]:
    """1-based numbers of the lines of `new` that are not in `old` (inserted or replaced)."""
    a, b = old.splitlines(), new.splitlines()
    out: set[int] = set()
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("insert", "replace"):
            out.update(range(j1 + 1, j2 + 1))
    return out


def executable_lines(source: str) -> set[int]:
    """Lines that carry bytecode (statements), found by compiling: not blank lines, comments or
    the continuation lines of a statement."""
    try:
        code = compile(source, "variant.py", "exec")
    except SyntaxError:
        return set()
    lines: set[int] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        lines.update(line for _, _, line in c.co_lines() if line is not None)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    lines.discard(0)
    return lines


def never_ran(parent_source: str | None, source: str, executed: list[list[int] | None]) -> dict | None:
    """{"changed": n, "never_ran": [line, ...]} for the executable lines the sprint changed, or
    None when there is nothing to judge (no parent source, or no seed recorded its lines)."""
    seen = [set(lines) for lines in executed if lines is not None]
    if parent_source is None or not seen:
        return None
    changed = changed_lines(parent_source, source) & executable_lines(source)
    ran = set().union(*seen)
    return {"changed": len(changed), "never_ran": sorted(changed - ran)}


def spans(lines: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    out, start = [], None
    for i, line in enumerate(lines):
        if start is None:
            start = line
        if i + 1 == len(lines) or lines[i + 1] != line + 1:
            out.append(f"{start}" if start == line else f"{start}-{line}")
            start = None
    return ", ".join(out)
