"""Attacks on the `claude_code` backend's trusted side, from inside a session of the real Claude
Code CLI (its Bash tool, driven by the local fake Messages API): output that floods or forges
Claude Code's own stream; an executable whose folder would show $HOME; a quick run that would go
on unsandboxed inside the session; and autosae's MCP tool server fed what no client should send.

Each session is the real CLI in the real sandbox, a second or two; the sprint that does the same
end to end is tests/agents/test_claude_code.py."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autosae.agents.base import AgentContext, AgentError
from autosae.agents.claude_code import ClaudeCodeAgent, executable_bind
from autosae.agents.claude_stream import (
    LINE_BYTES,
    STREAM_BYTES,
    STREAM_LINES,
    TRANSCRIPT_BYTES,
    StreamReader,
    session_cost,
)
from autosae.agents.mcp_server import LINE_BYTES as REQUEST_BYTES
from autosae.agents.mcp_server import ToolServer
from autosae.agents.pricing import Price
from autosae.agents.sandbox import Shell, ToolError
from autosae.agents.transcript import Transcript
from autosae.sandbox import Limits, Policy, spawn
from tests.agents.fake_messages_api import FakeMessagesAPI
from tests.agents.test_claude_code import CLAUDE

pytestmark = pytest.mark.skipif(not CLAUDE, reason="the Claude Code CLI is not installed")

MODEL = "claude-fable-5-2"
CALL_USD = Price.of(MODEL).cost({"input_tokens": 1000, "output_tokens": 200})
"""What one answer of the fake API costs (its default usage)."""
FIND_CLAUDE = (
    "t=stream-; t=${t}json; for p in /proc/[0-9]*; do [ $p = /proc/$$ ] && continue; "
    'tr "\\0" "\\n" < $p/cmdline 2>/dev/null | grep -qx -- "$t" && echo ${p#/proc/}; done'
)
"""Prints the pid of every process of the session whose arguments include `stream-json`
(Claude Code itself), whose fd 1 is the stream autosae reads."""


GRAB = (
    "import ctypes, os, sys; "
    "fd = ctypes.CDLL(None, use_errno=True).syscall(438, os.pidfd_open(int(sys.argv[1])), 1, 0); "  # pidfd_getfd
    "fd >= 0 or sys.exit('pidfd_getfd: ' + os.strerror(ctypes.get_errno())); "
    "os.set_blocking(fd, True); os.dup2(fd, 1); os.execvp('bash', ['bash', '-c', sys.argv[2]])"
)
"""Takes fd 1 of a process of the session's own user (pidfd_getfd), makes it blocking (Node left
it non-blocking: a flood would stop at the first full pipe) and runs a command with it as
stdout. Reopening /proc/<pid>/fd/1 would need write permission on our pipe, which under a root
autosae is root's; taking the descriptor itself needs only the same user."""


def into_stream(writer: str) -> str:
    """A Bash command that runs `writer` with its output going into Claude Code's own stdout."""
    grab = f"python -c {shlex.quote(GRAB)}"
    skip = "[ $pid = 1 ] && continue"  # bwrap's own pid 1 holds the pipe too, but Claude Code reads none of it
    return f"for pid in $({FIND_CLAUDE}); do {skip}; {grab} $pid {shlex.quote(writer)} && break; done; echo written"


def session(tmp_path: Path, commands: list[str]) -> tuple[ClaudeCodeAgent, FakeMessagesAPI, Exception | None]:
    """One implement session of the real CLI whose model runs `commands` in Bash, one a turn."""

    def policy(body: dict) -> list[dict]:
        if not body.get("tools"):
            return [{"type": "text", "text": "ok"}]
        n = sum(m["role"] == "assistant" for m in body["messages"])
        if n < len(commands):
            return [{"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"command": commands[n]}}]
        return [{"type": "text", "text": "done"}]

    worktree = tmp_path / "worktree"
    worktree.mkdir(parents=True, exist_ok=True)
    with FakeMessagesAPI(policy) as api:
        old = {k: os.environ.get(k) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
        os.environ.update(ANTHROPIC_API_KEY="sk-ant-fake-stream-0123", ANTHROPIC_BASE_URL=api.url)
        try:
            agent = ClaudeCodeAgent(model=MODEL, claude=CLAUDE, project=str(tmp_path), time_limit_s=120)
            ctx = AgentContext(
                "", "tiny", "f1", 0, project_root=tmp_path, worktree=worktree, record_dir=tmp_path / "rec"
            )
            error = None
            try:
                agent.session("implement", ctx, "Implement this sprint's idea", worktree, [], writable=[worktree])
            except AgentError as exc:
                error = exc
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return agent, api, error


def answered(api: FakeMessagesAPI) -> int:
    """How many answers of the session's own conversation (with tools) the fake API gave."""
    return sum(bool(r.get("tools")) for r in api.requests)


JSON_LINE = 'printf \'{"type":"flood","pad":"%s"}\\n\' $(head -c 65000 /dev/zero | tr "\\0" a)'


@pytest.mark.parametrize(
    "writer, why",
    [
        (f'line=$({JSON_LINE}); yes "$line" | head -c 200000000', f"its transcript passed {TRANSCRIPT_BYTES:,}"),
        pytest.param(
            'line=$(head -c 65000 /dev/zero | tr "\\0" x); yes "$line" | head -c 200000000',
            f"{STREAM_BYTES:,} bytes",
            marks=pytest.mark.slow,
        ),
        pytest.param("yes x | head -c 200000000", f"its output passed {STREAM_LINES:,} lines", marks=pytest.mark.slow),
        (f"head -c {2 * LINE_BYTES} /dev/zero | tr '\\0' a", f"longer than {LINE_BYTES:,} bytes"),
    ],
    ids=["json-lines", "junk", "tiny-lines", "one-long-line"],
)
def test_a_flood_into_the_sessions_stream_stops_it_and_the_transcript_stays_bounded(tmp_path, writer, why):
    agent, api, error = session(tmp_path, [into_stream(writer)])
    assert isinstance(error, AgentError) and why in str(error), error
    assert "\n" not in str(error) and len(str(error)) < 700
    assert (tmp_path / "rec" / "implement.jsonl").stat().st_size <= TRANSCRIPT_BYTES + 4 * LINE_BYTES
    assert agent.cost_usd >= answered(api) * CALL_USD > 0  # what it used is charged all the same


def test_a_forged_result_line_cannot_lower_the_cost(tmp_path):
    """A child writes result lines of $0 and of a 4000-digit number of dollars (which no float
    holds: it once raised OverflowError on every resume) into Claude Code's stdout, then kills
    Claude Code, so that no true result line follows."""
    forged = [
        json.dumps({"type": "result", "subtype": "success", "is_error": False, "total_cost_usd": cost, "result": "F"})
        for cost in (0, 10**3999)
    ]
    writer = "; ".join(f"echo {shlex.quote(line)}" for line in forged)
    kill = into_stream(writer) + f"; kill -9 $({FIND_CLAUDE})"
    agent, api, error = session(tmp_path, [kill])
    assert isinstance(error, AgentError) and "exited with status 137 after a result line" in str(error), error
    assert agent.cost_usd >= answered(api) * CALL_USD > 0, agent.cost_usd  # the forged 0 set nothing
    assert agent.cost_usd < 1, agent.cost_usd  # and the unbelievable number is ignored, not a crash


@pytest.mark.parametrize(
    "flood, why",
    [
        (f'line=$({JSON_LINE}); yes "$line" | head -c 200000000', f"its transcript passed {TRANSCRIPT_BYTES:,}"),
        (f"head -c {2 * LINE_BYTES} /dev/zero | tr '\\0' a", f"longer than {LINE_BYTES:,} bytes"),
    ],
    ids=["json-lines", "one-long-line"],
)
def test_the_stream_reader_bounds_a_real_flood(tmp_path, flood, why):
    """The bounds themselves, whatever the OS allows: the session's reader on the stdout of a
    sandboxed process that floods it, as a child able to reach Claude Code's stdout would."""
    work = tmp_path / "work"
    work.mkdir()
    policy = Policy(cwd=work, env={"PATH": "/usr/bin:/bin"}, writable=[work])
    with spawn(["bash", "-c", flood], policy, Limits(), True, stdout=subprocess.PIPE) as box:
        reader = StreamReader(Transcript(tmp_path / "implement.jsonl"))
        reader.run(box.proc.stdout)
        box.kill()
        box.proc.stdout.close()
    assert reader.stopped is not None and why in reader.stopped, reader.stopped
    kept = tmp_path / "implement.jsonl"
    assert (kept.stat().st_size if kept.exists() else 0) <= TRANSCRIPT_BYTES + 4 * LINE_BYTES


def test_the_cost_is_the_largest_any_line_supports():
    """Forged lines before, among and after the true ones, as session_cost reads a transcript."""
    price = Price.of(MODEL)

    def message(ident: str, output: int) -> dict:
        return {"type": "assistant", "message": {"id": ident, "usage": {"input_tokens": 1000, "output_tokens": output}}}

    def delta(output) -> dict:
        return {"type": "stream_event", "event": {"type": "message_delta", "usage": {"output_tokens": output}}}

    def start(ident: str) -> dict:
        return {"type": "stream_event", "event": {"type": "message_start", "message": {"id": ident, "usage": {}}}}

    true = [start("m1"), message("m1", 1), message("m1", 1), delta(200), start("m2"), message("m2", 1), delta(200)]
    real = {"type": "result", "total_cost_usd": 0.5, "usage": {"input_tokens": 2000, "output_tokens": 400}}
    forged = [
        {"type": "result", "total_cost_usd": 0, "usage": {"input_tokens": 0}},
        {"type": "result", "total_cost_usd": float("nan")},
        {"type": "result", "total_cost_usd": "-1"},
        message("m1", 0),  # the same message again, with less
        delta(float("inf")),
        {"type": "assistant", "message": {"id": "m3", "usage": {"input_tokens": 10**400}}},
    ]
    estimate = 2 * CALL_USD
    assert session_cost(true, price)[0] == pytest.approx(estimate)  # killed before its result: what it used
    assert session_cost([*forged, *true, real, *forged], price)[0] >= 0.5
    cost, tokens = session_cost([*true, *forged], price)
    assert cost >= estimate and tokens["output_tokens"] == 400 and tokens["input_tokens"] >= 2000


def test_the_sandbox_shows_only_the_executables_package_or_the_file_alone(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    package = Path(CLAUDE).resolve().parents[1]  # node_modules/@anthropic-ai/claude-code
    assert json.loads((package / "package.json").read_text())["name"] == "@anthropic-ai/claude-code"
    (home / "bin" / "claude").symlink_to(Path(CLAUDE).resolve())  # a link from ~/bin: the npm package alone
    assert executable_bind(str(home / "bin" / "claude"), tmp_path / "project") == package
    lone = home / "bin" / "claude-copy"  # a file copied into ~/bin: that file alone, never ~
    lone.write_text("#!/bin/sh\n")
    assert executable_bind(str(lone), tmp_path / "project") == lone

    # a "package" that is $HOME itself, or that holds the autosae cache or the project: refused in one line
    (home / "package.json").write_text(json.dumps({"name": "@anthropic-ai/claude-code"}))
    (home / "cli.js").write_text("")
    cache = Path(os.environ["AUTOSAE_CACHE"])
    shared = cache.parent / "claude-pkg"
    (shared / "bin").mkdir(parents=True, exist_ok=True)
    (shared / "package.json").write_text(json.dumps({"name": "@anthropic-ai/claude-code"}))
    (shared / "bin" / "claude").write_text("")
    for exe, project, what in [
        (home / "cli.js", None, "your home folder"),
        (shared / "bin" / "claude", None, "the autosae cache"),
        (shared / "bin" / "claude", shared / "project", "the project"),
        (cache / "keys" / "claude", None, "the autosae cache"),
    ]:
        if exe == shared / "bin" / "claude" and what == "the autosae cache":
            monkeypatch.setenv("AUTOSAE_CACHE", str(shared / "cache"))
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.touch()
        with pytest.raises(AgentError) as refused:
            executable_bind(str(exe), project)
        assert what in str(refused.value) and "\n" not in str(refused.value), refused.value
        monkeypatch.setenv("AUTOSAE_CACHE", str(cache))


def test_a_quick_run_inside_an_agents_sandbox_refuses_instead_of_running_bare(tmp_path):
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    shell = Shell(worktree, tmp_path / "scratch", timeout_s=120)
    train = "autosae train lista_matryoshka --uncounted --seeds 1 --samples 2048 --out /tmp/run"
    # as it is, and with the marker autosae puts in the environment taken away: bubblewrap cannot nest either way
    out = shell.run(f"{train} --sandbox off; env -u AUTOSAE_INSIDE_SANDBOX {train} --sandbox auto")
    refusals = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(refusals) == 2 and all("refuses to run here" in r for r in refusals), out
    assert "sandboxed: NO" not in out and "Traceback" not in out and "[exit status 1]" in out, out


# -- the tool server, fed what no Claude Code would send -------------------------------------


class Client:
    """A raw connection to the tool server, one JSON-RPC line at a time."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.sock.settimeout(10)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> dict:
        """The answer to one request line; {} when the server closed the connection instead."""
        try:
            self.sock.sendall(data)
            line = self.reader.readline()
        except ConnectionError:  # reset, or a broken pipe when it closed before we wrote
            return {}
        return json.loads(line) if line else {}

    def call(self, ident: int, name: str, arguments) -> dict:
        params = {"name": name, "arguments": arguments}
        message = {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}
        return self.send((json.dumps(message) + "\n").encode())["result"]


def test_the_tool_server_checks_and_bounds_every_request_and_never_fails_itself(tmp_path):
    def broken(args: dict) -> str:
        raise RuntimeError("boom\nwith a second line")

    def refuse(args: dict) -> str:
        raise ToolError("no such file")

    tool = {"name": "run_experiment", "description": "d", "input_schema": {"type": "object", "properties": {}}}
    schema = {"type": "object", "properties": {"seed": {"type": "integer"}, "variant": {"type": "string"}}}
    tools = [{**tool, "input_schema": schema}, {**tool, "name": "broken"}, {**tool, "name": "refuse"}]
    handlers = {"run_experiment": lambda a: json.dumps(a), "broken": broken, "refuse": refuse}
    with ToolServer(tmp_path / "mcp", tools, handlers) as server:
        assert oct(server.path.stat().st_mode & 0o777) == "0o666" and oct(server.bind.stat().st_mode & 0o777) == "0o755"
        assert oct((tmp_path / "mcp").stat().st_mode & 0o777) == "0o711"
        # a process outside the session's tree (here: the session is another process) is closed unread
        other = subprocess.Popen(["sleep", "30"])
        try:
            server.admit(other.pid)
            assert Client(server.path).send(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n') == {}
        finally:
            other.kill()
            other.wait()
        server.admit(os.getpid())
        client = Client(server.path)
        init = client.send(
            b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}\n'
        )
        assert init["result"]["protocolVersion"] == "2025-11-25"
        assert client.send(b"not json\n")["error"]["code"] == -32700
        assert client.send(b"[1, 2]\n")["error"]["code"] == -32600
        assert client.send(b"{" + b" " * (REQUEST_BYTES + 10) + b"}\n")["error"]["code"] == -32600  # skipped whole
        assert client.send(b'{"jsonrpc":"2.0","id":2,"method":"resources/list"}\n')["error"]["code"] == -32601
        assert client.call(3, "run_experiment", {"seed": 4}) == {
            "content": [{"type": "text", "text": '{"seed": 4}'}],
            "isError": False,
        }
        for args, why in [
            ({"seed": "4"}, "seed: expected an integer"),
            ({"seed": True}, "seed: expected an integer"),
            ({"seed": 10**400}, "seed: out of range"),
            ({"variant": "x" * 5000}, "variant: longer than"),
            ({"exec": "rm -rf /"}, "unknown argument 'exec'"),
            ([1], "arguments: expected a JSON object"),
        ]:
            result = client.call(4, "run_experiment", args)
            assert result["isError"] and why in result["content"][0]["text"], (args, result)
        for name, why in [("broken", "broken failed: RuntimeError: boom with a second line"), ("refuse", "no such")]:
            result = client.call(5, name, {})
            assert result["isError"] and result["content"][0]["text"].startswith(why), result
            assert "\n" not in result["content"][0]["text"]
        assert client.call(6, "nope", {})["isError"]
        assert client.call(7, "run_experiment", {"seed": 1})["isError"] is False  # still serving
    assert not server.path.exists()


def test_the_relay_copies_both_ways_inside_the_sandbox_and_nothing_else_connects(tmp_path):
    """Claude Code's side of the tools: the relay, run as Claude Code runs it, in a sandbox
    that shows only the socket's folder (cheap: no Claude Code)."""
    from autosae.sandbox import Limits, Policy, run

    tool = {"name": "t", "description": "d", "input_schema": {"type": "object", "properties": {}}}
    with ToolServer(tmp_path / "mcp", [tool], {"t": lambda a: "pong"}) as server:
        relay = [sys.executable, "-I", "-m", "autosae.sandboxed.mcp_relay", str(server.path)]
        request = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}'
        policy = Policy(cwd=server.bind, env={"PATH": "/usr/bin:/bin"}, readable=[server.bind])
        argv = ["sh", "-c", f"(echo '{request}'; sleep 1) | {shlex.join(relay)}"]
        server.admit(os.getpid())  # our own tree: the sandbox's launcher is our child
        result = run(argv, policy, Limits(), True, timeout_s=30)
    assert '"text": "pong"' in result.output.decode(), result.output
