"""A sprint's state: persisted, outside the agent's worktree, before and after every phase.

`phase` is "proposed" (ideation is done), the phase to run next (autosae.sprint.engine.PHASES
names them, in order), or one of FINAL: "done", or "abandoned" (the user gave the sprint up,
`autosae resume --abandon`). Each phase's work is idempotent, so a sprint killed in any phase
is resumed by running that phase again. These names are stored: they never change.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autosae.errors import AutosaeError
from autosae.jsonio import write_json

FINAL = ("done", "abandoned")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime | None = None) -> str:
    return (t or utc_now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def slugify(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "sprint"


def new_sprint_id(title: str, taken: set[str], now: datetime | None = None) -> str:
    """`<UTC yyyy-mm-dd--HH-MM-SS>-<slug>`; a suffix keeps two sprints of one second apart."""
    base = f"{(now or utc_now()).strftime('%Y-%m-%d--%H-%M-%S')}-{slugify(title)}"
    sid, n = base, 2
    while sid in taken:
        sid, n = f"{base}-{n}", n + 1
    return sid


@dataclass
class SprintState:
    id: str
    phase: str
    title: str
    idea: str
    hypothesis: str
    plan: str
    parent: str | None
    config: dict[str, Any] | None
    backend: str
    profile: str
    objective: str
    seeds: list[int]
    setting: str
    """Hash of the model and constraints: only sprints of one setting are compared."""
    base_branch: str
    branch: str
    task_sha256: str
    user_idea: bool = False
    queued_idea: int | None = None
    """The number of the queued idea this sprint runs (ideas.jsonl; autosae.sprint.ideas)."""
    explore: bool = False
    """An exploration sprint: its idea was asked to go far from the best."""
    task: dict[str, Any] = field(default_factory=dict)
    """TASK.md's settings when the sprint started: a resumed sprint keeps running under them."""
    task_body: str = ""
    started: str = field(default_factory=iso)
    updated: str = field(default_factory=iso)
    finished: str | None = None
    phase_started: dict[str, str] = field(default_factory=dict)
    cost_usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    """The agent's token usage (input, output, cache writes, cache reads)."""
    usd_cap: float | None = None
    """What was left of the loop's --budget-usd when the sprint started."""
    stop: str | None = None
    """Why the loop must stop after this sprint (a spending cap was reached)."""
    failure: str | None = None
    """Why the sprint failed before or in training (agent error, variant crash, ...)."""
    verdict: dict[str, Any] | None = None
    conclusion: str | None = None
    notebook: list[dict[str, str]] = field(default_factory=list)
    """The conclusion's lab-notebook lines ([{"section", "line"}], evidence written in), fixed when
    it is drawn (autosae.sprint.notebook)."""
    notebook_done: bool = False
    """They are in the notebook's commit on the main branch (a resumed sprint never adds them twice)."""
    commit: str | None = None
    """The sprint's last commit on its branch."""
    pid: int | None = None
    sandboxed: bool | None = None
    """Whether the agent's commands and the variant ran under the OS sandbox (None: not known,
    a sprint from before it existed)."""
    origin: str = ""
    """Where the idea comes from, in the agent's words (the proposal's `origin`)."""
    sources: list[dict[str, str]] = field(default_factory=list)
    """What the agent read on the web ([{"url", "title"}]), recorded by the backend from its web
    tools' results (autosae.agents.literature), never from the agent's own text."""
    quick_runs: list[dict[str, Any]] = field(default_factory=list)
    """Each run_experiment call of the implement phase, compact (autosae.harness.arms.record):
    {n, at, profile, training_samples, seeds, wall_s, arms: [{arm, source, options, status,
    reason?, metrics, delta_vs_parent?}], curves}. Arm labels and options are the agent's text."""
    amendments: list[dict[str, Any]] = field(default_factory=list)
    """The implementer's pilot notes ([{"at", "pilot_notes", "hypothesis"?, "plan"?}], amend_proposal),
    kept beside the proposal: title, idea, hypothesis and plan are never changed by them."""

    @property
    def sprint_path(self) -> str:
        return f"sprints/{self.id}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SprintState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class StateStore:
    """One JSON file per sprint under .autosae/state/, replaced atomically."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, sprint_id: str) -> Path:
        return self.folder / f"{sprint_id}.json"

    def save(self, state: SprintState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state.updated = iso()
        state.pid = os.getpid()
        write_json(self.path(state.id), state.to_dict(), durable=True)  # a resume starts from it

    def load(self, sprint_id: str) -> SprintState:
        try:
            return SprintState.from_dict(json.loads(self.path(sprint_id).read_text()))
        except FileNotFoundError:
            raise AutosaeError(f"no sprint state for {sprint_id!r} in {self.folder}") from None
        except (ValueError, TypeError) as exc:
            raise AutosaeError(f"sprint state {self.path(sprint_id)} is unreadable ({exc})") from None

    def all(self) -> list[SprintState]:
        out = []
        for p in sorted(self.folder.glob("*.json")):
            try:
                out.append(SprintState.from_dict(json.loads(p.read_text())))
            except (ValueError, TypeError):
                continue
        return out

    def unfinished(self) -> list[SprintState]:
        return [s for s in self.all() if s.phase not in FINAL]
