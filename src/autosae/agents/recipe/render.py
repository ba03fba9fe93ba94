"""What the recipe agent writes: a sprint's variant.py and README.md, and its conclusion."""

from __future__ import annotations

from pathlib import Path

from autosae.agents.base import PastSprint, Proposal
from autosae.agents.recipe.config import LEVEL_DIVISORS, changes, normalise
from autosae.templating import render


def render_variant(
    config: dict,
    title: str = "recipe variant",
    idea: str = "",
    parent: str = "",
    parent_config: dict | None = None,
    project_root: Path | None = None,
) -> str:
    """variant.py: a build(spec) that composes autosae.sae's components as `config` says."""
    c = normalise(config)
    uses = [
        name
        for name, on in (
            ("LinearK", c["k_start"] != 1.0),
            ("LISTA", c["lista_iterations"] > 0),
            ("TERM", c["term_tilt"] > 0),
        )
        if on
    ]
    return render(
        "recipe/variant.py.j2",
        project_root,
        config=c,
        title=title,
        idea=idea,
        parent=parent or "baseline:matryoshka",
        uses=uses,
        divisors=LEVEL_DIVISORS[c["levels"]],
        changes=changes(parent_config or c, c),
    )


def render_readme(proposal: Proposal, config: dict, parent_config: dict, seed: int, project_root=None) -> str:
    """README.md: the idea, hypothesis and plan, and the configuration beside the parent's."""
    return render(
        "recipe/README.md.j2",
        project_root,
        title=proposal.title,
        idea=proposal.idea,
        hypothesis=proposal.hypothesis,
        plan=proposal.plan,
        parent=proposal.parent,
        config=config,
        parent_config=parent_config,
        changes=changes(parent_config, config),
        seed=seed,
    )


def _pm(stat: dict | None) -> str:
    """`0.7810 ± 0.0060`, or `0.7810 ± not measurable (n = 1)` from a single seed."""
    from autosae.report.format import fmt_pm

    return fmt_pm(stat, 4, missing="no score")


def conclusion_text(
    proposal: Proposal, results: dict, verdict: dict, past: list[PastSprint], project_root: Path | None = None
) -> str:
    """Markdown: what changed, the numbers against the parent, the best and the baselines, what
    they mean given the verdict, and what comes next."""
    text = render(
        "recipe/conclusion.md.j2",
        project_root,
        idea=proposal.idea,
        objective=verdict.get("objective", "f1"),
        verdict=verdict,
        summary=results.get("summary") or {},
        reason=results.get("reason") or verdict.get("reason"),
        tried=sum(1 for s in past if s.config) + 1,
        pm=_pm,
    )
    return text.removesuffix("\n")  # the template ends its last line; the conclusion never did
