"""The offline recipe agent: deterministic, never repeats, builds real variants."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from optuna.trial import TrialState

from autosae.agents import AgentContext, AgentError, PastSprint, create_agent
from autosae.agents.recipe import (
    BASELINE_CONFIGS,
    DEPENDS,
    RecipeAgent,
    RecipeConfig,
    config_key,
    normalise,
    render_variant,
)
from autosae.agents.recipe.agent import SEARCHES
from autosae.agents.recipe.search import KNOWN_GOOD, STUDY_FILE, Search
from autosae.sandboxed.spec import VariantSpec
from autosae.variants import reference_variants

SPEC = VariantSpec(d_in=16, width=32, k=4, batch_size=8, total_steps=100, lr=1e-3, seed=0, device="cpu", profile="tiny")


def ctx(n: int = 0, past=(), best=None, seed: int = 0, root=None) -> AgentContext:
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
        baselines={"matryoshka": {"f1": 0.76, "mcc": 0.7}, "batchtopk": {"f1": 0.6, "mcc": 0.5}},
        project_root=root,
    )


def row(n: int, proposal, f1: float | None, verdict: str = "no change") -> PastSprint:
    return PastSprint(
        id=f"s{n}", title=proposal.title, verdict=verdict, f1=f1, mcc=f1, config=proposal.config, parent=proposal.parent
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


@pytest.mark.parametrize("search", SEARCHES)
def test_it_never_repeats_a_configuration_over_fifteen_sprints(search):
    agent, past, seen = RecipeAgent(seed=1, search=search), [], {config_key(c) for c in BASELINE_CONFIGS.values()}
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


@pytest.mark.parametrize("search", SEARCHES)
def test_it_starts_from_the_best_and_changes_one_setting(search):
    best = PastSprint(
        id="b",
        title="best",
        verdict="improved",
        f1=0.8,
        mcc=0.8,
        config=normalise({"term_tilt": 2e-3}),
        parent="baseline:matryoshka",
    )
    proposal = RecipeAgent(seed=0, search=search).propose(ctx(1, [best], best))
    assert proposal.parent == "b"
    diff = [k for k in proposal.config if proposal.config[k] != best.config[k]]
    assert len(diff) == 1 or diff == ["k_start", "k_fraction"] or diff == ["lista_iterations", "lista_eta"]
    assert proposal.config["term_tilt"] == 2e-3 or diff == ["term_tilt"]


@pytest.mark.parametrize("search", SEARCHES)
def test_settings_that_hurt_are_tried_later_from_the_same_start(search):
    first = RecipeAgent(seed=0, search=search).propose(ctx())
    hurt = PastSprint(
        id="s0", title=first.title, verdict="worse", f1=0.5, mcc=0.5, config=first.config, parent="baseline:matryoshka"
    )
    second = RecipeAgent(seed=0, search=search).propose(ctx(1, [hurt]))
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


def test_recipe_config_applies_the_dependency_map():
    """A dependent setting is stored off while its switch is off and defaulted when it is on, so
    configurations that build the same SAE compare equal (the engine refuses repeats by them)."""
    assert RecipeConfig.of({"k_fraction": 0.5, "lista_eta": 0.1}) == RecipeConfig()
    on = RecipeConfig.of({"k_start": 2, "lista_iterations": 1})
    assert (on.k_start, on.k_fraction, on.lista_eta) == (
        2.0,
        DEPENDS["k_fraction"].default,
        DEPENDS["lista_eta"].default,
    )
    assert (
        RecipeConfig.of({"levels": 1, "detach_inner": True, "sort_by_frequency": True}).as_dict()
        == (BASELINE_CONFIGS["batchtopk"])
    )
    assert list(RecipeConfig().as_dict()) == list(BASELINE_CONFIGS["matryoshka"])  # the ledger's key order


@pytest.mark.parametrize("search", SEARCHES)
def test_every_proposal_is_a_normalised_configuration_the_ledger_can_store(tmp_path, search):
    """What the search proposes is already normalised (a repeat cannot hide behind an unset
    dependent) and survives the ledger's JSON unchanged."""
    agent, past = RecipeAgent(seed=2, search=search), []
    for n in range(12):
        proposal = agent.propose(ctx(n, past, root=tmp_path))
        assert RecipeConfig.of(proposal.config).as_dict() == proposal.config
        assert json.loads(json.dumps(proposal.config)) == proposal.config
        past.append(row(n, proposal, 0.7 + n / 100))


def test_the_known_good_changes_come_first_and_compound_on_the_best():
    agent, past, best = RecipeAgent(seed=0, search="tpe"), [], None
    for n, (field, value) in enumerate(KNOWN_GOOD):
        proposal = agent.propose(ctx(n, past, best))
        start = best.config if best else BASELINE_CONFIGS["matryoshka"]
        assert proposal.config == normalise({**start, field: value})
        helped = field != "k_start"
        past.append(row(n, proposal, 0.77 + n / 100 if helped else 0.7, "improved" if helped else "worse"))
        best = past[-1] if helped else best
    assert best.config == normalise({"detach_inner": True, "lista_iterations": 1, "term_tilt": 2e-3})
    after = agent.propose(ctx(len(past), past, best))  # TPE's turn: anything untried, from the best
    assert after.parent == best.id and config_key(after.config) not in {config_key(p.config) for p in past}


def test_the_study_lives_in_the_project_and_is_rebuilt_from_the_ledger(tmp_path):
    """The ledger is the source of truth: the study's finished trials are its sprints, and a
    deleted study file gives the same proposals as the one it replaces."""
    past, proposals = [], []
    for n in range(8):
        proposal = RecipeAgent(seed=0, search="tpe").propose(ctx(n, past, root=tmp_path))
        proposals.append(proposal.config)
        past.append(row(n, proposal, None if n == 3 else 0.7 + (n % 3) / 50, "failed" if n == 3 else "no change"))
    journal = tmp_path / ".autosae" / STUDY_FILE
    assert journal.exists()
    study = Search(ctx(len(past), past, root=tmp_path), 0).study
    told = {t.user_attrs["sprint"]: t for t in study.trials if "sprint" in t.user_attrs}
    assert set(told) == {"baseline:matryoshka", "baseline:batchtopk", *(p.id for p in past)}
    assert told["s3"].state == TrialState.FAIL and told["s5"].value == past[5].f1
    journal.unlink()
    fresh, rebuilt = [], []
    for n in range(8):
        proposal = RecipeAgent(seed=0, search="tpe").propose(ctx(n, fresh, root=tmp_path / "other"))
        rebuilt.append(proposal.config)
        fresh.append(row(n, proposal, past[n].f1, past[n].verdict))
    assert rebuilt == proposals
    assert (
        RecipeAgent(seed=0, search="tpe").propose(ctx(8, past, root=tmp_path)).config
        == RecipeAgent(seed=0, search="tpe").propose(ctx(8, past)).config
    )  # the same with the journal rebuilt as with no project at all


def test_parallel_lanes_do_not_propose_the_same_configuration(tmp_path):
    """Two lanes propose for the same ledger: the second sees the first's trial in flight."""
    past = []
    for n in range(5):
        proposal = RecipeAgent(seed=0, search="tpe").propose(ctx(n, past, root=tmp_path))
        past.append(row(n, proposal, 0.7 + n / 100))
    first = RecipeAgent(seed=0, search="tpe").propose(ctx(5, past, root=tmp_path))
    second = RecipeAgent(seed=0, search="tpe").propose(ctx(5, past, root=tmp_path))
    assert first.config != second.config


def test_a_user_idea_outside_the_search_space_is_kept_out_of_the_model(tmp_path):
    """TPE's categorical space cannot hold a tilt of 0.007: the sprint is a failed trial (which TPE
    ignores), and the search goes on."""
    agent = RecipeAgent(seed=0, search="tpe")
    idea = agent.propose(ctx(), idea="TERM with tilt 0.007")
    past = [row(0, idea, 0.8, "improved")]
    proposal = agent.propose(ctx(1, past, past[0], root=tmp_path))
    assert proposal.parent == "s0" and proposal.config["term_tilt"] == 0.007
    trial = next(t for t in Search(ctx(2, past, root=tmp_path), 0).study.trials if t.user_attrs.get("sprint") == "s0")
    assert trial.state == TrialState.FAIL and trial.params == {}


def test_a_project_picks_the_search_and_an_unknown_one_is_one_clear_error():
    assert create_agent("recipe", seed=0, search="hand").search == "hand"
    with pytest.raises(AgentError, match="knows tpe, hand"):
        create_agent("recipe", seed=0, search="grid")
