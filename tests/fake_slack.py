"""A local fake Slack for the Slack app's tests: the Web API methods the app calls, over HTTP
on a loopback port (the real slack-sdk reaches it through its base URL), and Socket Mode over a
real websocket on another (the real Bolt socket client dials the URL apps.connections.open
hands out). It records what the app posted and uploaded, sends message events as Slack would,
answers 429 with Retry-After when told to, and can drop the socket mid-connection."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from websockets.sync.server import serve

BOT_TOKEN = "xoxb-fake-bot-0123456789"
APP_TOKEN = "xapp-fake-app-0123456789"
BOT_USER = "UBOT0001"


class FakeSlack:
    def __init__(self, channel: str = "C0TEST001"):
        self.channel = channel
        self.messages: list[dict] = []
        """chat.postMessage calls that were answered ok, in order."""
        self.files: list[dict] = []
        """Completed uploads: {id, filename, title, channel, thread_ts, content}."""
        self.calls: list[tuple[str, str]] = []
        """(method, the token it carried) of every Web API call, refused ones included."""
        self.rate_limit: dict[str, int] = {}
        """method -> how many more calls to answer with HTTP 429 (Retry-After: 1)."""
        self.limited: list[str] = []
        self.connections = 0
        self.acks: set[str] = set()
        self._ts = itertools.count(1)
        self._uploads: dict[str, dict] = {}
        self._ws = None
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.ws_server = serve(self._socket_mode, "127.0.0.1", 0)
        for target in (self.http.serve_forever, self.ws_server.serve_forever):
            threading.Thread(target=target, daemon=True).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/api/"

    def close(self) -> None:
        self.http.shutdown()
        self.ws_server.shutdown()

    # -- the Web API --------------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"1764100000.{next(self._ts):06d}"

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = urlparse(self.path).path
                if path.startswith("/upload/"):
                    fake._uploads[path.rsplit("/", 1)[1]]["content"] = raw
                    return self._send(200, b"OK - uploaded", "text/plain")
                method = path.removeprefix("/api/")
                if "json" in (self.headers.get("Content-Type") or ""):
                    args = json.loads(raw or b"{}")
                else:
                    args = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or args.get("token", "")
                with fake._lock:
                    fake.calls.append((method, token))
                    limited = fake.rate_limit.get(method, 0) > 0
                    if limited:
                        fake.rate_limit[method] -= 1
                        fake.limited.append(method)
                if limited:
                    return self._send(429, json.dumps({"ok": False, "error": "ratelimited"}).encode(), retry_after="1")
                body = fake._api(method, args, token)
                self._send(200, json.dumps(body).encode())

            def _send(self, status, body, content_type="application/json", retry_after=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _api(self, method: str, args: dict, token: str) -> dict:
        if method == "apps.connections.open":
            if token != APP_TOKEN:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": f"ws://127.0.0.1:{self.ws_server.socket.getsockname()[1]}/link/?ticket=1"}
        if token != BOT_TOKEN:
            return {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER, "user": "autosae", "team_id": "T0TEST", "bot_id": "B0TEST"}
        if method == "chat.postMessage":
            ts = self._next_ts()
            with self._lock:
                self.messages.append({**args, "ts": ts})
            return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": {"text": args.get("text")}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(self._uploads) + 1:05d}"
            self._uploads[file_id] = {"id": file_id, "filename": args.get("filename"), "length": int(args["length"])}
            port = self.http.server_address[1]
            return {"ok": True, "upload_url": f"http://127.0.0.1:{port}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            for f in json.loads(args["files"]):
                upload = self._uploads[f["id"]]
                assert len(upload.get("content", b"")) == upload["length"]
                with self._lock:
                    self.files.append(
                        {
                            **upload,
                            "title": f.get("title"),
                            "channel": args.get("channel_id"),
                            "thread_ts": args.get("thread_ts"),
                        }
                    )
            return {"ok": True, "files": [{"id": f["id"]} for f in json.loads(args["files"])]}
        return {"ok": False, "error": "unknown_method"}

    # -- Socket Mode ----------------------------------------------------------------------------

    def _socket_mode(self, ws) -> None:
        with self._lock:
            self.connections += 1
            self._ws = ws
        ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0TEST"}}))
        try:
            for raw in ws:
                envelope = json.loads(raw)
                if "envelope_id" in envelope:
                    with self._lock:
                        self.acks.add(envelope["envelope_id"])
        except Exception:  # noqa: BLE001 (a dropped connection ends the handler)
            pass

    def drop(self) -> None:
        """Cut the socket without a close frame, as a network outage would."""
        ws = self._ws
        ws.socket.shutdown(socket.SHUT_RDWR)
        ws.socket.close()

    def wait_connected(self, count: int = 1, timeout: float = 30) -> None:
        self.wait(lambda: self.connections >= count and self._ws is not None, timeout, f"{count} socket connections")

    def say(self, user: str, text: str, thread_ts: str | None = None, timeout: float = 30) -> str:
        """A message from `user` in the channel (in thread `thread_ts`): delivered as Slack
        delivers it, retried on a fresh connection until the app acknowledges it. Its ts."""
        ts = self._next_ts()
        event = {"type": "message", "channel": self.channel, "user": user, "text": text, "ts": ts}
        if thread_ts:
            event["thread_ts"] = thread_ts
        self.deliver(event, timeout)
        return ts

    def deliver(self, event: dict, timeout: float = 30) -> None:
        envelope_id = str(uuid.uuid4())
        payload = {
            "token": "verification-token",
            "team_id": "T0TEST",
            "api_app_id": "A0TEST",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{envelope_id[:8]}",
            "event_time": int(time.time()),
        }
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": payload,
        }
        deadline, sent_on = time.monotonic() + timeout, None
        while envelope_id not in self.acks:  # as Slack does: sent again on the app's next connection
            if time.monotonic() > deadline:
                raise AssertionError(f"the app never acknowledged {event.get('text')!r}")
            ws = self._ws
            if ws is not sent_on:
                try:
                    ws.send(json.dumps(envelope))
                    sent_on = ws
                except Exception:  # noqa: BLE001 (the connection is gone: wait for the app's next)
                    pass
            time.sleep(0.05)

    # -- reading back -------------------------------------------------------------------------

    def wait(self, predicate, timeout: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"fake Slack: timed out waiting for {what or predicate}")
            time.sleep(0.05)

    def replies(self, thread_ts: str) -> list[dict]:
        with self._lock:
            return [m for m in self.messages if m.get("thread_ts") == thread_ts]

    def answer_to(self, ts: str, timeout: float = 30) -> dict:
        """The app's first reply in the thread of message `ts`."""
        self.wait(lambda: self.replies(ts), timeout, f"an answer to {ts}")
        return self.replies(ts)[0]

    def ask(self, user: str, text: str, thread_ts: str | None = None, timeout: float = 30) -> dict:
        """Say `text` and return the app's answer: its next message where it was asked (in the
        thread, or in the channel)."""
        with self._lock:
            before = len(self.messages)

        def answered():
            with self._lock:
                return [m for m in self.messages[before:] if m.get("thread_ts") == thread_ts and m["ts"] != asked]

        asked = None
        asked = self.say(user, text, thread_ts, timeout)
        self.wait(answered, timeout, f"an answer to {text!r}")
        return answered()[0]

    def transcript(self) -> str:
        with self._lock:
            return "\n\n".join(f"[{m.get('thread_ts') or 'channel'}] {m.get('text')}" for m in self.messages)
