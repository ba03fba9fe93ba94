"""Dollar cost of a Messages-API response, from its usage.

Prices are USD per million tokens (Anthropic's list prices). Cache writes (5-minute
ephemeral) cost 1.25x the input price and cache reads 0.1x (0.025x for the Fable 5.1 and 5.2
family); a web search (Anthropic's server-side web_search tool) costs $10 per 1,000 on top
of the tokens of its results, and a web fetch only the tokens of the page. A model is priced
only by its own row (or its dated snapshot's): a new point release never borrows its
family's price. A model missing from the table is refused unless TASK.md
gives its price (`agent.options.price: {input: 3, output: 15}`), so that spending is never
uncounted or miscounted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autosae.agents.base import AgentError

PRICES = {  # model id: (input, output) USD per million tokens, or (input, output, cache-read multiplier)
    "claude-fable-5-2": (8.0, 40.0, 0.025),  # released 2026-11-09; cache reads $0.20
    "claude-mythos-5-2": (8.0, 40.0, 0.025),
    "claude-fable-5-1": (10.0, 50.0, 0.025),
    "claude-mythos-5-1": (10.0, 50.0, 0.025),
    "claude-fable-5": (10.0, 50.0),
    "claude-mythos-5": (10.0, 50.0),
    "claude-opus-5-5": (4.0, 20.0),
    "claude-opus-5": (5.0, 25.0),
    "claude-sonnet-5-5": (2.0, 10.0),
    "claude-sonnet-5": (2.0, 10.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
}
DEFAULT_MODEL = "claude-fable-5-2"
"""The strongest current Claude model the table knows (TASK.md agent.model's default)."""
DATED = re.compile(r"-(\d{8}|latest|0)$")
CACHE_WRITE, CACHE_READ = 1.25, 0.1
"""Cache writes and, unless the table says otherwise, cache reads, as multiples of the input price."""


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_read: float = CACHE_READ

    @classmethod
    def of(cls, model: str, override: dict | None = None) -> Price:
        if override:
            try:
                return cls(
                    float(override["input"]), float(override["output"]), float(override.get("cache_read", CACHE_READ))
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                raise AgentError(
                    "agent.options.price: expected {input: USD per Mtok, output: USD per Mtok} "
                    "(and optionally cache_read: the cache-read multiple of input, 0.1)"
                ) from None
        base = DATED.sub("", model)  # a dated snapshot (claude-sonnet-4-5-20250929) costs what its model does
        if base in PRICES:
            return cls(*PRICES[base])
        raise AgentError(
            f"no price known for model {model!r}; set agent.options.price "
            f"({{input: .., output: ..}}, USD per million tokens) in TASK.md"
        )

    def cost(self, usage: dict) -> float:
        per = 1e-6
        return (
            usage.get("input_tokens", 0) * self.input
            + usage.get("cache_creation_input_tokens", 0) * self.input * CACHE_WRITE
            + usage.get("cache_read_input_tokens", 0) * self.input * self.cache_read
            + usage.get("output_tokens", 0) * self.output
        ) * per + usage.get("web_search_requests", 0) * WEB_SEARCH_USD


TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
SERVER_TOOL_KINDS = ("web_search_requests", "web_fetch_requests")
"""Server-side tool calls, from a response's `usage.server_tool_use`: searches are billed per
call (WEB_SEARCH_USD); a fetch costs only the tokens of the text it brings into the context."""
USAGE_KINDS = TOKEN_KINDS + SERVER_TOOL_KINDS
WEB_SEARCH_USD = 10.0 / 1000
"""Anthropic's web search tool: $10 per 1,000 searches, on top of the tokens its results add."""


MAX_COUNT = 10**12
"""The most of one kind a usage counts (a count from a transcript may be forged: inf, 1e400)."""


def _count(source, kind: str) -> int:
    value = source.get(kind) if isinstance(source, dict) else getattr(source, kind, 0)
    try:
        return min(MAX_COUNT, max(0, int(value or 0)))
    except (TypeError, ValueError, OverflowError):
        return 0


def usage_dict(usage) -> dict[str, int]:
    """The token and server-tool counts of an SDK `Usage` or its dict (missing or None counts
    are 0; the server-tool counts sit in its nested `server_tool_use`)."""
    server = usage.get("server_tool_use") if isinstance(usage, dict) else getattr(usage, "server_tool_use", None)
    return {
        **{kind: _count(usage, kind) for kind in TOKEN_KINDS},
        **{kind: _count(server, kind) for kind in SERVER_TOOL_KINDS if _count(server, kind)},
    }


def add_usage(total: dict[str, int], usage: dict[str, int]) -> None:
    for kind in USAGE_KINDS:
        if kind in TOKEN_KINDS or usage.get(kind):
            total[kind] = total.get(kind, 0) + usage.get(kind, 0)
