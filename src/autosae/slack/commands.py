"""What a message in the bound channel asks for, and the answer. Commands are whole words
matched here; their arguments (an idea's text, a sprint id) are only ever data. Anyone in the
channel may read (status, leaderboard, show); only TASK.md's slack.allow users may queue an
idea, comment, verify or stop, and anyone else is told so, politely.

TASK.md is read again for every message: an allow-list edited while the app runs holds at
once."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from autosae.config import load_task
from autosae.errors import AutosaeError
from autosae.slack import text
from autosae.sprint import ideas
from autosae.sprint.ledger import best_row, in_setting, read_ledger
from autosae.sprint.project import ProjectLock
from autosae.sprint.state import StateStore

MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")
WHOLE = ("status", "leaderboard", "help", "stop")
"""Commands that are the whole message ("stop", not "stop by my desk")."""
ON_A_SPRINT = ("show", "verify")
"""Commands that are the message with one sprint id ("show 2026-11-25--07-02-11-lista")."""
SPRINT_ID = re.compile(r"^[A-Za-z0-9._:-]{3,120}$")


def parse(body: str) -> tuple[str, str] | None:
    """(command, argument) when the message is a command, else None (talk, or a comment in a
    sprint's thread). `idea:` needs its colon; the others are the whole message."""
    if body.lower().startswith("idea:"):
        return "idea", body[5:].strip()
    words = body.split()
    if len(words) == 1 and words[0].lower().rstrip(".!") in WHOLE:
        return words[0].lower().rstrip(".!"), ""
    if len(words) == 2 and words[0].lower() in ON_A_SPRINT and SPRINT_ID.match(words[1].strip("`")):
        return words[0].lower(), words[1].strip("`")
    return None


@dataclass
class Answer:
    text: str
    thread: str | None
    """The ts of the thread to answer in (None: the channel)."""
    idea: int | None = None
    """The idea this answer queued (its thread becomes the sprint's)."""


class Commands:
    def __init__(self, project, feed, bot_user: str | None):
        self.project, self.feed, self.bot_user = project, feed, bot_user
        self.seen: dict[tuple, None] = {}
        self.seen_lock = threading.Lock()

    def allowed(self) -> list[str]:
        try:
            return load_task(self.project.task_path).config.slack.allow
        except AutosaeError:  # a broken TASK.md allows nobody until it is fixed
            return []

    def answer(self, event: dict) -> Answer | None:
        """The answer to a message event, after doing what it asks (None: not for us); a
        command that fails says why in its answer."""
        try:
            return self._answer(event)
        except AutosaeError as exc:  # e.g. ideas.jsonl broken by a hand edit
            return Answer(f"That did not work: {text.escape(exc)}", event.get("thread_ts"))

    def _answer(self, event: dict) -> Answer | None:
        if event.get("bot_id") or event.get("subtype") or not event.get("user"):
            return None  # bots (this app's own posts included), edits, joins: never commands
        if event.get("user") == self.bot_user or self.seen_before(event):
            return None
        raw = event.get("text") or ""
        mentioned = self.bot_user is not None and f"<@{self.bot_user}>" in raw
        body = " ".join(MENTION.sub(lambda m: "" if m.group(1) == self.bot_user else m.group(0), raw).split())
        ts, thread = event.get("ts"), event.get("thread_ts")
        command = parse(body)
        sprint = self.feed.sprint_of_thread(thread) if thread else None
        if command is not None:
            name, arg = command
            if name == "idea":
                return self.queue(event, arg, ts, thread)
            return self.command(name, arg, event, thread)  # answered where asked: in the thread, or the channel
        if sprint is not None and body:
            return self.comment(event, sprint, body, thread)
        if mentioned:
            return self.queue(event, body, ts, thread) if body else Answer(text.HELP, thread)
        return None  # talk in the channel: not for us

    def seen_before(self, event: dict) -> bool:
        """Slack delivers an event again when its acknowledgement was lost (a dropped
        socket): the same message is acted on once."""
        key = (event.get("channel"), event.get("ts"))
        with self.seen_lock:  # Bolt answers messages on several threads
            if key in self.seen:
                return True
            self.seen[key] = None
            while len(self.seen) > 1000:
                self.seen.pop(next(iter(self.seen)))
            return False

    def refuse(self, event: dict, what: str, thread: str | None) -> Answer:
        return Answer(
            f"Sorry <@{event['user']}>, only the researchers on this project's allow-list may {what} "
            "(TASK.md: `slack.allow`). You can still ask for `status`, `leaderboard` or `show <id>`.",
            thread,
        )

    def queue(self, event: dict, idea: str, ts: str, thread: str | None = None) -> Answer:
        """Queue an idea; answered in a new thread under the message, whose thread its sprint
        then takes (asked inside a thread: answered there, and the sprint gets its own)."""
        where_asked = thread or ts
        if event["user"] not in self.allowed():
            return self.refuse(event, "queue ideas", where_asked)
        try:
            n = ideas.request_add(self.project, text.unescape(idea), added_by=event["user"], source="slack")
        except AutosaeError as exc:
            return Answer(f"Not queued: {text.escape(exc)}", where_asked)
        self.feed.idea_thread(n, None if thread else ts, event["user"])
        waiting = self.queued_before(n)
        where = "the running loop takes it next" if self.loop_running() else "no loop is running: the next one takes it"
        return Answer(
            f"Queued as idea #{n}"
            + (f", after {waiting} queued before it" if waiting else "")
            + f" ({where}). I'll post its sprint in "
            + ("this thread" if not thread else "a thread of its own")
            + " and ping you when the report is ready.",
            where_asked,
            idea=n,
        )

    def comment(self, event: dict, sprint: str, body: str, thread: str) -> Answer:
        if event["user"] not in self.allowed():
            return self.refuse(event, "comment on sprints for the agent", thread)
        try:
            n = ideas.request_comment(self.project, sprint, text.unescape(body), added_by=event["user"], source="slack")
        except AutosaeError as exc:
            return Answer(f"Not noted: {text.escape(exc)}", thread)
        return Answer(f"Noted (#{n}): the agent's next proposals read it beside this sprint.", thread)

    def command(self, command: str, arg: str, event: dict, thread: str | None) -> Answer:
        if command == "help":
            return Answer(text.HELP, thread)
        if command == "status":
            return Answer(self.status(), thread)
        rows = read_ledger(self.project.ledger_path)
        if command == "leaderboard":
            mine = in_setting(rows, rows[-1].get("setting")) if rows else []
            return Answer(text.leaderboard(mine, (rows[-1].get("objective") if rows else None) or "f1"), thread)
        if command == "stop":
            if event["user"] not in self.allowed():
                return self.refuse(event, "stop the loop", thread)
            return Answer(self.stop(event["user"]), thread)
        if not arg:
            return Answer(f"`{command}` needs a sprint id (or a unique part of one): `{command} <id>`", thread)
        from autosae.sprint.verification import resolve_id

        states = {s.id: s for s in StateStore(self.project.state_dir).all()}
        by_id = {r["id"]: r for r in rows}
        try:
            sid = resolve_id(arg, by_id if command == "verify" else {*by_id, *states})
        except AutosaeError as exc:
            return Answer(text.escape(exc), thread)
        if command == "show":
            return Answer(text.show(by_id.get(sid), states.get(sid)), thread)
        if event["user"] not in self.allowed():
            return self.refuse(event, "verify sprints", thread)
        pending = [
            i.n
            for i in ideas.read_queue(self.project)
            if i.kind == "verify" and i.sprint == sid and i.status in ("queued", "running")
        ] + [
            r.get("n")
            for _, r in ideas.waiting_requests(self.project)
            if r.get("kind") == "verify" and r.get("sprint") == sid
        ]
        if pending:  # each verification trains the held-out suite: once is enough
            return Answer(f"`{sid}` is already queued for verification (#{pending[0]}).", thread)
        n = ideas.request_verify(self.project, sid, added_by=event["user"], source="slack")
        where = (
            "the running loop runs it before its next sprint" if self.loop_running() else "the next loop runs it first"
        )
        return Answer(f"Verification of `{sid}` on the held-out models queued as #{n} ({where}).", thread)

    # -- the project ------------------------------------------------------------------------

    def loop_running(self) -> bool:
        return ProjectLock(self.project, "slack").live_holder() is not None

    def queued_before(self, n: int) -> int:
        listed = {i.n for i in ideas.read_queue(self.project) if i.kind == "idea" and i.status == "queued"}
        waiting = {r.get("n") for _, r in ideas.waiting_requests(self.project) if r.get("kind", "idea") == "idea"}
        return len({x for x in listed | waiting if isinstance(x, int) and x < n})

    def stop(self, user: str) -> str:
        from autosae.sprint.loop import request_stop

        holder = request_stop(self.project, f"<@{user}> from Slack")
        if holder is None:
            return "No loop is running in this project."
        return f"Stop requested: {holder} stops after its current sprint."

    def status(self) -> str:
        holder = ProjectLock(self.project, "slack").live_holder()
        running = holder is not None
        lines = [
            f"*{text.escape(self.project.root.name)}*: "
            + (f"`{holder['command']}` running" if running else "no loop running")
        ]
        if self.project.stop_path.exists():
            lines.append("stop requested: the loop stops after its current sprint")
        for state in StateStore(self.project.state_dir).unfinished():
            lines.append(f"sprint `{state.id}` *{text.escape(state.title, 200)}*: _{state.phase}_")
        queued = [i for i in ideas.read_queue(self.project) if i.status == "queued" and i.kind == "idea"]
        waiting = [
            r
            for _, r in ideas.waiting_requests(self.project)
            if r.get("op") == "add" and r.get("kind", "idea") == "idea"
        ]
        lines.append(f"queue: {len(queued) + len(waiting)} waiting (`idea: ...` adds one)")
        rows = read_ledger(self.project.ledger_path)
        improved = sum(r.get("verdict") == "improved" for r in rows)
        lines.append(f"{text.plural(len(rows), 'sprint')} recorded, {improved} improved")
        best = best_row(rows, rows[-1].get("setting")) if rows else None
        if best:
            obj = best.get("objective") or "f1"
            lines.append(
                f"best: `{best['id']}` {text.escape(best.get('title'), 200)}, {obj.upper()} {text.fmt_pm(best.get(obj), 4)}"
            )
        else:
            lines.append("best: the Matryoshka baseline (no sprint has improved on it yet)")
        return "\n".join(lines)
