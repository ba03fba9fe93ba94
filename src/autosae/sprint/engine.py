"""One sprint through its whole life, resumable after a crash in any phase.

    start():  re-read TASK.md, check the tree, baselines, ideation (refusing repeats) -> proposed
    run():    implementing -> training -> scoring -> reporting -> done

Every phase persists the state before and after its work, and its work is idempotent: a phase
interrupted by SIGKILL is run again from its start, reusing what was already recorded (the
implement commit, the harness's results.json, the conclusion, the merge commit on main).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from autosae import notify
from autosae.agents import AgentContext, AgentError, BudgetReached, Proposal, create_agent, default_backend
from autosae.agents.card import render_card
from autosae.agents.literature import clean_sources, merge_sources, readme_with_sources
from autosae.agents.pricing import add_usage
from autosae.agents.quick import quick_fields
from autosae.agents.transcript import merge_transcripts
from autosae.config import MaxTurns, TaskConfig, load_task
from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.seal import read_verified
from autosae.report.record import folder_files, read_json, variant_diff
from autosae.sprint import gitops
from autosae.sprint.coverage import never_ran
from autosae.sprint.ledger import (
    best_row,
    dump_row,
    find_duplicate,
    in_setting,
    one_line,
    parse_ledger,
    past_sprint,
    read_ledger,
    reference,
)
from autosae.sprint.project import Project
from autosae.sprint.state import SprintState, StateStore, iso, new_sprint_id
from autosae.sprint.verdict import Reference, compute_verdict, probes_of

PROPOSE_ATTEMPTS = 3
REPORT_FILES = ("reports/ledger.jsonl", "reports/leaderboard.md", "reports/progress.png", "reports/progress.pdf")
"""What a sprint's merge writes under reports/ (and all that a crashed merge may leave)."""
README_LIMIT = 1 << 20
"""The most of an agent's README.md that autosae reads back (to add its Sources section)."""
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


class SprintNotStarted(AutosaeError):
    """Ideation failed: nothing was recorded (the loop counts it as a failed attempt)."""


class BudgetExhausted(AutosaeError):
    """A spending cap was reached while proposing: no sprint started, and the loop stops."""


@dataclass
class SprintRequest:
    idea: str | None = None
    backend: str | None = None
    profile: str | None = None
    allow_duplicate: bool = False
    model: str | None = None
    max_turns: int | None = None
    usd_cap: float | None = None
    """What the caller (the loop's --budget-usd) still allows this sprint to spend."""


def crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests: AUTOSAE_CRASH_AT=<name> kills this process
    with SIGKILL here, exactly as `kill -9` would."""
    if os.environ.get("AUTOSAE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def setting_of(profile) -> str:
    """Sprints are compared only within one model and one set of constraints."""
    payload = json.dumps({"model": profile.model_hash(), "constraints": asdict(profile.constraints)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


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
        from autosae.harness.run import RunOptions

        launcher = cfg.launcher if launch and cfg.launcher.kind != "local" else None
        folder = None
        if launcher:
            from autosae.bench.build import cache_root

            folder = str(
                self.project.root / cfg.launcher.folder
                if cfg.launcher.folder
                else cache_root() / "slurm" / gitops.root_commit(self.repo)
            )
        return RunOptions(
            device=device,
            pool=self.pool_for(cfg),
            launcher=launcher,
            launcher_folder=folder,
            sandbox=cfg.sandbox_mode(backend),
            memory_limit_gb=cfg.limits.memory_gb,
            disk_limit_gb=cfg.limits.disk_gb,
            max_processes=cfg.limits.processes,
            **kw,
        )

    def _log_to_file(self, line: str) -> None:
        self.project.private.mkdir(parents=True, exist_ok=True)
        with open(self.project.private / "harness.log", "a") as f:
            f.write(line.rstrip("\n") + "\n")

    def say(self, state: SprintState | str, phase: str, text: str = "") -> None:
        sid = state if isinstance(state, str) else state.id
        self.status(f"{iso()[11:19]} {sid} | {phase}" + (f" | {text}" if text else ""))

    # -- set-up shared by start() and run() ----------------------------------------------

    def task_config(self, state: SprintState) -> TaskConfig:
        return TaskConfig.model_validate(state.task)

    def profile_for(self, cfg: TaskConfig, profile_name: str):
        return self.secret_eval(cfg.model_copy(update={"profile": profile_name}).build_profile())

    def secret_eval(self, profile):
        """The profile scored on the secret eval samples (see project_secrets)."""
        from autosae.sprint.project_secrets import with_secret_eval

        return with_secret_eval(profile)

    def baselines(self, cfg: TaskConfig, profile, device: str) -> dict[str, dict]:
        from autosae.harness.baselines import run_baselines

        with self.lock:  # parallel sprints train a missing baseline once
            return run_baselines(profile, self.run_options(cfg, device, seeds=cfg.seed_list(), log=self.detail))

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
        mine = in_setting(rows, setting)
        best = best_row(rows, setting)
        means = {
            name: {m: res["summary"][m]["mean"] for m in ("f1", "mcc") if m in res.get("summary", {})}
            for name, res in baselines.items()
        }
        return AgentContext(
            task_body=body,
            profile=profile.name,
            objective=cfg.objective,
            sprint_number=len(rows),
            past=[] if hide_past else [past_sprint(r) for r in mine],
            best=past_sprint(best) if best and not hide_past else None,
            baselines=means,
            seed=cfg.agent.seed,
            width=profile.constraints.width,
            k=profile.constraints.k,
            model=cfg.agent.model,
            budget_usd=budget_left(cfg, rows, state.cost_usd if state else 0.0, state.usd_cap if state else usd_cap),
            sprint_id=state.id if state else None,
            project_root=self.project.root,
            worktree=self.project.worktrees_dir / state.id if state else None,
            record_dir=self.agent_dir(state.id if state else PROPOSING),
            experiment=self.experimenter(state, cfg) if state else None,
            log=self.detail,
            **(
                quick_fields(
                    cfg,
                    profile,
                    state.sprint_path,
                    state.parent,
                    self.project.worktrees_dir / state.id,
                    self.agent_dir(state.id),
                )
                if state
                else {}
            ),
            card=render_card(profile, cfg, baselines, counted_time_limit(cfg, profile)),
            literature=cfg.agent.literature.resolved(),
        )

    def agent_dir(self, name: str) -> Path:
        """An LLM agent's transcripts for one sprint, outside its worktree."""
        return self.project.private / "agent" / name

    def experimenter(self, state: SprintState, cfg: TaskConfig):
        """The agent's `run_experiment`: a quick, uncounted harness run of a variant, on the
        validation samples and quick seeds (never the counted ones: see harness.quick), with
        the sprint's parent trained beside it when asked for or cheap (cached)."""
        from autosae.bench.profiles import get_profile
        from autosae.harness.quick import clamp_samples, run_quick
        from autosae.harness.run import resolve_device

        def experiment(
            variant: Path, samples: int | None, profile: str | None, seed: int = 0, parent: bool | None = None
        ) -> dict:
            name = profile or state.profile
            own = name == state.profile
            overrides = cfg.profile_overrides() if own else []
            try:
                full = get_profile(name, cfg.model_seed if own else None, overrides)
                samples = clamp_samples(samples, full.constraints)
                short = get_profile(
                    name,
                    cfg.model_seed if own else None,
                    [o for o in overrides if not o.startswith("training_samples=")] + [f"training_samples={samples}"],
                )
                try:
                    parent_path = self.parent_variant_path(state.parent or "baseline:matryoshka")
                except AutosaeError:
                    parent_path = None
                out = self.project.runs_dir / f"{state.id}.experiments"
                out = out / f"{len(list(out.glob('*'))) if out.exists() else 0:03d}"
                opts = self.run_options(
                    cfg,
                    resolve_device(cfg.device),
                    launch=False,
                    backend=state.backend,
                    seeds=[seed],
                    counted=False,
                    time_limit_s=min(short.time_limit_s, 1800.0),
                    log=lambda line: self.detail(f"{state.id} experiment: {line}"),
                )
                report = run_quick(
                    variant,
                    short,
                    out,
                    opts,
                    parent_path if parent_path and parent_path.is_file() else None,
                    state.parent or "baseline:matryoshka",
                    parent,
                )
            except AutosaeError as exc:
                return {"status": "error", "reason": str(exc)}
            return {
                **report,
                "seed": seed,
                "note": "uncounted: one seed, fewer samples, scored on validation samples that no counted "
                "run uses; the verdict comes from the counted run",
            }

        return experiment

    def check_tree(self, allow: tuple[str, ...] = ()) -> str:
        if not gitops.has_commits(self.repo):
            raise AutosaeError("the project repository has no commit yet; run `autosae init`")
        branch = gitops.current_branch(self.repo)
        gitops.refuse_dirty(self.repo, allow)
        return branch

    def check_sandbox(self, cfg: TaskConfig, backend: str) -> bool:
        """Whether this sprint runs sandboxed; `required` without a working bubblewrap stops
        here, before anything starts, with one line that says why and how to fix it."""
        from autosae.sandbox import resolve

        return resolve(cfg.sandbox_mode(backend), lambda line: self.say("sandbox", "warning", line))

    # -- ideation ------------------------------------------------------------------------

    def start(self, req: SprintRequest) -> SprintState:
        with self.lock:
            return self._start(req)

    def in_flight(self) -> list[dict]:
        """Unfinished sprints as ledger-like rows: parallel sprints see each other's ideas
        (and are refused as repeats of them) and take distinct sprint numbers."""
        return [
            {
                "id": s.id,
                "title": s.title,
                "idea": s.idea,
                "config": s.config,
                "parent": s.parent,
                "verdict": "in progress",
                "setting": s.setting,
                "cost_usd": s.cost_usd,
            }
            for s in self.store.unfinished()
        ]

    def _start(self, req: SprintRequest) -> SprintState:
        from autosae.harness.run import resolve_device

        task = load_task(self.project.task_path)  # re-read: the user steers by editing it
        cfg = task.config
        if req.profile:
            cfg = cfg.model_copy(update={"profile": req.profile})
        agent_update = {}  # --model and --max-turns override TASK.md for this sprint
        if req.model:
            agent_update["model"] = req.model
        if req.max_turns:
            agent_update["max_turns"] = MaxTurns.model_validate(req.max_turns)
        if agent_update:
            cfg = cfg.model_copy(update={"agent": cfg.agent.model_copy(update=agent_update)})
        profile = self.secret_eval(cfg.build_profile())
        device = resolve_device(cfg.device)
        base_branch = self.check_tree()
        backend = req.backend or cfg.agent.backend or default_backend()
        sandboxed = self.check_sandbox(cfg, backend)
        agent = self.agent(cfg, backend)
        setting = setting_of(profile)
        self.say(
            "baselines",
            "training" if not _baselines_cached(profile, cfg) else "cached",
            f"{profile.name}, {len(cfg.seed_list())} seeds",
        )
        baselines = self.baselines(cfg, profile, device)
        recorded = read_ledger(self.project.ledger_path)
        rows = recorded + self.in_flight()
        ctx = self.context(cfg, task.body, profile, setting, rows, baselines, usd_cap=req.usd_cap)
        ctx.explore = req.idea is None and is_exploration(len(rows), cfg.diversity.explore_share)
        shutil.rmtree(ctx.record_dir, ignore_errors=True)
        proposal = self._propose(agent, ctx, req, in_setting(rows, setting))
        parent = proposal.parent
        known = {r["id"] for r in recorded}
        if ctx.explore and not (parent or "").startswith("baseline:"):
            parent = "baseline:matryoshka"  # far from the best: from the baseline
        elif not (parent in known or (parent or "").startswith("baseline:")):
            best = best_row(recorded, setting)
            parent = best["id"] if best else "baseline:matryoshka"
        taken = {r["id"] for r in rows} | {s.id for s in self.store.all()}
        sid = new_sprint_id(proposal.title, taken)
        state = SprintState(
            id=sid,
            phase="proposed",
            title=proposal.title,
            idea=proposal.idea,
            hypothesis=proposal.hypothesis,
            plan=proposal.plan,
            parent=parent,
            config=proposal.config,
            backend=backend,
            profile=profile.name,
            objective=cfg.objective,
            seeds=cfg.seed_list(),
            setting=setting,
            base_branch=base_branch,
            branch=f"sprint/{sid}",
            task_sha256=task.sha256,
            user_idea=req.idea is not None,
            explore=ctx.explore,
            cost_usd=agent.cost_usd,
            tokens=dict(getattr(agent, "tokens", {})),
            usd_cap=req.usd_cap,
            task=cfg.model_dump(mode="json"),
            task_body=task.body,
            sandboxed=sandboxed,
            origin=proposal.origin,
            sources=clean_sources(proposal.sources),
        )
        if ctx.record_dir.exists():
            ctx.record_dir.rename(self.agent_dir(sid))
        self.store.save(state)
        self.say(
            state,
            "proposed",
            f"{proposal.title} (parent {parent}, agent {backend}" + (", exploration sprint)" if ctx.explore else ")"),
        )
        crash_point("proposed")
        return state

    def _propose(self, agent, ctx: AgentContext, req: SprintRequest, rows: list[dict]) -> Proposal:
        from autosae.agents import PastSprint

        for attempt in range(PROPOSE_ATTEMPTS):
            try:
                proposal = agent.propose(ctx, idea=req.idea)
            except BudgetReached as exc:
                raise BudgetExhausted(f"no sprint started: {exc}") from None
            except AgentError as exc:
                raise SprintNotStarted(f"the {agent.name} agent could not propose an idea: {exc}") from None
            dup = find_duplicate(rows, proposal.idea or proposal.title, proposal.config, proposal.title)
            if dup is None or req.allow_duplicate:
                return proposal
            row, how = dup
            self.record_refusal(proposal, row["id"], how, agent.name)
            if req.idea is not None:
                raise SprintNotStarted(
                    f"this idea repeats sprint {row['id']} ({how}); pass --allow-duplicate to run it anyway"
                )
            ctx.past.append(
                PastSprint(
                    id="(refused)",
                    title=proposal.title,
                    idea=proposal.idea,
                    verdict=f"refused: repeats {row['id']} ({how})",
                    f1=None,
                    mcc=None,
                    config=proposal.config,
                    summary=one_line(proposal.idea or proposal.title),
                )
            )
            # the next attempt is a new conversation that sees the refusal: an LLM backend would
            # otherwise resume the finished one from its transcript (and count its cost again)
            done = Path(ctx.record_dir) / "propose.jsonl" if ctx.record_dir else None
            if done is not None and done.exists():
                done.rename(done.with_name(f"propose-refused-{attempt + 1}.jsonl"))
        raise SprintNotStarted(
            f"the {agent.name} agent proposed only repeats of past sprints "
            f"({PROPOSE_ATTEMPTS} attempts); steer it with new ideas in TASK.md"
        )

    def record_refusal(self, proposal: Proposal, repeats: str, how: str, backend: str) -> None:
        """A proposal refused as a repeat: appended to .autosae/refused.jsonl (`autosae status`
        counts them)."""
        self.project.private.mkdir(parents=True, exist_ok=True)
        with open(self.project.refused_path, "a") as f:
            f.write(
                json.dumps(
                    {
                        "at": iso(),
                        "title": proposal.title,
                        "repeats": repeats,
                        "how": how,
                        "backend": backend,
                        "config": proposal.config,
                    }
                )
                + "\n"
            )
        self.say("ideation", "refused", f"{proposal.title!r} repeats {repeats} ({how})")

    # -- the phases ----------------------------------------------------------------------

    def run(self, state: SprintState) -> SprintState:
        """Run the sprint from its current phase to done."""
        cfg = self.task_config(state)
        profile = self.profile_for(cfg, state.profile)
        from autosae.harness.run import resolve_device

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
        baselines = self.baselines(cfg, profile, device)
        runners = {
            "proposed": self._implement,
            "implementing": self._implement,
            "training": self._train,
            "scoring": self._score,
            "verifying": self._verify,
            "reporting": self._report,
        }
        while state.phase not in ("done", "abandoned"):
            runners[state.phase](state, cfg, profile, device, agent, baselines)
        return state

    def enter(self, state: SprintState, phase: str, text: str | None = "") -> None:
        state.phase = phase
        state.phase_started.setdefault(phase, iso())
        self.store.save(state)
        if text is not None:
            self.say(state, phase, text)

    def worktree(self, state: SprintState):
        with self.lock:
            tree = gitops.add_worktree(self.repo, self.project.worktrees_dir / state.id, state.branch)
        return tree, Path(tree.working_tree_dir) / state.sprint_path

    def _implement(self, state, cfg, profile, device, agent, baselines) -> None:
        self.enter(state, "implementing", f"agent {state.backend} writes README.md and variant.py")
        tree, folder = self.worktree(state)
        if gitops.in_head(tree, f"{state.sprint_path}/variant.py") or (
            state.failure and gitops.in_head(tree, f"{state.sprint_path}/README.md")
        ):
            pass  # committed before a crash: keep it
        else:
            rows = read_ledger(self.project.ledger_path)
            ctx = self.context(
                cfg,
                state.task_body,
                profile,
                state.setting,
                rows,
                baselines,
                hide_past=cfg.agent.hide_past,
                state=state,
            )
            if not (ctx.record_dir / "implement.jsonl").is_file():  # else: a conversation to continue
                shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            before, tokens = agent.cost_usd, dict(getattr(agent, "tokens", {}))
            try:
                agent.implement(proposal_of(state), folder, ctx)
                missing = [f for f in ("README.md", "variant.py") if not (folder / f).is_file()]
                if missing:
                    state.failure = f"the agent did not write {', '.join(missing)}"
            except BudgetReached as exc:
                state.failure = state.stop = f"budget reached: {exc}"
            except AgentError as exc:
                state.failure = f"the {state.backend} agent could not implement the idea: {exc}"
            self.charge(state, agent, before, tokens)
            for name in TRUSTED_FILES:
                (folder / name).unlink(missing_ok=True)
            refused = refuse_links(folder)
            if refused and not state.failure:
                state.failure = (
                    f"refused: the sprint folder held {', '.join(refused[:5])} (a symlink or a "
                    f"file that is not a regular file); they were removed, nothing was trained"
                )
            crash_point("implementing")
            if not any(folder.iterdir()):
                (folder / "README.md").write_text(f"# {state.title}\n\n{state.idea}\n")
            with self.lock:
                state.commit = (
                    gitops.commit_paths(tree, f"{state.id}: implement: {state.title}", [state.sprint_path])
                    or state.commit
                )
        self.store.save(state)
        state.phase = "training"

    def _train(self, state, cfg, profile, device, agent, baselines) -> None:
        from autosae.harness.run import run_variant, sha256_file

        run_dir = self.project.runs_dir / state.id
        if state.failure:
            self.enter(state, "training", f"skipped: {state.failure}")
            state.phase = "scoring"
            return
        self.enter(state, "training", f"{len(state.seeds)} seeds on {profile.name} ({device})")
        _, folder = self.worktree(state)
        variant = folder / "variant.py"
        done = read_verified(run_dir / "results.json")  # only a record the harness sealed is reused
        if done and done.get("status") not in (None, "running") and done.get("variant_sha256") == sha256_file(variant):
            self.say(state, "training", "reusing the results recorded before the interruption")
        else:
            if not (run_dir / "launcher.json").is_file():  # else: a job to wait for again (launch.py)
                shutil.rmtree(run_dir, ignore_errors=True)
            limit = None
            if cfg.budgets.hours_per_sprint:
                limit = counted_time_limit(cfg, profile)
            opts = self.run_options(
                cfg,
                device,
                backend=state.backend,
                seeds=list(state.seeds),
                time_limit_s=limit,
                log=lambda line: self.detail(f"{state.id}: {line}"),
            )
            try:
                run_variant(variant, profile, run_dir, opts)
            except (VariantFailed, ConstraintBreach) as exc:
                self.say(state, "training", f"the variant failed: {exc}")
        crash_point("training")
        state.phase = "scoring"
        self.store.save(state)

    def _score(self, state, cfg, profile, device, agent, baselines) -> None:
        with self.lock:  # the ledger as it stands: the parent and the best so far
            self._score_locked(state, cfg, profile, baselines)

    def _score_locked(self, state, cfg, profile, baselines) -> None:
        self.enter(state, "scoring", None)  # its one status line carries the verdict
        results = None if state.failure else read_verified(self.project.runs_dir / state.id / "results.json")
        rows = read_ledger(self.project.ledger_path)
        by_id = {r["id"]: r for r in rows}
        refs = {name: Reference.from_results(f"baseline:{name}", res) for name, res in baselines.items()}
        if state.parent in by_id:
            parent = reference(by_id[state.parent])
            parent.probes = probes_of(read_json(self.project.sprints_dir / state.parent / "results.json"))
        else:
            parent = refs.get((state.parent or "").removeprefix("baseline:"), refs["matryoshka"])
        best = best_row(rows, state.setting)
        coverage = None
        if results and results.get("status") == "ok":
            _, folder = self.worktree(state)
            coverage = never_ran(
                self.parent_source(state),
                (folder / "variant.py").read_text(),
                [r.get("executed_lines") for r in results.get("per_seed", []) if r.get("status") == "ok"],
            )
        verdict = compute_verdict(
            results,
            state.id,
            parent,
            reference(best) if best else None,
            refs,
            state.objective,
            cfg.significance,
            coverage,
        )
        if state.failure:
            verdict["reason"] = state.failure
        crash_point("scoring")
        state.verdict = verdict
        state.phase = "verifying"
        self.store.save(state)
        self.say(state, "scoring", f"{verdict['verdict']}: {verdict['reason']}")

    def _verify(self, state, cfg, profile, device, agent, baselines) -> None:
        """A new best is trained on the held-out suite, beside its parent, before it is
        confirmed; one that does not hold up there is not the new best (nor the next parent)."""
        v = state.verdict
        if v.get("new_best") and cfg.heldout.auto and cfg.heldout.models > 0 and v.get("held_out") is None:
            self.enter(
                state,
                "verifying",
                f"{cfg.heldout.models} held-out models, {cfg.heldout.seeds} seeds each, "
                f"beside the parent {state.parent}",
            )
            _, folder = self.worktree(state)
            try:
                out = self.verify_on_heldout(state.parent, folder / "variant.py", profile, cfg, device, state.backend)
            except AutosaeError as exc:
                out = {"models": [], "confirmed": False, "reason": f"not confirmed: {exc}"}
            v.update(held_out=out["models"], confirmed=out["confirmed"], held_out_reason=out["reason"])
            if not out["confirmed"]:
                v["new_best"] = False
            self.say(state, "verifying", out["reason"])
        crash_point("verifying")
        state.phase = "reporting"
        self.store.save(state)

    def verify_on_heldout(
        self, parent: str, variant: Path, profile, cfg: TaskConfig, device: str, backend: str | None = None
    ) -> dict:
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
        )

    def parent_variant_path(self, parent: str) -> Path:
        from autosae.variants import reference_variants

        if parent.startswith("baseline:"):
            ref = reference_variants().get(parent.removeprefix("baseline:"))
            if ref is None:
                raise AutosaeError(f"unknown baseline {parent}")
            return ref
        return self.project.sprints_dir / parent / "variant.py"

    def _report(self, state, cfg, profile, device, agent, baselines) -> None:
        from autosae.report import write_leaderboard, write_report
        from autosae.report.record import read_curves, write_json

        self.enter(state, "reporting", "conclusions, report.md, report.pdf, commit, ledger")
        run_dir = self.project.runs_dir / state.id
        results = read_verified(run_dir / "results.json") if not state.failure else None
        if state.conclusion is None:
            state.conclusion = self._conclude(state, cfg, profile, agent, results, baselines)
            self.store.save(state)
        tree, folder = self.worktree(state)
        if not gitops.in_head(tree, f"{state.sprint_path}/DONE"):
            folder.mkdir(parents=True, exist_ok=True)
            shown = results or {"status": "failed", "reason": state.failure}
            (folder / "results.json").write_text(json.dumps(shown, indent=2, default=float))
            (folder / "verdict.json").write_text(json.dumps(state.verdict, indent=2, default=float))
            (folder / "cost.json").write_text(
                json.dumps(
                    {
                        "backend": state.backend,
                        "model": cfg.agent.model,
                        "cost_usd": round(state.cost_usd, 6),
                        "tokens": state.tokens,
                    },
                    indent=2,
                )
            )
            merge_transcripts(
                self.agent_dir(state.id), ("propose", "implement", "conclude"), folder / "transcript.jsonl"
            )
            state.sources = merge_sources(state.sources, self.implement_sources(state, cfg, agent))
            self.write_readme_sources(state, cfg, folder / "README.md")
            state.finished = state.finished or iso()
            record = report_info(state) | {
                "conclusion": state.conclusion,
                "stop": state.stop,
                "diff": self.diff_against_parent(state, tree, folder),
            }
            curves = read_curves(run_dir)
            write_json(folder / "sprint.json", record)
            write_json(folder / "curves.json", curves)
            write_report(folder, record, shown, state.verdict, curves)
            (folder / "DONE").write_text(
                json.dumps({"id": state.id, "verdict": state.verdict["verdict"], "finished": state.finished}) + "\n"
            )
            with self.lock:
                state.commit = (
                    gitops.commit_paths(
                        tree, f"{state.id}: {state.verdict['verdict']}: {state.title}", [state.sprint_path]
                    )
                    or state.commit
                )
            self.store.save(state)
        crash_point("reporting")
        with self.lock:
            self._merge(state, cfg, results, baselines, write_leaderboard)
            gitops.remove_worktree(self.repo, self.project.worktrees_dir / state.id)
        state.phase = "done"
        self.store.save(state)
        v = state.verdict
        self.say(
            state,
            "done",
            f"{v['verdict']}" + (" (new best)" if v.get("new_best") else "") + f" | sprints/{state.id}/report.md",
        )
        notify.post(
            notify.webhook_url(cfg),
            notify.sprint_notice(
                self.project.root.name, ledger_row(state, results), self.project.sprints_dir / state.id / "report.md"
            ),
            lambda line: self.say(state, "notify", line),
        )

    def implement_sources(self, state: SprintState, cfg: TaskConfig, agent) -> list[dict]:
        """What the agent read on the web while implementing (TASK.md literature.phases lists
        implement), from that phase's transcript: the backend parses its own tools' results."""
        settings = cfg.agent.literature.resolved()
        if not settings or "implement" not in settings["phases"] or not hasattr(agent, "sources"):
            return []
        return agent.sources(self.agent_dir(state.id), "implement")

    def write_readme_sources(self, state: SprintState, cfg: TaskConfig, readme: Path) -> None:
        """The sprint README's "Sources" section, written by autosae from the recorded sources
        (the agent writes the rest of the README; whatever it put between autosae's markers is
        replaced). Written where there is something to say: sources, a sprint whose LLM agent
        had web tools, or a README that already has the markers; idempotent."""
        if readme.is_symlink():
            readme.unlink()  # never written through (refuse_links removed any before; this is belt and braces)
        if readme.exists() and not readme.is_file():
            return  # a folder named README.md: the sprint already failed for want of a README
        text = ""
        if readme.is_file():
            with open(readme, "rb") as f:
                raw = f.read(README_LIMIT + 1)
            text = raw[:README_LIMIT].decode(errors="replace")
            if len(raw) > README_LIMIT:
                text += f"\n\n(autosae cut this README at {README_LIMIT:,} bytes)\n"
        web = bool(cfg.agent.literature.resolved()) and state.backend in ("anthropic", "claude_code")
        if not (state.sources or web or "autosae:sources" in text):
            return
        readme.write_text(readme_with_sources(text or f"# {state.title}\n", state.sources))

    def parent_source(self, state: SprintState) -> str | None:
        """The parent's variant.py as recorded on the main branch (or the baseline's)."""
        try:
            path = self.parent_variant_path(state.parent or "")
        except AutosaeError:
            return None
        return path.read_text() if state.parent and path.is_file() else None

    def diff_against_parent(self, state: SprintState, tree, folder: Path) -> dict:
        """What the agent changed in code: its folder against the parent sprint's (as the
        sprint's branch has it) or against the baseline's variant.py. README.md, the agent's
        notes, is left out on both sides."""
        skip = (*TRUSTED_FILES, "README.md")
        parent = state.parent or ""
        if parent.startswith("baseline:"):
            try:
                parent_files = {"variant.py": self.parent_variant_path(parent).read_text()}
            except AutosaeError:
                parent_files = {}
        else:
            parent_files = folder_files(Path(tree.working_tree_dir) / "sprints" / parent, skip) if parent else {}
        return variant_diff(parent or "—", parent_files, folder_files(folder, skip))

    def _conclude(self, state, cfg, profile, agent, results, baselines) -> str:
        if results is None:
            return f"The sprint failed before training: {state.failure}"
        from autosae.report.record import compact_curves, read_curves

        rows = read_ledger(self.project.ledger_path)
        ctx = self.context(cfg, state.task_body, profile, state.setting, rows, baselines, state=state)
        ctx.parent_metrics = self.parent_metrics(state.parent, rows, baselines)
        ctx.curves = compact_curves(read_curves(self.project.runs_dir / state.id))
        before, tokens = agent.cost_usd, dict(getattr(agent, "tokens", {}))
        try:
            text = agent.conclude(proposal_of(state), results, state.verdict, ctx).text
        except BudgetReached as exc:
            state.stop = f"budget reached: {exc}"
            text = f"(No conclusions were drawn: {exc}.)"
        except AgentError as exc:
            text = f"(The {state.backend} agent could not draw conclusions: {exc}.)"
        self.charge(state, agent, before, tokens)
        return text

    def parent_metrics(self, parent: str | None, rows: list[dict], baselines: dict[str, dict]) -> dict | None:
        """The parent's whole summary ({metric: {mean, std, n}}), found as scoring finds the
        parent: a recorded sprint's results.json on the main branch, else the baseline's
        results (the Matryoshka baseline for an unknown parent); None where none is recorded."""
        if parent and any(r.get("id") == parent for r in rows):
            results = read_json(self.project.sprints_dir / parent / "results.json") or {}
        else:
            results = baselines.get((parent or "").removeprefix("baseline:")) or baselines.get("matryoshka") or {}
        summary = results.get("summary")
        return summary if isinstance(summary, dict) and summary else None

    @staticmethod
    def charge(state: SprintState, agent, cost_before: float, tokens_before: dict) -> None:
        """Add what the agent spent in one call to the sprint's record."""
        state.cost_usd += agent.cost_usd - cost_before
        now = getattr(agent, "tokens", {})
        add_usage(state.tokens, {k: v - tokens_before.get(k, 0) for k, v in now.items()})

    def _merge(self, state, cfg, results, baselines, write_leaderboard) -> None:
        """One commit on the main branch: the sprint folder, its ledger row, the leaderboard."""
        repo, ledger = self.repo, "reports/ledger.jsonl"
        recorded = any(r.get("id") == state.id for r in parse_ledger(gitops.head_text(repo, ledger)))
        if recorded and gitops.in_head(repo, f"{state.sprint_path}/DONE"):
            return  # merged before a crash: never record twice
        ours = [state.sprint_path, *REPORT_FILES]
        gitops.restore(repo, ours)  # drop a half-done merge (only files autosae writes)
        self.check_tree()
        gitops.checkout_from(repo, state.branch, state.sprint_path)
        rows = parse_ledger(gitops.head_text(repo, ledger))
        rows.append(ledger_row(state, results))
        self.project.reports_dir.mkdir(exist_ok=True)
        self.project.ledger_path.write_text("".join(dump_row(r) for r in rows))
        write_leaderboard(
            self.project.reports_dir,
            in_setting(rows, state.setting),
            {n: {m: res["summary"].get(m) for m in ("f1", "mcc")} for n, res in baselines.items()},
            state.objective,
        )
        crash_point("merging")
        gitops.commit_paths(repo, f"sprint {state.id}: {state.verdict['verdict']}: {state.title}", ours)
        crash_point("merged")

    def abandon(self, state: SprintState) -> None:
        with self.lock:
            gitops.remove_worktree(self.repo, self.project.worktrees_dir / state.id)
        state.phase = "abandoned"
        state.finished = iso()
        self.store.save(state)


PROPOSING = "_proposing"


def refuse_links(folder: Path) -> list[str]:
    """Remove every symlink and non-regular file from a sprint folder (a link to ~/.netrc or
    to the held-out seeds must never be read, copied or committed); returns what was removed."""
    removed = []
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            removed.append(path.relative_to(folder).as_posix())
            path.unlink(missing_ok=True)
    return sorted(removed)


def counted_time_limit(cfg: TaskConfig, profile) -> float:
    """Each seed's time limit in a counted run: the profile's, or less when TASK.md's
    budgets.hours_per_sprint, shared by the seeds, leaves less."""
    if cfg.budgets.hours_per_sprint:
        return min(profile.time_limit_s, cfg.budgets.hours_per_sprint * 3600 / len(cfg.seed_list()))
    return profile.time_limit_s


def is_exploration(sprint_number: int, share: float) -> bool:
    """Whether sprint `sprint_number` (0-based) explores: every 1/share-th sprint does."""
    if share <= 0:
        return False
    return math.floor((sprint_number + 1) * share + 1e-9) > math.floor(sprint_number * share + 1e-9)


def budget_left(cfg: TaskConfig, rows: list[dict], spent: float, usd_cap: float | None) -> float | None:
    """What the agent may still spend now: the least of what is left of the sprint's cap, the
    project's cap (TASK.md budgets) and the caller's (the loop's --budget-usd)."""
    left = []
    if cfg.budgets.usd_per_sprint is not None:
        left.append(cfg.budgets.usd_per_sprint - spent)
    if cfg.budgets.usd_total is not None:
        left.append(cfg.budgets.usd_total - sum(r.get("cost_usd") or 0.0 for r in rows) - spent)
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


def report_info(state: SprintState) -> dict:
    return {
        k: getattr(state, k)
        for k in (
            "id",
            "title",
            "idea",
            "hypothesis",
            "plan",
            "parent",
            "backend",
            "profile",
            "objective",
            "seeds",
            "started",
            "finished",
            "cost_usd",
            "tokens",
            "branch",
            "config",
            "sandboxed",
            "origin",
            "sources",
        )
    }


def ledger_row(state: SprintState, results: dict | None) -> dict:
    v = state.verdict or {}
    summary = (results or {}).get("summary") or {}
    ok = [r for r in (results or {}).get("per_seed", []) if r.get("status") == "ok"]
    return {
        "id": state.id,
        "title": state.title,
        "idea": state.idea,
        "parent": state.parent,
        "verdict": v.get("verdict", "failed"),
        "reason": v.get("reason"),
        "noop": v.get("noop", False),
        "new_best": v.get("new_best", False),
        "confirmed": v.get("confirmed"),
        "objective": state.objective,
        "f1": summary.get("f1"),
        "mcc": summary.get("mcc"),
        "l0": (summary.get("l0") or {}).get("mean"),
        "precision": summary.get("precision"),
        "recall": summary.get("recall"),
        "dead_latents": summary.get("dead_latents"),
        "per_seed": {m: [r[m] for r in ok if m in r] for m in ("f1", "mcc")},
        "delta_parent": v.get("delta_parent"),
        "p_value": v.get("p_value"),
        "noise_floor": v.get("noise_floor"),
        "noise_floor_note": v.get("noise_floor_note"),
        "backend": state.backend,
        "cost_usd": round(state.cost_usd, 4),
        "tokens": state.tokens,
        "stop": state.stop,
        "wall_s": (results or {}).get("wall_s"),
        "started": state.started,
        "finished": state.finished,
        "branch": state.branch,
        "commit": state.commit,
        "profile": state.profile,
        "setting": state.setting,
        "seeds": state.seeds,
        "config": state.config,
        "variant_sha256": (results or {}).get("variant_sha256"),
        "user_idea": state.user_idea,
        "explore": state.explore,
        "sandboxed": state.sandboxed,
    }


def _baselines_cached(profile, cfg: TaskConfig) -> bool:
    from autosae.harness.baselines import BASELINES, baseline_dir

    root = baseline_dir(profile, cfg.seed_list())
    return all((root / name / "results.json").is_file() for name in BASELINES)
