"""The offline recipe agent: proposes, implements and concludes sprints over autosae.sae's
components without an API key (the default backend without one, and `make demo`'s).

Each sprint starts from the best configuration so far (the Matryoshka baseline at first) and
takes the search's next untried configuration; an exploration sprint instead changes one
setting of the Matryoshka baseline in a component family the best does not use; a user's idea
is read by keywords (ideas.py). It is deterministic for a given seed and ledger.
"""

from __future__ import annotations

import random
from pathlib import Path

import autosae.agents.recipe.hand_search as hand_search
import autosae.agents.recipe.search as search
from autosae.agents.base import AgentContext, AgentError, Conclusion, Proposal
from autosae.agents.recipe.config import (
    BASELINE_CONFIGS,
    CHOICES,
    FAMILY,
    WHY,
    changes,
    config_key,
    describe,
    main_changes,
    normalise,
    summarise,
)
from autosae.agents.recipe.ideas import config_from_idea
from autosae.agents.recipe.render import conclusion_text, render_readme, render_variant

BASELINE = "baseline:matryoshka"
SEARCHES = ("tpe", "hand")
SEARCH = "tpe"
"""Which search proposes by default: "tpe" (search.py, Optuna's TPE) or "hand" (hand_search.py,
the earlier releases'); a project picks the other with TASK.md's agent.options: {search: hand}.
Measured on `tiny`, ten sprints from a fresh project each: TPE confirmed a new best (F1 0.8091
± 0.0131), the hand search none (0.7773 ± 0.0060 at most), which fails the slow test that the
offline agent beats Matryoshka (tests/sprint/test_recipe_research.py)."""


class RecipeAgent:
    name = "recipe"

    def __init__(self, seed: int | None = None, search: str | None = None, **_ignored):
        """`search` (TASK.md agent.options.search): "tpe" or "hand"; None: SEARCH."""
        if (search or SEARCH) not in SEARCHES:
            raise AgentError(f"agent.options.search is {search!r}; the recipe agent knows {', '.join(SEARCHES)}")
        self.seed, self.search = seed, search or SEARCH
        self.cost_usd = 0.0

    def _seed(self, ctx: AgentContext) -> int:
        return self.seed if self.seed is not None else ctx.seed

    # -- ideation ---------------------------------------------------------------------------

    def review(self, ctx: AgentContext, reason: str = "") -> dict:
        """The stuck ladder's step-back review, from the search's state: the known-good single
        changes no sprint has made, the fields the past sprints never changed, and the case
        against the current line."""
        made = {
            f"{field}={value}"
            for field, value in search.KNOWN_GOOD
            if any(search._made(p, field, value, ctx.past) for p in ctx.past)
        }
        untested = [f"{field}={value}" for field, value in search.KNOWN_GOOD if f"{field}={value}" not in made]
        changed = {k for p in ctx.past if p.config for k, v in normalise(p.config).items() if v != normalise({})[k]}
        blind = sorted(k for k in normalise({}) if k not in changed)
        parent = self._start(ctx)[1]
        return {
            "untested_axes": untested or [f"a change of {k}" for k in blind[:3]],
            "blind_spots": [f"no sprint has changed {k}" for k in blind[:3]],
            "argument_against": (
                f"{len(ctx.past)} sprints since building on {parent} brought no confirmed gain: "
                "its neighbourhood may be exhausted, or the gains there below what the seeds detect"
            ),
        }

    def _start(self, ctx: AgentContext) -> tuple[dict, str]:
        if ctx.best is not None and ctx.best.config:
            return normalise(ctx.best.config), ctx.best.id
        return normalise(BASELINE_CONFIGS["matryoshka"]), BASELINE

    @staticmethod
    def _tried(ctx: AgentContext) -> set[str]:
        return {config_key(p.config) for p in ctx.past if p.config} | {config_key(c) for c in BASELINE_CONFIGS.values()}

    def propose(self, ctx: AgentContext, idea: str | None = None) -> Proposal:
        start, parent = self._start(ctx)
        if idea is None and ctx.explore:
            return self._explore(ctx)
        if idea is not None:
            config = config_from_idea(idea, start)
            fields = changes(start, config) or list(config)
            return self._proposal(idea, start, parent, config, fields, ctx, title=idea)
        if self.search == "hand":
            found = hand_search.candidates(start, ctx, self._seed(ctx))
            config = found[0][0] if found else None
        else:
            config = search.Search(ctx, self._seed(ctx)).propose(start, self._tried(ctx))
        if config is None:
            config = self._fallback(start, ctx)
        return self._proposal(None, start, parent, config, changes(start, config), ctx)

    def _fallback(self, start: dict, ctx: AgentContext) -> dict:
        """When TPE keeps sampling tried configurations: an untried single change of `start`,
        else any untried configuration, in a seeded random order."""
        rng = random.Random(f"{self._seed(ctx)}:{ctx.sprint_number}")
        tried = self._tried(ctx)
        single = [normalise({**start, f: v}) for f, values in CHOICES.items() for v in values]
        rng.shuffle(single)
        for config in single:
            if config_key(config) not in tried:
                return config
        everything = [normalise(c) for c in search.every_config()]
        rest = sorted({config_key(c): c for c in everything if config_key(c) not in tried}.items())
        if not rest:
            raise AgentError("every configuration of the component library has been tried")
        return rng.choice(rest)[1]

    def _explore(self, ctx: AgentContext) -> Proposal:
        """An exploration sprint: from the Matryoshka baseline, an untried single change in a
        component family that the best does not use (any family while nothing beats the baselines),
        the known-good changes first, picked at random among the first six."""
        start = normalise(BASELINE_CONFIGS["matryoshka"])
        used = set()
        if ctx.best is not None and ctx.best.config:
            used = {FAMILY[f] for f in changes(start, normalise(ctx.best.config))}
        tried = self._tried(ctx)
        order = [*search.KNOWN_GOOD, *((f, v) for f, values in CHOICES.items() for v in values)]
        candidates: dict[str, dict] = {}
        for field, value in order:
            config = normalise({**start, field: value})
            if config_key(config) not in tried and config != start:
                candidates.setdefault(config_key(config), config)
        configs = list(candidates.values())
        if self.search == "hand":  # the release's order: its ranking of single changes from the baseline
            configs = [c for c, _ in hand_search.candidates(start, ctx, self._seed(ctx))]
        far = [c for c in configs if not {FAMILY[f] for f in changes(start, c)} & used] or configs
        if not far:
            raise AgentError("every configuration of the component library has been tried")
        rng = random.Random(f"explore:{self._seed(ctx)}:{ctx.sprint_number}")
        config = rng.choice(far[:6])
        return self._proposal(None, start, BASELINE, config, changes(start, config), ctx)

    def _proposal(
        self,
        idea: str | None,
        start: dict,
        parent: str,
        config: dict,
        fields: list[str],
        ctx: AgentContext,
        title: str | None = None,
    ) -> Proposal:
        what = "; ".join(describe(f, config[f]) for f in main_changes(fields))
        title = title or what[0].upper() + what[1:]
        if not parent.startswith("baseline:") and title != idea:  # say what it builds on
            title += " on " + summarise(start)
        text = idea or f"Change {parent}'s configuration to use {what}."
        hypothesis = " ".join(WHY[f] for f in fields) + (
            f" So {ctx.objective.upper()} should rise above the parent's by more than the noise between seeds."
        )
        plan = (
            f"Start from {parent} and change only {', '.join(fields)} "
            f"({'; '.join(f'{f}: {start[f]} -> {config[f]}' for f in fields)}). Train with the task's seeds "
            f"under the benchmark's constraints; the change counts only if {ctx.objective.upper()} beats "
            f"the parent at the task's significance and the per-seed scores differ from the parent's "
            f"(otherwise the change was a no-op)."
        )
        return Proposal(title=title, idea=text, hypothesis=hypothesis, plan=plan, parent=parent, config=config)

    # -- implementation ---------------------------------------------------------------------

    def implement(self, proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> None:
        if proposal.config is None:
            raise AgentError("the recipe agent implements only its own configurations")
        parent_config = self._parent_config(proposal.parent, ctx)
        config = normalise(proposal.config)
        sprint_dir.mkdir(parents=True, exist_ok=True)
        root = ctx.project_root
        (sprint_dir / "variant.py").write_text(
            render_variant(config, proposal.title, proposal.idea, proposal.parent or "", parent_config, root)
        )
        (sprint_dir / "README.md").write_text(render_readme(proposal, config, parent_config, self._seed(ctx), root))

    def _parent_config(self, parent: str | None, ctx: AgentContext) -> dict:
        name = (parent or "").removeprefix("baseline:")
        if name in BASELINE_CONFIGS:
            return normalise(BASELINE_CONFIGS[name])
        for p in [*ctx.past, *([ctx.best] if ctx.best else [])]:
            if p.id == parent and p.config:
                return normalise(p.config)
        return normalise(BASELINE_CONFIGS["matryoshka"])

    # -- conclusions ------------------------------------------------------------------------

    def conclude(self, proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> Conclusion:
        text = conclusion_text(proposal, results, verdict, ctx.past, ctx.project_root)
        return Conclusion(text, notebook=self._notebook(proposal, verdict, ctx))

    def _notebook(self, proposal: Proposal, verdict: dict, ctx: AgentContext) -> list[dict]:
        """The lab notebook's entry for this sprint, from what the search tried and the verdict:
        a setting that helped significantly is a finding, one that hurt or changed nothing a
        dead end, an inconclusive one an open question; a failed run or a no-op says nothing."""
        v, objective = verdict.get("verdict"), str(verdict.get("objective") or "f1").upper()
        if not proposal.config or verdict.get("noop") or v not in ("improved", "worse", "no change", "inconclusive"):
            return []
        parent_config, config = self._parent_config(proposal.parent, ctx), normalise(proposal.config)
        fields = main_changes(changes(parent_config, config))
        change = ", ".join(describe(f, config[f]) for f in fields) or summarise(config)
        on = f"{change} on {proposal.parent or BASELINE}"
        section, text = {
            "improved": ("findings", f"{on} improves {objective} significantly."),
            "worse": ("refuted", f"{on} lowers {objective} significantly."),
            "no change": ("refuted", f"{on} makes no measurable difference to {objective} (within the noise floor)."),
            "inconclusive": (
                "questions",
                f"Does {on} help? It moved {objective} past the noise floor, not significantly.",
            ),
        }[v]
        return [{"section": section, "text": text, "sprints": [ctx.sprint_id] if ctx.sprint_id else []}]
