"""`autosae bench list | info NAME | build NAME`: the benchmark profiles and their cache."""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import typer

from autosae.cli.common import Device, ModelSeed, Overrides, emit

app = typer.Typer(help="Benchmark profiles: list them, show one, build and cache its model.", no_args_is_help=True)


@app.command("list")
def list_profiles() -> None:
    """List the profiles with their main constraints and whether their model is cached."""
    from autosae.bench.cache import entry_dir, verify
    from autosae.bench.profiles import PROFILES

    typer.echo(f"{'profile':<11} {'features':>8} {'hidden':>6} {'width':>6} {'k':>4} {'samples':>12} {'lr':>7}  cached")
    for p in PROFILES.values():
        c, entry = p.constraints, entry_dir(p)
        cached = "yes" if entry.exists() and verify(entry) is None else "no"
        typer.echo(
            f"{p.name:<11} {p.model.num_features:>8} {p.model.hidden_dim:>6} {c.width:>6} "
            f"{c.k:>4g} {c.training_samples:>12,} {c.lr:>7g}  {cached}"
        )


@app.command()
def info(name: str, model_seed: ModelSeed = None, set_: Overrides = None) -> None:
    """Show a profile: model config, constraints, cache entry and reference numbers."""
    from autosae.bench.cache import entry_dir, verify
    from autosae.bench.profiles import get_profile

    p = get_profile(name, model_seed, set_)
    entry = entry_dir(p)
    emit("profile", p.name)
    emit("description", p.description)
    emit("data", f"{p.data}" + (f" ({p.pool_samples:,} cached samples)" if p.data == "pool" else ""))
    for key, value in dataclasses.asdict(p.model).items():
        emit(f"model.{key}", value)
    for key, value in dataclasses.asdict(p.constraints).items():
        emit(f"constraints.{key}", value)
    emit("time_limit_s", p.time_limit_s)
    emit("model_hash", p.model_hash())
    emit("cache", entry)
    emit("cached", "yes" if entry.exists() and verify(entry) is None else "no")
    if p.notes:
        emit("notes", json.dumps(p.notes))


@app.command()
def build(
    name: str,
    model_seed: ModelSeed = None,
    set_: Overrides = None,
    device: Device = None,
    force: bool = typer.Option(False, help="Rebuild even when an intact cache entry exists."),
) -> None:
    """Build a profile's synthetic model with sae_lens and cache it (instant when cached)."""
    from autosae.bench.build import build as build_model
    from autosae.bench.cache import entry_dir, verify
    from autosae.bench.profiles import get_profile
    from autosae.harness.devices import resolve_device

    p = get_profile(name, model_seed, set_)
    entry = entry_dir(p)
    hit = not force and entry.exists() and verify(entry) is None
    if p.name == "synth-16k" and not hit and resolve_device(device) == "cpu":
        typer.echo("note: building synth-16k on CPU takes about an hour; use --device cuda on a GPU machine", err=True)
    started = time.time()
    path = build_model(p, device=resolve_device(device), force=force, log=lambda line: print(line, file=sys.stderr))
    emit("profile", p.name)
    emit("cache", path)
    emit("cache_hit", "yes" if hit else "no")
    emit("build_s", round(time.time() - started, 2))
