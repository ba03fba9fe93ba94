"""TASK.md: YAML front matter (typed, validated settings) and a Markdown body (the steering
text that the agent reads verbatim). Re-read at the start of every sprint.

Every problem becomes one line naming the file, the line and the field, and what was
expected, e.g. `TASK.md line 4: objective: expected 'f1' or 'mcc', got 'acc'`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from autosae.errors import AutosaeError
from autosae.harness.devices import parse_gpus
from autosae.harness.validation import reserved_seed_problem
from autosae.settings import (
    DEFAULT_DOMAINS,
    AblationSettings,
    AgentSettings,
    Budgets,
    ConstraintOverrides,
    DiversitySettings,
    HeldOutSettings,
    LauncherSettings,
    LimitSettings,
    LiteratureSettings,
    LoopSettings,
    MaxTurns,
    NotifySettings,
    QuickSettings,
    SlackSettings,
    Strict,
    StuckSettings,
    TrackingSettings,
    WandbSettings,
    check_seeds,
    launcher_folder_problem,
    seed_list,
)
from autosae.transfer.settings import TransferSettings

__all__ = [  # the sub-settings live in autosae.settings; callers import them from here too
    "DEFAULT_DOMAINS",
    "AgentSettings",
    "Budgets",
    "ConstraintOverrides",
    "DiversitySettings",
    "StuckSettings",
    "HeldOutSettings",
    "QuickSettings",
    "AblationSettings",
    "LauncherSettings",
    "LimitSettings",
    "LiteratureSettings",
    "LoopSettings",
    "MaxTurns",
    "NotifySettings",
    "SlackSettings",
    "Task",
    "TaskConfig",
    "TrackingSettings",
    "WandbSettings",
    "load_task",
    "parse_task",
    "render_task_template",
]


class TaskConfig(Strict):
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
    stuck: StuckSettings = Field(default_factory=StuckSettings)
    """When the loop is stuck and what it does then (the ladder)."""
    heldout: HeldOutSettings = Field(default_factory=HeldOutSettings)
    quick: QuickSettings = Field(default_factory=QuickSettings)
    ablation: AblationSettings = Field(default_factory=AblationSettings)
    """Ablations of every new best: each declared part trained removed (autosae.sprint.ablation)."""
    """The agent's quick runs: when they train at full budget, and their seeds."""
    notify: NotifySettings = Field(default_factory=NotifySettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    """Experiment tracking (Weights & Biases) of every recorded sprint; off by default."""
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    """`autosae transfer`: a sprint's variant checked on a real language model's activations."""
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
        check_seeds(value)
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
        try:
            parse_gpus(value) if value != "all" else None
        except AutosaeError as exc:
            raise ValueError(str(exc).removeprefix(f"gpus {value!r}: ")) from None
        return value

    def seed_list(self) -> list[int]:
        return seed_list(self.seeds)

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
    if kind == "missing":
        return "required, but not given"
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


def parse_task(text: str, path: Path | str = "TASK.md", root: Path | None = None) -> Task:
    """TASK.md's text as a Task; `root`, the project's folder, where known (paths in it are
    then checked against it)."""
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
        node = yaml.compose(front)
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
        line = _key_line(node, loc, 1) + 1  # +1: the opening `---`
        field = ".".join(str(p) for p in loc if p not in ("int", "list[int]"))
        desc = _describe(first)
        if first["type"] == "extra_forbidden":
            desc += f" (known: {', '.join(_field_names(TaskConfig, loc))})"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise AutosaeError(f"{name} line {line}: {field}: {desc}{more}") from None
    problem = launcher_folder_problem(config.launcher.folder, root)
    if problem:
        line = _key_line(node, ("launcher", "folder"), 1) + 1
        raise AutosaeError(f"{name} line {line}: launcher.folder: {problem}")
    return Task(Path(path), config, body, hashlib.sha256(text.encode()).hexdigest())


def load_task(path: Path) -> Task:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AutosaeError(f"TASK.md not found at {path}; run `autosae init`") from None
    return parse_task(text, path, root=path.parent)


def render_task_template(profile: str = "tiny", backend: str | None = None, seeds: int = 3, **extra) -> str:
    from autosae.templating import render

    return render("TASK.md.j2", profile=profile, backend=backend, seeds=seeds, **extra)
