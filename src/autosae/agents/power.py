"""What the proposer must know to pick an idea it can test: how large an effect the counted
runs can detect (the noise of each reference recipe on this profile, its seeds, the minimum
detectable effect at TASK.md's alpha), what the reference recipes score here, how long a
counted run and a quick run take, and what is left of the turns and the money.

Computed from the harness's sealed baseline results, never from prose that drifts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autosae.parents import describe

POWER = 0.8
"""The power at which the second minimum detectable effect is stated."""


def detectable(std: float, n: int, alpha: float, power: float | None = None) -> float | None:
    """The smallest true difference of means that a Welch t-test between two runs of `n` seeds
    each, both with seed std `std`, finds significant at `alpha`: observed exactly (power None,
    a coin flip whether it comes out significant), or with probability `power`. None when it
    cannot be measured (fewer than 2 seeds)."""
    if n < 2 or not math.isfinite(std):
        return None
    from scipy.special import stdtrit

    df = 2 * (n - 1)  # Welch's df with equal n and variance
    t = float(stdtrit(df, 1 - alpha / 2)) + (float(stdtrit(df, power)) if power else 0.0)
    return t * std * math.sqrt(2 / n)


@dataclass
class Reference:
    """One reference recipe as measured on this profile by the harness (counted seeds)."""

    name: str
    mean: dict[str, float] = field(default_factory=dict)
    """{"f1": .., "mcc": ..}: means over seeds."""
    std: dict[str, float | None] = field(default_factory=dict)
    """Seed stds (None: one seed, not measurable)."""
    n: int = 0
    wall_s: float | None = None
    """The counted run's wall time (all its seeds)."""
    seed_s: float | None = None
    """The longest seed's training time."""
    mde: float | None = None
    """The objective's difference that comes out significant when observed exactly."""
    mde_power: float | None = None
    """The objective's difference detected with probability POWER."""
    about: str = ""
    """What the recipe is (its docstring's first paragraph): a name alone hides what it holds."""


@dataclass
class Power:
    """The propose prompt's block on power and budget (templates/agent/power.md.j2)."""

    objective: str
    alpha: float
    seeds: int
    references: list[Reference]
    untrained: list[str]
    """Reference recipes with no counted run on this profile yet (trained when named as a parent)."""
    quick_samples: int
    counted_samples: int
    counted_s: float | None
    """The slowest reference recipe's counted run (all its seeds), measured."""
    quick_s: float | None
    """An estimate of a default quick run's wall time (one arm), from the counted runs'."""
    turns: dict[str, int]
    budget_usd: float | None
    hours_per_sprint: float | None


def _stat(summary: dict, metric: str) -> dict:
    value = summary.get(metric)
    return value if isinstance(value, dict) else {}


def power_facts(
    baselines: dict[str, dict],
    references: list[str],
    objective: str,
    alpha: float,
    seeds: int,
    counted_samples: int,
    quick_samples: int,
    turns: dict[str, int],
    budget_usd: float | None,
    hours_per_sprint: float | None,
) -> Power:
    """The block's facts from the harness's `baselines` ({name: results.json}) and the settings;
    `references` names every reference recipe (autosae.variants)."""
    rows, untrained = [], []
    for name in references:
        results = baselines.get(name)
        summary = (results or {}).get("summary") or {}
        if not summary:
            untrained.append(name)
            continue
        n = int(_stat(summary, objective).get("n") or 0)
        std = {m: (_stat(summary, m).get("std") if n >= 2 else None) for m in ("f1", "mcc")}
        seed_times = [
            r.get("wall_s") for r in results.get("per_seed") or [] if isinstance(r.get("wall_s"), (int, float))
        ]
        sigma = std.get(objective)
        rows.append(
            Reference(
                name=name,
                mean={m: _stat(summary, m).get("mean") for m in ("f1", "mcc")},
                std=std,
                n=n,
                wall_s=results.get("wall_s"),
                seed_s=max(seed_times) if seed_times else None,
                mde=detectable(sigma, n, alpha) if sigma is not None else None,
                mde_power=detectable(sigma, n, alpha, POWER) if sigma is not None else None,
                about=describe(name),
            )
        )
    seed_s = [r.seed_s for r in rows if r.seed_s]
    quick_s = max(seed_s) * quick_samples / counted_samples if seed_s and counted_samples else None
    return Power(
        objective=objective,
        alpha=alpha,
        seeds=seeds,
        references=rows,
        untrained=untrained,
        quick_samples=quick_samples,
        counted_samples=counted_samples,
        counted_s=max((r.wall_s for r in rows if r.wall_s), default=None),
        quick_s=quick_s,
        turns=turns,
        budget_usd=budget_usd,
        hours_per_sprint=hours_per_sprint,
    )
