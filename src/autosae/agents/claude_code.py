"""The `claude_code` backend: Claude Code (the `claude` CLI) works in the sprint's worktree, the
way the original overnight loop ran.

Each phase is one `claude -p` session in print mode with stream-json output, offered only the
built-in tools it needs (`--tools`, and the same list in --allowedTools):
    propose:   Read, Glob, Grep; run in a scratch folder that can read the project; answers JSON
    implement: Read, Write, Edit, Bash, Glob, Grep in the worktree (edits accepted)
    conclude:  Read, Glob, Grep in the worktree; answers JSON
    review:    (the stuck ladder's step-back review, outside any sprint) as propose; answers JSON
No sub-agents, schedulers, notebooks or background tools in any phase, and no Bash but while
implementing. With TASK.md's agent.literature on for a phase (propose by default), WebSearch and
WebFetch are offered there too, WebFetch only on the allowed domains (`WebFetch(domain:...)`
rules); elsewhere neither is. Claude Code has no per-tool use limit: the prompt states
max_searches and max_fetches, and --max-turns and --max-budget-usd bound the session.

autosae's own tools reach the session over MCP (autosae.agents.mcp_server), served from this
process, outside the session's sandbox: `past_results` in every phase, `amend_proposal` (pilot
notes, recorded beside the proposal) and `run_experiment` while implementing, which trains the variant here in a sandbox of its own, with the shared
model cache and parent cache (Claude Code's sandbox cannot nest another one, and sees no
cache). `--strict-mcp-config`: no other MCP server loads.

Every line of the stream is appended (redacted) to the phase's transcript as it arrives, within
bounds (autosae.agents.claude_stream), and nothing in it is believed on its word: the cost is
the larger of what the CLI's result lines report and the price table's cost of the tokens its
messages report, so the model must be priced (the table, or agent.options.price).
`--max-budget-usd` and `--max-turns` bound the session, and a time limit kills its process
group. After a kill, `--resume <session>` continues it.

The whole session runs in the OS sandbox (autosae.sandbox), with the network (Claude Code
must reach the API) but nothing else of the host: when implementing, the worktree read-write
and the project's git history read-only; when proposing, sprints/, reports/ and TASK.md
read-only and a scratch folder; when concluding, the worktree read-only; always a private
$HOME per phase for Claude Code's own state, the system and the venv read-only, the folder of
autosae's tool socket, its own processes only, and of the executable only its npm package
folder (or the file alone): never $HOME, the cache, the project or the secrets
(`executable_bind`). Claude Code needs its credentials in its own environment, so its Bash tool
can see ANTHROPIC_API_KEY (and reach the network); every other secret is removed, and
transcripts are redacted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from autosae.agents.base import AgentContext, AgentError, BudgetReached, Conclusion, Proposal
from autosae.agents.claude_stream import StreamReader, drain_tail, session_cost
from autosae.agents.claude_tools import AMEND, EXPERIMENT, RESULTS, amend_tool, experiment_tool, results_tool
from autosae.agents.literature import claude_code_tools, stream_sources
from autosae.agents.mcp_server import ToolServer
from autosae.agents.pricing import DEFAULT_MODEL, Price, add_usage
from autosae.agents.prompts import (
    conclude_prompt,
    conclusion_markdown,
    implement_prompt,
    library_paths,
    propose_prompt,
    review_prompt,
    system_prompt,
    turn_limits,
)
from autosae.agents.sandbox import GIT_SAFE, INSIDE_SANDBOX, Files, git_view, redact, scrubbed_env
from autosae.agents.transcript import Transcript

INSTALL = (
    "the claude_code backend needs the Claude Code CLI: `npm install -g @anthropic-ai/claude-code` "
    "(then `claude --version`), or set agent.options.claude to its path; the anthropic backend needs "
    "only an API key"
)
PHASE_TOOLS = {
    "propose": ("Read", "Glob", "Grep"),
    "implement": ("Read", "Write", "Edit", "Bash", "Glob", "Grep"),
    "conclude": ("Read", "Glob", "Grep"),
    "review": ("Read", "Glob", "Grep"),
}
"""Claude Code's built-in tools offered in each phase (besides the web tools, where TASK.md's
agent.literature allows them there, and autosae's own over MCP)."""
PACKAGES = re.compile(r"^@anthropic-ai/claude-code(-[a-z0-9-]+)?$")
"""Claude Code's npm package and its per-platform packages (which hold the native executable)."""
MCP_TOOL_TIMEOUT_MS = 2 * 3600 * 1000
"""How long Claude Code waits for one of our tools: a quick run and its parent, each bounded by
harness.experiment.MAX_EXPERIMENT_S, and the wait for an earlier call to finish."""


def executable_bind(exe: str, project: Path | None) -> Path:
    """What of the `claude` executable its sandbox must show: the folder of the npm package it
    lies in (the nearest folder above it with a package.json, when that names Claude Code),
    else the resolved file alone. Never $HOME, /, or a folder that holds $HOME, the autosae
    cache, the project or its secrets, nor anything inside the cache: AgentError, one line."""
    from autosae.bench.cache import cache_root
    from autosae.harness.seal import key_path

    path = Path(exe).resolve()
    bind = path
    for folder in path.parents:
        if (folder / "package.json").is_file():
            try:
                with open(folder / "package.json", "rb") as f:
                    name = json.loads(f.read(1 << 20)).get("name")
            except (OSError, ValueError, AttributeError, RecursionError):
                name = None
            if isinstance(name, str) and PACKAGES.match(name):
                bind = folder
            break
    home, cache = Path(os.path.expanduser("~")), cache_root()
    guarded = {
        "your home folder": [home, home.resolve()],
        "the autosae cache (models, secrets, the results key)": [cache, cache.resolve(), key_path().parent],
        "the project": [Path(project), Path(project).resolve()] if project else [],
    }
    why = next(
        (f"is or holds {what}" for what, paths in guarded.items() for p in paths if bind == p or bind in p.parents),
        None,
    )
    if why is None and (cache in bind.parents or cache.resolve() in bind.parents):
        why = "lies in the autosae cache"
    if why is None and bind == Path(bind.anchor):
        why = "is the root of the filesystem"
    if why is not None:
        raise AgentError(
            f"refusing to run Claude Code from {exe}: its sandbox would have to show {bind}, which {why}; "
            f"install it with npm (then only its package folder is shown), or as a file of its own elsewhere"
        )
    return bind


class ClaudeCodeAgent:
    name = "claude_code"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        project: str | None = None,
        max_turns: dict | int | None = None,
        claude: str = "claude",
        time_limit_s: float = 3600,
        price: dict | None = None,
        sandbox: str = "required",
        limits: dict | None = None,
        **_ignored,
    ):
        from autosae.sandbox import resolve

        exe = shutil.which(claude)
        if exe is None:
            raise AgentError(INSTALL)
        self.exe = str(Path(exe).resolve())
        self.bind = executable_bind(exe, Path(project) if project else None)
        self.price = Price.of(model, price)  # the stream's own cost figure may be forged: see claude_stream
        self.sandboxed = resolve(sandbox, lambda line: print(line, file=sys.stderr, flush=True))
        self.limits = limits or {}
        self.model, self.time_limit_s = model, float(time_limit_s)
        self.turns = turn_limits(max_turns)
        self.cost_usd = 0.0
        self.tokens: dict[str, int] = {}

    def propose(self, ctx: AgentContext, idea: str | None = None) -> Proposal:
        ctx = dataclasses.replace(ctx, backend=self.name)
        out = _json_answer(
            self.reading("propose", ctx, propose_prompt(ctx, idea)), ("title", "idea", "hypothesis", "plan")
        )
        return Proposal(
            title=str(out["title"])[:120],
            idea=idea or str(out["idea"]),
            hypothesis=str(out["hypothesis"]),
            plan=str(out["plan"]),
            parent=str(out.get("parent") or "") or None,
            origin=str(out.get("origin") or ""),
            sources=self.sources(ctx.record_dir or Path(".") / "propose-scratch", "propose"),
        )

    def review(self, ctx: AgentContext, reason: str = "") -> dict:
        """The stuck ladder's step-back review: a session that reads the project as proposing
        does, read-only, and answers JSON (checked by autosae.sprint.ladder.clean_review)."""
        ctx = dataclasses.replace(ctx, backend=self.name)
        answer = self.reading("review", ctx, review_prompt(ctx, reason))
        return _json_answer(answer, ("untested_axes", "blind_spots", "argument_against"))

    def reading(self, phase: str, ctx: AgentContext, prompt: str) -> str:
        """A session that only reads the project (sprints/, reports/, TASK.md) and the library,
        from a scratch folder of its own: proposing and the review."""
        scratch = Path(ctx.record_dir or ".") / f"{phase}-scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        prompt += f"\nThe project is at {ctx.project_root} (read it; change nothing).\n"
        root = Path(ctx.project_root or ".")
        shown = [p for p in (root / "sprints", root / "reports", root / "TASK.md") if p.exists()]
        library = [Path(p) for p in library_paths().values()]
        return self.session(
            phase,
            ctx,
            prompt,
            scratch,
            [str(root), *map(str, library)],
            writable=[scratch],
            readable=[*shown, *library],
        )

    def sources(self, record_dir: Path | None, phase: str) -> list[dict[str, str]]:
        """The web sources of one session, from its stream-json transcript (the same after a
        kill and a resume): pages WebFetch fetched and links WebSearch returned."""
        return stream_sources(Transcript(Path(record_dir) / f"{phase}.jsonl").records()) if record_dir else []

    def implement(self, proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> None:
        ctx = dataclasses.replace(ctx, backend=self.name)
        worktree, folder, prompt = implement_prompt(proposal, sprint_dir, ctx)
        experiment = {"run_experiment": experiment_tool(ctx, Files(worktree), folder)} if ctx.experiment else {}
        amend = {"amend_proposal": amend_tool(ctx)} if ctx.amend is not None else None
        self.session(
            "implement",
            ctx,
            prompt,
            worktree,
            [],
            writable=[worktree],
            git=True,
            parent=proposal.parent,
            amend_proposal=amend,
            **experiment,
        )

    def conclude(self, proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> Conclusion:
        ctx = dataclasses.replace(ctx, backend=self.name)
        worktree, prompt = conclude_prompt(proposal, results, verdict, ctx)
        return conclusion_markdown(
            _json_answer(
                self.session("conclude", ctx, prompt, worktree, [], readable=[worktree], parent=proposal.parent),
                ("checks", "alternatives", "conclusion", "next_steps"),
            )
        )

    # -- one Claude Code session ----------------------------------------------------------

    def session(
        self,
        phase: str,
        ctx: AgentContext,
        prompt: str,
        cwd: Path,
        dirs: list[str],
        writable: list[Path] = (),
        readable: list[Path] = (),
        git: bool = False,
        parent: str | None = None,
        run_experiment=None,
        amend_proposal: dict | None = None,
    ) -> str:
        record_dir = Path(ctx.record_dir or cwd)
        record = Transcript(record_dir / f"{phase}.jsonl")
        earlier = record.records()
        session_id = next((r.get("session_id") for r in earlier if isinstance(r.get("session_id"), str)), None)
        if any(r.get("type") == "result" for r in earlier):  # finished before a kill: do not pay twice
            return self._account(earlier)
        web, denied = claude_code_tools(ctx.literature, phase)  # TASK.md agent.literature
        builtin = [*PHASE_TOOLS[phase], *dict.fromkeys(w.split("(")[0] for w in web)]
        tools, handlers = [RESULTS], {"past_results": results_tool(ctx, parent)}
        if run_experiment is not None:
            tools.append(EXPERIMENT)
            handlers["run_experiment"] = run_experiment
        if amend_proposal:  # the implement phase's pilot notes, recorded beside the proposal
            tools.append(AMEND)
            handlers.update(amend_proposal)
        server = ToolServer(record_dir / f"mcp-{phase}", tools, handlers)
        cmd = [
            self.exe,
            "-p",
            prompt if session_id is None else "autosae was interrupted; continue where you left off.",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",  # a message's final usage (claude_stream)
            "--model",
            self.model,
            "--max-turns",
            str(self.turns[phase]),
            "--tools",
            ",".join(builtin),
            "--allowedTools",
            ",".join([*PHASE_TOOLS[phase], *web, *server.names()]),
            "--permission-mode",
            "acceptEdits" if "Write" in PHASE_TOOLS[phase] else "default",
            "--append-system-prompt",
            system_prompt(ctx),
            "--mcp-config",
            server.config(),
            "--strict-mcp-config",
            "--setting-sources",
            "user",
        ]
        if denied:  # blocked domains (or the web tools themselves, which --tools already leaves out)
            cmd += ["--disallowedTools", ",".join(denied)]
        cmd += [arg for d in dirs for arg in ("--add-dir", d)]
        if session_id:
            cmd += ["--resume", session_id]
        if ctx.budget_usd is not None:
            if ctx.budget_usd <= 0:
                raise BudgetReached("the agent's budget for this sprint is spent")
            cmd += ["--max-budget-usd", f"{ctx.budget_usd:.4f}"]
        with server:
            reader, stopped, returncode, timed_out, breach, stderr = self._run(
                phase, cmd, ctx, cwd, [*writable], [*readable, server.bind], git, record, server
            )
        everything = earlier + reader.events
        text = self._account(everything)
        result = next((r for r in reversed(reader.events) if r.get("type") == "result"), None)
        if stopped:
            raise AgentError(f"Claude Code's session was stopped: {stopped}")
        if result is None:
            why = (
                f"stopped: {breach}"
                if breach
                else f"killed at the {self.time_limit_s:g} s time limit"
                if timed_out
                else f"exit status {returncode}"
            )
            raise AgentError(f"Claude Code ended without a result ({why}): {redact(stderr)}"[:600])
        if returncode != 0 and not (result.get("is_error") or result.get("subtype") != "success"):
            # the CLI exits 0 after a success; a result line from a session killed or crashed
            # afterwards, or written by one of its children, is not its answer
            raise AgentError(f"Claude Code exited with status {returncode} after a result line: {redact(stderr)}"[:600])
        if result.get("is_error") or result.get("subtype", "success") != "success":
            if "budget" in str(result.get("subtype", "")):
                raise BudgetReached(f"Claude Code stopped at its budget (${self.cost_usd:.2f})")
            raise AgentError(f"Claude Code stopped: {str(result.get('subtype'))[:100]}")
        return text

    def _run(self, phase, cmd, ctx, cwd, writable, readable, git, record, server):
        """Start the session, read its stream into the transcript within bounds, and wait for
        it: (the reader, why it was stopped, exit status, timed out, a sandbox breach, stderr's tail)."""
        box = self._spawn(phase, cmd, ctx, cwd, writable, readable, git)
        server.admit(box.pid)
        timed_out = threading.Event()
        timer = threading.Timer(self.time_limit_s, lambda: (timed_out.set(), box.kill()))
        timer.start()
        drainer, tail = drain_tail(box.proc.stderr)
        reader = StreamReader(record)
        try:
            reader.run(box.proc.stdout)
        finally:
            if reader.stopped:
                box.kill()
            timer.cancel()
            box.proc.wait()
            box.close()
            drainer.join(timeout=5)
        stderr = bytes(tail)[-300:].decode(errors="replace").strip()
        return reader, reader.stopped, box.proc.returncode, timed_out.is_set(), box.breach, " ".join(stderr.split())

    def _spawn(
        self, phase: str, cmd: list[str], ctx: AgentContext, cwd: Path, writable: list[Path], readable: list[Path], git
    ):
        """The Claude Code process in the sandbox: the network, a private $HOME for the phase
        (kept across a kill, so that --resume finds its session), only the folders named here,
        and with `git` the project's history read-only (see agents.sandbox.git_view)."""
        from autosae.sandbox import Limits, Policy, spawn

        home = Path(ctx.record_dir or cwd) / "claude-home" / phase
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in scrubbed_env().items() if k not in ("AUTOSAE_CACHE", "XDG_CACHE_HOME")}
        env.update(HOME=str(home), TMPDIR="/tmp", PATH=f"{Path(self.exe).parent}:{env.get('PATH', '/usr/bin:/bin')}")
        env.update(MCP_TOOL_TIMEOUT=str(MCP_TOOL_TIMEOUT_MS), **INSIDE_SANDBOX, **GIT_SAFE)
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        git_dirs, replaced = git_view(ctx.project_root, home.parent) if git else ([], {})
        policy = Policy(
            cwd=cwd,
            env=env,
            writable=[*writable, home],
            readable=[*readable, *git_dirs, self.bind],
            read_only_within=[p for p in (cwd / ".git",) if p.exists() and cwd in writable],
            replaced=replaced,
            tmp=None,
            network=True,
        )
        disk = int(float(self.limits.get("disk_gb", 8)) * 2**30)
        limits = Limits(
            memory_bytes=8 << 30,
            processes=int(self.limits.get("processes", 512)),
            disk_bytes=disk,
            file_bytes=min(disk, 4 << 30),
        )
        return spawn(cmd, policy, limits, self.sandboxed, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _account(self, events: list[dict]) -> str:
        """Charge one phase's session (claude_stream.session_cost) and return its answer."""
        cost, tokens = session_cost(events, self.price)
        self.cost_usd += cost
        add_usage(self.tokens, tokens)
        result = next((r for r in reversed(events) if r.get("type") == "result"), None) or {}
        return str(result.get("result") or "")


def _json_answer(text: str, keys: tuple[str, ...]) -> dict:
    """The last JSON object in the answer that has all `keys`."""
    decoder = json.JSONDecoder()
    for start in reversed([m.start() for m in re.finditer(r"\{", text)]):
        try:
            data, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(data, dict) and all(data.get(k) not in (None, "", []) for k in keys):
            return data
    raise AgentError(f"Claude Code's answer has no JSON object with {', '.join(keys)}")
