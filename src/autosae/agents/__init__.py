"""Research agents, chosen by name (TASK.md `agent.backend` or `--backend`)."""

from __future__ import annotations


from autosae.agents.base import Agent, AgentContext, AgentError, Conclusion, PastSprint, Proposal
from autosae.errors import AutosaeError

__all__ = ["Agent", "AgentContext", "AgentError", "Conclusion", "PastSprint", "Proposal",
           "create_agent", "default_backend", "BACKENDS"]

BACKENDS = ("recipe", "scripted")


def default_backend() -> str:
    """recipe offline; the Claude backends (when they exist) take over with an API key."""
    return "recipe"


def create_agent(name: str | None, **options) -> Agent:
    name = name or default_backend()
    match name:
        case "recipe":
            from autosae.agents.recipe import RecipeAgent

            return RecipeAgent(**options)
        case "scripted":
            from autosae.agents.scripted import ScriptedAgent

            return ScriptedAgent(**options)
        case "anthropic" | "claude_code":
            raise AutosaeError(f"agent backend {name!r} is not available yet; use recipe")
        case _:
            raise AutosaeError(f"unknown agent backend {name!r}; known: {', '.join(BACKENDS)}")
