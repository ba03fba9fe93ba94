"""The rule that keeps quick (uncounted) runs off the test set, alone so that the harness
(harness.run) and TASK.md's validation (config) can apply it without importing the quick-run
machinery (harness.quick, which itself runs the harness): a quick run never trains on a counted
run's seeds nor is scored on a counted run's eval samples.

- training seeds: a quick seed s (0 <= s < QUICK_SEED_SPAN) trains as QUICK_SEED_BASE + s;
  counted seeds stay below QUICK_SEED_BASE.
- eval samples: drawn under VALIDATION_EVAL_SEED, a public "validation" seed that is neither the
  profile's public eval seed (1234) nor any secret one (project_secrets draws those from
  [1e6, 1e6 + 1e9)), nor any training seed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError

if TYPE_CHECKING:
    from autosae.bench.profiles import Profile

QUICK_SEED_BASE = 900_000
"""Quick seed s trains as QUICK_SEED_BASE + s; counted seeds must stay below it."""
QUICK_SEED_SPAN = 1_000
"""Quick seeds are 0 .. QUICK_SEED_SPAN - 1."""
VALIDATION_EVAL_SEED = 2_000_000_000
"""The torch seed of the validation samples that quick runs are scored on (public)."""
EVAL_SET = "validation"


def quick_seed(seed: int) -> int:
    """The training seed of quick seed `seed` (a seed already in the reserved range is kept,
    so that a run handed on, e.g. to a launcher job, is not moved twice)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise AutosaeError(f"seed {seed!r}: expected an integer")
    if QUICK_SEED_BASE <= seed < QUICK_SEED_BASE + QUICK_SEED_SPAN:
        return seed
    if not 0 <= seed < QUICK_SEED_SPAN:
        raise AutosaeError(f"seed {seed}: quick (uncounted) runs take seeds 0 to {QUICK_SEED_SPAN - 1}")
    return QUICK_SEED_BASE + seed


def reserved_seed_problem(seeds: list[int]) -> str | None:
    """Why these counted seeds are refused (None: they are fine)."""
    bad = [s for s in seeds if s >= QUICK_SEED_BASE]
    if bad:
        return (
            f"seed {bad[0]} is reserved: seeds from {QUICK_SEED_BASE} up train quick (uncounted) runs, "
            f"so counted seeds must be below {QUICK_SEED_BASE}"
        )
    return None


def check_counted_seeds(seeds: list[int]) -> None:
    problem = reserved_seed_problem(list(seeds))
    if problem:
        raise AutosaeError(problem)


def validation_run(profile: Profile, seeds: list[int]) -> tuple[Profile, list[int], dict]:
    """An uncounted run's profile and seeds moved onto the validation samples and the quick
    seeds, whatever the caller passed (a profile carrying the secret eval seed included), and
    the record of it for results.json."""
    requested, seeds = list(seeds), [quick_seed(s) for s in seeds]
    record = {
        "eval_set": EVAL_SET,
        "eval_seed": VALIDATION_EVAL_SEED,
        "requested_seeds": requested,
        "seeds": seeds,
        "note": "uncounted: validation samples and training seeds that no counted run uses",
    }
    return (
        dataclasses.replace(profile, eval_seed=VALIDATION_EVAL_SEED),
        seeds,
        record,
    )
