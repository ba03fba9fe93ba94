"""Build SynthSAEBench models locally with sae_lens, and cache them by config hash.

A cache entry is a folder `<cache>/models/<profile>-<hash>/` holding sae_lens's own save
format plus, for pool profiles, `pool.safetensors`, and a `manifest.json` with the sha256 of
every file. An entry is used only when every checksum matches; anything else (a truncated
file, a missing manifest, a failed load) is reported and rebuilt, never silently used.
Entries are written to a temporary folder and renamed into place, so a build killed
half-way leaves no entry behind.

A build shows its own progress on stderr (BuildProgress): one line that updates on a terminal,
one plain line per phase elsewhere. sae_lens's orthogonalisation bar never reaches the output:
it feeds that progress instead (sae_lens forces it on, so TQDM_DISABLE cannot stop it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from autosae import progress
from autosae.bench.cache import MANIFEST, entry_dir, sha256_of, verify
from autosae.bench.profiles import ModelSpec, Profile

POOL_FILE = "pool.safetensors"
SAMPLE_CHUNK = 4096  # sae_lens samples fastest in batches of a few thousand


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


@torch.no_grad()
def sample_pool(model, n: int, seed: int, step: Callable[[int, int], None] = lambda done, total: None) -> torch.Tensor:
    """n hidden activations from the model, drawn in chunks under a fixed torch seed;
    step(done, n) after each chunk."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        chunks = []
        for i in range(0, n, SAMPLE_CHUNK):
            chunks.append(model.sample(min(SAMPLE_CHUNK, n - i)))
            step(min(i + SAMPLE_CHUNK, n), n)
    finally:
        torch.random.set_rng_state(gen_state)
    return torch.cat(chunks).float().cpu().contiguous()


class BuildProgress:
    """Our own progress for one model build, on stderr: on a terminal one rich line that
    updates (the phase, sae_lens's steps, the time so far); elsewhere (a pipe, a log file)
    one plain line per phase, never a carriage return. Inside a command that already draws a
    line (a sprint, autosae.progress), the build shows itself on that line instead."""

    def __init__(self, name: str):
        self.name, self.stream = name, sys.stderr  # the real stderr, before anything replaces it
        self.shared = progress.active()
        self.tty = self.stream.isatty() and self.shared is None
        self.bar = self.task = None
        self.text = ""

    def __enter__(self) -> BuildProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn(f"model {self.name}: {{task.description}}", markup=False),
                BarColumn(bar_width=10),  # the line fits 80 columns
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),  # a file, not stderr=True: sys.stderr is swapped below
                transient=True,
            )
            self.bar.start()
        return self

    def phase(self, text: str) -> None:
        self.text = text
        if self.shared is not None:
            self.shared.show(f"model {self.name}: {text}")
        elif self.bar is not None:  # a task per phase: its own step count and time
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(text, total=None)
        else:
            print(f"model {self.name}: {text}", file=self.stream, flush=True)

    def advance(self, done: int, total: int) -> None:
        if self.shared is not None:
            self.shared.show(f"model {self.name}: {self.text}", done, total)
        elif self.bar is not None and self.task is not None:  # drawn now, not at the next tick:
            self.bar.update(self.task, completed=done, total=total, refresh=True)  # a fast build shows its steps too

    def done(self, text: str) -> None:
        self.__exit__()
        if self.shared is not None:
            self.shared.status(f"model {self.name}: {text}")
        else:
            print(f"model {self.name}: {text}", file=self.stream, flush=True)

    def __exit__(self, *_) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class _BarCatcher(io.TextIOBase):
    """Stands in for stderr while sae_lens builds a model. Its forced tqdm bar (carriage
    returns, thousands of characters off a terminal) becomes calls of on_bar(done, total);
    any other text written meanwhile (a warning) is kept, by line, for the log."""

    STEP = re.compile(r"(\d+)/(\d+) \[")  # tqdm's "45/100 [00:10<00:12, ...]"

    def __init__(self, on_bar: Callable[[int, int], None]):
        self.on_bar, self.pending, self.other = on_bar, "", []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *pieces, self.pending = re.split(r"[\r\n]", self.pending + text)
        for piece in [*pieces, self.pending]:  # the unfinished piece is tqdm's latest state
            if step := self.STEP.search(piece):
                self.on_bar(int(step[1]), int(step[2]))
        self.other += [p.strip() for p in pieces if p.strip() and not self.STEP.search(p)]
        return len(text)

    def lines(self) -> list[str]:
        """What was written that was not the bar."""
        rest = self.pending.strip()
        return self.other + ([rest] if rest and not self.STEP.search(rest) else [])


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
        with BuildProgress(profile.name) as progress:
            spec = profile.model
            progress.phase(f"building with sae_lens ({spec.num_features:,} features)")
            bar = _BarCatcher(progress.advance)
            with contextlib.redirect_stderr(bar):
                model = SyntheticModel(sae_lens_config(spec), device=device)
            for line in bar.lines():  # a warning written while the bar was caught: kept, in the log
                log(f"sae_lens: {line}")
            model.save(tmp)
            if profile.data == "pool":
                progress.phase("sampling the pool")
                pool = sample_pool(model, profile.pool_samples, spec.seed + 1000, progress.advance)
                save_file({"hidden": pool}, tmp / POOL_FILE)
            progress.done(f"built in {time.time() - started:.0f} s (cached for the next runs)")
        files = {p.name: sha256_of(p) for p in sorted(tmp.iterdir()) if p.is_file()}
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
        files["profile.json"] = sha256_of(tmp / "profile.json")
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
