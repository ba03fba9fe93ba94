"""What a message in the bound channel asks for, and the answer. Commands are whole words
matched here; their arguments (an idea's text, a sprint id) are only ever data. Anyone in the
channel may read (status, leaderboard, show); only TASK.md's slack.allow users may queue an
idea, comment, verify or stop, and anyone else is told so, politely.

TASK.md is read again for every message: an allow-list edited while the app runs holds at
once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from autosae.config import load_task
from autosae.errors import AutosaeError
from autosae.slack import text
from autosae.sprint import ideas
from autosae.sprint.ledger import best_row, in_setting, read_ledger
from autosae.sprint.project import ProjectLock, pid_alive
from autosae.sprint.state import StateStore

MENTION = re.compile(r"<@([UW][A-Z0-9]+)>")
READ_ONLY = ("status", "leaderboard", "show", "help")


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
        if event.get("user") == self.bot_user:
            return None
        raw = event.get("text") or ""
        mentioned = self.bot_user is not None and f"<@{self.bot_user}>" in raw
        body = " ".join(MENTION.sub(lambda m: "" if m.group(1) == self.bot_user else m.group(0), raw).split())
        ts, thread = event.get("ts"), event.get("thread_ts")
        in_place = thread  # a command in a thread is answered there, else in the channel
        word, _, rest = body.partition(" ")
        command = word.lower().rstrip(":")
        sprint = self.feed.sprint_of_thread(thread) if thread else None
        if body.lower().startswith("idea:") or (command == "idea" and rest):
            return self.queue(event, body.split(":", 1)[1] if body.lower().startswith("idea:") else rest, ts)
        if command in READ_ONLY or command in ("stop", "verify"):
            return self.command(command, rest.strip(), event, in_place)
        if sprint is not None and body:
            return self.comment(event, sprint, body, thread)
        if mentioned:
            return self.queue(event, body, ts) if body else Answer(text.HELP, in_place)
        return None  # talk in the channel: not for us

    def refuse(self, event: dict, what: str, thread: str | None) -> Answer:
        return Answer(
            f"Sorry <@{event['user']}>, only the researchers on this project's allow-list may {what} "
            "(TASK.md: `slack.allow`). You can still ask for `status`, `leaderboard` or `show <id>`.",
            thread,
        )

    def queue(self, event: dict, idea: str, ts: str) -> Answer:
        if event["user"] not in self.allowed():
            return self.refuse(event, "queue ideas", ts)
        try:
            n = ideas.request_add(self.project, text.unescape(idea), added_by=event["user"], source="slack")
        except AutosaeError as exc:
            return Answer(f"Not queued: {text.escape(exc)}", ts)
        self.feed.idea_thread(n, ts, event["user"])
        waiting = self.queued_before(n)
        where = "the running loop takes it next" if self.loop_running() else "no loop is running: the next one takes it"
        return Answer(
            f"Queued as idea #{n}"
            + (f", after {waiting} queued before it" if waiting else "")
            + f" ({where}). I'll post its sprint in this thread and ping you when the report is ready.",
            ts,
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
        n = ideas.request_verify(self.project, sid, added_by=event["user"], source="slack")
        where = (
            "the running loop runs it before its next sprint" if self.loop_running() else "the next loop runs it first"
        )
        return Answer(f"Verification of `{sid}` on the held-out models queued as #{n} ({where}).", thread)

    # -- the project ------------------------------------------------------------------------

    def loop_running(self) -> bool:
        holder = ProjectLock(self.project, "slack").holder()
        return holder is not None and pid_alive(int(holder.get("pid", 0)))

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
        holder = ProjectLock(self.project, "slack").holder()
        running = holder is not None and pid_alive(int(holder.get("pid", 0)))
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
