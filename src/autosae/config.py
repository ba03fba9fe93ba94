"""TASK.md: YAML front matter (typed, validated settings) and a Markdown body (the steering
text that the agent reads verbatim). Re-read at the start of every sprint.

Every problem becomes one line naming the file, the line and the field, and what was
expected, e.g. `TASK.md line 4: objective: expected 'f1' or 'mcc', got 'acc'`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autosae.errors import AutosaeError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstraintOverrides(_Strict):
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


class Budgets(_Strict):
    usd_per_sprint: float | None = Field(None, ge=0)
    """Most an agent may spend on one sprint (LLM backends)."""
    usd_total: float | None = Field(None, ge=0)
    """The loop stops once all recorded sprints together cost this much."""
    hours_per_sprint: float | None = Field(None, gt=0)
    """Time limit for a sprint's training, shared by its seeds."""
    hours_total: float | None = Field(None, gt=0)
    """The loop stops once recorded sprints have trained this long in all."""


class MaxTurns(_Strict):
    propose: int = Field(15, ge=1)
    implement: int = Field(60, ge=1)
    conclude: int = Field(15, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _one_for_all(cls, value):
        return {"propose": value, "implement": value, "conclude": value} if isinstance(value, int) else value


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


class LiteratureSettings(_Strict):
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


class AgentSettings(_Strict):
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


class LoopSettings(_Strict):
    max_consecutive_failures: int = Field(3, ge=1)
    """The loop stops after this many failed sprints in a row."""


class DiversitySettings(_Strict):
    explore_share: float = Field(0.2, ge=0, le=1)
    """Share of sprints that must explore far from the best: every 1/share-th sprint starts from
    the Matryoshka baseline with a component family the best does not use (the LLM proposer
    sees no past sprints then). 0 turns exploration off."""


class HeldOutSettings(_Strict):
    auto: bool = True
    """Verify every new best on the held-out suite before it is confirmed (and becomes the parent)."""
    models: int = Field(3, ge=0, le=5)
    """How many models of the held-out suite to use (see `autosae verify`)."""
    seeds: int = Field(2, ge=1)
    """Seeds per held-out model, for the sprint's variant and its parent's alike."""

    @field_validator("seeds")
    @classmethod
    def _counted_seeds(cls, value: int) -> int:
        from autosae.harness.validation import reserved_seed_problem

        problem = reserved_seed_problem([value - 1])  # held-out runs use seeds 0 .. seeds-1
        if problem:
            raise ValueError(problem)
        return value


class NotifySettings(_Strict):
    slack_webhook: str | None = None
    """A Slack incoming-webhook URL for sprint verdicts and loop stops. TASK.md is committed,
    so a private URL is better set in the AUTOSAE_SLACK_WEBHOOK environment variable."""

    @field_validator("slack_webhook")
    @classmethod
    def _url(cls, value):
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value


class LauncherSettings(_Strict):
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
    """submitit's job folder (logs, pickles), relative to the project; default:
    $AUTOSAE_CACHE/slurm/<project>, out of the agent's worktree (held-out jobs' pickles name
    the held-out models). It, the project and $AUTOSAE_CACHE must be on storage the nodes share."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Further submitit parameters, passed as they are (e.g. slurm_qos, slurm_constraint)."""

    @model_validator(mode="before")
    @classmethod
    def _kind_alone(cls, value):
        return {"kind": value} if isinstance(value, str) else value


class LimitSettings(_Strict):
    """Bounds on every sandboxed process tree: a variant's training process, an agent's
    command. A breach ends it and is recorded as a failed run or command with the reason."""

    memory_gb: float | None = Field(None, gt=0)
    """Memory of one variant's sandbox (None: 3/4 of this machine's memory); agent commands get 4 GiB."""
    disk_gb: float = Field(8.0, gt=0)
    """Most a variant's process or an agent's command may write (its folders and its /tmp)."""
    processes: int = Field(512, ge=8)
    """Most tasks (processes and threads) in one sandbox: no fork bomb."""


class TaskConfig(_Strict):
    profile: str = "tiny"
    """Benchmark profile (see `autosae bench list`)."""
    model_seed: int | None = None
    """Seed of the synthetic model: another seed is a held-out model."""
    objective: Literal["f1", "mcc"] = "f1"
    """The metric sprints are judged on."""
    seeds: int | list[int] = 3
    """Seeds per counted run: N means 0..N-1, or an explicit list."""
    significance: float = Field(0.05, gt=0, lt=0.5)
    """Alpha of the Welch t-test behind improved/worse verdicts."""
    device: str | None = None
    """cpu, cuda or cuda:N; None: cuda when visible, else cpu."""
    gpus: int | str | list[int | str] | None = None
    """Device slots that run seeds (and parallel sprints) at once: GPU indices ([0, 1] or
    "0,1"), "all", or cpu entries (CPU slots as processes); None: one device, seeds in turn."""
    launcher: LauncherSettings = Field(default_factory=lambda: LauncherSettings())
    constraints: ConstraintOverrides = Field(default_factory=ConstraintOverrides)
    budgets: Budgets = Field(default_factory=Budgets)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    diversity: DiversitySettings = Field(default_factory=DiversitySettings)
    heldout: HeldOutSettings = Field(default_factory=HeldOutSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    sandbox: Literal["auto", "required", "off"] | None = None
    """Run agent-written code and agent commands under bubblewrap: required (refuse to start
    without it), auto (fall back with a loud warning), off (only when asked for). None:
    required for the LLM backends (anthropic, claude_code), auto for the others."""
    limits: LimitSettings = Field(default_factory=LimitSettings)

    def sandbox_mode(self, backend: str | None) -> str:
        if self.sandbox is not None:
            return self.sandbox
        return "required" if backend in ("anthropic", "claude_code") else "auto"

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        from autosae.bench.profiles import PROFILES

        if value not in PROFILES:
            raise ValueError(f"unknown profile {value!r} (known: {', '.join(PROFILES)})")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("expected a number of seeds >= 1 or a list of seeds")
        if isinstance(value, list) and (not value or len(set(value)) != len(value) or min(value) < 0):
            raise ValueError("expected a non-empty list of distinct seeds >= 0")
        from autosae.harness.validation import reserved_seed_problem

        problem = reserved_seed_problem([value - 1] if isinstance(value, int) else value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value):
        if value is not None and value != "cpu" and not value.startswith("cuda"):
            raise ValueError("expected cpu, cuda or cuda:N")
        return value

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value):
        from autosae.harness.slots import parse_gpus

        try:
            parse_gpus(value) if value != "all" else None
        except AutosaeError as exc:
            raise ValueError(str(exc).removeprefix(f"gpus {value!r}: ")) from None
        return value

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def profile_overrides(self) -> list[str]:
        return [f"{name}={value}" for name, value in self.constraints.model_dump().items() if value is not None]

    def build_profile(self):
        from autosae.bench.profiles import get_profile

        return get_profile(self.profile, self.model_seed, self.profile_overrides())


@dataclass(frozen=True)
class Task:
    path: Path
    config: TaskConfig
    body: str
    """The steering text after the front matter, verbatim."""
    sha256: str


def _key_line(node: yaml.Node | None, loc: tuple, fallback: int) -> int:
    """1-based line (within the front matter) of the key or item that `loc` points at."""
    line = fallback
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _describe(error: dict) -> str:
    kind, msg, value = error["type"], error["msg"], error.get("input")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return f"expected {msg.removeprefix('Input should be ')}, got {value!r}"
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ")
    if kind.startswith(("float", "int")) or kind in (
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
    ):
        return f"{msg.removeprefix('Input should be ').replace('a valid ', 'expected a ')}, got {value!r}"
    return f"{msg}, got {value!r}"


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        annotation = model.model_fields.get(part)
        if (
            annotation is None
            or not isinstance(annotation.annotation, type)
            or not issubclass(annotation.annotation, BaseModel)
        ):
            return []
        model = annotation.annotation
    return list(model.model_fields)


def parse_task(text: str, path: Path | str = "TASK.md") -> Task:
    name = str(path)
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise AutosaeError(
            f"{name} line 1: expected front matter: a first line `---`, YAML settings, then a closing `---`"
        )
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise AutosaeError(f"{name}: the front matter opened on line 1 is never closed by a `---` line")
    front = "".join(lines[1:end])
    body = "".join(lines[end + 1 :])
    body = body[1:] if body.startswith("\n") else body
    try:
        data = yaml.safe_load(front)
        root = yaml.compose(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 2}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AutosaeError(f"{name}{where}: YAML syntax error: {problem}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise AutosaeError(
            f"{name} line 2: the front matter must be a mapping of settings (key: value), got {type(data).__name__}"
        )
    try:
        config = TaskConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = tuple(first["loc"])
        line = _key_line(root, loc, 1) + 1  # +1: the opening `---`
        field = ".".join(str(p) for p in loc if p not in ("int", "list[int]"))
        desc = _describe(first)
        if first["type"] == "extra_forbidden":
            desc += f" (known: {', '.join(_field_names(TaskConfig, loc))})"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise AutosaeError(f"{name} line {line}: {field}: {desc}{more}") from None
    return Task(Path(path), config, body, hashlib.sha256(text.encode()).hexdigest())


def load_task(path: Path) -> Task:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AutosaeError(f"TASK.md not found at {path}; run `autosae init`") from None
    return parse_task(text, path)


def render_task_template(profile: str = "tiny", backend: str | None = None, seeds: int = 3, **extra) -> str:
    from autosae.templating import render

    return render("TASK.md.j2", profile=profile, backend=backend, seeds=seeds, **extra)
