"""Reference results per profile, trained once and cached: BatchTopK and Matryoshka always,
every other reference variant where a counted run is cheap (ALL_REFERENCES_SAMPLES) or when a
sprint names it as its parent (`baseline:<name>`), so that every reference variant is a valid
parent compared with its own numbers."""

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
ALL_REFERENCES_SAMPLES = 10_000_000
"""Up to this many training samples (all of `tiny`), every reference variant is trained as a
baseline: the proposer then sees what each reference recipe scores on the profile."""


def baseline_names(profile: Profile, also: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The baselines a sprint on `profile` needs: BASELINES, every reference variant on a cheap
    profile, and `also` (e.g. the sprint's parent's name, when it is a reference variant)."""
    refs = reference_variants()
    names = list(BASELINES)
    if profile.constraints.training_samples <= ALL_REFERENCES_SAMPLES:
        names += [n for n in refs if n not in names]
    names += [n for n in also if n in refs and n not in names]
    return names


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


def run_baselines(
    profile: Profile, opts: RunOptions, force: bool = False, also: tuple[str, ...] | list[str] = ()
) -> dict[str, dict]:
    """{name: results} for each baseline (baseline_names), from the cache when an intact result
    exists."""
    root = baseline_dir(profile, opts.seeds)
    refs = reference_variants()
    found = {}
    for name in baseline_names(profile, also):
        out = root / name
        hit = None if force else cached(out, refs[name])
        if hit is not None:
            opts.log(f"baseline {name}: cached ({out})")
            found[name] = hit | {"cached": True, "run_dir": str(out)}
            continue
        opts.log(f"baseline {name}: training {len(opts.seeds)} seeds on {profile.name}")
        found[name] = run_variant(refs[name], profile, out, opts) | {"cached": False, "run_dir": str(out)}
    return found
