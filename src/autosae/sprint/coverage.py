"""Did the sprint's change run? The lines a sprint added or changed in variant.py, against
the lines the variant's process says ran (import, build(), sampled training steps, the first
eval batch; see autosae.sandboxed.worker.LineRecorder).

That process is the variant's: its line report can be forged, and is evidence against a
change, never for it. The harness keeps only the lines variant.py has (autosae.harness.
reported); a report that claimed any other is forged for certain, and then counts as no
line having run. The no-op check that a forger cannot talk its way past is the probe
fingerprint, which the harness computes itself (autosae.sprint.verdict.noop_reason)."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping

from autosae.records import ok_seeds, reported_by_variant


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


def never_ran(
    parent_source: str | None, source: str, executed: list[list[int] | None], forged: bool = False
) -> dict | None:
    """{"changed": n, "never_ran": [line, ...]} for the executable lines the sprint changed, or
    None when there is nothing to judge (no parent source, or no seed recorded its lines).
    `forged`: a seed's report claimed lines that variant.py does not have; then no line counts
    as run, and the result says "forged": true."""
    seen = [set(lines) for lines in executed if lines is not None]
    if parent_source is None or not seen:
        return None
    changed = changed_lines(parent_source, source) & executable_lines(source)
    ran = set() if forged else set().union(*seen)
    out = {"changed": len(changed), "never_ran": sorted(changed - ran)}
    if forged:
        out["forged"] = True
    return out


def coverage_of(parent_source: str | None, source: str, results: Mapping | None) -> dict | None:
    """never_ran for a run's results: the executed lines that its scored seeds reported."""
    reported = [reported_by_variant(r) for r in ok_seeds(results)]
    return never_ran(
        parent_source,
        source,
        [r.get("executed_lines") for r in reported],
        forged=any(r.get("executed_lines_outside_file") for r in reported),
    )


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
