"""A sprint's start: re-read TASK.md, check the tree and the sandbox, the baselines, then the
agent's idea, refused (and asked again) while it repeats a past or running sprint.

Nothing is recorded until an idea is accepted: a start that fails leaves no sprint behind."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from autosae.agents import AgentContext, AgentError, BudgetReached, Proposal, default_backend
from autosae.agents.literature import clean_sources
from autosae.config import MaxTurns, TaskConfig, load_task
from autosae.errors import AutosaeError
from autosae.parents import baseline_error
from autosae.sprint import ideas
from autosae.sprint.common import crash_point, setting_of
from autosae.sprint.ledger import best_row, find_duplicate, in_setting, one_line, read_ledger
from autosae.sprint.state import SprintState, iso, new_sprint_id

PROPOSE_ATTEMPTS = 3


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
    rung: str | None = None
    """The stuck ladder's rung this sprint runs at (autosae.sprint.ladder): `explore` makes it
    an exploration sprint, `literature` a recalibration against published methods."""


def is_exploration(sprint_number: int, share: float) -> bool:
    """Whether sprint `sprint_number` (0-based) explores: every 1/share-th sprint does."""
    if share <= 0:
        return False
    return math.floor((sprint_number + 1) * share + 1e-9) > math.floor(sprint_number * share + 1e-9)


def task_settings(cfg: TaskConfig, req: SprintRequest) -> TaskConfig:
    """TASK.md's settings with the command line's overrides for this sprint (--profile,
    --model, --max-turns)."""
    if req.profile:
        cfg = cfg.model_copy(update={"profile": req.profile})
    agent_update = {}
    if req.model:
        agent_update["model"] = req.model
    if req.max_turns:
        agent_update["max_turns"] = MaxTurns.model_validate(req.max_turns)
    if agent_update:
        cfg = cfg.model_copy(update={"agent": cfg.agent.model_copy(update=agent_update)})
    return cfg


def start(engine, req: SprintRequest) -> SprintState:
    """Ideation, under the engine's lock: the new sprint's state, saved in phase `proposed`."""
    from autosae.harness.devices import resolve_device

    task = load_task(engine.project.task_path)  # re-read: the user steers by editing it
    cfg = task_settings(task.config, req)
    profile = engine.secret_eval(cfg.build_profile())
    device = resolve_device(cfg.device)
    base_branch = engine.check_tree()
    backend = req.backend or cfg.agent.backend or default_backend()
    sandboxed = engine.check_sandbox(cfg, backend)
    agent = engine.agent(cfg, backend)
    setting = setting_of(profile)
    queued = ideas.next_idea(engine.project, engine.repo) if req.idea is None else None
    if queued is not None:  # the researcher's queued ideas run before the agent's own
        req = dataclasses.replace(req, idea=queued.text)
        engine.say("ideas", "taking", f"#{queued.n} {one_line(queued.text)} (added by {queued.added_by})")
    engine.say(
        "baselines",
        "training" if not baselines_cached(profile, cfg) else "cached",
        f"{profile.name}, {len(cfg.seed_list())} seeds",
    )
    baselines = engine.baselines(cfg, profile, device)
    recorded = read_ledger(engine.project.ledger_path)
    rows = recorded + in_flight(engine)
    ctx = engine.context(cfg, task.body, profile, setting, rows, baselines, usd_cap=req.usd_cap)
    ctx.explore = req.idea is None and (req.rung == "explore" or is_exploration(len(rows), cfg.diversity.explore_share))
    if req.idea is None and req.rung in ("explore", "literature"):
        ctx.ladder = req.rung
    if ctx.ladder == "literature" and (ctx.literature is None or "propose" not in ctx.literature["phases"]):
        from autosae.settings import LiteratureSettings

        ctx.literature = LiteratureSettings(phases=["propose"]).resolved()  # the rung forces it on
    shutil.rmtree(ctx.record_dir, ignore_errors=True)
    try:
        proposal = propose(engine, agent, ctx, req, in_setting(rows, setting))
    except SprintNotStarted as exc:
        if queued is not None:  # not taken again and again: it says why in `autosae idea list`
            ideas.settle(engine.project, engine.repo, queued.n, "not started", reason=str(exc))
        raise
    parent = proposal.parent
    known = {r["id"] for r in recorded}
    if ctx.ladder == "explore" and parent in known and parent not in line_of(recorded, setting):
        pass  # the ladder's exploration may start from an older sprint off the best's line
    elif ctx.explore and not (parent or "").startswith("baseline:"):
        parent = "baseline:matryoshka"  # far from the best: from the baseline
    elif not (parent in known or (parent or "").startswith("baseline:")):
        best = best_row(recorded, setting)
        parent = best["id"] if best else "baseline:matryoshka"
    taken = {r["id"] for r in rows} | {s.id for s in engine.store.all()}
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
        queued_idea=queued.n if queued is not None else None,
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
        ctx.record_dir.rename(engine.agent_dir(sid))
    engine.store.save(state)
    if queued is not None:
        ideas.settle(engine.project, engine.repo, queued.n, "taken", sprint=sid)
    engine.say(
        state,
        "proposed",
        f"{proposal.title} (parent {parent}, agent {backend}" + (", exploration sprint)" if ctx.explore else ")"),
    )
    crash_point("proposed")
    return state


def line_of(rows: list[dict], setting: str) -> set[str]:
    """The current best's line: the best and its ancestors among the recorded sprints."""
    by_id = {r.get("id"): r for r in rows}
    best = best_row(rows, setting)
    line, at = set(), best["id"] if best else None
    while at in by_id and at not in line:
        line.add(at)
        at = by_id[at].get("parent")
    return line


def in_flight(engine) -> list[dict]:
    """Unfinished sprints as ledger-like rows: parallel sprints see each other's ideas (and
    are refused as repeats of them), their findings so far (the latest pilot notes, else the
    latest quick run) and take distinct sprint numbers."""
    from autosae.report.evidence import pilot_summary, quick_summary

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
            "pilot_notes": pilot_summary(s.amendments) or quick_summary(s.quick_runs) or None,  # findings so far
        }
        for s in engine.store.unfinished()
    ]


def propose(engine, agent, ctx: AgentContext, req: SprintRequest, rows: list[dict]) -> Proposal:
    """The agent's idea; one that repeats a row is refused, and the agent asked again with
    the refusal in its past (up to PROPOSE_ATTEMPTS times)."""
    from autosae.agents import PastSprint

    for attempt in range(PROPOSE_ATTEMPTS):
        try:
            proposal = agent.propose(ctx, idea=req.idea)
        except BudgetReached as exc:
            raise BudgetExhausted(f"no sprint started: {exc}") from None
        except AgentError as exc:
            raise SprintNotStarted(f"the {agent.name} agent could not propose an idea: {exc}") from None
        bad_parent = baseline_error(proposal.parent)
        dup = (
            None
            if bad_parent
            else find_duplicate(rows, proposal.idea or proposal.title, proposal.config, proposal.title)
        )
        if bad_parent is None and (dup is None or req.allow_duplicate):
            return proposal
        if bad_parent:  # never compared with another baseline in its place
            engine.say("ideation", "refused", f"{proposal.title!r}: {bad_parent}")
            refused = f"refused: {bad_parent}"
        else:
            row, how = dup
            record_refusal(engine, proposal, row["id"], how, agent.name)
            if req.idea is not None:
                raise SprintNotStarted(
                    f"this idea repeats sprint {row['id']} ({how}); pass --allow-duplicate to run it anyway"
                )
            refused = f"refused: repeats {row['id']} ({how})"
        ctx.past.append(
            PastSprint(
                id="(refused)",
                title=proposal.title,
                idea=proposal.idea,
                verdict=refused,
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
    if bad_parent:
        raise SprintNotStarted(f"the {agent.name} agent's proposals name no valid parent: {bad_parent}")
    raise SprintNotStarted(
        f"the {agent.name} agent proposed only repeats of past sprints "
        f"({PROPOSE_ATTEMPTS} attempts); steer it with new ideas in TASK.md"
    )


def record_refusal(engine, proposal: Proposal, repeats: str, how: str, backend: str) -> None:
    """A proposal refused as a repeat: appended to .autosae/refused.jsonl (`autosae status`
    counts them)."""
    project = engine.project
    project.private.mkdir(parents=True, exist_ok=True)
    with open(project.refused_path, "a") as f:
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
    engine.say("ideation", "refused", f"{proposal.title!r} repeats {repeats} ({how})")


def baselines_cached(profile, cfg: TaskConfig) -> bool:
    from autosae.harness.baselines import baseline_dir, baseline_names

    root = baseline_dir(profile, cfg.seed_list())
    return all((root / name / "results.json").is_file() for name in baseline_names(profile))
