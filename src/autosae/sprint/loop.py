"""The Ralph loop: sprint after sprint, in one lane or several at once, until a limit, a STOP
file, Ctrl-C, or too many failures in a row. Interrupted sprints are resumed first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from autosae.config import load_task
from autosae.errors import AutosaeError
from autosae.sprint import gitops, ideas, ladder, verification
from autosae.sprint.engine import Engine
from autosae.sprint.ideation import BudgetExhausted, SprintNotStarted, SprintRequest, task_settings
from autosae.sprint.ledger import best_row, read_ledger
from autosae.sprint.project import Project, ProjectLock
from autosae.sprint.state import StateStore
from autosae.transfer.core import transfer_due


class TooManyFailures(AutosaeError):
    exit_code = 3


@dataclass
class LoopLimits:
    max_sprints: int | None = None
    until: datetime | None = None
    budget_usd: float | None = None
    """Spending cap for this loop (TASK.md's budgets.usd_total caps the whole project)."""


@dataclass
class Tally:
    """What a loop's sprints came to so far: the stop rules and the outcome read it."""

    finished: int = 0
    failures: int = 0
    """Failed sprints (or sprints that could not start) in a row."""
    spent: float = 0.0
    last: str = ""
    """Why the last of those failures failed."""
    capped: str | None = None
    """A spending cap reached by a sprint, or while proposing."""

    def add(self, state) -> None:
        self.capped = self.capped or state.stop
        self.finished += 1
        self.spent += state.cost_usd
        failed = (state.verdict or {}).get("verdict") == "failed"
        self.failures = self.failures + 1 if failed else 0
        self.last = f"the last, {state.id}: {state.verdict['reason']}" if failed else ""

    def not_started(self, exc: Exception) -> None:
        self.failures, self.last = self.failures + 1, f"the last attempt: {exc}"


@dataclass
class LoopOutcome:
    sprints: int
    reason: str
    spent_usd: float


def parse_until(text: str, now: datetime | None = None) -> datetime:
    """`07:30` (the next such local time) or an ISO date-time such as 2026-11-25T07:30."""
    now = now or datetime.now()
    try:
        if len(text) <= 5 and ":" in text:
            hour, minute = (int(x) for x in text.split(":"))
            at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            return at if at > now else at + timedelta(days=1)
        at = datetime.fromisoformat(text)
        return at.astimezone().replace(tzinfo=None) if at.tzinfo else at
    except ValueError:
        raise AutosaeError(f"--until {text!r}: expected HH:MM or an ISO date-time like 2026-11-25T07:30") from None


def run_loop(
    project: Project,
    limits: LoopLimits,
    request: SprintRequest,
    status: Callable[[str], None] = print,
    detail: Callable[[str], None] | None = None,
    parallel: int = 1,
    pool=None,
) -> LoopOutcome:
    """Run sprints until a stop, in `parallel` lanes (see Lanes); the Slack webhook, when
    set, hears why it stopped. With `parallel` > 1 the lanes share `pool`'s device slots
    (default: TASK.md's gpus, else the one device)."""
    progress = {"started": False, "sprints": 0}
    try:
        outcome = Lanes(project, limits, request, status, detail, progress, parallel, pool).run()
    except (KeyboardInterrupt, AutosaeError) as exc:
        if progress["started"]:  # not when another loop holds the project
            why = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else str(exc)
            _notify_stop(project, progress["sprints"], why, status)
        raise
    _notify_stop(project, outcome.sprints, outcome.reason, status)
    return outcome


def _notify_stop(project: Project, sprints: int, reason: str, status: Callable[[str], None]) -> None:
    from autosae import notify

    try:
        cfg = load_task(project.task_path).config
    except AutosaeError:
        cfg = None  # a broken TASK.md: the environment variable may still name a webhook
    rows = read_ledger(project.ledger_path)
    best = best_row(rows, rows[-1].get("setting")) if rows else None
    notify.post(
        notify.webhook_url(cfg),
        notify.loop_notice(project.root.name, sprints, reason, best),
        lambda line: status(f"{time.strftime('%H:%M:%S')} loop | {line}"),
    )


def _notify_rung(project: Project, cfg, text: str, status: Callable[[str], None]) -> None:
    from autosae import notify

    notify.post(
        notify.webhook_url(cfg),
        notify.ladder_notice(project.root.name, text),
        lambda line: status(f"{time.strftime('%H:%M:%S')} loop | {line}"),
    )


def request_stop(project: Project, by: str) -> str | None:
    """Ask the running loop to stop after its current sprint (a STOP file it reads before
    each sprint); the loop's command and pid, or None when no loop runs."""
    holder = ProjectLock(project, "stop").live_holder()
    if holder is None:
        return None
    project.stop_path.parent.mkdir(parents=True, exist_ok=True)
    project.stop_path.write_text(f"requested {datetime.now().isoformat(timespec='seconds')} by {by}\n")
    return f"{holder['command']} (pid {holder['pid']})"


LOOP_END = "loop-end.json"
"""In .autosae/: when the last loop ended and why, for the morning digest."""


def record_end(project: Project, sprints: int, reason: str) -> None:
    """Why the loop ended, kept for the digest (best effort: a full disk never hides the loop's
    own error)."""
    from autosae.jsonio import write_json
    from autosae.sprint.state import iso

    try:
        project.private.mkdir(parents=True, exist_ok=True)
        write_json(project.private / LOOP_END, {"at": iso(), "sprints": sprints, "reason": str(reason)[:500]})
    except OSError:
        pass


def stop_reason(project: Project, limits: LoopLimits, cfg, count: int, spent: float, failures: int) -> str | None:
    if project.stop_path.exists():
        return "`autosae stop` was requested"
    if failures >= cfg.loop.max_consecutive_failures:
        return (
            f"{failures} sprints in a row failed (loop.max_consecutive_failures is {cfg.loop.max_consecutive_failures})"
        )
    if limits.max_sprints is not None and count >= limits.max_sprints:
        return f"--max-sprints {limits.max_sprints} reached"
    if limits.until is not None and datetime.now() >= limits.until:
        return f"--until {limits.until:%Y-%m-%d %H:%M} reached"
    if limits.budget_usd is not None and spent >= limits.budget_usd:
        return f"--budget-usd {limits.budget_usd:g} spent (${spent:.2f})"
    rows = read_ledger(project.ledger_path)
    if cfg.budgets.usd_total is not None:
        total = sum(r.get("cost_usd") or 0.0 for r in rows) + ladder.review_cost(project)
        if total >= cfg.budgets.usd_total:
            return (
                f"TASK.md budgets.usd_total {cfg.budgets.usd_total:g} spent "
                f"(${total:.2f} over all sprints and the stuck ladder's reviews)"
            )
    if cfg.budgets.hours_total is not None:
        hours = sum(r.get("wall_s") or 0.0 for r in rows) / 3600
        if hours >= cfg.budgets.hours_total:
            return f"TASK.md budgets.hours_total {cfg.budgets.hours_total:g} used ({hours:.2f} h of training)"
    return None


class Lanes:
    """`autosae loop`: sprints in N lanes (N = --parallel, 1 without it), each lane with its
    own engine, and each sprint with its own branch and worktree. Lanes share one lock
    (ideation, scoring against the ledger and the record on the main branch happen one sprint
    at a time) and, with more than one lane, one SlotPool (training takes turns fairly on the
    device slots); agents write and the harness trains concurrently.

    Unfinished sprints are resumed first. --max-sprints counts the sprints this loop starts,
    resumed ones included, as they start (so N lanes never overshoot it); an attempt that
    starts no sprint (SprintNotStarted: a failed or repeated proposal) is not one, though it
    counts as a failure in a row. A lane's error stops the others from starting new sprints,
    lets running ones finish, and is raised when all are done. One lane runs in the calling
    thread, so that Ctrl-C reaches the sprint's harness run directly."""

    def __init__(
        self,
        project: Project,
        limits: LoopLimits,
        request: SprintRequest,
        status,
        detail,
        progress: dict,
        parallel: int,
        pool,
    ):
        self.project, self.limits, self.request = project, limits, request
        self.status, self.detail, self.progress, self.parallel = status, detail, progress, parallel
        self.pool = pool
        self.lock = threading.RLock()
        self.tally = Tally()
        self.count = 0
        """Sprints started (resumed ones included): what --max-sprints counts."""
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.resume: list = []
        self.cfg = None
        """TASK.md's settings as the last stop check read them."""
        self.restarted = False
        """Whether this loop has looked at a ladder left at its stop by an earlier loop."""

    def run(self) -> LoopOutcome:
        with ProjectLock(self.project, "autosae loop", log=self.status):
            self.progress["started"] = True
            self.project.stop_path.unlink(missing_ok=True)  # a STOP left by a loop that was killed
            ideas.requeue_running(self.project, gitops.open_repo(self.project.root))  # left by a killed loop
            if self.parallel > 1:
                self.share_slots()
            self.resume = StateStore(self.project.state_dir).unfinished()
            try:
                if self.parallel == 1:
                    self.lane(0)
                else:
                    from autosae.harness.slots import wait_all

                    wait_all(
                        [
                            threading.Thread(target=self.lane, args=(i,), name=f"lane-{i}", daemon=True)
                            for i in range(self.parallel)
                        ]
                    )
            except BaseException:  # Ctrl-C: no new sprint, every slot process stopped now
                with self.lock:
                    self.reason = self.reason or "interrupted"
                if self.parallel > 1:
                    self.pool.close()
                record_end(self.project, self.tally.finished, self.reason)
                raise
            self.project.stop_path.unlink(missing_ok=True)
            t = self.tally
            record_end(self.project, t.finished, self.reason or "all lanes stopped")
            if self.error is not None:
                raise self.error
            if self.cfg is not None and t.failures >= self.cfg.loop.max_consecutive_failures and not t.capped:
                raise TooManyFailures(f"loop stopped after {t.finished} sprints: {self.reason}; {t.last}")
            return LoopOutcome(t.finished, self.reason or "all lanes stopped", t.spent)

    def share_slots(self) -> None:
        """The device slots the lanes share: --gpus, else TASK.md's gpus, else the one device."""
        from autosae.harness.slots import SlotPool, pool_for_gpus

        if self.pool is None:
            from autosae.harness.devices import resolve_device

            cfg = load_task(self.project.task_path).config
            self.pool = pool_for_gpus(cfg.gpus) or SlotPool([resolve_device(cfg.device)])
        self.say(
            f"{self.parallel} sprints at once on {len(self.pool.devices)} device slot"
            f"{'' if len(self.pool.devices) == 1 else 's'} ({', '.join(self.pool.devices)})"
        )

    def say(self, text: str, lane: int | None = None) -> None:
        where = f"lane {lane}: " if lane is not None and self.parallel > 1 else ""
        self.status(f"{time.strftime('%H:%M:%S')} loop | {where}{text}")

    def lane(self, number: int) -> None:
        engine = Engine(self.project, status=self.status, detail=self.detail, pool=self.pool, lock=self.lock)
        try:
            while True:
                with self.lock:
                    state = self.next_resume(number)
                    if state is None:
                        cap = self.take_start()
                        if self.reason or self.error is not None:
                            return
                        rung = self.climb(engine)
                        if self.reason:
                            self.count -= 1
                            return
                        if cap is not None:  # a review on the ladder spent part of --budget-usd
                            cap = max(0.0, self.limits.budget_usd - self.tally.spent)
                if state is None:
                    verification.run_queued(engine)  # asked for from Slack: before the next sprint
                    try:
                        state = engine.start(replace(self.request, usd_cap=cap, rung=rung))
                    except BudgetExhausted as exc:
                        with self.lock:
                            self.tally.capped, self.count = str(exc), self.count - 1
                        continue
                    except SprintNotStarted as exc:
                        with self.lock:
                            self.say(f"no sprint started: {exc}", number)
                            self.count -= 1
                            self.tally.not_started(exc)
                        continue
                self.after(engine.run(state))
                transfer_due(engine)  # TASK.md transfer.auto: a new best checked on a language model
        except BaseException as exc:  # an error in one lane: the others finish their sprints and stop
            with self.lock:
                if self.error is None:
                    self.error = exc
                    self.reason = str(exc)

    def climb(self, engine) -> str | None:
        """The stuck ladder before a new sprint (under the lock): take the next rung when it is
        due (or finish one a killed loop left pending), say so here and in Slack, and return
        the rung the next sprint runs at (None: not stuck). The stop rung sets self.reason."""
        cfg = self.cfg
        rows = read_ledger(self.project.ledger_path)
        if not self.restarted:
            self.restarted = True
            reset = ladder.restart(self.project, cfg, rows)
            if reset is not None:
                self.say(f"stuck ladder: back at the bottom ({reset['reason']})")
        state, pending, new = ladder.climb(self.project, cfg, rows)
        for e in new:
            text = (
                f"stuck ladder: back at the bottom ({e['reason']})"
                if e["rung"] == "reset"
                else f"stuck: rung {e['rung']}, {ladder.RUNG_TEXT.get(e['rung'], '')}: {e['reason']}"
            )
            self.say(text)
            _notify_rung(self.project, cfg, text, self.status)
        if pending:
            outcome, cost = self.take_rung(engine, cfg, pending, rows, state)
            self.tally.spent += cost  # the loop's --budget-usd; usd_total reads it from the ladder
            ladder.complete(self.project, state, outcome, cost)
            self.say(f"stuck ladder: {pending}: {outcome}")
        rung = ladder.current(state, list(cfg.stuck.rungs))
        if rung == "stop" and not self.reason:
            taken = next((e for e in reversed(state["events"]) if e.get("rung") == "stop"), {})
            self.reason = f"stuck: the ladder reached its stop ({taken.get('reason', 'no confirmed gain')})"
        return rung

    def take_rung(self, engine, cfg, rung: str, rows: list[dict], state: dict) -> tuple[str, float]:
        """A rung's action: (its outcome in one line, what it cost the agent)."""
        if rung == "review":
            taken = next((e for e in reversed(state["events"]) if e.get("rung") == "review"), {})
            cap = None if self.limits.budget_usd is None else max(0.0, self.limits.budget_usd - self.tally.spent)
            try:
                return ladder.run_review(
                    engine,
                    task_settings(cfg, self.request),  # the sprints' --model, --max-turns, --profile
                    load_task(self.project.task_path).body,
                    rows,
                    taken.get("reason", ""),
                    cap,
                    self.request.backend,
                    str(taken.get("at", "")),
                )
            except AutosaeError as exc:
                return f"the review failed: {exc}", 0.0
        if rung == "stop":
            return "the loop stops", 0.0
        if rung == "explore":
            return "the sprints at this rung explore from a parent off the best's line", 0.0
        return "the sprints at this rung recalibrate against the literature", 0.0

    def next_resume(self, number: int):
        """An unfinished sprint for this lane to resume (counted as started), if any is left
        and the loop goes on."""
        if self.error is not None or self.reason or not self.resume:
            return None
        state = self.resume.pop(0)
        self.count += 1
        self.say(f"resuming {state.id} from phase {state.phase}", number)
        return state

    def take_start(self) -> float | None:
        """Whether a new sprint may start (else self.reason says why not): counted as started
        now, and what is left of --budget-usd for it."""
        if self.error is not None or self.reason:
            return None
        self.cfg = load_task(self.project.task_path).config  # re-read: limits in TASK.md steer too
        t = self.tally
        self.reason = t.capped or stop_reason(self.project, self.limits, self.cfg, self.count, t.spent, t.failures)
        if self.reason:
            return None
        self.count += 1
        return None if self.limits.budget_usd is None else max(0.0, self.limits.budget_usd - t.spent)

    def after(self, state) -> None:
        with self.lock:
            self.tally.add(state)
            self.progress["sprints"] = self.tally.finished
