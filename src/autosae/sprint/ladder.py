"""The stuck ladder: when TASK.md's `stuck.after` sprints in a row bring no confirmed gain,
the loop climbs one rung; each further `after` dry sprints, one more. The rungs (TASK.md's
`stuck.rungs`, bottom first):

- review: one step-back agent call that reads the notebook and the ledger and names untested
  axes, blind spots and the strongest argument against the current line, written into the
  notebook (its open questions and next candidates);
- explore: the sprints at this rung are exploration sprints, from a parent off the best's line;
- literature: the sprints at this rung recalibrate against published methods (the LLM
  backends get their web search forced on for proposing, and a prompt line asks for it);
- stop: the loop stops, with the reason.

A confirmed gain (`confirmed_gain`) puts the ladder back at the bottom. The position lives in
.autosae/ladder.json (outside the agent's reach, written atomically) with its events
[{at, rung, reason, sprint_count, outcome}]; a rung is recorded as taken (outcome "pending")
before its action runs and completed after, so a loop killed mid-rung finishes that rung when
it restarts: no rung is repeated or skipped. The loop climbs under the engine's lock.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from autosae.agents.prompts import REVIEW_ITEMS
from autosae.jsonio import read_json, write_json
from autosae.sprint.state import iso

RUNG_TEXT = {
    "review": "a step-back review, written into the notebook",
    "explore": "exploration sprints from a parent off the best's line",
    "literature": "a literature recalibration of the proposals",
    "stop": "a stop",
}
MAX_EVENTS = 200
ITEM_CHARS = 550
"""The longest review item kept: a notebook line (sprint.notebook.TEXT_CHARS, 600) less its
"Step-back review, ...: " prefix, so that nothing is cut twice."""


def ladder_path(project) -> Path:
    return project.private / "ladder.json"


def load(project) -> dict:
    """The recorded position: {rung: rungs taken (0: at the bottom), gain: the last confirmed
    gain's id when the position was set, pending: a rung taken whose action did not finish,
    events}. A missing or broken record is the bottom."""
    try:
        data = read_json(ladder_path(project))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        data = {}
    events = data.get("events") if isinstance(data.get("events"), list) else []
    rung = data.get("rung") if isinstance(data.get("rung"), int) and data.get("rung") >= 0 else 0
    base = data.get("base") if isinstance(data.get("base"), int) and data.get("base") >= 0 else 0
    spent = _num(data.get("review_usd"))
    return {
        "rung": rung,
        "gain": data.get("gain"),
        "pending": data.get("pending"),
        "base": base,
        "events": events,
        "review_usd": spent if spent is not None and spent > 0 else 0.0,
    }


def save(project, state: dict) -> None:
    state["events"] = state["events"][-MAX_EVENTS:]
    project.private.mkdir(parents=True, exist_ok=True)
    write_json(ladder_path(project), state, durable=True)


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def confirmed_gain(row: dict, heldout_on: bool) -> bool:
    """A new best that counts against being stuck: confirmed on the held-out models (where
    held-out checks are on) and with a gain over its parent of at least its recorded noise floor
    (the smallest difference the seeds could detect; no floor recorded: any gain)."""
    from autosae.report.evidence import held_out_status

    if not row.get("new_best"):
        return False
    if heldout_on and held_out_status(row) != "confirmed":
        return False
    delta, floor = _num(row.get("delta_parent")), _num(row.get("noise_floor"))
    return not (delta is not None and floor is not None and delta < floor)


def dry_run(rows: list[dict], cfg, base: int = 0) -> tuple[int, str | None]:
    """(sprints in the latest setting since the last confirmed gain and since the ledger's
    `base`-th row (where a loop restarted after a stop), that gain's id or None)."""
    if not rows:
        return 0, None
    setting = rows[-1].get("setting")
    heldout_on = cfg.heldout.auto and cfg.heldout.models > 0
    count, gain = 0, None
    for row in rows:
        if row.get("setting") != setting:
            continue
        if confirmed_gain(row, heldout_on):
            count, gain = 0, row.get("id")
        else:
            count += 1
    return min(count, max(0, len(rows) - base)), gain


def current(state: dict, rungs: list[str]) -> str | None:
    """The rung the ladder stands on (None: at the bottom)."""
    n = state["rung"]
    return rungs[n - 1] if 0 < n <= len(rungs) else None


def climb(project, cfg, rows: list[dict]) -> tuple[dict, str | None, list[dict]]:
    """Where the ladder stands before the next sprint: (the state, the rung to take now or to
    finish (a pending one), the new events). Saved when it moved."""
    state = load(project)
    after, rungs = cfg.stuck.after, list(cfg.stuck.rungs)
    if after <= 0 or not rungs:
        return state, None, []
    dry, gain = dry_run(rows, cfg, state["base"])
    new: list[dict] = []
    if state["rung"] and (gain != state["gain"] or dry < after):
        new.append(event("reset", f"confirmed gain {gain}" if gain else "fewer dry sprints", len(rows), "reset"))
        state.update(rung=0, pending=None)
    state["gain"] = gain
    if state["pending"] and current(state, rungs) == state["pending"]:
        state["events"] += new
        if new:
            save(project, state)
        return state, state["pending"], new
    level = state["rung"]
    if level < len(rungs) and dry >= after * (level + 1):
        rung = rungs[level]
        reason = f"{dry} sprints without a confirmed gain (stuck.after is {after})"
        new.append(event(rung, reason, len(rows), "pending"))
        state.update(rung=level + 1, pending=rung)
    if new:
        state["events"] += new
        save(project, state)
    return state, state["pending"], new


def event(rung: str, reason: str, sprint_count: int, outcome: str) -> dict:
    return {"at": iso(), "rung": rung, "reason": reason, "sprint_count": sprint_count, "outcome": outcome}


def complete(project, state: dict, outcome: str, cost_usd: float = 0.0) -> None:
    """The pending rung's action finished with `outcome`, having cost the agent `cost_usd`."""
    for e in reversed(state["events"]):
        if e.get("rung") == state["pending"] and e.get("outcome") == "pending":
            e["outcome"] = outcome
            if cost_usd:
                e["cost_usd"] = round(cost_usd, 6)
            break
    if cost_usd > 0:  # a running total: old events are trimmed (MAX_EVENTS), the money is not
        state["review_usd"] = state.get("review_usd", 0.0) + cost_usd
    state["pending"] = None
    save(project, state)


def status_line(project, cfg, rows: list[dict]) -> str:
    """`autosae status`'s stuck line."""
    after, rungs = cfg.stuck.after, list(cfg.stuck.rungs)
    if after <= 0 or not rungs:
        return "ladder off (stuck.after is 0)"
    state = load(project)
    dry, _ = dry_run(rows, cfg, state["base"])
    rung = current(state, rungs)
    if rung is None:
        return f"no ({dry} sprint{'s' if dry != 1 else ''} since the last confirmed gain, ladder at after: {after})"
    taken = next((e for e in reversed(state["events"]) if e.get("rung") == rung), {})
    since = taken.get("sprint_count")
    where = f" since sprint {since}" if isinstance(since, int) else ""
    pending = " (unfinished: the loop finishes it when it restarts)" if state["pending"] else ""
    return f"rung {state['rung']}/{len(rungs)} {rung}{where}, {taken.get('reason', '')}; {taken.get('outcome', '')}{pending}"


def restart(project, cfg, rows: list[dict]) -> dict | None:
    """A new loop after the ladder's stop: back at the bottom, the dry sprints counted afresh
    from here (the researcher restarted it, having read why it stopped). The event, or None."""
    state = load(project)
    if state["pending"] or current(state, list(cfg.stuck.rungs)) != "stop":
        return None
    new = event("reset", "a new loop after the ladder's stop", len(rows), "reset")
    state.update(rung=0, base=len(rows), events=[*state["events"], new])
    save(project, state)
    return new


def review_cost(project) -> float:
    """What the ladder's reviews cost the agent, all of them: charged with the sprints to
    TASK.md's budgets.usd_total (they are outside any sprint, so no ledger row holds them); a
    running total in ladder.json, which outlives the events it trims."""
    return load(project)["review_usd"]


def events_since(project, start_iso: str | None) -> list[dict]:
    """The ladder's events at or after `start_iso` (all: None), for the digest."""
    return [
        e
        for e in load(project)["events"]
        if isinstance(e, dict) and (start_iso is None or str(e.get("at")) >= start_iso)
    ]


# -- the review ------------------------------------------------------------------------------


def clean_review(raw: object) -> dict:
    """An agent's review as {untested_axes: [str], blind_spots: [str], argument_against: str}."""
    from autosae.report.escape import one_line

    raw = raw if isinstance(raw, dict) else {"argument_against": raw if isinstance(raw, str) else ""}

    def items(value) -> list[str]:
        value = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        return [one_line(v, ITEM_CHARS) for v in value if isinstance(v, str) and v.strip()][:REVIEW_ITEMS]

    against = raw.get("argument_against")
    return {
        "untested_axes": items(raw.get("untested_axes")),
        "blind_spots": items(raw.get("blind_spots")),
        "argument_against": one_line(against, ITEM_CHARS) if isinstance(against, str) else "",
    }


def review_entries(review: dict) -> list[dict]:
    """The review as notebook entries: untested axes as next candidates, the blind spots and the
    argument against the current line as open questions."""
    entries = [
        {"section": "candidates", "text": f"Step-back review, untested axis: {a}"} for a in review["untested_axes"]
    ]
    entries += [{"section": "questions", "text": f"Step-back review, blind spot: {b}"} for b in review["blind_spots"]]
    if review["argument_against"]:
        entries.append(
            {
                "section": "questions",
                "text": f"Step-back review, against the current line: {review['argument_against']}",
            }
        )
    return entries  # at most REVIEW_ITEMS axes, REVIEW_ITEMS blind spots and the argument


def run_review(
    engine,
    cfg,
    body: str,
    rows: list[dict],
    reason: str = "",
    usd_cap: float | None = None,
    backend: str | None = None,
    taken_at: str = "",
):
    """Rung `review`: one agent call (Agent.review) on the notebook and the ledger; its answer
    written into the notebook and committed. Returns (the outcome in one line, what the call
    cost). `cfg` and `backend` are the sprints' own (TASK.md with the loop's --backend,
    --model, --max-turns, --profile). Its transcript is kept in .autosae/agent/_review-<when
    the rung was taken>/, one folder per review, so a loop killed during the call continues
    that conversation and no later review reuses it; it may spend what TASK.md's caps
    (usd_per_sprint, usd_total) and the loop's --budget-usd leave."""
    from autosae.agents import AgentError
    from autosae.errors import AutosaeError
    from autosae.harness.devices import resolve_device
    from autosae.sprint import notebook
    from autosae.sprint.common import setting_of

    backend = backend or cfg.agent.backend or _default_backend()
    agent = engine.agent(cfg, backend)
    review = getattr(agent, "review", None)
    if review is None:
        return f"the {backend} agent has no step-back review; nothing written", 0.0
    profile = engine.secret_eval(cfg.build_profile())
    baselines = engine.baselines(cfg, profile, resolve_device(cfg.device))
    ctx = engine.context(cfg, body, profile, setting_of(profile), rows, baselines, usd_cap=usd_cap)
    stamp = "".join(c for c in taken_at if c.isalnum() or c == "-") or f"after-{len(rows)}"
    record = engine.agent_dir(f"_review-{stamp}")
    record.mkdir(parents=True, exist_ok=True)
    ctx = dataclasses.replace(ctx, record_dir=record, ladder="review")
    before = agent.cost_usd
    try:
        answer = clean_review(review(ctx, reason))
    except AgentError as exc:
        return f"the review failed: {exc}", agent.cost_usd - before
    cost = agent.cost_usd - before
    entries = review_entries(answer)
    label = f"review after sprint {len(rows)}"
    spent = f", ${cost:.2f}" if cost else ""
    try:
        commit, problems = notebook.append(
            engine.project.root, engine.repo, entries, label, "step-back review", engine.lock
        )
    except AutosaeError as exc:  # git failed: the call was paid for all the same
        return f"review by {backend}: the notebook could not be written ({exc}){spent}", cost
    if commit is None:
        return f"review by {backend}: nothing written ({'; '.join(problems) or 'no entries'}){spent}", cost
    return f"review by {backend}: {len(entries)} notebook entries (commit {commit[:8]}){spent}", cost


def _default_backend() -> str:
    from autosae.agents import default_backend

    return default_backend()
