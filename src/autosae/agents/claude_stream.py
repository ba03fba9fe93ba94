"""A Claude Code session's stream-json output, read as untrusted text.

A process the session starts can write into Claude Code's stdout: it runs as the same user as
Claude Code, so it can take the descriptor itself (pidfd_getfd), or reopen /proc/<pid>/fd/1
where it may write our pipe (not under a root autosae: the pipe is root's). So the stream is
bounded and nothing in it is believed on its word:
- a line longer than LINE_BYTES, a stream past STREAM_BYTES or STREAM_LINES, or a transcript past
  TRANSCRIPT_BYTES (what earlier runs of the phase wrote included) stops the session with the
  reason: the transcript, which is committed with the sprint, stays within TRANSCRIPT_BYTES and
  a line; of the streamed deltas of each message (--include-partial-messages) only the usage
  is kept;
- the cost is the larger of every result line's `total_cost_usd` and the price table's cost
  of the usage that the messages report (each message counted once, at the largest usage any
  of its lines gives it): a forged line can raise what a session is charged, never lower it,
  and a session killed before its result line (by a child, or by our time limit) is charged
  for what its messages used.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import IO

from autosae.agents.pricing import USAGE_KINDS, Price, add_usage, usage_dict
from autosae.agents.transcript import Transcript

LINE_BYTES = 1 << 20
"""The longest line of a session's stream (1 MiB): Claude Code writes one JSON event a line,
a Read or Edit result included, well below it."""
TRANSCRIPT_BYTES = 32 << 20
"""The most one phase's transcript may hold (32 MiB, resumed runs included): a long implement
session writes a few MiB."""
STREAM_BYTES, STREAM_LINES = 128 << 20, 2_000_000
"""The most one phase's session may write, in bytes and in lines, those that are not kept
included (the streamed deltas of its messages, anything that is not a JSON object): a long
session writes some MiB in some 10,000 lines."""
STDERR_TAIL = 4096
SYNC_S = 1.0
"""Transcript lines reach the disk (fsync) at least this often, and at once for the session's
first and last lines: a line a second is enough to resume from, and a flood of forged lines
cannot make us fsync each."""
USAGE_EVENTS = ("message_start", "message_delta")
"""The streamed events (--include-partial-messages) that are kept, reduced to their usage: a
message's final output tokens come only in its message_delta, after its assistant line."""


def usage_event(event: dict) -> dict | None:
    """A stream_event line reduced to what pricing needs (None: not kept)."""
    inner = event.get("event")
    if not isinstance(inner, dict) or inner.get("type") not in USAGE_EVENTS:
        return None
    if inner["type"] == "message_start":
        message = inner.get("message") if isinstance(inner.get("message"), dict) else {}
        inner = {"type": "message_start", "message": {"id": message.get("id"), "usage": message.get("usage")}}
    else:
        inner = {"type": "message_delta", "usage": inner.get("usage")}
    return {"type": "stream_event", "event": inner}


class StreamReader:
    """Reads a session's stdout line by line into its transcript, within the bounds; `stopped`
    says why it stopped early (None: the stream ended)."""

    def __init__(self, record: Transcript, line_bytes: int = LINE_BYTES, transcript_bytes: int = TRANSCRIPT_BYTES):
        self.record, self.line_bytes, self.transcript_bytes = record, line_bytes, transcript_bytes
        self.written = record.path.stat().st_size if record.path.is_file() else 0
        self.read = self.lines = 0
        self.events: list[dict] = []
        self.stopped: str | None = None
        self.synced = 0.0

    def run(self, stdout: IO[bytes]) -> list[dict]:
        while True:
            raw = stdout.readline(self.line_bytes + 1)
            if not raw:
                return self.events
            self.read += len(raw)
            self.lines += 1
            if len(raw) > self.line_bytes:
                self.stopped = f"a line of its output is longer than {self.line_bytes:,} bytes"
            elif self.read > STREAM_BYTES:
                self.stopped = f"its output passed {STREAM_BYTES:,} bytes"
            elif self.lines > STREAM_LINES:
                self.stopped = f"its output passed {STREAM_LINES:,} lines"
            elif self.written > self.transcript_bytes:
                self.stopped = f"its transcript passed {self.transcript_bytes:,} bytes"
            if self.stopped:
                return self.events
            if not raw.lstrip().startswith(b"{"):
                continue  # not a JSON object: skipped without parsing
            try:
                event = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict) and event.get("type") == "stream_event":
                event = usage_event(event)
            if not isinstance(event, dict):
                continue
            now = time.monotonic()
            sync = now - self.synced > SYNC_S or event.get("type") in ("system", "result")
            self.synced = now if sync else self.synced
            self.written += self.record.append(event, sync)
            self.events.append(event)


def drain_tail(stream: IO[bytes], keep: int = STDERR_TAIL) -> tuple[threading.Thread, bytearray]:
    """Read `stream` to its end in a thread, keeping only its last `keep` bytes: a session
    that floods its stderr neither blocks on a full pipe nor fills our memory."""
    tail = bytearray()

    def drain() -> None:
        try:
            while chunk := stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16):
                tail.extend(chunk)
                del tail[:-keep]
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread, tail


MAX_REPORTED_USD = 1e6
"""The largest total_cost_usd believed from a result line: past it the line is ignored, as a
forged one (a 4000-digit number would not even convert to a float)."""


def reported_cost(value) -> float | None:
    """A result line's total_cost_usd when it is a finite number in [0, MAX_REPORTED_USD]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        cost = float(value)
    except OverflowError:
        return None
    return cost if math.isfinite(cost) and 0 <= cost <= MAX_REPORTED_USD else None


def message_usage(events: list[dict]) -> dict[str, int]:
    """The tokens of the session's messages: each message (by id) once, at the largest count
    that any of its lines reports (its assistant lines, one per content block, repeat the
    usage it started with; its message_delta gives the final output tokens)."""
    by_id: dict[str, dict[str, int]] = {}
    current = None  # the message that a message_delta belongs to: the last one started
    for n, e in enumerate(events):
        usage, ident = None, None
        inner = e.get("event") if e.get("type") == "stream_event" and isinstance(e.get("event"), dict) else {}
        if e.get("type") == "assistant" and isinstance(e.get("message"), dict):
            usage, ident = e["message"].get("usage"), e["message"].get("id")
        elif inner.get("type") == "message_start" and isinstance(inner.get("message"), dict):
            usage, ident = inner["message"].get("usage"), inner["message"].get("id")
            current = ident if isinstance(ident, str) else f"#{n}"
        elif inner.get("type") == "message_delta":
            usage, ident = inner.get("usage"), current
        else:
            continue
        ident = ident if isinstance(ident, str) else f"#{n}"
        seen = by_id.setdefault(ident, {})
        for kind, count in usage_dict(usage if isinstance(usage, dict) else {}).items():
            seen[kind] = max(seen.get(kind, 0), count)
    total: dict[str, int] = {}
    for usage in by_id.values():
        add_usage(total, usage)
    return total


def session_cost(events: list[dict], price: Price) -> tuple[float, dict[str, int]]:
    """(dollars, tokens) of one phase's session from its stream (see the module's doc)."""
    results = [e for e in events if e.get("type") == "result"]
    tokens = message_usage(events)
    for r in results:  # the CLI's own count includes web searches; a forged one can only add
        usage = usage_dict(r["usage"]) if isinstance(r.get("usage"), dict) else {}
        for kind in USAGE_KINDS:
            if usage.get(kind, 0) > tokens.get(kind, 0):
                tokens[kind] = usage[kind]
    reported = [c for c in (reported_cost(r.get("total_cost_usd")) for r in results) if c is not None]
    return max([price.cost(tokens), *reported]), tokens
