"""autosae's tools for a Claude Code session, served over MCP from the trusted process.

Claude Code runs in the OS sandbox and cannot nest another one, nor see the model cache; so the
tools that need either (run_experiment: a quick run in a sandbox of its own, with the shared
model cache and parent cache) run here, in our process, and the session only asks for them.
Claude Code starts `python -I -m autosae.sandboxed.mcp_relay SOCKET` inside its sandbox (the
stdio transport, `--mcp-config`, `--strict-mcp-config`), which copies bytes between its stdio
and the unix socket that this server listens on.

The socket lives in a folder of the session's own: `<folder>/` (0711: no listing, so only who
knows the name finds it) holds `sock/` (0755, the folder bound read-only into the sandbox),
which holds `mcp.sock` (0666: a sandbox that runs as another, unprivileged uid must be able
to connect). The permissions are not the gate: every connection's peer (SO_PEERCRED) must be
a process of the session's own tree (a descendant of its launcher), or it is closed unread.

Everything that arrives is untrusted: JSON-RPC 2.0, one message a line (the stdio transport's
framing), at most LINE_BYTES a line (never unpickled); requests are checked against the
tool's schema before a handler sees them, and a tool that fails answers with a one-line
tool error (isError), never an exception in this process. Tool calls run one at a time.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from autosae.agents.sandbox import ToolError, redact

NAME = "autosae"
"""The server's name in --mcp-config: Claude Code calls its tools mcp__autosae__<tool>."""
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
"""MCP revisions this server speaks (newest first); a client asking for another gets the newest."""
LINE_BYTES = 1 << 20
"""The longest request line read; a longer one is answered with an error and skipped."""
REPLY_CHARS = 100_000
"""The longest tool answer sent back (a quick run's report is a few kB)."""
STRING_CHARS = 4096
"""The longest string argument a tool accepts."""
MAX_CONNECTIONS = 4
MAX_PENDING = 8
ADMIT_WAIT_S = 10.0
TYPES = {"string": (str,), "integer": (int,), "boolean": (bool,), "number": (int, float)}


def tool_name(name: str) -> str:
    """The name Claude Code gives one of our tools (for --allowedTools, and in its stream)."""
    return f"mcp__{NAME}__{name}"


def one_line(text: str, limit: int = 1000) -> str:
    return " ".join(str(text).split())[:limit]


def check_arguments(schema: dict, args) -> dict:
    """`args` when it fits the tool's input schema (an object of the listed properties, each of
    its type, strings bounded, the required ones present); else ToolError with what is wrong."""
    if not isinstance(args, dict):
        raise ToolError("arguments: expected a JSON object")
    properties = schema.get("properties", {})
    unknown = sorted(k for k in args if k not in properties)
    if unknown:
        raise ToolError(f"unknown argument {unknown[0]!r}; the arguments are: {', '.join(properties) or 'none'}")
    for key in schema.get("required", []):
        if key not in args:
            raise ToolError(f"{key}: missing")
    for key, value in args.items():
        kind = properties[key].get("type")
        if value is None or kind not in TYPES:
            continue
        if not isinstance(value, TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
            raise ToolError(f"{key}: expected {'an' if kind[0] in 'ai' else 'a'} {kind}")
        if isinstance(value, str) and len(value) > STRING_CHARS:
            raise ToolError(f"{key}: longer than {STRING_CHARS} characters")
        if kind == "integer" and abs(value) > 2**53:
            raise ToolError(f"{key}: out of range")
    return args


class ToolServer:
    """MCP (tools only) on a unix socket under `folder`, for the Claude Code session started
    after it: `config()` is its --mcp-config, `bind` the folder to show (read-only) in its
    sandbox, `admit(pid)` names the session's launcher once it runs. `tools` are schemas as the
    Messages API takes them ({name, description, input_schema}), `handlers` their functions
    (arguments -> text; ToolError for an answer that is an error). Use as a context manager."""

    def __init__(self, folder: Path, tools: list[dict], handlers: dict[str, Callable[[dict], str]]):
        self.tools = {t["name"]: t for t in tools}
        self.handlers = handlers
        self.folder = Path(folder)
        self.bind = self.folder / "sock"
        self.path = self.bind / "mcp.sock"
        self.launcher: int | None = None
        self.calls: list[str] = []
        """The tools called, in order (for the log)."""
        self._run = threading.Lock()  # one tool call at a time
        self._pending = threading.BoundedSemaphore(MAX_PENDING)  # calls waiting or running
        self._closing = threading.Event()
        self._admitted = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    # -- the socket --------------------------------------------------------------------------

    def start(self) -> ToolServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o711)
        self.bind.mkdir(exist_ok=True)
        os.chmod(self.bind, 0o755)
        self.path.unlink(missing_ok=True)  # a socket left by a killed run
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        folder = os.open(self.bind, os.O_RDONLY | os.O_DIRECTORY)
        try:  # through the folder's descriptor: a unix socket's path may not exceed 107 bytes
            self._sock.bind(f"/proc/self/fd/{folder}/{self.path.name}")
        finally:
            os.close(folder)
        os.chmod(self.path, 0o666)
        self._sock.listen(MAX_CONNECTIONS)
        self._sock.settimeout(0.2)  # accept() wakes up to see close()
        self._spawn(self._accept)
        return self

    def admit(self, launcher: int) -> None:
        """Connections are taken from processes of this launcher's tree only."""
        self.launcher = launcher
        self._admitted.set()

    def config(self) -> str:
        """The --mcp-config that starts our relay (inside the sandbox) on this socket."""
        relay = [sys.executable, "-I", "-m", "autosae.sandboxed.mcp_relay", str(self.path)]
        return json.dumps({"mcpServers": {NAME: {"type": "stdio", "command": relay[0], "args": relay[1:]}}})

    def names(self) -> list[str]:
        return [tool_name(n) for n in self.tools]

    def close(self) -> None:
        """Stop taking connections, close those open, and wait for a tool call under way (a
        quick run ends within its own time limit) so that nothing runs on after the session."""
        self._closing.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ToolServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            admitted = self._ours(conn)
            with self._lock:
                admitted = admitted and len(self._conns) < MAX_CONNECTIONS and not self._closing.is_set()
                if admitted:
                    self._conns.append(conn)
            if admitted:
                self._spawn(self._serve, conn)
            else:
                conn.close()

    def _ours(self, conn: socket.socket) -> bool:
        """Whether the peer is a process of the session's tree (its pid, as the kernel gives it
        in our PID namespace, has the session's launcher among its ancestors)."""
        if not self._admitted.wait(ADMIT_WAIT_S):  # a relay may connect before spawn() has returned
            return False
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        for _ in range(64):
            if pid == self.launcher:
                return True
            if pid <= 1:
                return False
            try:
                with open(f"/proc/{pid}/stat") as f:
                    text = f.read()
            except OSError:
                return False
            pid = int(text[text.rfind(")") + 2 :].split()[1])  # comm may hold spaces and parens
        return False

    # -- one connection ----------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        send = threading.Lock()

        def reply(message: dict) -> None:
            data = (json.dumps(message, default=str) + "\n").encode()
            with send:
                try:
                    conn.sendall(data)
                except OSError:
                    pass

        try:
            reader = conn.makefile("rb")
            while not self._closing.is_set():
                line = reader.readline(LINE_BYTES + 1)
                if not line:
                    return
                if len(line) > LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := reader.readline(LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass  # skip the rest of the over-long line
                    reply(_error(None, -32600, f"request longer than {LINE_BYTES} bytes"))
                    continue
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except (ValueError, RecursionError):
                    reply(_error(None, -32700, "parse error: not JSON"))
                    continue
                answer = self._handle(message, reply)
                if answer is not None:
                    reply(answer)
        except OSError:
            return
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    def _handle(self, message, reply: Callable[[dict], None]) -> dict | None:
        """The answer to one message (None for a notification, or a call answered later)."""
        if not isinstance(message, dict):
            return _error(None, -32600, "invalid request: expected a JSON object")
        ident = message.get("id")
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, (int, str)) or len(str(ident)) > 64):
            return _error(None, -32600, "invalid request: bad id")
        method, params = message.get("method"), message.get("params", {})
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(ident, -32600, "invalid request: expected JSON-RPC 2.0 with a method")
        if "id" not in message:
            return None  # a notification (notifications/initialized, cancelled, ...): nothing to answer
        if not isinstance(params, dict):
            return _error(ident, -32602, "params: expected an object")
        if method == "initialize":
            asked = params.get("protocolVersion")
            version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
            return _result(
                ident,
                {
                    "protocolVersion": version,
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": NAME, "version": _version()},
                },
            )
        if method == "ping":
            return _result(ident, {})
        if method == "tools/list":
            tools = [
                {"name": t["name"], "description": t["description"], "inputSchema": t["input_schema"]}
                for t in self.tools.values()
            ]
            return _result(ident, {"tools": tools})
        if method == "tools/call":
            if not self._pending.acquire(blocking=False):
                return _error(ident, -32000, f"more than {MAX_PENDING} tool calls at once")

            def run() -> None:
                try:
                    reply(_result(ident, self.call(params.get("name"), params.get("arguments", {}))))
                finally:
                    self._pending.release()

            self._spawn(run)
            return None
        return _error(ident, -32601, f"method not found: {one_line(method, 100)}")

    def call(self, name, args) -> dict:
        """A tools/call's result: the tool's text, or a one-line error (isError)."""
        if not isinstance(name, str) or name not in self.tools:
            return _text(f"unknown tool {one_line(str(name), 100)!r}; the tools are: {', '.join(self.tools)}", True)
        try:
            args = check_arguments(self.tools[name]["input_schema"], {} if args is None else args)
            with self._run:
                if self._closing.is_set():
                    raise ToolError("the session is over")
                self.calls.append(name)
                text = self.handlers[name](args)
        except ToolError as exc:
            return _text(one_line(redact(str(exc))), True)
        except Exception as exc:  # the tool broke, not the session: never this process
            return _text(one_line(redact(f"{name} failed: {type(exc).__name__}: {exc}")), True)
        text = redact(str(text))
        if len(text) > REPLY_CHARS:
            text = text[:REPLY_CHARS] + f"\n[... {len(text) - REPLY_CHARS} characters cut ...]"
        return _text(text, False)


def _result(ident, result: dict) -> dict:
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def _error(ident, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}


def _text(text: str, error: bool) -> dict:
    return {"content": [{"type": "text", "text": text}], "isError": error}


def _version() -> str:
    from autosae import __version__

    return __version__
