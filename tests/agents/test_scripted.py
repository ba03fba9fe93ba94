"""The scripted agent replays its actions by sprint number."""

from __future__ import annotations

import pytest
import yaml

from autosae.agents import AgentContext, AgentError, create_agent
from autosae.variants import reference_variants


def ctx(n: int) -> AgentContext:
    return AgentContext(task_body="", profile="tiny", objective="f1", sprint_number=n)


def test_actions_replay_by_sprint_number(tmp_path):
    script = [
        {"title": "a", "variant": "matryoshka", "cost_usd": 0.5},
        {"title": "b", "variant": "def build(spec):\n    return None\n", "readme": "# b\n"},
    ]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(script))
    agent = create_agent("scripted", script="s.yaml", project=str(tmp_path))
    assert [agent.propose(ctx(n)).title for n in range(3)] == ["a", "b", "a"]
    assert agent.cost_usd == 1.0  # action a twice
    agent.implement(agent.propose(ctx(0)), tmp_path / "s0", ctx(0))
    assert (tmp_path / "s0" / "variant.py").read_text() == reference_variants()["matryoshka"].read_text()
    agent.implement(agent.propose(ctx(1)), tmp_path / "s1", ctx(1))
    assert (tmp_path / "s1" / "README.md").read_text() == "# b\n"
    assert agent.propose(ctx(0), idea="mine").title == "mine"


def test_failures_are_injected_where_the_script_says():
    agent = create_agent("scripted", script=[{"title": "x", "variant": "matryoshka", "fail": "conclude"}])
    proposal = agent.propose(ctx(0))
    with pytest.raises(AgentError, match="conclude"):
        agent.conclude(proposal, {}, {"verdict": "failed"}, ctx(0))


def test_a_missing_script_is_a_clear_error(tmp_path):
    with pytest.raises(AgentError, match="cannot read the script"):
        create_agent("scripted", script="nope.yaml", project=str(tmp_path))
    with pytest.raises(AgentError, match="non-empty list"):
        create_agent("scripted")
