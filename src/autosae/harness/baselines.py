"""Reference results (BatchTopK and Matryoshka) per profile, trained once and cached."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from autosae.bench.cache import cache_root
from autosae.bench.profiles import Profile
from autosae.harness.run import RunOptions, run_variant, sha256_file
from autosae.harness.seal import read_verified
from autosae.records import is_ok
from autosae.variants import reference_variants

BASELINES = ("batchtopk", "matryoshka")


def baseline_dir(profile: Profile, seeds: list[int]) -> Path:
    key = {"model": profile.model_hash(), "constraints": dataclasses.asdict(profile.constraints), "seeds": seeds}
    if profile.eval_seed != Profile.eval_seed:  # the secret eval samples (the public seed keeps its old key)
        key["eval_seed"] = profile.eval_seed
    key = json.dumps(key, sort_keys=True)
    return cache_root() / "baselines" / f"{profile.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def cached(out: Path, variant: Path) -> dict | None:
    """The cached result, when the harness sealed it (see autosae.harness.seal)."""
    results = read_verified(out / "results.json")
    if is_ok(results) and results.get("variant_sha256") == sha256_file(variant):
        return results
    return None


def run_baselines(profile: Profile, opts: RunOptions, force: bool = False) -> dict[str, dict]:
    """{name: results} for each baseline, from the cache when an intact result exists."""
    root = baseline_dir(profile, opts.seeds)
    refs = reference_variants()
    found = {}
    for name in BASELINES:
        out = root / name
        hit = None if force else cached(out, refs[name])
        if hit is not None:
            opts.log(f"baseline {name}: cached ({out})")
            found[name] = hit | {"cached": True, "run_dir": str(out)}
            continue
        opts.log(f"baseline {name}: training {len(opts.seeds)} seeds on {profile.name}")
        found[name] = run_variant(refs[name], profile, out, opts) | {"cached": False, "run_dir": str(out)}
    return found
