"""The `claude_code` backend: Claude Code (the `claude` CLI) works in the sprint's worktree, the
way the original overnight loop ran.

Each phase is one `claude -p` session in print mode with stream-json output:
    propose:   read-only tools, run in a scratch folder that can read the project; answers JSON
    implement: Read, Write, Edit, Bash, Glob, Grep in the worktree (edits accepted)
    conclude:  read-only tools in the worktree; answers JSON
With TASK.md's agent.literature on for a phase (propose by default), WebSearch and WebFetch are
allowed there, WebFetch only on the allowed domains (`WebFetch(domain:...)` rules); elsewhere
both are disallowed, which takes them out of the model's tool list. Claude Code has no per-tool
use limit: the prompt states max_searches and max_fetches, and --max-turns and --max-budget-usd
bound the session.
Every line of the stream is appended (redacted) to the phase's transcript as it arrives. The
session's cost comes from the CLI's result line (or, for a session cut short, from the usage
of its messages at the price table's rates); `--max-budget-usd` and `--max-turns` bound it,
and a time limit kills the process group. After a kill, `--resume <session>` continues it.

The whole session runs in the OS sandbox (autosae.sandbox), with the network (Claude Code
must reach the API) but nothing else of the host: when implementing, the worktree and the
sprint's quick-runs folder (for `autosae train --uncounted`) read-write and the project's git
history read-only; when proposing, sprints/, reports/ and TASK.md
read-only and a scratch folder; when concluding, the worktree read-only; always a private
$HOME for Claude Code's own state, the system and the venv read-only, its own processes only.
Claude Code needs its credentials in its own environment, so its Bash tool can see
ANTHROPIC_API_KEY (and reach the network); every other secret is removed, and transcripts
are redacted.
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
from autosae.agents.literature import claude_code_tools, stream_sources
from autosae.agents.pricing import DEFAULT_MODEL, Price, add_usage, usage_dict
from autosae.agents.prompts import (
    conclude_prompt,
    conclusion_markdown,
    implement_prompt,
    library_paths,
    propose_prompt,
    system_prompt,
    turn_limits,
)
from autosae.agents.sandbox import git_view, redact, scrubbed_env
from autosae.agents.transcript import Transcript

INSTALL = (
    "the claude_code backend needs the Claude Code CLI: `npm install -g @anthropic-ai/claude-code` "
    "(then `claude --version`), or set agent.options.claude to its path; the anthropic backend needs "
    "only an API key"
)
READ_ONLY = "Read,Glob,Grep"
WRITE = "Read,Write,Edit,Bash,Glob,Grep"
QUICK_RUN_TIMEOUT_MS = 600_000
"""Claude Code's Bash tool stops a command after 2 minutes by default: too short for a quick run
(`autosae train --uncounted`, the parent beside it, and the model built on the first run)."""


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

        self.exe = shutil.which(claude)
        if self.exe is None:
            raise AgentError(INSTALL)
        self.exe = str(Path(self.exe).resolve())
        self.sandboxed = resolve(sandbox, lambda line: print(line, file=sys.stderr, flush=True))
        self.limits = limits or {}
        self.model, self.time_limit_s = model, float(time_limit_s)
        self.turns = turn_limits(max_turns)
        try:
            self.price: Price | None = Price.of(model, price)
        except AgentError:
            self.price = None  # the CLI reports its own cost; only a cut-short session needs the table
        self.cost_usd = 0.0
        self.tokens: dict[str, int] = {}

    def propose(self, ctx: AgentContext, idea: str | None = None) -> Proposal:
        ctx = dataclasses.replace(ctx, backend=self.name)
        scratch = Path(ctx.record_dir or ".") / "propose-scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        prompt = propose_prompt(ctx, idea) + f"\nThe project is at {ctx.project_root} (read it; change nothing).\n"
        root = Path(ctx.project_root or ".")
        shown = [p for p in (root / "sprints", root / "reports", root / "TASK.md") if p.exists()]
        library = [Path(p) for p in library_paths().values()]
        out = _json_answer(
            self.session(
                "propose",
                ctx,
                prompt,
                scratch,
                READ_ONLY,
                [str(root), *map(str, library)],
                writable=[scratch],
                readable=[*shown, *library],
            ),
            ("title", "idea", "hypothesis", "plan"),
        )
        return Proposal(
            title=str(out["title"])[:120],
            idea=idea or str(out["idea"]),
            hypothesis=str(out["hypothesis"]),
            plan=str(out["plan"]),
            parent=str(out.get("parent") or "") or None,
            origin=str(out.get("origin") or ""),
            sources=self.sources(ctx.record_dir or scratch, "propose"),
        )

    def sources(self, record_dir: Path | None, phase: str) -> list[dict[str, str]]:
        """The web sources of one session, from its stream-json transcript (the same after a
        kill and a resume): pages WebFetch fetched and links WebSearch returned."""
        return stream_sources(Transcript(Path(record_dir) / f"{phase}.jsonl").records()) if record_dir else []

    def implement(self, proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> None:
        ctx = dataclasses.replace(ctx, backend=self.name)
        worktree, folder, prompt = implement_prompt(proposal, sprint_dir, ctx)
        quick = [ctx.quick_dir] if ctx.quick_dir else []  # the sprint's own folder for `autosae train` runs
        for path in quick:
            path.mkdir(parents=True, exist_ok=True)
        self.session("implement", ctx, prompt, worktree, WRITE, [], writable=[worktree, *quick], git=True)

    def conclude(self, proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> Conclusion:
        ctx = dataclasses.replace(ctx, backend=self.name)
        worktree, prompt = conclude_prompt(proposal, results, verdict, ctx)
        return conclusion_markdown(
            _json_answer(
                self.session("conclude", ctx, prompt, worktree, READ_ONLY, [], readable=[worktree]),
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
        tools: str,
        dirs: list[str],
        writable: list[Path] = (),
        readable: list[Path] = (),
        git: bool = False,
    ) -> str:
        record = Transcript(Path(ctx.record_dir or cwd) / f"{phase}.jsonl")
        earlier = record.records()
        session_id = next((r.get("session_id") for r in earlier if r.get("session_id")), None)
        result = next((r for r in earlier if r.get("type") == "result"), None)
        if result is not None:  # finished before a kill: do not pay twice
            return self._account(result, earlier)
        system = system_prompt(ctx)
        web, denied = claude_code_tools(ctx.literature, phase)  # TASK.md agent.literature
        cmd = [
            self.exe,
            "-p",
            prompt if session_id is None else "autosae was interrupted; continue where you left off.",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            self.model,
            "--max-turns",
            str(self.turns[phase]),
            "--allowedTools",
            ",".join([tools, *web]),
            "--permission-mode",
            "acceptEdits" if tools == WRITE else "default",
            "--append-system-prompt",
            system,
        ]
        if denied:  # off: WebSearch and WebFetch leave the model's tool list
            cmd += ["--disallowedTools", ",".join(denied)]
        cmd += [arg for d in dirs for arg in ("--add-dir", d)]
        if session_id:
            cmd += ["--resume", session_id]
        if ctx.budget_usd is not None:
            if ctx.budget_usd <= 0:
                raise BudgetReached("the agent's budget for this sprint is spent")
            cmd += ["--max-budget-usd", f"{ctx.budget_usd:.4f}"]
        box = self._spawn(cmd, ctx, cwd, list(writable), list(readable), git)
        proc = box.proc
        timed_out = threading.Event()
        timer = threading.Timer(self.time_limit_s, lambda: (timed_out.set(), box.kill()))
        timer.start()
        lines = []
        try:
            for raw in proc.stdout:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                record.append(event)
                lines.append(event)
        finally:
            timer.cancel()
            proc.wait()
            stderr = proc.stderr.read()[-300:].decode(errors="replace").strip()
            box.close()
        result = next((r for r in reversed(lines) if r.get("type") == "result"), None)
        everything = earlier + lines
        if result is None:
            self._account(None, everything)
            why = (
                f"killed at the {self.time_limit_s:g} s time limit"
                if timed_out.is_set()
                else f"exit status {proc.returncode}"
            )
            if box.breach:
                why = f"stopped: {box.breach}"
            raise AgentError(f"Claude Code ended without a result ({why}): {redact(stderr)}")
        text = self._account(result, everything)
        if result.get("is_error") or result.get("subtype", "success") != "success":
            if "budget" in str(result.get("subtype", "")):
                raise BudgetReached(f"Claude Code stopped at its budget (${self.cost_usd:.2f})")
            raise AgentError(f"Claude Code stopped: {result.get('subtype')}")
        return text

    def _spawn(
        self, cmd: list[str], ctx: AgentContext, cwd: Path, writable: list[Path], readable: list[Path], git: bool
    ):
        """The Claude Code process in the sandbox: the network, a private $HOME (kept across a
        kill, so that --resume finds its session), only the folders named here, and with `git`
        the project's history read-only (see agents.sandbox.git_view)."""
        from autosae.sandbox import Limits, Policy, spawn

        home = Path(ctx.record_dir or cwd) / "claude-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in scrubbed_env().items() if k not in ("AUTOSAE_CACHE", "XDG_CACHE_HOME")}
        env.update(HOME=str(home), TMPDIR="/tmp", PATH=f"{Path(self.exe).parent}:{env.get('PATH', '/usr/bin:/bin')}")
        env.update(BASH_DEFAULT_TIMEOUT_MS=str(QUICK_RUN_TIMEOUT_MS), BASH_MAX_TIMEOUT_MS=str(6 * QUICK_RUN_TIMEOUT_MS))
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        git_dirs, replaced = git_view(ctx.project_root, home.parent) if git else ([], {})
        policy = Policy(
            cwd=cwd,
            env=env,
            writable=[*writable, home],
            readable=[*readable, *git_dirs, Path(self.exe).parent.parent],
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

    def _account(self, result: dict | None, events: list[dict]) -> str:
        usage: dict[str, int] = {}
        for e in events:
            if e.get("type") == "assistant":
                add_usage(usage, (e.get("message") or {}).get("usage") or {})
        add_usage(self.tokens, usage_dict((result or {}).get("usage") or usage))  # with web searches, if any
        if result is not None and result.get("total_cost_usd") is not None:
            self.cost_usd += float(result["total_cost_usd"])
        elif self.price is not None:
            self.cost_usd += self.price.cost(usage)
        return str((result or {}).get("result") or "")


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
