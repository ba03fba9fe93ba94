"""Profiles: the published synth-16k config, overrides and held-out variants."""

from __future__ import annotations

import pytest

from autosae.bench.build import sae_lens_config
from autosae.bench.profiles import get_profile
from autosae.errors import AutosaeError


def test_synth_16k_is_the_published_synthsaebench_16k_v2_config():
    p = get_profile("synth-16k")
    cfg = sae_lens_config(p.model)
    assert (cfg.num_features, cfg.hidden_dim, cfg.seed, cfg.bias) == (16384, 768, 42, 0.5)
    fp = cfg.firing_probability
    assert (fp.exponent, fp.max_prob, fp.min_prob) == (0.5, 0.4, 5e-4)
    h = cfg.hierarchy
    assert (h.total_root_nodes, h.branching_factor, h.max_depth) == (128, 4, 3)
    assert h.mutually_exclusive_portion == 1.0 and h.mutually_exclusive_min_depth == 0
    assert h.compensate_probabilities and h.scale_children_by_parent
    assert (cfg.orthogonalization.num_steps, cfg.orthogonalization.lr) == (100, 3e-4)
    assert (cfg.correlation.rank, cfg.correlation.correlation_scale) == (25, 0.1)
    assert (cfg.mean_firing_magnitudes.start, cfg.mean_firing_magnitudes.end) == (5.0, 4.0)
    assert (cfg.std_firing_magnitudes.mean, cfg.std_firing_magnitudes.std) == (0.5, 0.5)
    c = p.constraints
    assert (c.width, c.k, c.training_samples, c.batch_size, c.lr) == (4096, 25, 200_000_000, 1024, 3e-4)
    assert c.eval_samples == 500_000


def test_model_seed_and_overrides_make_held_out_models():
    base = get_profile("tiny")
    held_out = get_profile("tiny", model_seed=7)
    assert held_out.model.seed == 7 and held_out.model_hash() != base.model_hash()
    assert held_out.constraints == base.constraints
    other = get_profile("tiny", overrides=["correlation_scale=0.3", "max_depth=2"])
    assert other.model.correlation_scale == 0.3 and other.model.max_depth == 2
    assert other.model_hash() != base.model_hash()
    assert get_profile("tiny", overrides=["training_samples=2e5"]).constraints.training_samples == 200_000


@pytest.mark.parametrize(
    "override, message",
    [
        ("nonsense=1", "not a model, constraint or profile field"),
        ("hidden_dim=abc", "expected a int"),
        ("hidden_dim", "expected key=value"),
    ],
)
def test_bad_overrides_are_refused_clearly(override, message):
    with pytest.raises(AutosaeError, match=message):
        get_profile("tiny", overrides=[override])


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(AutosaeError, match="known: tiny, proxy, synth-16k"):
        get_profile("huge")
