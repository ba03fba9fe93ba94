"""The offline recipe agent: deterministic, never repeats, builds real variants."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from autosae.agents import AgentContext, AgentError, PastSprint, create_agent
from autosae.agents.recipe import BASELINE_CONFIGS, RecipeAgent, config_key, normalise, render_variant
from autosae.sandboxed.spec import VariantSpec
from autosae.variants import reference_variants

SPEC = VariantSpec(d_in=16, width=32, k=4, batch_size=8, total_steps=100, lr=1e-3, seed=0, device="cpu", profile="tiny")


def ctx(n: int = 0, past=(), best=None, seed: int = 0) -> AgentContext:
    return AgentContext(
        task_body="",
        profile="tiny",
        objective="f1",
        sprint_number=n,
        past=list(past),
        best=best,
        seed=seed,
        width=32,
        k=4,
    )


def load_build(path):
    spec = importlib.util.spec_from_file_location("variant_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def test_it_is_the_default_backend_and_deterministic():
    agent = create_agent(None, seed=3)
    assert agent.name == "recipe" and agent.cost_usd == 0.0
    assert RecipeAgent(seed=3).propose(ctx()) == RecipeAgent(seed=3).propose(ctx())


def test_it_never_repeats_a_configuration_over_fifteen_sprints():
    agent, past, seen = RecipeAgent(seed=1), [], {config_key(c) for c in BASELINE_CONFIGS.values()}
    best = None
    for n in range(15):
        proposal = agent.propose(ctx(n, past, best))
        key = config_key(proposal.config)
        assert key not in seen
        seen.add(key)
        verdict = "improved" if n == 2 else ("worse" if n % 2 else "no change")
        row = PastSprint(
            id=f"s{n}",
            title=proposal.title,
            verdict=verdict,
            f1=0.7,
            mcc=0.7,
            config=proposal.config,
            parent=proposal.parent,
        )
        past.append(row)
        if verdict == "improved":
            best = row
        if n > 2:  # after an improvement the search starts from it
            assert proposal.parent == "s2"


def test_it_starts_from_the_best_and_changes_one_setting():
    best = PastSprint(
        id="b",
        title="best",
        verdict="improved",
        f1=0.8,
        mcc=0.8,
        config=normalise({"term_tilt": 2e-3}),
        parent="baseline:matryoshka",
    )
    proposal = RecipeAgent(seed=0).propose(ctx(1, [best], best))
    assert proposal.parent == "b"
    diff = [k for k in proposal.config if proposal.config[k] != best.config[k]]
    assert len(diff) == 1 or diff == ["k_start", "k_fraction"] or diff == ["lista_iterations", "lista_eta"]
    assert proposal.config["term_tilt"] == 2e-3 or diff == ["term_tilt"]


def test_settings_that_hurt_are_tried_later_from_the_same_start():
    first = RecipeAgent(seed=0).propose(ctx())
    hurt = PastSprint(
        id="s0", title=first.title, verdict="worse", f1=0.5, mcc=0.5, config=first.config, parent="baseline:matryoshka"
    )
    second = RecipeAgent(seed=0).propose(ctx(1, [hurt]))
    changed = {k for k in second.config if second.config[k] != normalise(BASELINE_CONFIGS["matryoshka"])[k]}
    assert not changed & {k for k in first.config if first.config[k] != normalise(BASELINE_CONFIGS["matryoshka"])[k]}


def test_user_ideas_map_onto_settings():
    agent = RecipeAgent(seed=0)
    proposal = agent.propose(ctx(), idea="a LISTA encoder with eta 0.5 and a decreasing K")
    assert proposal.title == "a LISTA encoder with eta 0.5 and a decreasing K"
    assert proposal.config["lista_iterations"] == 1 and proposal.config["lista_eta"] == 0.5
    assert proposal.config["k_start"] > 1
    assert agent.propose(ctx(), idea="TERM with tilt 0.005").config["term_tilt"] == 0.005
    assert agent.propose(ctx(), idea="plain BatchTopK, no Matryoshka").config["levels"] == 1
    with pytest.raises(AgentError, match="cannot implement"):
        agent.propose(ctx(), idea="use a transformer to predict the latents")


def test_every_proposal_builds_a_working_sae(tmp_path):
    agent, past = RecipeAgent(seed=0), []
    for n in range(8):
        proposal = agent.propose(ctx(n, past))
        folder = tmp_path / f"s{n}"
        agent.implement(proposal, folder, ctx(n, past))
        readme = (folder / "README.md").read_text()
        assert proposal.title in readme and "## Hypothesis" in readme
        sae = load_build(folder / "variant.py")(SPEC)
        out = sae.training_loss(torch.randn(8, 16), __import__("autosae.sae", fromlist=["StepInfo"]).StepInfo(0, 100))
        assert torch.isfinite(out.loss) and out.latents.shape == (8, 32)
        past.append(
            PastSprint(
                id=f"s{n}",
                title=proposal.title,
                verdict="no change",
                f1=0.7,
                mcc=0.7,
                config=proposal.config,
                parent=proposal.parent,
            )
        )


def test_the_matryoshka_config_renders_the_baseline(tmp_path):
    path = tmp_path / "variant.py"
    path.write_text(render_variant(BASELINE_CONFIGS["matryoshka"]))
    ours = load_build(path)(SPEC)
    reference = load_build(reference_variants()["matryoshka"])(SPEC)
    assert ours.levels == reference.levels
    assert type(ours) is type(reference)


def test_conclusions_quote_the_numbers():
    agent = RecipeAgent(seed=0)
    proposal = agent.propose(ctx())
    results = {
        "status": "ok",
        "summary": {"f1": {"mean": 0.78, "std": 0.01, "n": 3}, "mcc": {"mean": 0.7, "std": 0.01, "n": 3}},
    }
    verdict = {
        "verdict": "improved",
        "objective": "f1",
        "alpha": 0.05,
        "delta_parent": 0.02,
        "p_value": 0.01,
        "noise_floor": 0.01,
        "noop": False,
        "new_best": True,
        "parent": {"id": "baseline:matryoshka", "mean": 0.76, "std": 0.008},
        "baselines": {"matryoshka": {"f1": {"mean": 0.76, "std": 0.008}}},
    }
    text = agent.conclude(proposal, results, verdict, ctx()).text
    assert "0.7800 ± 0.0100" in text and "+0.0200" in text and "new best" in text
    failed = agent.conclude(
        proposal, {"status": "failed", "reason": "seed 0: NaN"}, {"verdict": "failed", "objective": "f1"}, ctx()
    ).text
    assert "NaN" in failed
    noop = agent.conclude(
        proposal, results, {**verdict, "verdict": "no change", "noop": True, "noop_reason": "identical"}, ctx()
    ).text
    assert "no-op" in noop


def test_configs_are_json():
    proposal = RecipeAgent(seed=0).propose(ctx())
    assert json.loads(json.dumps(proposal.config)) == proposal.config
