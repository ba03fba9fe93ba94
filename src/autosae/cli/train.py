"""`autosae train VARIANT`: a counted (or exploratory) run of one variant, and `autosae variants`."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from autosae import progress
from autosae.cli.common import Device, Gpus, ModelSeed, Overrides, Profile, Sandbox, Seeds, emit, sandbox_mode
from autosae.errors import AutosaeError
from autosae.harness.slots import pool_for_gpus
from autosae.records import is_ok
from autosae.report.format import measured, not_measurable

SUMMARY_KEYS = ("f1", "mcc", "precision", "recall", "l0", "dead_latents", "explained_variance")
UNCOUNTED_HELP = (
    "Exploratory run: constraints may change; never counted. It trains on seeds and is scored on "
    "validation samples that no counted run uses."
)
PARENT_HELP = (
    "With --uncounted: also train this variant (a path, or a reference variant name such as the "
    "parent's) at the same budget, seeds and validation samples (cached), and print the difference."
)


def resolve_variant(name_or_path: str) -> Path:
    """A variant file path, or the name of a reference variant (see `autosae variants`)."""
    from autosae.variants import reference_variants

    path = Path(name_or_path)
    if path.is_file():
        return path
    refs = reference_variants()
    if name_or_path in refs:
        return refs[name_or_path]
    raise AutosaeError(f"variant {name_or_path!r} is neither a file nor a reference variant ({', '.join(refs)})")


def refuse_inside_a_sandbox() -> None:
    """Inside autosae's own sandbox (an agent's bash, a Claude Code session) bubblewrap cannot
    start another one ("nesting depth"): there a run would go on bare, with the agent's network
    and key, whatever --sandbox says. Refuse in one line instead; the agent's quick runs go
    through its run_experiment tool, which autosae runs outside, sandboxed."""
    import os

    from autosae.agents.sandbox import INSIDE_SANDBOX
    from autosae.sandbox import availability

    inside = any(os.environ.get(k) == v for k, v in INSIDE_SANDBOX.items())
    ok, why = (False, "") if inside else availability()
    if inside or (not ok and "nesting depth" in why):
        raise AutosaeError(
            "autosae train refuses to run here: this is inside autosae's own sandbox, where a "
            "variant cannot be sandboxed again; ask for a quick run with the run_experiment tool"
        )


def print_results(results: dict, out: Path, quick: dict | None = None) -> None:
    """The run's greppable lines; for a quick run (`quick`: its report, see harness.quick) also
    the validation set and seeds it used, its training log's summary and the parent beside it."""
    emit("status", results["status"])
    emit("counted", "yes" if results["counted"] else "no")
    if quick is not None:
        emit("eval_set", quick["eval_set"])
        emit("train_seeds", " ".join(str(s) for s in quick["train_seeds"] or []))
    emit("sandboxed", "yes" if (results.get("sandbox") or {}).get("enabled") else "NO")
    emit("profile", results["profile"])
    emit("variant_sha256", results["variant_sha256"][:16])
    emit("seeds", len(results["per_seed"]))
    for key in SUMMARY_KEYS:
        stats = results["summary"].get(key)
        if stats:
            emit(key, stats["mean"])
            emit(f"{key}_std", stats["std"] if measured(stats) else not_measurable(stats.get("n")))
    for row in results["per_seed"]:
        if is_ok(row):
            emit(
                f"seed_{row['seed']}",
                f"f1={row['f1']:.4f} mcc={row['mcc']:.4f} "
                f"l0={row['l0']:.2f} wall_s={row['wall_s']}"
                + (f" device={row['device']}" if row.get("device") else ""),
            )
    if quick is not None:
        print_quick(quick)
    emit("wall_s", results["wall_s"])
    emit("results", out / "results.json")


def print_quick(quick: dict) -> None:
    """Each seed's training log in brief (`log_<name>` from the harness, `variant_<name>` from the
    variant's own metrics), then the parent's metrics and the differences."""

    def brief(stats: dict) -> str:
        return " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())

    for seed, logged in quick["logged"].items():
        for group, prefix in (("harness", "log"), ("variant", "variant")):
            for name, stats in (logged.get(group) or {}).items():
                emit(f"{prefix}_{name}", f"seed={seed} {brief(stats)}")
        if logged.get("variant_left_out"):
            emit("variant_left_out", logged["variant_left_out"])
    parent = quick.get("parent")
    if parent is None:
        return
    emit("parent", parent["variant"])
    emit("parent_status", parent["status"])
    if parent.get("reason"):
        emit("parent_reason", parent["reason"])
    if "cached" in parent:
        emit("parent_cached", "yes" if parent["cached"] else "no")
    for key in SUMMARY_KEYS:
        if key in parent.get("metrics", {}):
            emit(f"parent_{key}", parent["metrics"][key])
    for key, delta in quick.get("delta_vs_parent", {}).items():
        emit(f"delta_{key}", f"{delta:+.6g}")
    if parent.get("run_folder"):
        emit("parent_results", Path(parent["run_folder"]) / "results.json")


def train(
    variant: Annotated[str, typer.Argument(help="variant.py path, or a reference variant name.")],
    profile: Profile = "tiny",
    seeds: Seeds = 3,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/<profile>-<variant>-<time>).")] = None,
    device: Device = None,
    gpus: Gpus = None,
    model_seed: ModelSeed = None,
    set_: Overrides = None,
    samples: Annotated[int | None, typer.Option(help="Training samples (only with --uncounted).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (only with --uncounted).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (only with --uncounted).")] = None,
    uncounted: Annotated[bool, typer.Option(help=UNCOUNTED_HELP)] = False,
    parent: Annotated[str | None, typer.Option(help=PARENT_HELP)] = None,
    time_limit: Annotated[
        float | None, typer.Option(help="Per-seed time limit in seconds (default: the profile's).")
    ] = None,
    memory_limit_gb: Annotated[
        float | None,
        typer.Option(help="Memory cap for each variant's sandbox in GiB (default: 3/4 of this machine's)."),
    ] = None,
    disk_limit_gb: Annotated[float, typer.Option(help="Most each variant's process may write, in GiB.")] = 8.0,
    sandbox: Sandbox = "auto",
) -> None:
    """Train VARIANT on a profile in a sandboxed process and score it here (F1, MCC, ...).

    Writes results.json, train_log.jsonl per seed and the SAE (safetensors + cfg.json) to
    the run folder, and prints greppable `key: value` lines.
    """
    from autosae.bench.profiles import get_profile
    from autosae.harness.constraints import apply_requests
    from autosae.harness.run import RunOptions, run_variant

    refuse_inside_a_sandbox()
    path = resolve_variant(variant)
    if parent is not None and not uncounted:
        raise AutosaeError("--parent trains a comparison beside a quick run: it needs --uncounted")
    parent_path = resolve_variant(parent) if parent is not None else None
    prof = get_profile(profile, model_seed, set_)
    prof = apply_requests(
        prof, {"training_samples": samples, "lr": lr, "batch_size": batch_size}, counted=not uncounted
    )
    if out is None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d--%H-%M-%S")
        out = Path("runs") / f"{prof.name}-{path.stem}-{stamp}"
    live = progress.LiveLine(sys.stderr)  # the harness's lines: one updating line on a terminal

    def log(line: str) -> None:
        if not live.detail(line):
            live.status(line)

    opts = RunOptions.make(
        seeds=list(range(seeds)),
        log=log,
        device=device,
        time_limit_s=time_limit,
        memory_limit_gb=memory_limit_gb,
        disk_limit_gb=disk_limit_gb,
        counted=not uncounted,
        pool=pool_for_gpus(gpus),
        sandbox=sandbox_mode(sandbox),
    )
    with live:
        results = run_variant(path, prof, out, opts)
        quick = None
        if uncounted:
            from autosae.harness.quick import beside, quick_report

            side = beside(parent_path, parent, prof, opts, True) if parent_path is not None else None
            quick = quick_report(results, out, side)
    print_results(results, out, quick)


def variants() -> None:
    """List the reference variants shipped with autosae (usable by name in `train`)."""
    from autosae.variants import reference_variants

    for name, path in reference_variants().items():
        doc = path.read_text().split('"""')[1].strip().splitlines()[0]
        typer.echo(f"{name:<18} {doc}")
        typer.echo(f"{'':<18} {path}")
