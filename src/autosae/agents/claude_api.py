"""The `anthropic` backend: Claude in a tool-use loop on the Messages API.

Each phase is one conversation with its own tools, ended by the model calling `finish`:
    propose:   view (the project's sprints/, reports/ and TASK.md, and the library; read-only),
               finish(title, idea, hypothesis, plan, parent)
    implement: bash, str_replace_based_edit_tool, run_experiment, amend_proposal, finish(summary)
    conclude:  view (the worktree, read-only), finish(checks, alternatives, conclusion, next_steps)
    review:    (the stuck ladder's step-back review, outside any sprint) view as when proposing,
               finish(untested_axes, blind_spots, argument_against)
With TASK.md's agent.literature on (propose by default, implement if listed), the phase also
gets Anthropic's server-side web_search and web_fetch (autosae.agents.literature): the API runs
them inside a response, their blocks go back unchanged, a paused turn ("pause_turn") is sent
back as it is to go on, and the pages fetched or cited become the proposal's sources.

Every message is appended to the phase's transcript before the next step, so a killed
conversation is continued where it stopped. The SDK retries 429/5xx/529 and time-outs; above
it, a longer back-off rides out an outage. Each response's usage is priced; reaching the
sprint's or the project's cap raises BudgetReached, which ends the sprint with a record.

This module is the conversation (the loop, its transcript, retries and costs); the tools' schemas,
their execution and the checks on `finish` are in autosae.agents.claude_tools.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autosae.agents.base import AgentContext, AgentError, BudgetReached, Conclusion, Proposal
from autosae.agents.claude_tools import (
    AMEND,
    BASH,
    EDITOR,
    EXPERIMENT,
    FINISH,
    VIEW,
    amend_tool,
    call,
    check_proposal,
    check_review,
    concluded,
    experiment_tool,
    implemented,
    string,
)
from autosae.agents.literature import FETCH_BETA, message_sources, needs_fetch_beta, server_tools, settle
from autosae.agents.pricing import DEFAULT_MODEL, Price, add_usage, usage_dict
from autosae.agents.prompts import (
    conclude_prompt,
    conclusion_markdown,
    implement_prompt,
    library_mounts,
    propose_prompt,
    review_prompt,
    system_prompt,
    turn_limits,
)
from autosae.agents.sandbox import PROPOSE_SHOWN, Files, Shell, redact
from autosae.agents.transcript import Transcript

RETRYABLE = (408, 409, 429, 500, 502, 503, 504, 529)


class Refused(AgentError):
    """The API refused a request as invalid or not permitted (400, 403): with web tools in it,
    perhaps the tools themselves (a model without them, an organisation without web search)."""


class AnthropicAgent:
    name = "anthropic"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        project: str | None = None,
        seed: int = 0,
        max_turns: dict | int | None = None,
        max_tokens: int = 16_000,
        bash_timeout_s: float = 600,
        max_retries: int = 4,
        request_timeout_s: float = 600,
        outage_s: float = 1800,
        backoff_s: float = 30,
        price: dict | None = None,
        base_url: str | None = None,
        sandbox: str = "required",
        limits: dict | None = None,
        **_ignored,
    ):
        import anthropic

        from autosae.sandbox import resolve

        key = os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise AgentError("ANTHROPIC_API_KEY is not set (the recipe backend works offline)")
        self.model, self.max_tokens = model, int(max_tokens)
        self.price = Price.of(model, price)
        self.turns = turn_limits(max_turns)
        self.bash_timeout_s, self.outage_s, self.backoff_s = float(bash_timeout_s), float(outage_s), float(backoff_s)
        self.client = anthropic.Anthropic(
            api_key=key, base_url=base_url, max_retries=int(max_retries), timeout=float(request_timeout_s)
        )
        self.cost_usd = 0.0
        self.tokens: dict[str, int] = {}
        self.sandboxed = resolve(sandbox, lambda line: print(line, file=sys.stderr, flush=True))
        self.limits = limits or {}
        self.messages: list[dict] = []
        """The last phase's conversation, as sent to the API."""
        self.web_refused: str | None = None
        """Why the API refused a request with the web tools in it (they are left out from then on)."""

    def sources(self, record_dir: Path | None, phase: str) -> list[dict[str, str]]:
        """The web sources of one phase, read back from its transcript (so that they are the
        same after a kill and a resume): the pages fetched and the search results cited."""
        lines = Transcript(Path(record_dir) / f"{phase}.jsonl").records() if record_dir else []
        return message_sources([r["message"] for r in lines if isinstance(r.get("message"), dict)])

    # -- the protocol ----------------------------------------------------------------------

    def propose(self, ctx: AgentContext, idea: str | None = None) -> Proposal:
        ctx = dataclasses.replace(ctx, backend=self.name)
        files = Files(Path(ctx.project_root or "."), writable=False, mounts=library_mounts(), shown=PROPOSE_SHOWN)
        prompt = propose_prompt(ctx, idea)
        out = self.converse(
            "propose",
            ctx,
            prompt,
            [VIEW, FINISH["propose"]],
            {"str_replace_based_edit_tool": files.call},
            check_proposal,
        )
        return Proposal(
            title=out["title"].strip()[:120],
            idea=idea or out["idea"].strip(),
            hypothesis=out["hypothesis"].strip(),
            plan=out["plan"].strip(),
            parent=(out.get("parent") or "").strip() or None,
            origin=(out.get("origin") or "").strip(),
            sources=message_sources(self.messages),
        )

    def implement(self, proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> None:
        ctx = dataclasses.replace(ctx, backend=self.name)
        worktree, folder, prompt = implement_prompt(proposal, sprint_dir, ctx)
        files = Files(worktree)

        shell = Shell(
            worktree,
            Path(ctx.record_dir or worktree.parent) / "shell-tmp",
            self.bash_timeout_s,
            self.sandboxed,
            ctx.project_root,
            int(self.limits.get("disk_gb", 8) * 2**30),
            int(self.limits.get("processes", 512)),
        )
        handlers = {
            "bash": lambda a: shell.run(string(a, "command")),
            "str_replace_based_edit_tool": files.call,
            "run_experiment": experiment_tool(ctx, files, folder),
        }
        amend = [AMEND] if ctx.amend is not None else []
        if amend:
            handlers["amend_proposal"] = amend_tool(ctx)
        try:
            self.converse(
                "implement",
                ctx,
                prompt,
                [BASH, EDITOR, EXPERIMENT, *amend, FINISH["implement"]],
                handlers,
                implemented(sprint_dir, folder),
            )
        finally:
            shutil.rmtree(shell.scratch, ignore_errors=True)  # the shell's private /tmp

    def conclude(self, proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> Conclusion:
        ctx = dataclasses.replace(ctx, backend=self.name)
        worktree, prompt = conclude_prompt(proposal, results, verdict, ctx)
        out = self.converse(
            "conclude",
            ctx,
            prompt,
            [VIEW, FINISH["conclude"]],
            {"str_replace_based_edit_tool": Files(worktree, writable=False).call},
            concluded(ctx),
        )
        return conclusion_markdown(out)

    def review(self, ctx: AgentContext, reason: str = "") -> dict:
        """The stuck ladder's step-back review: one conversation that reads the project (as
        proposing does, read-only) and answers with `finish`."""
        ctx = dataclasses.replace(ctx, backend=self.name)
        files = Files(Path(ctx.project_root or "."), writable=False, mounts=library_mounts(), shown=PROPOSE_SHOWN)
        return self.converse(
            "review",
            ctx,
            review_prompt(ctx, reason),
            [VIEW, FINISH["review"]],
            {"str_replace_based_edit_tool": files.call},
            check_review,
        )

    # -- the conversation --------------------------------------------------------------------

    def converse(
        self,
        phase: str,
        ctx: AgentContext,
        prompt: str,
        tools: list[dict],
        handlers: dict[str, Callable[[dict], str]],
        finish: Callable[[dict], Any],
    ) -> Any:
        record = Transcript(Path(ctx.record_dir or ".") / f"{phase}.jsonl") if ctx.record_dir else None
        system = system_prompt(ctx)
        messages, spent = self._restore(record, prompt)
        self.messages = messages  # the conversation (restored from the transcript): its sources
        self.cost_usd += spent
        turns = sum(m["role"] == "assistant" for m in messages)
        log = ctx.log or (lambda line: None)
        while turns < self.turns[phase]:
            if ctx.budget_usd is not None and spent >= ctx.budget_usd:
                raise BudgetReached(
                    f"the agent's budget of ${ctx.budget_usd:.2f} for this sprint is spent (${spent:.2f} in {phase})"
                )
            web = [] if self.web_refused else server_tools(ctx.literature, phase, messages)  # what is left
            try:
                response = self._create(system, [*web, *tools], messages, log)
            except Refused as exc:
                if not web:
                    raise
                self.web_refused = str(exc)  # the sprint goes on without the web, as with literature off
                log(
                    f"agent: {exc}; going on without web search and fetch (TASK.md agent.literature.enabled: false "
                    f"turns them off)"
                )
                continue
            usage = usage_dict(response.usage)
            cost = self.price.cost(usage)
            spent += cost
            self.cost_usd += cost
            add_usage(self.tokens, usage)
            turns += 1
            content = settle([_block(b) for b in response.content], response.stop_reason)
            uses = [dict(b) for b in content if b.get("type") == "tool_use"]  # as the model sent them
            for block in content:
                if block.get("type") == "tool_use" and not isinstance(block.get("input"), dict):
                    block["input"] = {}  # a malformed input is answered with an error, never sent back
            self._append(
                record,
                messages,
                {"role": "assistant", "content": content},
                usage=usage,
                cost_usd=round(cost, 6),
                stop_reason=response.stop_reason,
            )
            if not uses and response.stop_reason == "pause_turn":
                continue  # the API paused a long turn of server tools: sent back as it is, the turn goes on
            if not uses:
                self._append(
                    record,
                    messages,
                    {"role": "user", "content": "Continue with the tools; call `finish` when you are done."},
                )
                continue
            replies, result = [], None
            for use in uses:
                text, error, done = call(use, handlers, finish)
                replies.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": use["id"],
                        "content": text,
                        **({"is_error": True} if error else {}),
                    }
                )
                if done is not None:
                    result = done
            self._append(record, messages, {"role": "user", "content": replies})
            if result is not None:
                return result.value
        raise AgentError(f"{phase}: no `finish` after {self.turns[phase]} turns (agent.max_turns)")

    def _restore(self, record: Transcript | None, prompt: str) -> tuple[list[dict], float]:
        """The conversation so far (from the transcript, after a kill) and what it cost."""
        lines = record.records() if record else []
        messages = [r["message"] for r in lines if "message" in r]
        spent = sum(r.get("cost_usd", 0.0) for r in lines)
        for r in lines:
            add_usage(self.tokens, r.get("usage") or {})
        paused = next((r.get("stop_reason") for r in reversed(lines) if "message" in r), None) == "pause_turn"
        if not messages:
            self._append(record, messages, {"role": "user", "content": prompt})
        elif messages[-1]["role"] == "assistant" and not paused:  # a paused turn goes on as it is
            uses = [b for b in messages[-1]["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
            reply = [
                {
                    "type": "tool_result",
                    "tool_use_id": u["id"],
                    "is_error": True,
                    "content": "autosae was interrupted before this tool call finished; check the state "
                    "of the worktree and repeat the call if it is still needed",
                }
                for u in uses
            ] or "autosae was interrupted; continue where you left off."
            self._append(record, messages, {"role": "user", "content": reply})
        return messages, spent

    def _append(self, record: Transcript | None, messages: list[dict], message: dict, **extra) -> None:
        messages.append(message)
        if record is not None:
            record.append({"t": time.strftime("%Y-%m-%dT%H:%M:%S"), "message": message, **extra})

    def _create(self, system: str, tools: list[dict], messages: list[dict], log: Callable[[str], None]):
        """One Messages-API call. The SDK retries briefly; this rides out a longer outage."""
        import anthropic

        tools = copy.deepcopy(tools)
        tools[-1]["cache_control"] = {"type": "ephemeral"}  # tools + system: the stable prefix
        sent = copy.deepcopy(messages)
        last = sent[-1]
        if isinstance(last["content"], str):
            last["content"] = [{"type": "text", "text": last["content"]}]
        last["content"][-1]["cache_control"] = {"type": "ephemeral"}  # the conversation so far
        waited, delay = 0.0, self.backoff_s
        while True:
            try:
                return self.client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    tools=tools,
                    messages=sent,
                    system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                    **({"extra_headers": {"anthropic-beta": FETCH_BETA}} if needs_fetch_beta(tools, sent) else {}),
                )
            except anthropic.APIStatusError as exc:
                if exc.status_code not in RETRYABLE:
                    refused = Refused if exc.status_code in (400, 403) else AgentError
                    raise refused(
                        f"the Messages API refused the request ({exc.status_code}): {redact(str(exc))[:300]}"
                    ) from None
                why = f"HTTP {exc.status_code}"
            except anthropic.APIConnectionError as exc:  # includes time-outs
                why = type(exc).__name__
            if waited >= self.outage_s:
                raise AgentError(f"the Messages API has failed for {waited:.0f} s ({why}); giving up")
            log(f"agent: the Messages API failed ({why}); retrying in {delay:.0f} s")
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 300.0)


def _block(block) -> dict:
    """An SDK content block as the dict that goes back to the API. Server tool blocks
    (server_tool_use, web_search_tool_result, web_fetch_tool_result) go back whole; a text
    block keeps its citations (their encrypted indexes must go back), each with the fields
    the API takes (a title may be null, and stays)."""
    data = block.model_dump(exclude_none=True, warnings=False) if hasattr(block, "model_dump") else dict(block)
    keep = {
        "text": ("type", "text", "citations"),
        "tool_use": ("type", "id", "name", "input"),
        "thinking": ("type", "thinking", "signature"),
        "redacted_thinking": ("type", "data"),
    }
    out = {k: v for k, v in data.items() if k in keep.get(data.get("type"), data.keys())}
    if out.get("type") == "text" and out.get("citations") is not None:
        raw = getattr(block, "citations", None) or out["citations"]
        cites = [c.model_dump(warnings=False) if hasattr(c, "model_dump") else dict(c) for c in raw]
        out["citations"] = [
            {k: v for k, v in c.items() if v is not None or k in ("title", "document_title")} for c in cites
        ]
    return out
