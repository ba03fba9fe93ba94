"""One sprint through its whole life, resumable after a crash in any phase.

    start():  re-read TASK.md, check the tree, baselines, ideation (refusing repeats) -> proposed
    run():    the PHASES below, in order -> done

`state.phase` names the phase to run next ("proposed": the first). run() saves the state as
it enters each phase and again as it moves on, and every phase's work is idempotent: a phase
interrupted by SIGKILL is run again from its start, reusing what was already recorded (the
implement commit, the harness's results.json, the conclusion, the merge commit on main).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import git

from autosae.agents import AgentContext, AgentError, create_agent
from autosae.agents.card import render_card
from autosae.config import TaskConfig
from autosae.errors import AutosaeError
from autosae.jsonio import read_json
from autosae.sprint import gitops, ideation
from autosae.sprint.ablation import ablate
from autosae.sprint.common import (
    PROPOSING,
    Sprint,
    budget_left,
    counted_time_limit,
    proposal_of,
    setting_of,
)
from autosae.sprint.gitexact import GitFailed, git_error
from autosae.sprint.ideation import BudgetExhausted, SprintNotStarted, SprintRequest, is_exploration
from autosae.sprint.ladder import review_cost
from autosae.sprint.ledger import best_row, in_setting, past_sprint
from autosae.sprint.notebook import NOTEBOOK, render_for_prompt
from autosae.sprint.phases import implement, refuse_links, score, train, verify
from autosae.sprint.project import Project
from autosae.sprint.reporting import announce, report
from autosae.sprint.state import FINAL, SprintState, StateStore, iso

# The names other modules and tests import from here, wherever they now live.
__all__ = [
    "PHASES",
    "BudgetExhausted",
    "Engine",
    "SprintNotStarted",
    "SprintRequest",
    "is_exploration",
    "proposal_of",
    "refuse_links",
    "setting_of",
]

PHASES: tuple[tuple[str, Callable[[Sprint], None]], ...] = (
    ("implementing", implement),
    ("training", train),
    ("scoring", score),
    ("verifying", verify),
    ("ablating", ablate),
    ("reporting", report),
)
"""The phases in order, by the name a saved state records: the one place the order lives.
No phase jumps: a failed sprint goes through them all (training says it is skipped,
scoring records the failure as its verdict, reporting records it)."""
PROPOSED = "proposed"
"""The phase a sprint is saved in by start(): none of PHASES has begun."""


def real_folders(root: Path, rel: str) -> list[str]:
    """Make every folder on the way from `root` to `root/rel` (rel included, where it exists) a
    real folder: a link, or anything that is not a folder, is removed (a link itself, never
    what it points to) and an empty folder made in its place. Returns the paths replaced. Our
    process then works on folders of the worktree, not through links the agent planted."""
    replaced, path = [], root
    for part in Path(rel).parts:
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return replaced  # made later, as a real folder, by the phase that needs it
        if stat.S_ISDIR(info.st_mode):
            continue
        replaced.append(path.relative_to(root).as_posix() + "/")
        path.unlink()
        path.mkdir()
    return replaced


class Engine:
    """Runs sprints. Parallel sprints (`autosae loop --parallel N`) each have an Engine of
    their own, sharing `lock` (held wherever the main checkout, the ledger or git's refs are
    touched, so that one sprint records at a time) and `pool` (the device slots)."""

    def __init__(
        self,
        project: Project,
        status: Callable[[str], None] = print,
        detail: Callable[[str], None] | None = None,
        pool=None,
        lock=None,
    ):
        self.project = project
        self.repo = gitops.open_repo(project.root)
        self.store = StateStore(project.state_dir)
        self.status = status
        self.detail = detail or self._log_to_file
        self.lock = lock or threading.RLock()
        self.shared_pool = pool
        self._pools: dict[str, object] = {}

    # -- a sprint's life -----------------------------------------------------------------

    def start(self, req: SprintRequest) -> SprintState:
        """Ideation (see autosae.sprint.ideation): the new sprint, saved as `proposed`."""
        with self.lock:
            return ideation.start(self, req)

    def run(self, state: SprintState) -> SprintState:
        """Run the sprint from its current phase to done."""
        if state.phase in FINAL:
            return state
        names = [name for name, _ in PHASES]
        if state.phase != PROPOSED and state.phase not in names:
            raise AutosaeError(f"sprint {state.id} is saved in an unknown phase {state.phase!r}")
        first = 0 if state.phase == PROPOSED else names.index(state.phase)
        sprint = self.prepare(state)
        for name, phase in PHASES[first:]:
            self.enter(state, name)
            try:
                phase(sprint)
            except git.GitCommandError as exc:  # the phases' own git failures are GitFailed already
                raise GitFailed(f"sprint {state.id}, {name}: {git_error(exc)}") from None
        state.phase = "done"
        self.store.save(state)
        announce(sprint)
        return state

    def prepare(self, state: SprintState) -> Sprint:
        """What every phase needs, under the settings the sprint started with."""
        from autosae.harness.devices import resolve_device

        cfg = self.task_config(state)
        profile = self.profile_for(cfg, state.profile)
        device = resolve_device(cfg.device)
        current = gitops.current_branch(self.repo)
        if current != state.base_branch:
            raise AutosaeError(
                f"sprint {state.id} records onto branch {state.base_branch}, but {current} "
                f"is checked out; `git checkout {state.base_branch}` and resume"
            )
        sandboxed = self.check_sandbox(cfg, state.backend)
        if state.sandboxed is not False:  # a sprint that ran without it once is recorded as such
            state.sandboxed = sandboxed
        agent = self.agent(cfg, state.backend)
        baselines = self.baselines(cfg, profile, device, state.parent)
        return Sprint(self, state, cfg, profile, device, agent, baselines)

    def enter(self, state: SprintState, phase: str) -> None:
        """Save the sprint as in `phase` (what it has done so far with it); a resumed phase
        keeps the time it first started."""
        state.phase = phase
        state.phase_started.setdefault(phase, iso())
        self.store.save(state)

    def abandon(self, state: SprintState) -> None:
        with self.lock:
            gitops.remove_worktree(self.repo, self.project.worktrees_dir / state.id)
        state.phase = "abandoned"
        state.finished = iso()
        self.store.save(state)

    # -- services the phases share -------------------------------------------------------

    def pool_for(self, cfg: TaskConfig):
        """The device slots runs use: the loop's shared pool, else TASK.md's `gpus` (None:
        one device, seeds in turn)."""
        if self.shared_pool is not None:
            return self.shared_pool
        if cfg.gpus is None:
            return None
        from autosae.harness.slots import pool_for_gpus

        key = repr(cfg.gpus)  # one pool per setting, kept across the runs that use it
        if key not in self._pools:
            self._pools[key] = pool_for_gpus(cfg.gpus)
        return self._pools[key]

    def run_options(self, cfg: TaskConfig, device: str, launch: bool = True, backend: str | None = None, **kw):
        """Where runs execute: the device slots, and for counted runs (launch) TASK.md's
        launcher (Slurm jobs through submitit); under which sandbox and bounds (TASK.md's
        sandbox, for the sprint's backend, and limits)."""
        from autosae.harness.run import task_run_options

        return task_run_options(
            cfg,
            device,
            self.pool_for(cfg),
            project_root=self.project.root,
            project_id=gitops.root_commit(self.repo),
            backend=backend,
            launch=launch,
            **kw,
        )

    def _log_to_file(self, line: str) -> None:
        self.project.private.mkdir(parents=True, exist_ok=True)
        with open(self.project.private / "harness.log", "a") as f:
            f.write(line.rstrip("\n") + "\n")

    def say(self, state: SprintState | str, phase: str, text: str = "") -> None:
        sid = state if isinstance(state, str) else state.id
        self.status(f"{iso()[11:19]} {sid} | {phase}" + (f" | {text}" if text else ""))

    def task_config(self, state: SprintState) -> TaskConfig:
        return TaskConfig.model_validate(state.task)

    def profile_for(self, cfg: TaskConfig, profile_name: str):
        return self.secret_eval(cfg.model_copy(update={"profile": profile_name}).build_profile())

    def secret_eval(self, profile):
        """The profile scored on the secret eval samples (see project_secrets)."""
        from autosae.sprint.project_secrets import with_secret_eval

        return with_secret_eval(profile)

    def baselines(self, cfg: TaskConfig, profile, device: str, parent: str | None = None) -> dict[str, dict]:
        """The baselines' counted results (autosae.harness.baselines), with the sprint's parent's
        when it is a reference variant: it is compared with its own numbers."""
        from autosae.harness.baselines import run_baselines

        also = [parent.removeprefix("baseline:")] if parent and parent.startswith("baseline:") else []
        with self.lock:  # parallel sprints train a missing baseline once
            return run_baselines(
                profile, self.run_options(cfg, device, seeds=cfg.seed_list(), log=self.detail), also=also
            )

    def agent(self, cfg: TaskConfig, backend: str):
        options = {
            "seed": cfg.agent.seed,
            "project": str(self.project.root),
            "model": cfg.agent.model,
            "max_turns": cfg.agent.max_turns.model_dump(),
            "sandbox": cfg.sandbox_mode(backend),
            "limits": cfg.limits.model_dump(),
            **cfg.agent.options,
        }
        try:
            return create_agent(backend, **options)
        except AgentError as exc:
            raise AutosaeError(f"agent backend {backend!r} could not start: {exc}") from None

    def context(
        self,
        cfg: TaskConfig,
        body: str,
        profile,
        setting: str,
        rows: list[dict],
        baselines: dict[str, dict],
        hide_past: bool = False,
        state: SprintState | None = None,
        usd_cap: float | None = None,
    ) -> AgentContext:
        """What the agent is told: TASK.md, the ledger (unless hidden), the baselines, its
        budget, and within a sprint its worktree, transcripts and quick runs."""
        from autosae.agents.power import power_facts
        from autosae.agents.prompts import turn_limits
        from autosae.harness.quick import default_samples
        from autosae.variants import reference_variants

        mine = in_setting(rows, setting)
        best = best_row(rows, setting)
        budget = budget_left(
            cfg,
            rows,
            state.cost_usd if state else 0.0,
            state.usd_cap if state else usd_cap,
            review_cost(self.project) if cfg.budgets.usd_total is not None else 0.0,
        )
        means = {
            name: {m: res["summary"][m]["mean"] for m in ("f1", "mcc") if m in res.get("summary", {})}
            for name, res in baselines.items()
        }
        return AgentContext(
            task_body=body,
            profile=profile.name,
            objective=cfg.objective,
            sprint_number=len(rows),
            past=[] if hide_past else [past_sprint(r, self.project.sprints_dir) for r in mine],
            comments=[] if hide_past else self.comments(),
            best=past_sprint(best, self.project.sprints_dir) if best and not hide_past else None,
            baselines=means,
            seed=cfg.agent.seed,
            width=profile.constraints.width,
            k=profile.constraints.k,
            model=cfg.agent.model,
            budget_usd=budget,
            sprint_id=state.id if state else None,
            project_root=self.project.root,
            worktree=self.project.worktrees_dir / state.id if state else None,
            record_dir=self.agent_dir(state.id if state else PROPOSING),
            experiment=self.experimenter(state, cfg) if state else None,
            amend=self.amender(state) if state else None,
            notebook=render_for_prompt(self.project.root),
            recorded=[r["id"] for r in rows if isinstance(r.get("id"), str)],
            log=self.detail,
            card=render_card(profile, cfg, baselines, counted_time_limit(cfg, profile), project_root=self.project.root),
            literature=cfg.agent.literature.resolved(),
            power=power_facts(
                baselines,
                list(reference_variants()),
                cfg.objective,
                cfg.significance,
                len(cfg.seed_list()),
                profile.constraints.training_samples,
                default_samples(profile.constraints, cfg.quick.full_budget_samples),
                turn_limits(cfg.agent.max_turns.model_dump()),
                budget,
                cfg.budgets.hours_per_sprint,
            ),
        )

    def comments(self) -> list[dict[str, str]]:
        """The researchers' latest comments on sprints (from Slack), for proposals to weigh."""
        from autosae.sprint.ideas import comments

        try:
            return [{"sprint": c.sprint or "?", "by": c.added_by, "text": c.text} for c in comments(self.project)][-20:]
        except AutosaeError:  # ideas.jsonl broken by a hand edit: the sprint says so when it folds
            return []

    def amender(self, state: SprintState) -> Callable[[dict], str]:
        """The agent's `amend_proposal`: pilot notes appended to state.amendments (saved at once),
        beside the proposal, whose title, idea, hypothesis and plan it never changes."""
        from autosae.report.evidence import MAX_AMENDMENTS, amendment_of

        guard = threading.Lock()  # Claude Code's tool calls come from the MCP server's threads

        def amend(args: dict) -> str:
            entry = amendment_of(args)
            with guard:
                if len(state.amendments) >= MAX_AMENDMENTS:
                    raise ValueError(f"this sprint has {MAX_AMENDMENTS} amendments already, the most it may record")
                state.amendments.append({"at": iso(), **entry})
                self.store.save(state)
                n = len(state.amendments)
            return (
                f"recorded amendment {n} of at most {MAX_AMENDMENTS}, beside the original proposal (its title, idea, "
                f"hypothesis and plan stay as proposed); the conclude phase, the reports and the next proposals show both"
            )

        return amend

    def agent_dir(self, name: str) -> Path:
        """An LLM agent's transcripts for one sprint, outside its worktree."""
        return self.project.private / "agent" / name

    def experimenter(self, state: SprintState, cfg: TaskConfig):
        """The agent's `run_experiment` (autosae.harness.experiment): quick runs on this
        machine (never through the launcher), under the sprint's sandbox, uncounted."""
        from autosae.harness.devices import resolve_device
        from autosae.harness.experiment import experimenter

        parent = state.parent or "baseline:matryoshka"
        try:
            parent_variant = self.parent_variant_path(parent)
        except AutosaeError:
            parent_variant = None

        def options(**kw):
            return self.run_options(
                cfg,
                resolve_device(cfg.device),
                launch=False,
                backend=state.backend,
                counted=False,
                log=lambda line: self.detail(f"{state.id} experiment: {line}"),
                **kw,
            )

        def recorded(record: dict) -> None:  # each call, for conclude, the report and the next proposal
            state.quick_runs.append(record)
            self.store.save(state)

        return experimenter(
            state.profile,
            cfg.model_seed,
            cfg.profile_overrides(),
            parent,
            parent_variant,
            self.project.runs_dir / f"{state.id}.experiments",
            options,
            worktree=self.project.worktrees_dir / state.id,
            project_root=self.project.root,
            full_budget_samples=cfg.quick.full_budget_samples,
            default_seeds=cfg.quick.seeds,
            on_record=recorded,
        )

    def check_tree(self, allow: tuple[str, ...] = ()) -> str:
        if not gitops.has_commits(self.repo):
            raise AutosaeError("the project repository has no commit yet; run `autosae init`")
        branch = gitops.current_branch(self.repo)
        gitops.refuse_dirty(
            self.repo, (NOTEBOOK, *allow)
        )  # the researcher's notebook edits: committed with its next entry
        return branch

    def check_sandbox(self, cfg: TaskConfig, backend: str) -> bool:
        """Whether this sprint runs sandboxed; `required` without a working bubblewrap stops
        here, before anything starts, with one line that says why and how to fix it."""
        from autosae.sandbox import resolve

        return resolve(cfg.sandbox_mode(backend), lambda line: self.say("sandbox", "warning", line))

    def worktree(self, state: SprintState):
        """The sprint's worktree on its branch, and its folder there (idempotent). The agent
        owns the worktree: a `sprints/` or sprint folder it replaced by a link (to make our
        process delete, read or write where the link points) is removed, a real folder made
        in its place, and the sprint refused (see real_folders)."""
        with self.lock:
            tree = gitops.add_worktree(self.repo, self.project.worktrees_dir / state.id, state.branch)
        root = Path(tree.working_tree_dir)
        replaced = real_folders(root, state.sprint_path)
        if replaced and not state.failure:
            state.failure = (
                f"refused: {', '.join(replaced)} in the worktree was a link or not a folder; it was replaced "
                f"by an empty folder, nothing was trained"
            )
        return tree, root / state.sprint_path

    def parent_variant_path(self, parent: str) -> Path:
        return self.project.parent_variant(parent)

    def parent_metrics(self, parent: str | None, rows: list[dict], baselines: dict[str, dict]) -> dict | None:
        """The parent's whole summary ({metric: {mean, std, n}}), found as scoring finds the
        parent: a recorded sprint's results.json on the main branch, else the baseline's own
        results; None where none is recorded (never another baseline's in its place)."""
        if parent and any(r.get("id") == parent for r in rows):
            results = read_json(self.project.sprints_dir / parent / "results.json") or {}
        else:
            results = baselines.get((parent or "baseline:matryoshka").removeprefix("baseline:")) or {}
        summary = results.get("summary")
        return summary if isinstance(summary, dict) and summary else None

    def verify_on_heldout(
        self,
        parent: str,
        variant: Path,
        profile,
        cfg: TaskConfig,
        device: str,
        backend: str | None = None,
        own_verdict: str = "improved",
    ) -> dict:
        """The variant and its parent trained on the held-out suite, judged against the sprint's
        own verdict (autosae.sprint.heldout)."""
        from autosae.sprint.heldout import suite, verify

        models = suite(self.secret_eval(profile), gitops.root_commit(self.repo), cfg.heldout.models)
        parent_variant = self.parent_variant_path(parent)
        return verify(
            models,
            variant,
            parent_variant,
            parent,
            list(range(cfg.heldout.seeds)),
            cfg.objective,
            cfg.significance,
            self.run_options(cfg, device, backend=backend, log=self.detail),
            own_verdict,
        )
