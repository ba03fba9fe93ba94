"""TASK.md's sub-settings: the typed, validated sections of its front matter (agent, budgets,
launcher, limits, ...). autosae.config puts them together into TaskConfig and reads TASK.md."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autosae.harness.validation import reserved_seed_problem


def check_seeds(value: int | list[int]) -> int | list[int]:
    """A `seeds` setting: a count >= 1 (seeds 0..N-1) or a non-empty list of distinct seeds >= 0."""
    if isinstance(value, int) and value < 1:
        raise ValueError("expected a number of seeds >= 1 or a list of seeds")
    if isinstance(value, list) and (not value or len(set(value)) != len(value) or min(value) < 0):
        raise ValueError("expected a non-empty list of distinct seeds >= 0")
    return value


def seed_list(value: int | list[int]) -> list[int]:
    return list(range(value)) if isinstance(value, int) else list(value)


class Strict(BaseModel):
    """A section of TASK.md: an unknown field is an error (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid")


class ConstraintOverrides(Strict):
    """Overrides of the profile's constraints. Runs under changed constraints are compared
    only with runs under the same ones, and are not counted as benchmark results."""

    width: int | None = Field(None, gt=0)
    """Number of SAE latents."""
    k: float | None = Field(None, gt=0)
    """Target L0."""
    training_samples: int | None = Field(None, gt=0)
    """Samples seen in training."""
    batch_size: int | None = Field(None, gt=0)
    """Training batch size."""
    lr: float | None = Field(None, gt=0)
    """Adam learning rate."""


class Budgets(Strict):
    usd_per_sprint: float | None = Field(None, ge=0)
    """Most an agent may spend on one sprint (LLM backends)."""
    usd_total: float | None = Field(None, ge=0)
    """The loop stops once all recorded sprints together cost this much."""
    hours_per_sprint: float | None = Field(None, gt=0)
    """Time limit for a sprint's training, shared by its seeds."""
    hours_total: float | None = Field(None, gt=0)
    """The loop stops once recorded sprints have trained this long in all."""


class MaxTurns(Strict):
    propose: int = Field(15, ge=1)
    implement: int = Field(60, ge=1)
    conclude: int = Field(15, ge=1)
    review: int = Field(15, ge=1)
    """The stuck ladder's step-back review (one conversation outside any sprint)."""

    @model_validator(mode="before")
    @classmethod
    def _one_for_all(cls, value):
        return (
            {"propose": value, "implement": value, "conclude": value, "review": value}
            if isinstance(value, int)
            else value
        )


def _default_model() -> str:
    from autosae.agents.pricing import DEFAULT_MODEL

    return DEFAULT_MODEL


DEFAULT_DOMAINS = (
    "arxiv.org",
    "openreview.net",
    "aclanthology.org",
    "proceedings.mlr.press",
    "proceedings.neurips.cc",
    "papers.nips.cc",
    "neurips.cc",
    "jmlr.org",
    "openaccess.thecvf.com",
    "ojs.aaai.org",
    "ijcai.org",
    "epubs.siam.org",
    "ieeexplore.ieee.org",
    "dl.acm.org",
    "link.springer.com",
    "sciencedirect.com",
    "transformer-circuits.pub",
    "distill.pub",
    "semanticscholar.org",
    "wikipedia.org",
    "github.com",
)
"""Where web search and fetch look by default: preprints, the proceedings of the ML venues,
the journals of the neighbouring fields (signal processing, statistics, optimisation),
interpretability's own sites, encyclopaedia overviews and code (github.com). TASK.md's
allowed_domains replaces the list."""
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(/[^\s]*)?$")


class LiteratureSettings(Strict):
    """Web search and fetch for the LLM backends, so that ideas can come from papers and
    neighbouring fields: Anthropic's server-side web_search and web_fetch tools (anthropic)
    or Claude Code's WebSearch and WebFetch (claude_code). Offline backends ignore it."""

    enabled: bool = True
    """Give the agent web search and fetch in `phases`; false: no web tool in any phase."""
    phases: list[Literal["propose", "implement"]] = Field(default_factory=lambda: ["propose"])
    """The phases that get the tools: propose, and implement if listed (never conclude)."""
    max_searches: int = Field(5, ge=0, le=50)
    """Most web searches in one phase (billed per search, $10 per 1,000; anthropic counts them
    exactly, Claude Code is only told); 0: no search tool."""
    max_fetches: int = Field(5, ge=0, le=50)
    """Most pages fetched in one phase (billed only as the tokens of their text); 0: no fetch tool."""
    max_fetch_tokens: int = Field(25000, ge=1000, le=200000)
    """Most tokens of one fetched page's text put in the context (anthropic: longer pages are
    cut; a paper's PDF is often 20-40k tokens)."""
    allowed_domains: list[str] | None = Field(default_factory=lambda: list(DEFAULT_DOMAINS))
    """Search results and fetches only from these domains (and their subdomains; a path such as
    example.com/blog narrows it); null: any domain but the blocked ones."""
    blocked_domains: list[str] | None = None
    """Never these domains. The API takes either an allow list or a block list: setting
    blocked_domains without allowed_domains drops the default allow list."""

    @field_validator("phases")
    @classmethod
    def _phases(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("allowed_domains", "blocked_domains")
    @classmethod
    def _domain_list(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("expected at least one domain, or null")
        out = []
        for domain in value:
            name = domain.strip().lower()
            if "://" in name:
                raise ValueError(f"{domain!r}: a domain without its scheme, e.g. arxiv.org (not https://arxiv.org)")
            if not _DOMAIN.match(name):
                raise ValueError(f"{domain!r} is not a domain name such as arxiv.org or example.com/blog")
            out.append(name)
        return list(dict.fromkeys(out))

    @model_validator(mode="after")
    def _allow_or_block(self) -> LiteratureSettings:
        if self.blocked_domains and self.allowed_domains:
            if "allowed_domains" in self.model_fields_set:
                raise ValueError("set allowed_domains or blocked_domains, not both (the web tools take one list)")
            self.allowed_domains = None  # a block list replaces the default allow list
        return self

    def resolved(self) -> dict[str, Any] | None:
        """What the backends and prompts get (AgentContext.literature): None when off."""
        if not self.enabled or not self.phases or (self.max_searches == 0 and self.max_fetches == 0):
            return None
        return {
            "phases": list(self.phases),
            "max_searches": self.max_searches,
            "max_fetches": self.max_fetches,
            "max_fetch_tokens": self.max_fetch_tokens,
            "allowed_domains": self.allowed_domains,
            "blocked_domains": self.blocked_domains,
        }


class AgentSettings(Strict):
    backend: str | None = None
    """Agent backend by name; None: automatic (anthropic when ANTHROPIC_API_KEY is set, else recipe)."""
    model: str = Field(default_factory=lambda: _default_model())
    """Model name for the LLM backends (default: the strongest current model the price table
    knows, autosae.agents.pricing.DEFAULT_MODEL)."""
    max_turns: MaxTurns = Field(default_factory=lambda: MaxTurns())
    """The most model calls per phase (LLM backends); an int sets all three."""
    seed: int = 0
    """The agent's own seed (the recipe agent is deterministic per seed)."""
    hide_past: bool = False
    """Hide past sprints from the implementing agent (the proposer still sees them)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Passed to the backend's constructor (e.g. the scripted backend's `script`)."""
    literature: LiteratureSettings = Field(default_factory=lambda: LiteratureSettings())
    """Web search and fetch for the LLM backends (on for the propose phase by default)."""


class LoopSettings(Strict):
    max_consecutive_failures: int = Field(3, ge=1)
    """The loop stops after this many failed sprints in a row."""


class DiversitySettings(Strict):
    explore_share: float = Field(0.2, ge=0, le=1)
    """Share of sprints that must explore far from the best: every 1/share-th sprint starts from
    the Matryoshka baseline with a component family the best does not use (the LLM proposer
    sees no past sprints then). 0 turns exploration off."""


class StuckSettings(Strict):
    """When the loop is stuck, and the ladder it then climbs (autosae.sprint.ladder)."""

    after: int = Field(5, ge=0)
    """Stuck after this many sprints in the setting without a confirmed gain (a new best whose
    held-out outcome is confirmed, or any new best where held-out checks are off, and whose gain
    over its parent is at least its recorded noise floor: a gain below the detectable effect does
    not count). Each further `after` dry sprints climb one more rung. 0 turns the ladder off."""
    rungs: list[Literal["review", "explore", "literature", "stop"]] = Field(
        default_factory=lambda: ["review", "explore", "literature", "stop"]
    )
    """The rungs, bottom first: review (one step-back agent call, written into the notebook),
    explore (the sprints at this rung explore from a parent off the best's line), literature
    (the sprints at this rung recalibrate against published methods), stop (the loop stops)."""

    @field_validator("rungs")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each rung may appear once")
        return value


class QuickSettings(Strict):
    """The agent's quick runs (`run_experiment`, autosae.harness.quick)."""

    full_budget_samples: int = Field(10_000_000, ge=0)
    """A quick run trains the profile's full budget by default when the profile has at most
    this many training samples (all of `tiny`), else a tenth of it: a quick run that decides
    must train as long as the counted run where that is cheap."""
    seeds: int = Field(3, ge=1, le=8)
    """Quick seeds per arm by default on a profile trained at full budget (1 on others)."""


class HeldOutSettings(Strict):
    auto: bool = True
    """Verify every new best on the held-out suite before it is confirmed (and becomes the parent)."""
    models: int = Field(3, ge=0, le=5)
    """How many models of the held-out suite to use (see `autosae verify`)."""
    seeds: int = Field(2, ge=1)
    """Seeds per held-out model, for the sprint's variant and its parent's alike."""

    @field_validator("seeds")
    @classmethod
    def _counted_seeds(cls, value: int) -> int:
        problem = reserved_seed_problem([value - 1])  # held-out runs use seeds 0 .. seeds-1
        if problem:
            raise ValueError(problem)
        return value


class AblationSettings(Strict):
    """Ablations of every new best (autosae.sprint.ablation): each part its implementer declared
    in parts.json trained removed, to show what carries the gain."""

    auto: bool = True
    """Ablate every confirmed new best that declares parts; false turns the phase off."""
    seeds: int | None = Field(None, ge=2, le=8)
    """Seeds per ablated part (0 .. seeds-1); None: the project's counted seeds."""
    samples: int | None = Field(None, ge=1)
    """Training samples per ablation run; None: the profile's budget (the counted run's)."""

    @field_validator("seeds")
    @classmethod
    def _counted_seeds(cls, value: int | None) -> int | None:
        problem = None if value is None else reserved_seed_problem([value - 1])
        if problem:
            raise ValueError(problem)
        return value


class NotifySettings(Strict):
    slack_webhook: str | None = None
    """A Slack incoming-webhook URL for sprint verdicts and loop stops. TASK.md is committed,
    so a private URL is better set in the AUTOSAE_SLACK_WEBHOOK environment variable."""

    @field_validator("slack_webhook")
    @classmethod
    def _url(cls, value):
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value


SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class SlackSettings(Strict):
    """`autosae slack`: the Slack app's channel and who may steer the loop from it. The
    tokens never live here (TASK.md is committed): SLACK_BOT_TOKEN and SLACK_APP_TOKEN come
    from the environment of `autosae slack` only."""

    channel: str | None = None
    """The channel id (C0123ABCD) the app answers in and posts sprint threads to; `autosae
    slack --channel` overrides it."""
    allow: list[str] = Field(default_factory=list)
    """Slack user ids (U0123ABCD) who may queue ideas, comment, verify and stop; anyone else
    in the channel may only read (status, leaderboard, show)."""

    @field_validator("channel")
    @classmethod
    def _channel(cls, value):
        if value is not None and not SLACK_CHANNEL.match(value):
            raise ValueError(f"expected a Slack channel id like C0123ABCD, got {value!r}")
        return value

    @field_validator("allow")
    @classmethod
    def _users(cls, value):
        bad = [v for v in value if not SLACK_USER.match(v)]
        if bad:
            raise ValueError(f"expected Slack user ids like U0123ABCD, got {', '.join(map(repr, bad))}")
        return value


class LauncherSettings(Strict):
    """Where counted runs execute: here (`local`) or as Slurm jobs through submitit.
    `submitit-local` runs the same jobs through submitit's local executor (a dry run of a
    Slurm set-up on one machine, and what the tests use)."""

    kind: Literal["local", "slurm", "submitit-local"] = "local"
    partition: str | None = None
    account: str | None = None
    time_min: int = Field(60, ge=1)
    """Slurm time limit of one job, in minutes."""
    gpus_per_node: int = Field(1, ge=0)
    cpus_per_task: int = Field(8, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    max_requeue: int = Field(2, ge=0)
    """Resubmissions of a job that died (preempted, node failure, killed) before it is
    recorded as failed."""
    folder: str | None = None
    """submitit's job folder (logs, pickles), relative to the project or absolute; default:
    $AUTOSAE_CACHE/slurm/<project>. It must lie outside the project or under its private
    .autosae/ (see launcher_folder_problem). It, the project and $AUTOSAE_CACHE must be on
    storage the nodes share."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Further submitit parameters, passed as they are (e.g. slurm_qos, slurm_constraint)."""

    @model_validator(mode="before")
    @classmethod
    def _kind_alone(cls, value):
        return {"kind": value} if isinstance(value, str) else value


def launcher_folder_problem(folder: str | None, root: Path | None) -> str | None:
    """Why `folder` (TASK.md's launcher.folder) may not hold the launcher's jobs; None: it may.
    Their pickles hold the profile with the secret eval seed (and a held-out job's, the held-out
    models), so the folder must lie outside the project, or under its private .autosae/, which no
    agent's tool and no sandbox shows. Without the project's folder (`root`), only a relative
    path can be judged."""
    if folder is None:
        return None
    if root is None:
        parts = Path(os.path.normpath(folder)).parts
        if Path(folder).is_absolute() or parts[:1] == ("..",):
            return None
        private = parts[:1] == (".autosae",) and len(parts) > 1
    else:
        root = root.resolve()
        where = (root / folder).resolve()
        if where != root and root not in where.parents:
            return None
        private = (root / ".autosae") in where.parents
    if private:
        return None
    return (
        f"{folder!r} is inside the project: the jobs' pickles hold the profile with the secret eval "
        f"seed, so give a folder outside the project or under .autosae/ (such as .autosae/jobs)"
    )


class LimitSettings(Strict):
    """Bounds on every sandboxed process tree: a variant's training process, an agent's
    command. A breach ends it and is recorded as a failed run or command with the reason."""

    memory_gb: float | None = Field(None, gt=0)
    """Memory of one variant's sandbox (None: 3/4 of this machine's memory); agent commands get 4 GiB."""
    disk_gb: float = Field(8.0, gt=0)
    """Most a variant's process or an agent's command may write (its folders and its /tmp)."""
    processes: int = Field(512, ge=8)
    """Most tasks (processes and threads) in one sandbox: no fork bomb."""


_WANDB_NAME = re.compile(r"^[^/\\#?%:\s]{1,128}$")
"""What W&B accepts as a project or entity name: no slash, backslash, #, ?, %, colon or space."""


class WandbSettings(Strict):
    """Weights & Biases tracking: after each sprint is recorded, one W&B run per seed (its
    curves, final metrics, the variant's source) and one for the sprint (its verdict, the
    report). The key (WANDB_API_KEY or `wandb login`) stays in the loop's environment: never
    in TASK.md, and never seen by the agent or the variant."""

    project: str
    """The W&B project the runs go to."""
    entity: str | None = None
    """The W&B team or user; None: the key's default entity."""
    mode: Literal["online", "offline"] = "online"
    """online: upload as it logs; offline: write the runs' files only (`wandb sync` uploads them)."""
    dir: str | None = None
    """Where wandb writes its files (they go in DIR/wandb), relative to the project; None: the
    project's private .autosae/ folder, out of the agent's reach."""
    timeout_s: float = Field(300, gt=0)
    """The most one sprint's logging may take; past it, it is stopped and the loop goes on."""

    @field_validator("project", "entity")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _WANDB_NAME.match(value):
            raise ValueError(f"expected a W&B name without / \\ # ? % : or spaces, got {value!r}")
        return value


class TrackingSettings(Strict):
    """Experiment trackers that each recorded sprint is logged to; none by default."""

    wandb: WandbSettings | None = None
    """Weights & Biases (the optional extra: pip install 'autosae[wandb]'); None: off."""
