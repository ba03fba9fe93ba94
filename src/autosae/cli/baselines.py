"""`autosae baselines`: train (once) and show the BatchTopK and Matryoshka references."""

from __future__ import annotations

from typing import Annotated

import typer

from autosae.cli.common import Device, Gpus, ModelSeed, Overrides, Profile, Sandbox, Seeds, emit, sandbox_mode
from autosae.harness.slots import pool_for_gpus


def baselines(
    profile: Profile = "tiny",
    seeds: Seeds = 3,
    device: Device = None,
    gpus: Gpus = None,
    model_seed: ModelSeed = None,
    set_: Overrides = None,
    force: Annotated[bool, typer.Option(help="Retrain even when cached results exist.")] = False,
    sandbox: Sandbox = "auto",
) -> None:
    """Train and cache the reference SAEs (BatchTopK and Matryoshka; every reference variant on a
    profile of at most 10M training samples), then print their scores."""
    from autosae.bench.profiles import get_profile
    from autosae.harness.baselines import run_baselines
    from autosae.harness.run import RunOptions
    from autosae.report.format import fmt_pm

    prof = get_profile(profile, model_seed, set_)
    opts = RunOptions.make(
        seeds=list(range(seeds)), device=device, pool=pool_for_gpus(gpus), sandbox=sandbox_mode(sandbox)
    )
    found = run_baselines(prof, opts, force=force)
    emit("profile", prof.name)
    emit("seeds", seeds)
    for name, results in found.items():
        s = results["summary"]
        emit(f"{name}_f1", fmt_pm(s["f1"], 4))  # one seed: "± not measurable (n = 1)"
        emit(f"{name}_mcc", fmt_pm(s["mcc"], 4))
        emit(f"{name}_wall_s", results["wall_s"])
        emit(f"{name}_cached", "yes" if results["cached"] else "no")
        emit(f"{name}_results", f"{results['run_dir']}/results.json")
    gap = found["matryoshka"]["summary"]["f1"]["mean"] - found["batchtopk"]["summary"]["f1"]["mean"]
    emit("matryoshka_minus_batchtopk_f1", f"{gap:+.4f}")
