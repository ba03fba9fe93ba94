"""The contract and benchmark card: what an LLM agent must know to write a variant that can
win, rendered from the profile and the project's settings (never hand-kept prose that drifts
from what the harness does). Part of every LLM backend's system prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from autosae.bench.profiles import Profile
    from autosae.config import TaskConfig


def render_card(
    profile: Profile,
    cfg: TaskConfig,
    baselines: dict[str, dict] | None = None,
    time_limit_s: float | None = None,
    project_root: Path | None = None,
) -> str:
    """The card for `profile` under TASK.md's settings; `baselines` (the harness's results per
    baseline) give the measured true L0; `time_limit_s` is the per-seed limit of counted runs;
    `project_root` (the main checkout) may hold its own templates/agent/card.md.j2."""
    from autosae.agents.prompts import render
    from autosae.report.format import duration

    c = profile.constraints
    true_l0 = next(
        (
            res["summary"]["true_l0"]["mean"]
            for res in (baselines or {}).values()
            if isinstance((res.get("summary") or {}).get("true_l0"), dict)
        ),
        None,
    )
    limit = time_limit_s or profile.time_limit_s
    return render(
        "card.md.j2",
        project_root,
        p=profile,
        c=c,
        m=profile.model,
        steps=c.training_samples // c.batch_size,
        objective=cfg.objective,
        seeds=cfg.seed_list(),
        alpha=cfg.significance,
        time_limit=duration(limit),
        heldout_models=cfg.heldout.models if cfg.heldout.auto else 0,
        heldout_seeds=cfg.heldout.seeds,
        true_l0=true_l0,
    )
