"""The secrets behind a project's scores: the seeds of its held-out models and of the eval samples.

They are drawn at `autosae init` and kept in the user's cache folder, which no sandbox can see
and nothing committed names (files of mode 0600 in a folder of mode 0700):

    $AUTOSAE_CACHE/secrets/<first commit>.json   the project's held-out model seeds
    $AUTOSAE_CACHE/secrets/eval.json             the eval seed of every project on this cache

The eval seed decides which samples runs are scored on: the profile's own eval seed is public,
so a variant that rebuilt the benchmark model could regenerate those samples and answer by
lookup; it cannot regenerate samples it has no seed for. It is one per cache rather than one
per project so that the baselines (trained once per model, constraints, seeds and eval seed)
are shared by the projects on one machine instead of being trained again for each: two GPU
hours on synth-16k.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

HELDOUT_MODELS = 5


def secrets_path(project_key: str) -> Path:
    from autosae.bench.cache import cache_root

    return cache_root() / "secrets" / f"{project_key}.json"


def _draw(path: Path, valid, fresh) -> dict:
    """The JSON at `path` when `valid`, else `fresh()` written there (mode 0600; the first
    writer wins when two processes race)."""
    from autosae.harness.seal import write_private

    try:
        data = json.loads(path.read_text())
        if valid(data):
            return data
        broken = True  # there, but not usable: replace it
    except FileNotFoundError:
        broken = False  # not there yet: a racing writer's file wins over ours
    except (OSError, ValueError):
        broken = True
    return json.loads(write_private(path, json.dumps(fresh()).encode(), replace=broken))


def heldout_seeds(project_key: str) -> list[int]:
    """The project's secret held-out model seeds (drawn on first use, normally by init)."""
    from autosae.bench.cache import cache_root

    def valid(data) -> bool:
        seeds = data.get("heldout_seeds") if isinstance(data, dict) else None
        return isinstance(seeds, list) and len(seeds) == HELDOUT_MODELS and all(isinstance(s, int) for s in seeds)

    def fresh() -> dict:
        try:  # a project from before the secrets folder keeps its held-out seeds
            legacy = json.loads((cache_root() / "heldout" / f"{project_key}.json").read_text())["seeds"]
            if isinstance(legacy, list) and len(legacy) == HELDOUT_MODELS:
                return {"heldout_seeds": [int(s) for s in legacy]}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return {"heldout_seeds": [1_000 + secrets.randbelow(10**9) for _ in range(HELDOUT_MODELS)]}

    return _draw(secrets_path(project_key), valid, fresh)["heldout_seeds"]


def eval_seed() -> int:
    """The secret seed of the eval samples (drawn on first use, normally by init)."""
    from autosae.bench.cache import cache_root

    def valid(data) -> bool:
        return isinstance(data, dict) and isinstance(data.get("eval_seed"), int)

    return _draw(
        cache_root() / "secrets" / "eval.json", valid, lambda: {"eval_seed": 1_000_000 + secrets.randbelow(10**9)}
    )["eval_seed"]


def draw_all(project_key: str) -> list[Path]:
    """Make sure the project's secrets exist (at init, before any agent runs); their files."""
    from autosae.bench.cache import cache_root

    heldout_seeds(project_key)
    eval_seed()
    return [secrets_path(project_key), cache_root() / "secrets" / "eval.json"]


def with_secret_eval(profile):
    """The profile scored on the secret eval samples."""
    import dataclasses

    return dataclasses.replace(profile, eval_seed=eval_seed())
