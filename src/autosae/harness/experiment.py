"""The agent's `run_experiment`: a quick, uncounted harness run of a variant on a shortened
profile, on the validation samples and quick seeds (never the counted ones: see
harness.quick), with the sprint's parent trained beside it when asked for or cheap (cached).

The engine hands over what it knows of the sprint (its profile, TASK.md's overrides, its
parent, where runs go and how they run); what the experiment returns is all the agent sees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError

if TYPE_CHECKING:
    from autosae.harness.run import RunOptions

MAX_EXPERIMENT_S = 1800.0
"""The most one quick run may take, whatever the profile's time limit."""
NOTE = (
    "uncounted: one seed, fewer samples, scored on validation samples that no counted "
    "run uses; the verdict comes from the counted run"
)


def experimenter(
    sprint_profile: str,
    model_seed: int | None,
    overrides: list[str],
    parent_name: str,
    parent_variant: Path | None,
    out_root: Path,
    options: Callable[..., RunOptions],
) -> Callable[..., dict]:
    """`run_experiment` for one sprint on `sprint_profile` (TASK.md's `model_seed` and profile
    `overrides` apply to that profile only). `parent_variant` is the parent's variant.py (None
    when unknown); each experiment gets a numbered folder under `out_root`; `options(seeds=,
    time_limit_s=)` gives the RunOptions (device, sandbox, limits, log) of an uncounted run.
    A failed experiment is an answer ({"status": "error", "reason": ...}), never an exception."""
    from autosae.bench.profiles import get_profile
    from autosae.harness.quick import clamp_samples, run_quick

    def experiment(
        variant: Path, samples: int | None, profile: str | None, seed: int = 0, parent: bool | None = None
    ) -> dict:
        name = profile or sprint_profile
        own = name == sprint_profile
        extra = overrides if own else []
        try:
            full = get_profile(name, model_seed if own else None, extra)
            samples = clamp_samples(samples, full.constraints)
            short = get_profile(
                name,
                model_seed if own else None,
                [o for o in extra if not o.startswith("training_samples=")] + [f"training_samples={samples}"],
            )
            out = out_root / f"{len(list(out_root.glob('*'))) if out_root.exists() else 0:03d}"
            opts = options(seeds=[seed], time_limit_s=min(short.time_limit_s, MAX_EXPERIMENT_S))
            report = run_quick(
                variant,
                short,
                out,
                opts,
                parent_variant if parent_variant and parent_variant.is_file() else None,
                parent_name,
                parent,
            )
        except AutosaeError as exc:
            return {"status": "error", "reason": str(exc)}
        return {**report, "seed": seed, "note": NOTE}

    return experiment
