"""The recipe agent's configuration: what a variant is made of, which values the search may
try, which settings only matter when another one is on, and how a configuration reads.

A configuration travels as a plain dict (the ledger stores it, and the engine refuses a sprint
whose dict repeats a past one), so `normalise` must give the same dict for configurations that
build the same SAE: that is what `RecipeConfig` and the dependency map are for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple


@dataclass(frozen=True)
class RecipeConfig:
    """One variant of the component library (autosae.sae); the defaults are the Matryoshka baseline.
    The field order is the order of the ledger's config dicts and of the sprint README's table."""

    levels: int = 4
    """Nested Matryoshka levels (1: a plain BatchTopK); the dictionary sizes are LEVEL_DIVISORS."""
    detach_inner: bool = False
    """Inner levels reconstruct without pushing gradient into the outer latents (levels > 1)."""
    sort_by_frequency: bool = False
    """Latents are ordered by firing frequency, so that inner levels hold the common ones (levels > 1)."""
    k_start: float = 1.0
    """K starts at this multiple of the target L0 and falls linearly to it (1.0: a constant K)."""
    k_fraction: float | None = None
    """The share of training over which K falls (only with k_start != 1.0)."""
    lista_iterations: int = 0
    """LISTA correction steps of the encoder on the residual (0: one linear encoder)."""
    lista_eta: float | None = None
    """The LISTA step size (only with lista_iterations > 0)."""
    term_tilt: float = 0.0
    """TERM's tilt of the mean reconstruction loss towards badly reconstructed samples (0: a plain mean)."""

    @classmethod
    def of(cls, config: dict) -> RecipeConfig:
        """The normalised configuration of a (partial) dict: missing settings are the baseline's,
        unknown keys are dropped, and a dependent setting is its `off` value while its switch is
        off and its default when the switch is on without one."""
        c = {f.name: config.get(f.name, f.default) for f in fields(cls)}
        c["k_start"], c["term_tilt"] = float(c["k_start"]), float(c["term_tilt"] or 0.0)
        for name, dep in DEPENDS.items():
            if not dep.active(c[dep.on]):
                c[name] = dep.off
            elif dep.default is not False:  # a number: one that is 0 or missing is the default
                c[name] = float(c[name] or dep.default)
        return cls(**c)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        """What the engine compares to refuse a repeat (the ledger's config, as sorted JSON)."""
        return json.dumps(self.as_dict(), sort_keys=True)


class Dependency(NamedTuple):
    on: str
    """The setting that switches this one on."""
    active: Any
    """active(value of `on`) -> whether this setting matters."""
    off: Any
    """The value stored while it does not matter (so that equal SAEs have equal configs)."""
    default: Any
    """The value it takes when switched on without one."""


DEPENDS: dict[str, Dependency] = {
    "detach_inner": Dependency("levels", lambda levels: levels > 1, False, False),
    "sort_by_frequency": Dependency("levels", lambda levels: levels > 1, False, False),
    "k_fraction": Dependency("k_start", lambda start: start != 1.0, None, 1.0),
    "lista_eta": Dependency("lista_iterations", lambda iterations: bool(iterations), None, 0.3),
}
"""The one place that says which setting only matters when which other one is set: normalising,
the search's conditional space, what counts as a single change, and what titles show use it."""

LEVEL_DIVISORS = {1: [1], 2: [8, 1], 3: [8, 2, 1], 4: [32, 8, 2, 1], 5: [128, 32, 8, 2, 1]}
"""The nested dictionary sizes of each number of levels, as divisors of the width."""

CHOICES: dict[str, list] = {
    "levels": [1, 2, 3, 4, 5],
    "detach_inner": [False, True],
    "sort_by_frequency": [False, True],
    "k_start": [1.0, 1.5, 2.0, 2.4, 3.0, 4.0],
    "k_fraction": [0.25, 0.5, 0.75, 1.0],
    "lista_iterations": [0, 1, 2, 3],
    "lista_eta": [0.1, 0.3, 0.5],
    "term_tilt": [0.0, 1e-3, 2e-3, 5e-3, 1e-2],
}
"""The values the search tries: the seed write-up's values and a step either side of them."""

FAMILY = {
    "levels": "matryoshka",
    "detach_inner": "matryoshka",
    "sort_by_frequency": "matryoshka",
    "k_start": "k schedule",
    "k_fraction": "k schedule",
    "lista_iterations": "encoder",
    "lista_eta": "encoder",
    "term_tilt": "loss",
}
"""The component family of each setting, for exploration sprints."""

BASELINE_CONFIGS = {
    "matryoshka": RecipeConfig().as_dict(),
    "batchtopk": RecipeConfig(levels=1).as_dict(),
}
"""The configurations of the two reference variants the harness scores as baselines."""

WHY = {
    "k_start": "Starting with more active latents lets more of them receive gradient early and find "
    "features before the L0 budget tightens (the seed's largest single gain).",
    "k_fraction": "How long K takes to reach its target trades early exploration against time spent "
    "training at the final sparsity.",
    "detach_inner": "Detaching the inner Matryoshka levels stops their reconstruction loss from pulling "
    "outer latents towards general directions, which the seed found reduces absorption.",
    "sort_by_frequency": "Sorting latents by firing frequency puts the most common features in the inner "
    "levels, where the nested losses expect them.",
    "lista_iterations": "A LISTA correction step on the residual lets latents explain away each other, "
    "which one linear encoder cannot (the seed's one-step LISTA).",
    "lista_eta": "The LISTA step size sets how strongly the residual correction moves the pre-activations.",
    "term_tilt": "TERM's tilted mean weights badly reconstructed samples more, pushing latents towards "
    "rare features that a plain mean ignores.",
    "levels": "The number of nested levels sets how strongly the dictionary is organised coarse to fine.",
}
"""The hypothesis behind changing each setting, quoted in proposals."""


def normalise(config: dict) -> dict:
    return RecipeConfig.of(config).as_dict()


def config_key(config: dict) -> str:
    return RecipeConfig.of(config).key()


def changes(parent: dict, config: dict) -> list[str]:
    """The settings that differ, in canonical order (ledger rows store keys sorted)."""
    a, b = normalise(parent), normalise(config)
    return [k for k in a if a[k] != b[k]]


def switched(field: str, fields: list[str]) -> bool:
    """Whether `field` changed only because the setting it depends on changed with it."""
    return field in DEPENDS and DEPENDS[field].on in fields


def main_changes(fields: list[str]) -> list[str]:
    """`fields` without the dependents that came with their switch: ["k_start", "k_fraction"] is
    one change of the K schedule."""
    return [f for f in fields if not switched(f, fields)]


def describe(field: str, value) -> str:
    match field:
        case "k_start":
            return "constant K" if value == 1.0 else f"decreasing K from {value:g}x the target"
        case "k_fraction":
            return f"K schedule over {value:.0%} of training"
        case "detach_inner":
            return "detached inner levels" if value else "inner levels with gradient"
        case "sort_by_frequency":
            return "levels sorted by firing frequency" if value else "unsorted levels"
        case "lista_iterations":
            return "no LISTA step" if value == 0 else f"{value}-step LISTA encoder"
        case "lista_eta":
            return f"LISTA step size {value:g}"
        case "term_tilt":
            return "plain mean loss" if value == 0 else f"TERM loss with tilt {value:g}"
        case "levels":
            return "a plain BatchTopK (one level)" if value == 1 else f"{value} Matryoshka levels"
        case _:
            raise ValueError(f"unknown setting {field!r}")


def summarise(config: dict) -> str:
    """A configuration as its differences from the Matryoshka baseline, e.g. "5 Matryoshka
    levels + 1-step LISTA encoder"; a dependent at its default goes unsaid."""
    fields = changes(BASELINE_CONFIGS["matryoshka"], config)
    shown = [f for f in fields if not (switched(f, fields) and config[f] == DEPENDS[f].default)]
    return " + ".join(describe(f, config[f]) for f in shown) or "the Matryoshka baseline"
