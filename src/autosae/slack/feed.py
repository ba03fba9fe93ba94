"""One Slack thread per sprint, posted from what the loop writes: the sprint states
(.autosae/state/, saved before and after every phase) and, once a sprint is done, its ledger
row and its folder on main (report.pdf, and the scores figure drawn from its records).

The feed is a reader: it runs in `autosae slack`'s process, never in the loop's, so the loop
never waits on Slack. What was posted is kept in .autosae/slack/feed.json (each sprint's
thread and how far it got), written after each message Slack accepted: a message Slack
refused, or a Slack outage, is tried again at the next poll, and a restarted app goes on
where it stopped instead of posting everything again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from autosae.jsonio import read_json, write_json
from autosae.slack import text
from autosae.sprint.engine import PHASES
from autosae.sprint.ledger import read_ledger
from autosae.sprint.state import FINAL, StateStore

PHASE_NAMES = [name for name, _ in PHASES]
GIVE_UP = 20
"""Polls in a row a sprint's next post may fail before the feed gives that sprint up."""


def _queue(project) -> list:
    from autosae.errors import AutosaeError
    from autosae.sprint.ideas import read_queue

    try:
        return read_queue(project)
    except AutosaeError:
        return []


class Feed:
    def __init__(self, project, client, channel: str, log: Callable[[str], None] = print):
        self.project, self.client, self.channel, self.log = project, client, channel, log
        self.path = project.private / "slack" / "feed.json"
        self.lock = threading.RLock()
        """feed.json's data is read by the command threads while the feed posts (never held
        while waiting on Slack)."""
        data = read_json(self.path)
        if not isinstance(data, dict) or data.get("channel") != channel:
            # first start (or another channel): sprints finished before it are not posted again
            done = [s.id for s in StateStore(project.state_dir).all() if s.phase in FINAL]
            data = {"channel": channel, "sprints": {sid: {"done": True} for sid in done}, "ideas": {}}
            data["verified"] = [i.n for i in _queue(project) if i.kind == "verify" and i.status in ("done", "failed")]
        self.data = data
        self.save()

    def save(self) -> None:
        with self.lock:
            write_json(self.path, self.data)

    def mark(self, posted: dict, **done) -> None:
        """Record what Slack accepted for one sprint, at once."""
        with self.lock:
            posted.update(done)
            self.save()

    # -- what the commands side tells the feed ----------------------------------------------

    def idea_thread(self, n: int, ts: str, user: str) -> None:
        """Idea `n` was queued from Slack by `user`, answered in the thread of message `ts`:
        its sprint is posted in that thread, and `user` is told when its report is ready."""
        with self.lock:
            self.data["ideas"][str(n)] = {"ts": ts, "user": user}
            self.save()

    def sprint_of_thread(self, ts: str) -> str | None:
        """The sprint whose thread `ts` is (None: not a sprint's thread)."""
        with self.lock:
            return next((sid for sid, posted in self.data["sprints"].items() if posted.get("ts") == ts), None)

    # -- polling ----------------------------------------------------------------------------

    def poll(self) -> None:
        """Post what happened since the last poll, sprint by sprint: a post that fails is tried
        again at the next poll, and one sprint's failures never hold up another's thread. A
        step Slack keeps refusing (a deleted thread, a missing scope) is given up after
        GIVE_UP tries, with a log line."""
        try:
            states = sorted(StateStore(self.project.state_dir).all(), key=lambda s: (s.started, s.id))
        except OSError as exc:
            self.log(f"slack: cannot read the sprint states now: {exc}")
            return
        for state in states:
            try:
                self.follow(state)
            except Exception as exc:  # noqa: BLE001 (Slack refused, or was out of reach: the next poll)
                self.failed(state.id, exc)
        try:
            self.announce_verifications()
        except Exception as exc:  # noqa: BLE001
            self.log(f"slack: verification outcomes not posted now: {type(exc).__name__}: {exc}")

    def failed(self, sid: str, exc: Exception) -> None:
        with self.lock:
            posted = self.data["sprints"].setdefault(sid, {})
            posted["failures"] = posted.get("failures", 0) + 1
            gave_up = posted["failures"] >= GIVE_UP
            if gave_up:
                posted["done"] = True
            self.save()
        self.log(
            f"slack: sprint {sid} not posted ({type(exc).__name__}: {exc})"
            + ("; given up after " + str(GIVE_UP) + " tries" if gave_up else "; tried again soon")
        )

    def announce_verifications(self) -> None:
        """Verifications queued from Slack, once the loop has run them: the outcome in the
        sprint's thread (else the channel), the asker pinged."""
        from autosae.sprint.ideas import read_queue

        announced = self.data.setdefault("verified", [])
        for entry in read_queue(self.project):
            if entry.kind != "verify" or entry.source != "slack" or entry.status not in ("done", "failed"):
                continue
            if entry.n in announced:
                continue
            thread = (self.data["sprints"].get(entry.sprint or "") or {}).get("ts")
            self.post(text.verification(entry), thread=thread)
            with self.lock:
                announced.append(entry.n)
                self.save()

    def follow(self, state) -> None:
        with self.lock:
            posted = self.data["sprints"].setdefault(state.id, {})
            idea = self.data["ideas"].get(str(state.queued_idea)) if state.queued_idea is not None else None
        if posted.get("done"):
            return
        requester = idea["user"] if idea else None
        if "ts" not in posted:
            thread = idea.get("ts") if idea else None
            ts = self.post(text.proposal(state, requester), thread=thread)
            self.mark(posted, ts=thread or ts, phases=[])
        started = [p for p in PHASE_NAMES if p in state.phase_started]
        for name in started:
            if name not in posted["phases"]:
                self.post(text.phase(state, name), thread=posted["ts"])
                self.mark(posted, phases=[*posted["phases"], name])
        if state.phase == "abandoned":
            self.post("_abandoned_ (`autosae resume --abandon`); its branch is kept", thread=posted["ts"])
            self.mark(posted, done=True, failures=0)
        elif state.phase == "done":
            self.finish(state, posted, requester)

    def finish(self, state, posted: dict, requester: str | None) -> None:
        rows = {r["id"]: r for r in read_ledger(self.project.ledger_path)}
        row = rows.get(state.id)
        if row is None:
            return  # saved as done a moment before its record is read back: the next poll
        if not posted.get("verdict"):
            self.post(text.verdict(row, state, requester), thread=posted["ts"])
            self.mark(posted, verdict=True)
        folder = self.project.sprints_dir / state.id
        if not posted.get("pdf") and (folder / "report.pdf").is_file():
            self.upload(folder / "report.pdf", f"{state.id} report", posted["ts"])
            self.mark(posted, pdf=True)
        if not posted.get("figure"):
            figure = self.scores_figure(folder)
            if figure is not None:
                self.upload(figure, f"{state.id}: F1 and MCC against the parent", posted["ts"])
            self.mark(posted, figure=True)
        self.mark(posted, done=True, failures=0)

    def scores_figure(self, folder: Path) -> Path | None:
        """The report's F1/MCC figure as a PNG, drawn from the sprint's records on main."""
        from autosae.report.sprint import scores_png

        out = self.project.private / "slack" / "figures" / f"{folder.name}-scores.png"
        try:
            return scores_png(folder, out)
        except Exception as exc:  # noqa: BLE001 (the figure is a courtesy: the thread goes on without it)
            self.log(f"slack: no scores figure for {folder.name}: {exc}")
            return None

    # -- Slack ------------------------------------------------------------------------------

    def post(self, message: str, thread: str | None = None) -> str:
        """chat.postMessage; its ts. Agent text in `message` is escaped (autosae.slack.text);
        nothing is unfurled and no name becomes a mention."""
        response = self.client.chat_postMessage(
            channel=self.channel,
            text=message,
            thread_ts=thread,
            unfurl_links=False,
            unfurl_media=False,
            link_names=False,
        )
        return response["ts"]

    def upload(self, path: Path, title: str, thread: str) -> None:
        self.client.files_upload_v2(
            channel=self.channel, thread_ts=thread, file=str(path), filename=path.name, title=title
        )


def run_feed(feed: Feed, stop: Callable[[], bool], interval: float) -> None:
    """Poll until `stop()` says so, then once more (what the last sprint left is posted)."""
    while not stop():
        feed.poll()
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and not stop():
            time.sleep(0.1)
    feed.poll()
