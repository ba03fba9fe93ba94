"""Known failures: each becomes one line on stderr and a distinct exit code, never a traceback."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line for a message: its first non-empty line, else its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


class AutosaeError(Exception):
    """A problem the user can act on (bad input, missing file, ...)."""

    exit_code = 1


class VariantFailed(AutosaeError):
    """The variant raised, produced NaNs, ran out of memory or exceeded its time limit."""

    exit_code = 3


class ConstraintBreach(AutosaeError):
    """The run broke one of the profile's fixed constraints and is not counted."""

    exit_code = 4
