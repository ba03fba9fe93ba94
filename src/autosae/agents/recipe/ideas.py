"""A user's `--idea` text, read by keywords into recipe settings (the offline agent has no LLM)."""

from __future__ import annotations

import re

from autosae.agents.base import AgentError
from autosae.agents.recipe.config import CHOICES, normalise

KEYWORDS = [  # a regex of the idea's words and the setting it implies
    (r"no matryoshka|plain batch ?top ?k|\bbatchtopk\b", {"levels": 1}),
    (r"lista|iterative encoder|encoder step", {"lista_iterations": 1}),
    (r"\bterm\b|tilt", {"term_tilt": 2e-3}),
    (r"detach", {"detach_inner": True}),
    (r"frequen|sort", {"sort_by_frequency": True}),
    (r"decreas|anneal|schedul|linear k|k schedule", {"k_start": 2.4}),
]
NUMBER = re.compile(r"(eta|tilt|levels?|iterations?|steps?|from|start)\s*(?:=|of|to)?\s*([0-9.]+(?:e-?\d+)?)x?")
"""A number and the word before it: "eta 0.5", "tilt=0.005", "5 levels" is not one, "levels 5" is."""


def config_from_idea(idea: str, start: dict) -> dict:
    """`start` with the settings the idea names; AgentError when it names none the recipe knows."""
    text = idea.lower()
    updates: dict = {}
    for pattern, change in KEYWORDS:
        if re.search(pattern, text):
            updates.update(change)
    numbers = {m.group(1): float(m.group(2)) for m in NUMBER.finditer(text)}
    for key, value in numbers.items():
        if key == "eta":
            updates.update(
                lista_iterations=updates.get("lista_iterations", start["lista_iterations"]) or 1, lista_eta=value
            )
        elif key == "tilt":
            updates["term_tilt"] = value
        elif key.startswith("level"):
            updates["levels"] = int(value)
        elif key.startswith(("iteration", "step")) and "lista_iterations" in updates:
            updates["lista_iterations"] = int(value)
        elif key in ("from", "start") and "k_start" in updates:
            updates["k_start"] = value
    if not updates:
        raise AgentError(
            f"the recipe agent cannot implement {idea!r}: it understands changes to "
            f"levels, detach, frequency sort, a decreasing K, LISTA (eta, iterations) and "
            f"TERM (tilt); use an LLM backend for other ideas"
        )
    if updates.get("levels", CHOICES["levels"][0]) not in CHOICES["levels"]:
        raise AgentError(f"the recipe agent supports 1 to 5 Matryoshka levels, not {updates['levels']}")
    return normalise({**start, **updates})
