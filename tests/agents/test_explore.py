"""Exploration sprints: TASK.md's diversity.explore_share makes every 1/share-th sprint go far
from the best, from the Matryoshka baseline, in a component family the best does not use."""

from __future__ import annotations

import pytest

from autosae.agents import AgentContext, PastSprint
from autosae.agents.prompts import propose_prompt
from autosae.agents.recipe import BASELINE_CONFIGS, FAMILY, RecipeAgent, changes, normalise
from autosae.sprint.engine import is_exploration
from tests.sprint.conftest import autosae, ledger, write_task

LISTA_BEST = dict(BASELINE_CONFIGS["matryoshka"], lista_iterations=1, lista_eta=0.3, levels=5)


def context(explore: bool, **extra) -> AgentContext:
    best = PastSprint(
        id="s1", title="LISTA", verdict="improved", f1=0.8, mcc=0.7, config=LISTA_BEST, parent="baseline:matryoshka"
    )
    return AgentContext(
        task_body="",
        profile="tiny",
        objective="f1",
        sprint_number=4,
        past=[best],
        best=best,
        baselines={"matryoshka": {"f1": 0.76, "mcc": 0.72}},
        width=128,
        k=5,
        explore=explore,
        **extra,
    )


def test_the_schedule():
    assert [n + 1 for n in range(12) if is_exploration(n, 0.25)] == [4, 8, 12]
    assert not any(is_exploration(n, 0.0) for n in range(50))
    assert all(is_exploration(n, 1.0) for n in range(5))


def test_the_recipe_explores_another_family_from_the_baseline():
    used = {FAMILY[f] for f in changes(normalise(BASELINE_CONFIGS["matryoshka"]), normalise(LISTA_BEST))}
    assert used == {"encoder", "matryoshka"}
    normal = RecipeAgent(seed=0).propose(context(False))
    assert normal.parent == "s1"
    for seed in range(4):
        p = RecipeAgent(seed=seed).propose(context(True))
        assert p.parent == "baseline:matryoshka"
        fields = changes(normalise(BASELINE_CONFIGS["matryoshka"]), normalise(p.config))
        assert fields and not {FAMILY[f] for f in fields} & used, fields


def test_an_llm_proposer_sees_no_past_sprints_when_exploring():
    quiet = propose_prompt(context(True), None)
    assert "EXPLORATION sprint" in quiet and "No past sprints are shown to you." in quiet and "s1 | LISTA" not in quiet
    assert "s1 | LISTA" in propose_prompt(context(False), None)


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_a_loop_explores_on_schedule(project):
    write_task(project, backend="recipe")
    task = (project / "TASK.md").read_text().replace("loop:\n", "diversity:\n  explore_share: 0.5\nloop:\n", 1)
    (project / "TASK.md").write_text(task)
    proc = autosae("loop", "--max-sprints", "2", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = ledger(project)
    assert not first["explore"] and second["explore"] and second["parent"] == "baseline:matryoshka"
    assert "exploration sprint)" in proc.stdout
    assert "exploration: 1 of 2 sprints explored far from the best" in autosae("status", cwd=project).stdout
