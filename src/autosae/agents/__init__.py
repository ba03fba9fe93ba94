"""Research agents, chosen by name (TASK.md `agent.backend` or `--backend`)."""

from __future__ import annotations

import os

from autosae.agents.base import Agent, AgentContext, AgentError, BudgetReached, Conclusion, PastSprint, Proposal
from autosae.errors import AutosaeError

__all__ = [
    "Agent",
    "AgentContext",
    "AgentError",
    "BudgetReached",
    "Conclusion",
    "PastSprint",
    "Proposal",
    "create_agent",
    "default_backend",
    "BACKENDS",
]

BACKENDS = ("anthropic", "claude_code", "recipe", "scripted")


def default_backend() -> str:
    """anthropic when ANTHROPIC_API_KEY is set, else the offline recipe search."""
    return "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "recipe"


def create_agent(name: str | None, **options) -> Agent:
    name = name or default_backend()
    match name:
        case "recipe":
            from autosae.agents.recipe import RecipeAgent

            return RecipeAgent(**options)
        case "scripted":
            from autosae.agents.scripted import ScriptedAgent

            return ScriptedAgent(**options)
        case "anthropic":
            from autosae.agents.claude_api import AnthropicAgent

            return AnthropicAgent(**options)
        case "claude_code":
            from autosae.agents.claude_code import ClaudeCodeAgent

            return ClaudeCodeAgent(**options)
        case _:
            raise AutosaeError(f"unknown agent backend {name!r}; known: {', '.join(BACKENDS)}")
