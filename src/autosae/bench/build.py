"""Build SynthSAEBench models locally with sae_lens, and cache them by config hash.

A cache entry is a folder `<cache>/models/<profile>-<hash>/` holding sae_lens's own save
format plus, for pool profiles, `pool.safetensors`, and a `manifest.json` with the sha256 of
every file. An entry is used only when every checksum matches; anything else (a truncated
file, a missing manifest, a failed load) is reported and rebuilt, never silently used.
Entries are written to a temporary folder and renamed into place, so a build killed
half-way leaves no entry behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from platformdirs import user_cache_dir
from safetensors.torch import load_file, save_file

from autosae.bench.profiles import ModelSpec, Profile

MANIFEST = "manifest.json"
POOL_FILE = "pool.safetensors"
SAMPLE_CHUNK = 4096  # sae_lens samples fastest in batches of a few thousand


def cache_root() -> Path:
    """$AUTOSAE_CACHE, else the user cache dir (e.g. ~/.cache/autosae)."""
    return Path(os.environ.get("AUTOSAE_CACHE") or user_cache_dir("autosae"))


def entry_dir(profile: Profile) -> Path:
    return cache_root() / "models" / f"{profile.name}-{profile.model_hash()}"


def sae_lens_config(spec: ModelSpec):
    """The sae_lens SyntheticModelConfig that a ModelSpec describes."""
    from sae_lens.synthetic import (
        FoldedNormalMagnitudeConfig,
        HierarchyConfig,
        LinearMagnitudeConfig,
        LowRankCorrelationConfig,
        OrthogonalizationConfig,
        SyntheticModelConfig,
        ZipfianFiringProbabilityConfig,
    )

    hierarchy = None
    if spec.hierarchy_roots > 0:
        hierarchy = HierarchyConfig(
            total_root_nodes=spec.hierarchy_roots,
            branching_factor=spec.branching,
            max_depth=spec.max_depth,
            mutually_exclusive_portion=spec.mutually_exclusive_portion,
            mutually_exclusive_min_depth=spec.mutually_exclusive_min_depth,
            compensate_probabilities=spec.compensate_probabilities,
            scale_children_by_parent=spec.scale_children_by_parent,
        )
    return SyntheticModelConfig(
        num_features=spec.num_features,
        hidden_dim=spec.hidden_dim,
        firing_probability=ZipfianFiringProbabilityConfig(
            exponent=spec.zipf_exponent, max_prob=spec.max_prob, min_prob=spec.min_prob
        ),
        hierarchy=hierarchy,
        orthogonalization=(
            OrthogonalizationConfig(num_steps=spec.ortho_steps, lr=spec.ortho_lr) if spec.ortho_steps > 0 else None
        ),
        correlation=(
            LowRankCorrelationConfig(rank=spec.correlation_rank, correlation_scale=spec.correlation_scale)
            if spec.correlation_rank > 0
            else None
        ),
        mean_firing_magnitudes=LinearMagnitudeConfig(start=spec.mean_magnitude_start, end=spec.mean_magnitude_end),
        std_firing_magnitudes=FoldedNormalMagnitudeConfig(mean=spec.std_magnitude_mean, std=spec.std_magnitude_std),
        bias=spec.bias,
        seed=spec.seed,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(entry: Path) -> str | None:
    """None when the entry is complete and intact, else why it is not."""
    manifest = entry / MANIFEST
    if not manifest.is_file():
        return "no manifest"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return "unreadable manifest"
    for name, digest in files.items():
        path = entry / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != digest:
            return f"{name} does not match its checksum"
    return None


@torch.no_grad()
def sample_pool(model, n: int, seed: int) -> torch.Tensor:
    """n hidden activations from the model, drawn in chunks under a fixed torch seed."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        chunks = [model.sample(min(SAMPLE_CHUNK, n - i)) for i in range(0, n, SAMPLE_CHUNK)]
    finally:
        torch.random.set_rng_state(gen_state)
    return torch.cat(chunks).float().cpu().contiguous()


def build(profile: Profile, device: str = "cpu", force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Build the profile's model (and pool) into the cache unless an intact entry exists."""
    entry = entry_dir(profile)
    if not force:
        problem = verify(entry) if entry.exists() else "not built"
        if problem is None:
            return entry
        if entry.exists():
            log(f"warning: cached model {entry} is unusable ({problem}); rebuilding")
    from sae_lens.synthetic import SyntheticModel  # slow to import: only when building

    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        started = time.time()
        # sae_lens forces its orthogonalisation progress bar on (show_progress=True); off a
        # terminal (a log, an agent's tool output) it is thousands of characters of noise
        quiet = contextlib.nullcontext() if sys.stderr.isatty() else contextlib.redirect_stderr(io.StringIO())
        with quiet:
            model = SyntheticModel(sae_lens_config(profile.model), device=device)
        model.save(tmp)
        if profile.data == "pool":
            pool = sample_pool(model, profile.pool_samples, seed=profile.model.seed + 1000)
            save_file({"hidden": pool}, tmp / POOL_FILE)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "profile.json").write_text(
            json.dumps(
                {
                    "profile": profile.name,
                    "model": asdict(profile.model),
                    "pool_samples": profile.pool_samples,
                    "build_s": round(time.time() - started, 2),
                },
                indent=2,
            )
        )
        files["profile.json"] = _sha256(tmp / "profile.json")
        (tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=2))
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(tmp, entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


def load(profile: Profile, device: str = "cpu", log: Callable[[str], None] = print):
    """(SyntheticModel, pool or None) for the profile, building or repairing the cache first."""
    from sae_lens.synthetic import SyntheticModel

    entry = build(profile, device=device, log=log)
    try:
        model = SyntheticModel.load_from_disk(entry, device=device)
        pool = load_file(entry / POOL_FILE)["hidden"] if profile.data == "pool" else None
    except Exception as exc:  # a file that passed its checksum but will not load
        log(f"warning: cached model {entry} failed to load ({exc}); rebuilding")
        entry = build(profile, device=device, force=True, log=log)
        model = SyntheticModel.load_from_disk(entry, device=device)
        pool = load_file(entry / POOL_FILE)["hidden"] if profile.data == "pool" else None
    return model, pool
