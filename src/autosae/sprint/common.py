"""What the engine's modules share: the Sprint in hand, its crash points, its setting and its
budgets. Nothing here imports the engine, so that the phases can import it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autosae.agents import Proposal
from autosae.agents.pricing import add_usage
from autosae.sprint.state import SprintState

if TYPE_CHECKING:
    import git

    from autosae.config import TaskConfig

PROPOSING = "_proposing"
"""The agent's transcript folder while an idea is proposed (the sprint has no id yet)."""
TRUSTED_FILES = (
    "results.json",
    "verdict.json",
    "cost.json",
    "transcript.jsonl",
    "sprint.json",
    "curves.json",
    "report.md",
    "report.pdf",
    "DONE",
)
"""Files in a sprint folder that only the orchestrator writes (an agent's copies are replaced)."""


@dataclass
class Sprint:
    """One sprint in hand: what its phases need, set up once by Engine.run (the TASK.md
    settings it started under, its profile and device, its agent and the baselines), beside
    the engine's shared services (the project, the state store, the lock, the status lines)."""

    engine: Any
    """The Engine running it (autosae.sprint.engine, which imports this module, so the type is not named)."""
    state: SprintState
    cfg: TaskConfig
    profile: Any
    device: str
    agent: Any
    baselines: dict[str, dict]

    @property
    def run_dir(self) -> Path:
        """The harness's counted run (outside the agent's worktree)."""
        return self.engine.project.runs_dir / self.state.id

    def worktree(self) -> tuple[git.Repo, Path]:
        """The sprint's worktree and its folder in it, made again if something removed it."""
        return self.engine.worktree(self.state)

    def commit_folder(self, message: str) -> str | None:
        """Commit the sprint folder on the sprint's branch exactly as the worktree holds it
        (autosae.sprint.gitexact: no ignore, attribute or hook of the agent's worktree
        applies); the new commit, or None when nothing changed. Raises GitFailed."""
        from autosae.sprint.gitexact import commit_exact, sync_worktree_index

        tree, _ = self.worktree()
        root, path = Path(tree.working_tree_dir), self.state.sprint_path
        with self.engine.lock:
            commit = commit_exact(self.engine.repo, message, [path], f"refs/heads/{self.state.branch}", root)
        sync_worktree_index(tree, [path])
        return commit

    def say(self, phase: str, text: str = "") -> None:
        self.engine.say(self.state, phase, text)

    def save(self) -> None:
        self.engine.store.save(self.state)

    @contextmanager
    def charging(self) -> Iterator[None]:
        """What the agent spends inside the block goes on the sprint's record, a call that
        fails included (it was paid for all the same)."""
        agent, state = self.agent, self.state
        cost, tokens = agent.cost_usd, dict(getattr(agent, "tokens", {}))
        try:
            yield
        finally:
            state.cost_usd += agent.cost_usd - cost
            now = getattr(agent, "tokens", {})
            add_usage(state.tokens, {k: v - tokens.get(k, 0) for k, v in now.items()})


def crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests: AUTOSAE_CRASH_AT=<name> kills this process
    with SIGKILL here, exactly as `kill -9` would."""
    if os.environ.get("AUTOSAE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def setting_of(profile) -> str:
    """Sprints are compared only within one model and one set of constraints."""
    payload = json.dumps({"model": profile.model_hash(), "constraints": asdict(profile.constraints)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def counted_time_limit(cfg: TaskConfig, profile) -> float:
    """Each seed's time limit in a counted run: the profile's, or less when TASK.md's
    budgets.hours_per_sprint, shared by the seeds, leaves less."""
    if cfg.budgets.hours_per_sprint:
        return min(profile.time_limit_s, cfg.budgets.hours_per_sprint * 3600 / len(cfg.seed_list()))
    return profile.time_limit_s


def budget_left(
    cfg: TaskConfig, rows: list[dict], spent: float, usd_cap: float | None, outside: float = 0.0
) -> float | None:
    """What the agent may still spend now: the least of what is left of the sprint's cap, the
    project's cap (TASK.md budgets; `outside`: what the project spent outside sprints, the
    stuck ladder's reviews) and the caller's (the loop's --budget-usd)."""
    left = []
    if cfg.budgets.usd_per_sprint is not None:
        left.append(cfg.budgets.usd_per_sprint - spent)
    if cfg.budgets.usd_total is not None:
        left.append(cfg.budgets.usd_total - sum(r.get("cost_usd") or 0.0 for r in rows) - outside - spent)
    if usd_cap is not None:
        left.append(usd_cap - spent)
    return max(0.0, min(left)) if left else None


def proposal_of(state: SprintState) -> Proposal:
    return Proposal(
        title=state.title,
        idea=state.idea,
        hypothesis=state.hypothesis,
        plan=state.plan,
        parent=state.parent,
        config=state.config,
        origin=state.origin,
        sources=list(state.sources),
    )
