"""Which parents a sprint may name: a recorded sprint, or a reference variant as
`baseline:<name>` (each compared with its own numbers, autosae.harness.baselines).

Kept apart from autosae.variants, whose source is part of every recorded run's key."""

from __future__ import annotations


def baseline_parents() -> list[str]:
    """Every valid `baseline:<name>` parent: one per reference variant."""
    from autosae.variants import reference_variants

    return [f"baseline:{name}" for name in reference_variants()]


def describe(name: str) -> str:
    """A reference variant's one-paragraph description: its docstring's first paragraph, read
    without importing it (importing starts torch)."""
    import ast

    from autosae.variants import reference_variants

    path = reference_variants().get(name)
    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) if path else None
    except (OSError, SyntaxError, ValueError):
        doc = None
    return " ".join((doc or "").split("\n\n", 1)[0].split())


def baseline_error(parent: str | None) -> str | None:
    """Why `parent` is not a valid parent, when it names a baseline that is no reference
    variant (None: it is valid, or not a baseline at all)."""
    if not parent or not parent.startswith("baseline:"):
        return None
    if parent in baseline_parents():
        return None
    return f"parent {parent[:80]!r} is not a reference variant; the baselines are: {', '.join(baseline_parents())}"
