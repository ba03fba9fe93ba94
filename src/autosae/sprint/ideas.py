"""The idea queue: ideas a researcher queues (`autosae idea add`) for the loop to run before
the agent proposes its own.

Queuing never waits on, nor races, a running loop:
- a request (add or drop) is one JSON file in .autosae/ideas/inbox/, written whole (a temporary
  file linked into place) by whoever asks, with no lock and no git;
- `ideas.jsonl` at the project's top level is the queue, committed on main. Only the holder of
  the project lock folds the inbox into it and commits it: `autosae idea` itself when no loop
  runs, else the loop, before each sprint.
Every idea keeps its number, its text, who added it and from where (`cli`, `slack`), when,
its priority, and what became of it: `queued`, `taken` (with the sprint that took it, whose
ledger row names the idea back), `not started` (with why) or `dropped`. Folding is idempotent:
a fold cut short before its inbox files are removed is done again the same way.

The queue holds two more kinds of request, both from Slack (autosae.slack), numbered with the
ideas: `verify` (a recorded sprint to verify on the held-out models; the loop runs it before
its next sprint and records `done` or `failed`) and `comment` (a researcher's reply in a
sprint's thread, `noted`: every later proposal sees it beside that sprint).
"""

from __future__ import annotations

import getpass
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import git

from autosae.errors import AutosaeError
from autosae.jsonio import write_text
from autosae.sprint import gitops

QUEUE = "ideas.jsonl"
KINDS = ("idea", "verify", "comment")
MAX_TEXT = 2000
"""The longest idea, in characters: a paragraph, not a document."""


@dataclass
class QueuedIdea:
    n: int
    text: str
    added_by: str
    source: str = "cli"
    added_at: str = ""
    priority: bool = False
    status: str = "queued"
    """queued | taken | not started | dropped; a verify: queued | running | done | failed; a
    comment: noted"""
    sprint: str | None = None
    """The sprint that took it; for a verify or a comment, the sprint it is about."""
    reason: str | None = None
    """Why it did not start, or who dropped it; a verify's outcome."""
    kind: str = "idea"
    """idea | verify | comment (see KINDS)."""

    @classmethod
    def from_dict(cls, data: dict) -> QueuedIdea:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def inbox(project) -> Path:
    return project.private / "ideas" / "inbox"


def read_queue(project) -> list[QueuedIdea]:
    """ideas.jsonl; a line that is not an idea stops the command in one line (a hand edit gone wrong)."""
    path = project.root / QUEUE
    if not path.is_file():
        return []
    ideas = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            ideas.append(QueuedIdea.from_dict(data))
        except (ValueError, TypeError, AttributeError):
            raise AutosaeError(
                f"{QUEUE} line {number} is not an idea (n, text and added_by in a JSON object)"
            ) from None
    return ideas


def waiting_requests(project) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(inbox(project).glob("*.json")) if inbox(project).is_dir() else []:
        try:
            found.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue  # not ours, or not readable: left for a person to look at
    return found


def who(project) -> str:
    """Who is asking: the project's git user.name, else the login name."""
    try:
        return git.Git(project.root).config("user.name").strip() or getpass.getuser()
    except git.GitCommandError:  # no git identity configured
        return getpass.getuser()


def _place(folder: Path, name: str, data: dict) -> bool:
    """Write `data` as folder/name whole, unless that name is taken (then False)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    try:
        os.link(tmp, folder / name)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def request_add(project, text: str, priority: bool = False, added_by: str | None = None, source: str = "cli") -> int:
    """Queue `text`; returns its number (the next after every number in the queue and the inbox)."""
    return _request(project, {"kind": "idea", "text": clean_text(text), "priority": priority}, added_by, source)


def request_verify(project, sprint_id: str, added_by: str | None = None, source: str = "cli") -> int:
    """Queue a held-out verification of recorded sprint `sprint_id` for the loop."""
    text = f"verify {sprint_id} on the held-out models"
    return _request(project, {"kind": "verify", "text": text, "sprint": sprint_id}, added_by, source)


def request_comment(project, sprint_id: str, text: str, added_by: str | None = None, source: str = "cli") -> int:
    """Record a researcher's comment on sprint `sprint_id`: later proposals see it."""
    return _request(project, {"kind": "comment", "text": clean_text(text), "sprint": sprint_id}, added_by, source)


def clean_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise AutosaeError("an idea needs some text")
    if len(text) > MAX_TEXT:
        raise AutosaeError(f"an idea is at most {MAX_TEXT} characters (this one has {len(text)})")
    return text


def _request(project, fields: dict, added_by: str | None, source: str) -> int:
    # the inbox before the queue: a fold between the two reads moves a request from the one to
    # the other (it writes the queue before it deletes the inbox file), never out of sight
    waiting = [r.get("n", 0) for _, r in waiting_requests(project) if r.get("op") == "add"]
    n = max([i.n for i in read_queue(project)] + waiting, default=0) + 1
    request = {
        "op": "add",
        "added_by": added_by or who(project),
        "source": source,
        "added_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    }
    while not _place(inbox(project), f"{n:06d}-add.json", request | {"n": n}):
        n += 1  # another request took this number a moment ago
    return n


def request_drop(project, n: int, by: str | None = None) -> None:
    known = {i.n: i for i in read_queue(project)} | {
        r["n"]: r for _, r in waiting_requests(project) if r.get("op") == "add" and "n" in r
    }
    if n not in known:
        raise AutosaeError(f"there is no idea {n} (`autosae idea list` shows them)")
    _place(inbox(project), f"{time.time_ns()}-drop-{n}.json", {"op": "drop", "n": n, "by": by or who(project)})


def fold(project, repo) -> list[QueuedIdea]:
    """The inbox folded into the queue, the queue committed (only by the lock's holder)."""
    queue = {i.n: i for i in read_queue(project)}
    requests = waiting_requests(project)
    if not requests:
        return list(queue.values())
    said = []
    for _, req in sorted(requests, key=lambda r: (r[1].get("op") != "add", r[1].get("n", 0))):
        n = req.get("n")
        kind = req.get("kind", "idea")
        if (
            req.get("op") == "add"
            and isinstance(n, int)
            and isinstance(req.get("text"), str)
            and kind in KINDS
            and n not in queue
        ):
            queue[n] = QueuedIdea.from_dict({**req, "status": "noted" if kind == "comment" else "queued"})
            said.append(f"{'queue' if kind == 'idea' else kind} #{n}")
        elif req.get("op") == "drop" and n in queue and queue[n].status == "queued":
            queue[n].status, queue[n].reason = "dropped", f"dropped by {req.get('by')}"
            said.append(f"drop #{n}")
    ideas = sorted(queue.values(), key=lambda i: i.n)
    if said:  # requests that change nothing (done already by a fold cut short) write nothing
        write_queue(project, repo, ideas, "ideas: " + ", ".join(said))
    for path, _ in requests:
        path.unlink(missing_ok=True)
    return ideas


def write_queue(project, repo, ideas: list[QueuedIdea], message: str) -> None:
    write_text(project.root / QUEUE, "".join(json.dumps(asdict(i)) + "\n" for i in ideas), durable=True)
    gitops.commit_paths(repo, message, [QUEUE])


def next_idea(project, repo) -> QueuedIdea | None:
    """The idea the next sprint runs: priority ones first, then the oldest (after a fold)."""
    open_ = [i for i in fold(project, repo) if i.status == "queued" and i.kind == "idea"]
    return min(open_, key=lambda i: (not i.priority, i.n)) if open_ else None


def next_verification(project, repo) -> QueuedIdea | None:
    """The oldest verification queued (after a fold)."""
    open_ = [i for i in fold(project, repo) if i.status == "queued" and i.kind == "verify"]
    return open_[0] if open_ else None


def requeue_running(project, repo) -> None:
    """Verifications left `running` by a loop that was killed: queued again (by the next loop,
    before any runs)."""
    queue = read_queue(project)
    stale = [i for i in queue if i.kind == "verify" and i.status == "running"]
    for i in stale:
        i.status = "queued"
    if stale:
        write_queue(project, repo, queue, "ideas: " + ", ".join(f"verify #{i.n} queued again" for i in stale))


def comments(project) -> list[QueuedIdea]:
    """The researchers' comments on sprints, oldest first (the queue as committed)."""
    return [i for i in read_queue(project) if i.kind == "comment"]


def settle(project, repo, n: int, status: str, sprint: str | None = None, reason: str | None = None) -> None:
    """Record what became of idea `n` (taken by `sprint`, or not started and why) and commit it."""
    ideas = read_queue(project)
    for idea in ideas:
        if idea.n == n:
            idea.status, idea.sprint, idea.reason = status, sprint, reason
    write_queue(project, repo, ideas, f"ideas: #{n} {status}" + (f" by sprint {sprint}" if sprint else ""))
