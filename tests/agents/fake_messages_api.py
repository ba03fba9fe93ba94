"""A local fake of Anthropic's Messages API (HTTP on 127.0.0.1) for the real anthropic SDK.

The "model" is a policy: a function from the request body to a list of content blocks, or to
a dict {"content": [...], "usage": {...}, "stop_reason": ...} where one response needs its own
usage (e.g. `server_tool_use` counts) or stop reason (e.g. "pause_turn"). Faults are injected
by request number (429, 500, 529, a dropped connection) before the policy runs; every request
body (and its headers) is kept for the tests to inspect.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERRORS = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def phase_of(body: dict) -> str:
    """Which autosae phase a request belongs to, from its `finish` tool's schema."""
    finish = next(t for t in body["tools"] if t["name"] == "finish")
    props = finish["input_schema"]["properties"]
    return "propose" if "title" in props else "conclude" if "checks" in props else "implement"


def turn_of(body: dict) -> int:
    """How many times the model has already answered in this conversation."""
    return sum(m["role"] == "assistant" for m in body["messages"])


def tool_results(body: dict) -> list[dict]:
    """The tool results in the request's last message."""
    last = body["messages"][-1]["content"]
    return [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(last, list) else []


def use(name: str, args, n: int = 0) -> dict:
    return {
        "type": "tool_use",
        "id": f"toolu_{name}_{n}_{abs(hash(json.dumps(args, default=str))) % 10**8}",
        "name": name,
        "input": args,
    }


class FakeMessagesAPI:
    def __init__(
        self,
        policy: Callable[[dict], list[dict]],
        faults: dict[int, int | str] | None = None,
        usage: dict | None = None,
    ):
        self.policy, self.faults = policy, dict(faults or {})
        self.usage = usage or {
            "input_tokens": 1000,
            "output_tokens": 200,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        self.requests: list[dict] = []
        """Every request body, faults included, in order."""
        self.headers: list[dict] = []
        self.other: list[tuple[str, str]] = []
        """Requests to anything but /v1/messages (method, path)."""
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeMessagesAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answered(self, phase: str) -> list[dict]:
        """The requests of one phase that the policy answered (not faults)."""
        return [r for r in self.requests if not r.get("_fault") and phase_of(r) == phase]

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                api.other.append(("GET", self.path))
                self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if not self.path.startswith("/v1/messages") or self.path.startswith("/v1/messages/"):
                    api.other.append(("POST", self.path))
                    if self.path.startswith("/v1/messages/count_tokens"):
                        return self._send(200, {"input_tokens": 1000})
                    return self._send(
                        404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}}
                    )
                with api.lock:
                    n = len(api.requests)
                    api.requests.append(body)
                    api.headers.append(dict(self.headers))
                    fault = api.faults.pop(n, None)
                if fault == "drop":
                    body["_fault"] = "drop"
                    self.close_connection = True
                    self.connection.shutdown(2)  # no response at all
                    return
                if fault is not None:
                    body["_fault"] = fault
                    return self._send(
                        int(fault),
                        {
                            "type": "error",
                            "error": {"type": ERRORS.get(int(fault), "api_error"), "message": f"injected {fault}"},
                        },
                    )
                try:
                    answer = api.policy(body)
                except Exception as exc:  # a broken test policy shows up as a 400
                    return self._send(
                        400,
                        {"type": "error", "error": {"type": "invalid_request_error", "message": f"policy: {exc!r}"}},
                    )
                answer = answer if isinstance(answer, dict) else {"content": answer}
                content = answer["content"]
                stop = answer.get("stop_reason") or (
                    "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
                )
                message = {
                    "id": f"msg_{n}",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": {**api.usage, **answer.get("usage", {})},
                }
                if body.get("stream"):
                    return self._stream(message)
                self._send(200, message)

            def _stream(self, message: dict) -> None:
                """The same message as server-sent events, as the streaming Messages API sends it."""
                usage = message["usage"]
                events = [
                    (
                        "message_start",
                        {
                            "message": {
                                **message,
                                "content": [],
                                "stop_reason": None,
                                "usage": {**usage, "output_tokens": 0},
                            }
                        },
                    )
                ]
                for i, block in enumerate(message["content"]):
                    if block["type"] in ("tool_use", "server_tool_use"):
                        events += [
                            ("content_block_start", {"index": i, "content_block": {**block, "input": {}}}),
                            (
                                "content_block_delta",
                                {
                                    "index": i,
                                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                                },
                            ),
                        ]
                    elif block["type"] == "text":
                        start = {"type": "text", "text": "", **({"citations": []} if "citations" in block else {})}
                        events += [
                            ("content_block_start", {"index": i, "content_block": start}),
                            (
                                "content_block_delta",
                                {"index": i, "delta": {"type": "text_delta", "text": block["text"]}},
                            ),
                        ]
                        events += [
                            ("content_block_delta", {"index": i, "delta": {"type": "citations_delta", "citation": c}})
                            for c in block.get("citations") or []
                        ]
                    else:  # server tool results arrive whole
                        events.append(("content_block_start", {"index": i, "content_block": block}))
                    events.append(("content_block_stop", {"index": i}))
                final = {
                    "output_tokens": usage.get("output_tokens", 0),
                    **({"server_tool_use": usage["server_tool_use"]} if "server_tool_use" in usage else {}),
                }
                events += [
                    (
                        "message_delta",
                        {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None}, "usage": final},
                    ),
                    ("message_stop", {}),
                ]
                data = "".join(
                    f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n" for name, payload in events
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("retry-after-ms", "20")
                self.end_headers()
                self.wfile.write(data)

        return Handler
