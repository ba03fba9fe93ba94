"""The offline recipe agent, a search over autosae.sae's components that needs no API key.

config.py holds RecipeConfig, its search space and the dependency map; hand_search.py the
hand-weighted search (the default) and search.py the Optuna one (agent.SEARCH picks);
ideas.py the reader of users' ideas; render.py what the agent writes; agent.py the agent.
"""

from autosae.agents.recipe.agent import RecipeAgent
from autosae.agents.recipe.config import (
    BASELINE_CONFIGS,
    CHOICES,
    DEPENDS,
    FAMILY,
    RecipeConfig,
    changes,
    config_key,
    describe,
    normalise,
    summarise,
)
from autosae.agents.recipe.render import conclusion_text, render_variant

__all__ = [
    "BASELINE_CONFIGS",
    "CHOICES",
    "DEPENDS",
    "FAMILY",
    "RecipeAgent",
    "RecipeConfig",
    "changes",
    "conclusion_text",
    "config_key",
    "describe",
    "normalise",
    "render_variant",
    "summarise",
]
