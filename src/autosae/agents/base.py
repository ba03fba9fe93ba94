"""The research agent's contract: propose an idea, implement it, conclude from the numbers.

The sprint engine calls these three methods and owns everything else (git, the harness,
verdicts, records). An agent never sees a metric it could have produced itself: results
come from the harness, through `conclude`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class AgentError(Exception):
    """The agent could not do its part (the sprint is recorded as failed)."""


class BudgetReached(AgentError):
    """The agent's money cap is reached: the sprint ends with a record and the loop stops."""


@dataclass
class PastSprint:
    """One row of the ledger, as agents see it."""

    id: str
    title: str
    verdict: str
    f1: float | None
    mcc: float | None
    config: dict[str, Any] | None = None
    """The recipe's normalised configuration, when the sprint has one."""
    idea: str = ""
    parent: str | None = None
    f1_std: float | None = None
    mcc_std: float | None = None
    noop: bool = False
    """The engine flagged the sprint as behaving like its parent."""
    stats: dict[str, dict] = field(default_factory=dict)
    """{metric: {mean, std, n}} for f1, mcc, precision, recall and dead_latents, as recorded
    (old ledger rows lack some; a std with n < 2 was not measured)."""
    delta_parent: float | None = None
    """The objective's mean minus the parent's."""
    p_value: float | None = None
    noise_floor: float | None = None
    noise_floor_note: str | None = None
    """Why there is no noise floor ("not measurable (n = 1)"), when there is none."""
    objective: str = ""
    summary: str = ""
    """One line on what the sprint changed: its idea's first sentence, bounded."""
    conclusion: str = ""
    """The conclusion's first sentence, bounded ("" where none is recorded)."""
    next_step: str = ""
    """The conclusion's first next step, bounded."""
    held_out: str = "not verified"
    """The held-out check's outcome: confirmed, not confirmed, not verified (or its own word)."""
    pilot: str = ""
    """The latest pilot-note amendment (amend_proposal), or for a sprint in flight its latest quick
    run, one bounded line."""

    def stat(self, metric: str) -> dict | None:
        """{mean, std, n} of one metric; F1 and MCC also from the older fields alone."""
        if metric in self.stats:
            return self.stats[metric]
        mean, std = {"f1": (self.f1, self.f1_std), "mcc": (self.mcc, self.mcc_std)}.get(metric, (None, None))
        return None if mean is None else {"mean": mean, "std": std}


@dataclass
class AgentContext:
    """What the agent knows when it proposes, implements or concludes."""

    task_body: str
    """TASK.md's Markdown body (the user's steering text), verbatim."""
    profile: str
    objective: str
    """"f1" or "mcc"."""
    sprint_number: int
    """How many sprints this project has recorded before this one."""
    past: list[PastSprint] = field(default_factory=list)
    """Past sprints, oldest first (empty when TASK.md hides them from the agent)."""
    best: PastSprint | None = None
    comments: list[dict[str, str]] = field(default_factory=list)
    """The researchers' comments on past sprints (replies in a sprint's Slack thread), oldest
    first: [{"sprint", "by", "text"}] (autosae.sprint.ideas.comments)."""
    """The best sprint so far on the objective (None: only baselines)."""
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    """{"batchtopk": {"f1": .., "mcc": ..}, "matryoshka": {...}} (means over seeds)."""
    seed: int = 0
    """The agent's own random seed (deterministic agents use it)."""
    width: int = 0
    """The SAE width the profile requires."""
    k: float = 0.0
    """The profile's target L0."""
    model: str | None = None
    """LLM model name from TASK.md (LLM backends only)."""
    budget_usd: float | None = None
    """The most the agent may still spend in this call (None: no cap); the engine takes the
    least of what is left of the sprint's, the project's and the loop's caps."""
    sprint_id: str | None = None
    project_root: Path | None = None
    """The project's main checkout (read-only for agents)."""
    worktree: Path | None = None
    """The sprint's git worktree (implement and conclude)."""
    record_dir: Path | None = None
    """Where an LLM agent keeps its transcript: outside the worktree, kept across kills."""
    experiment: Callable[..., dict] | None = None
    """experiment(variant, samples, profile, seed, parent) -> report: a quick, uncounted harness run
    on the validation samples, with the parent beside it (see autosae.harness.quick)."""
    log: Callable[[str], None] | None = None
    """Where the agent reports progress (the harness log)."""
    explore: bool = False
    """An exploration sprint (TASK.md diversity.explore_share): propose something far from the
    best, from the Matryoshka baseline, in a component family the best does not use."""
    backend: str = ""
    """The backend the prompts are rendered for (each names its own tools)."""
    card: str = ""
    """The contract and benchmark card (Markdown), rendered from the profile and TASK.md's
    settings by autosae.agents.card; part of every LLM backend's system prompt."""
    literature: dict[str, Any] | None = None
    """TASK.md's agent.literature, resolved (config.LiteratureSettings.resolved): web search and
    fetch for the LLM backends, {phases, max_searches, max_fetches, max_fetch_tokens,
    allowed_domains, blocked_domains}; None: off (see autosae.agents.literature)."""
    parent_metrics: dict[str, Any] | None = None
    """The parent's full summary (conclude): {metric: {mean, std, n}}."""
    curves: dict[str, Any] | None = None
    """The sprint's training curves (conclude), including the variant's own logged metrics."""
    power: Any = None
    """What the proposer must know to pick a testable idea (autosae.agents.power.Power): the
    reference recipes' scores and noise here, the minimum detectable effect, run times, turns
    and money left; None where not computed."""
    parent_curves: dict[str, Any] | None = None
    """The parent's counted-run training curves (conclude), compact like `curves`."""
    quick_runs: list[dict[str, Any]] = field(default_factory=list)
    """The implement phase's quick runs as recorded (SprintState.quick_runs; conclude)."""
    amendments: list[dict[str, Any]] = field(default_factory=list)
    """The implementer's pilot notes, recorded beside the proposal (SprintState.amendments)."""
    notebook: str = ""
    """The lab notebook (reports/notebook.md on the main checkout) as prompts show it, bounded
    (autosae.sprint.notebook.render_for_prompt); the researcher's edits in it are steering."""
    recorded: list[str] = field(default_factory=list)
    """The ids of the sprints the ledger holds (all settings): what a notebook entry may cite."""
    ladder: str = ""
    """The stuck ladder's rung this sprint runs at: "explore" (explore from a parent off the
    best's line, the baseline or an older sprint) or "literature" (recalibrate against published
    methods); "" when the loop is not stuck (autosae.sprint.ladder)."""
    amend: Callable[[dict], str] | None = None
    """amend(args) -> reply: records pilot notes beside the proposal (the implement phase's
    amend_proposal tool); raises ValueError with what is wrong. None where it is not offered."""


@dataclass
class Proposal:
    """One idea for a sprint."""

    title: str
    idea: str
    hypothesis: str
    plan: str
    parent: str | None = None
    """Sprint id (or "baseline:<name>") that this idea builds on."""
    config: dict[str, Any] | None = None
    """A normalised description of what is tried, used to refuse repeats."""
    origin: str = ""
    """Where the idea comes from (a paper, a neighbouring field, a past sprint), in the
    agent's words."""
    sources: list[dict[str, str]] = field(default_factory=list)
    """What the agent read while proposing: [{"url": .., "title": ..}], recorded by the
    backend from the tools' results (never from the agent's say-so)."""


@dataclass
class Conclusion:
    text: str
    """Markdown: what the numbers say, alternative explanations, next steps."""
    notebook: list = field(default_factory=list)
    """Entries for the lab notebook (reports/notebook.md), as the agent gave them:
    [{"section": findings | refuted | questions | candidates, "text", "sprints": [ids]}];
    the engine checks them (autosae.sprint.notebook) and writes their evidence."""


class Agent(Protocol):
    name: str
    cost_usd: float
    """Money spent so far by this agent object (0 for offline agents)."""

    def propose(self, ctx: AgentContext, idea: str | None = None) -> Proposal:
        """One new idea that repeats no past sprint. With `idea` (the user's `--idea`), turn
        that idea into a proposal instead of inventing one; raise AgentError if it cannot."""
        ...

    def implement(self, proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> None:
        """Write sprint_dir/README.md (idea, hypothesis, plan) and sprint_dir/variant.py."""
        ...

    def conclude(self, proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> Conclusion:
        """Draw conclusions from the harness's results.json and the engine's verdict."""
        ...

    # Optional: the stuck ladder's step-back review (autosae.sprint.ladder), outside any sprint:
    # def review(self, ctx: AgentContext, reason: str = "") -> dict:
    #     """{untested_axes: [str], blind_spots: [str], argument_against: str} from the
    #     notebook (ctx.notebook) and the ledger (ctx.past); `reason` says why the loop is
    #     stuck. Every backend has one; its cost is charged to the loop and the project."""
