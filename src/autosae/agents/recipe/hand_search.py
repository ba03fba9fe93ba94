"""The recipe agent's hand-weighted search (the release's search, and the default), kept beside the
TPE search: agent.SEARCH picks one.

From the best configuration it ranks every untried single change: the seed write-up's findings
first in the order they paid off there (PRIOR), pushed back by how badly the same change did
from the same start, pulled forward when another value of the same setting helped. Once the
main single changes from a start are tried, the union of the ones that raised the objective
goes first; when no single change is left it tries two, then anything untried at random.
"""

from __future__ import annotations

import itertools
import random

from autosae.agents.base import AgentContext
from autosae.agents.recipe.config import BASELINE_CONFIGS, CHOICES, changes, config_key, main_changes, normalise

PRIOR = [  # the seed's findings first, in the order they paid off there
    ("k_start", 2.4),
    ("detach_inner", True),
    ("lista_iterations", 1),
    ("term_tilt", 2e-3),
    ("sort_by_frequency", True),
    ("k_start", 2.0),
    ("k_start", 3.0),
    ("k_fraction", 0.5),
    ("lista_eta", 0.5),
    ("lista_eta", 0.1),
    ("term_tilt", 5e-3),
    ("term_tilt", 1e-3),
    ("levels", 5),
    ("levels", 3),
    ("k_start", 1.5),
    ("k_start", 4.0),
    ("k_fraction", 0.75),
    ("lista_iterations", 2),
]

COST = {"worse": 2.0, "failed": 3.0, "no change": 1.0, "inconclusive": 0.5}
"""How much a past verdict counts against trying the same setting again from the same start: a
significant loss most, a failed run more (it may fail again), a change within the noise less,
a promising but unconfirmed difference least."""
NOOP_COST = 1.0
"""Added for a no-op: the setting did not reach the SAE, so changing it again likely will not."""
PENALTY_WEIGHT = 6.0
"""Rank places a unit of penalty is worth: one "worse" (12 places) moves a change behind most of
PRIOR (18 entries), one "no change" (6) behind the seed's main findings."""
UNRANKED_SPREAD = 10.0
"""Changes outside PRIOR come after it, in a random order over this many places."""
JITTER = 1.5
"""Random rank noise: neighbours in PRIOR may swap, so that seeds explore differently."""
HELPED_BONUS = 8.0
"""Places gained by a setting whose best value so far raised the objective: its other values
are tried sooner (a tuning direction that works is worth refining)."""
COMBINE_AFTER = 4
"""Single changes from a start that must have been tried before their winners are combined."""


def penalties(ctx: AgentContext) -> dict[tuple[str, str], float]:
    """(start config, changed setting) pairs that did not help before, by how badly."""
    configs = {p.id: p.config for p in ctx.past if p.config}
    configs.update({f"baseline:{n}": c for n, c in BASELINE_CONFIGS.items()})
    out: dict[tuple[str, str], float] = {}
    for p in ctx.past:
        parent = configs.get(p.parent or "")
        if not p.config or parent is None:
            continue
        for field in changes(parent, p.config):
            key = (config_key(parent), field)
            out[key] = out.get(key, 0.0) + COST.get(p.verdict, 0.0) + (NOOP_COST if p.noop else 0.0)
    return out


def gains(start: dict, ctx: AgentContext) -> dict[str, tuple[float, dict]]:
    """Single changes already tried from `start` (sprints whose parent had exactly the start's
    configuration): {setting: (objective gain over that parent, config)} for the best value of
    each setting, significant or not."""
    means = {p.id: getattr(p, ctx.objective) for p in ctx.past}
    means.update({f"baseline:{n}": m.get(ctx.objective) for n, m in ctx.baselines.items()})
    configs = {p.id: p.config for p in ctx.past if p.config}
    configs.update({f"baseline:{n}": c for n, c in BASELINE_CONFIGS.items()})
    start_key = config_key(start)
    out: dict[str, tuple[float, dict]] = {}
    for p in ctx.past:
        mine, theirs = getattr(p, ctx.objective), means.get(p.parent or "")
        parent_config = configs.get(p.parent or "")
        if not p.config or mine is None or theirs is None or p.noop or parent_config is None:
            continue
        if config_key(parent_config) != start_key:
            continue
        fields = changes(start, p.config)
        if len(main_changes(fields)) == 1:
            gain = mine - theirs
            if fields[0] not in out or gain > out[fields[0]][0]:
                out[fields[0]] = (gain, p.config)
    return out


def combination(start: dict, ctx: AgentContext, tried: set[str]) -> tuple[dict, list[str]] | None:
    """Once the main single changes from `start` have been tried, the union of those that raised
    the objective (even without significance): promising parts often add up."""
    found = gains(start, ctx)
    good = [f for f, (gain, _) in sorted(found.items(), key=lambda kv: -kv[1][0]) if gain > 0]
    if len(found) < COMBINE_AFTER or len(good) < 2:
        return None
    for n in range(len(good), 1, -1):
        config = dict(start)
        for field in good[:n]:
            config.update({k: v for k, v in found[field][1].items() if k in changes(start, found[field][1])})
        config = normalise(config)
        if config_key(config) not in tried:
            return config, changes(start, config)
    return None


def candidates(start: dict, ctx: AgentContext, seed: int) -> list[tuple[dict, list[str]]]:
    """Untried configurations near `start`, the most promising first, with their changed settings."""
    rng = random.Random(f"{seed}:{ctx.sprint_number}")
    tried = {config_key(p.config) for p in ctx.past if p.config} | {config_key(c) for c in BASELINE_CONFIGS.values()}
    penalty, found, start_key = penalties(ctx), gains(start, ctx), config_key(start)
    single = []
    for field, values in CHOICES.items():
        for value in values:
            config = normalise({**start, field: value})
            if config_key(config) in tried or config == start:
                continue
            rank = (
                PRIOR.index((field, value)) if (field, value) in PRIOR else len(PRIOR) + rng.random() * UNRANKED_SPREAD
            )
            score = rank + PENALTY_WEIGHT * penalty.get((start_key, field), 0.0) + rng.random() * JITTER
            if found.get(field, (0.0,))[0] > 0:
                score -= HELPED_BONUS
            single.append((score, config, [field]))
    single.sort(key=lambda item: item[0])
    out = [(c, f) for _, c, f in single]
    combo = combination(start, ctx, tried)
    if combo is not None:
        out.insert(0, combo)
    if out:
        return out
    double = []
    for (f1, v1s), (f2, v2s) in itertools.combinations(CHOICES.items(), 2):
        for v1, v2 in itertools.product(v1s, v2s):
            config = normalise({**start, f1: v1, f2: v2})
            if config_key(config) not in tried and config != start:
                double.append((config, [f1, f2]))
    rng.shuffle(double)
    if double:
        return double
    everything = [normalise(dict(zip(CHOICES, values))) for values in itertools.product(*CHOICES.values())]
    rest = {config_key(c): c for c in everything if config_key(c) not in tried}
    return [(rest[k], changes(start, rest[k])) for k in sorted(rest, key=lambda _: rng.random())]
