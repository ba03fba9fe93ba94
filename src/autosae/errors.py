"""Known failures: each becomes one line on stderr and a distinct exit code, never a traceback."""

from __future__ import annotations


class AutosaeError(Exception):
    """A problem the user can act on (bad input, missing file, ...)."""

    exit_code = 1


class VariantFailed(AutosaeError):
    """The variant raised, produced NaNs, ran out of memory or exceeded its time limit."""

    exit_code = 3


class ConstraintBreach(AutosaeError):
    """The run broke one of the profile's fixed constraints and is not counted."""

    exit_code = 4
