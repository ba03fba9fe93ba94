"""What the Slack app says, as Slack mrkdwn. Text an agent wrote (titles, hypotheses, idea
texts, sources, reasons) goes through `escape`: Slack reads `<...>` as a mention, a broadcast
(<!channel>) or a link, and `&` starts an entity; escaped, they show as typed."""

from __future__ import annotations

from autosae.report.escape import mrkdwn
from autosae.report.escape import one_line as flat
from autosae.report.format import fmt_delta, fmt_p, fmt_pm
from autosae.sprint.ledger import one_line

MAX_TEXT = 3000
"""Slack shows about this much of a message before "show more"; longer agent text is cut."""


def escape(text: object, limit: int = MAX_TEXT) -> str:
    """Agent text as Slack mrkdwn that shows as typed (autosae.report.escape.mrkdwn)."""
    return mrkdwn(text, limit)


def headline(text: object, limit: int = 200) -> str:
    """A title on one line, escaped: a newline in an agent's title cannot start a new line."""
    return escape(flat(text, limit))


def unescape(text: str) -> str:
    """A user's message as typed: Slack sends `<`, `>` and `&` as entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def quote(text: object, limit: int = 600) -> str:
    return "\n".join("> " + line for line in escape(text, limit).splitlines() or [""])


def proposal(state, requester: str | None = None) -> str:
    """A sprint's first message: its title, idea, hypothesis, parent and sources."""
    head = f"*Sprint* `{escape(state.id)}`: *{headline(state.title, 200)}*"
    lines = [head]
    if state.queued_idea is not None:
        lines.append(
            f"Idea #{state.queued_idea} from the queue" + (f", asked for by <@{requester}>" if requester else "")
        )
    elif state.explore:
        lines.append("An exploration sprint: far from the best so far, from the Matryoshka baseline")
    lines.append(quote(state.idea))
    if state.hypothesis.strip():
        lines.append(f"*Hypothesis:* {escape(state.hypothesis, 800)}")
    lines.append(f"parent `{escape(state.parent)}` · agent {escape(state.backend)} · {escape(state.profile)}")
    if state.sources:
        links = [escape(s.get("url", ""), 300) for s in state.sources[:6]]
        lines.append("*Sources:* " + " · ".join(links))
    return "\n".join(lines)


def phase(state, name: str) -> str:
    """One phase as it starts, with what the sprint's state says of it."""
    what = {
        "implementing": "the agent writes README.md and variant.py",
        "training": f"{len(state.seeds)} seeds on {escape(state.profile)}",
        "scoring": "F1 and MCC on the held-back eval samples, the verdict against the parent",
        "verifying": "a new best is checked on the held-out models (TASK.md heldout.auto)",
        "reporting": "conclusions, report.md, report.pdf, the record on main",
    }.get(name, "")
    if name == "training" and state.failure:
        what = f"skipped: {escape(state.failure, 500)}"
    return f"_{name}_" + (f": {what}" if what else "")


def verdict(row: dict, state, requester: str | None = None) -> str:
    """The verdict: F1 and MCC (mean ± std over seeds) against the parent's, the difference,
    p and the reason."""
    v = state.verdict or {}
    name = row.get("verdict") or v.get("verdict") or "?"
    head = f"*Verdict: {escape(name)}*" + (" — new best ★" if row.get("new_best") else "")
    head += " (flagged no-op)" if row.get("noop") else ""
    parent = v.get("parent") or {}
    lines = [head]
    if row.get("f1") or row.get("mcc"):
        pid = escape(parent.get("id") or row.get("parent") or "parent")
        for metric in ("f1", "mcc"):
            mine, theirs = row.get(metric), parent.get(metric)
            lines.append(f"{metric.upper()} {fmt_pm(mine, 4)} vs `{pid}` {fmt_pm(theirs, 4)}")
        obj = (row.get("objective") or "f1").upper()
        lines.append(f"Δ{obj} {fmt_delta(row.get('delta_parent'), 4)}, p {fmt_p(row.get('p_value'))}")
    reason = row.get("reason") or v.get("reason")
    if reason:
        lines.append(f"why: {escape(reason, 800)}")
    if row.get("confirmed") is not None:
        from autosae.report.evidence import held_out_status

        status = held_out_status(row)
        lines.append(f"held-out models: {status}" + {"confirmed": " ✓", "contradicted": " ✗"}.get(status, ""))
    lines.append(f"report: `sprints/{escape(row.get('id') or state.id)}/report.md` (PDF below)")
    if requester:
        lines.append(f"<@{requester}> your idea's report is ready.")
    return "\n".join(lines)


def verification(entry) -> str:
    """A verification queued from Slack, run: its outcome, the asker pinged."""
    what = "done" if entry.status == "done" else "failed"
    return (
        f"<@{entry.added_by}> verification #{entry.n} of `{escape(entry.sprint)}` on the held-out models: "
        f"*{what}*: {escape(entry.reason, 800)}"
    )


def leaderboard(rows: list[dict], objective: str, limit: int = 10) -> str:
    from autosae.report.leaderboard import leaderboard_rows

    if not rows:
        return "No sprint is recorded yet."
    lines = [f"*Leaderboard* by {objective.upper()} ({plural(len(rows), 'sprint')}, best first):"]
    for i, r in enumerate(leaderboard_rows(rows, objective)[:limit], 1):
        mark = " ★" if r.get("new_best") else ""
        lines.append(
            f"{i}. `{escape(r['id'])}` {headline(r.get('title') or '', 120)}: F1 {fmt_pm(r.get('f1'), 4)}, "
            f"MCC {fmt_pm(r.get('mcc'), 4)}, {escape(r.get('verdict'))}{mark}"
        )
    return "\n".join(lines)


def show(row: dict | None, state) -> str:
    """One sprint, recorded (its ledger row) or still running (its state)."""
    if row is None:
        return (
            f"`{escape(state.id)}`: *{headline(state.title, 200)}*, in phase _{state.phase}_ (not recorded yet)\n"
            f"{quote(state.idea)}"
        )
    obj = (row.get("objective") or "f1").upper()
    return "\n".join(
        [
            f"`{escape(row['id'])}`: *{headline(row.get('title') or '', 200)}*",
            quote(one_line(row.get("idea") or "", 400)),
            f"verdict *{escape(row.get('verdict'))}*" + (" ★ new best" if row.get("new_best") else ""),
            f"F1 {fmt_pm(row.get('f1'), 4)} · MCC {fmt_pm(row.get('mcc'), 4)} · Δ{obj} vs "
            f"`{escape(row.get('parent'))}` {fmt_delta(row.get('delta_parent'), 4)}, p {fmt_p(row.get('p_value'))}",
            f"report: `sprints/{escape(row['id'])}/report.md` · branch `{escape(row.get('branch'))}`",
        ]
    )


HELP = (
    "I run this project's autosae loop. In this channel:\n"
    "• `idea: <text>` (or mention me with it): queue an idea for the loop's next sprint\n"
    "• `status` · `leaderboard` · `show <sprint id>`\n"
    "• `verify <sprint id>`: verify a sprint on the held-out models before the next sprint\n"
    "• `stop`: stop the loop after its current sprint\n"
    "• a reply in a sprint's thread: your comment on it, which the agent's next proposals read"
)
