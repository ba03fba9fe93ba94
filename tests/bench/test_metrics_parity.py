"""Our split scorer gives exactly what sae_lens's eval_sae_on_synthetic_data gives."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from autosae.harness.run import RunOptions, run_variant
from autosae.variants import reference_variants

KEYS = {
    "f1": "classification.f1_score",
    "precision": "classification.precision",
    "recall": "classification.recall",
    "mcc": "mcc",
    "l0": "sae_l0",
    "true_l0": "true_l0",
    "dead_latents": "dead_latents",
    "explained_variance": "explained_variance",
    "shrinkage": "shrinkage",
    "uniqueness": "uniqueness",
}


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    import dataclasses

    profile, model, _ = tiny
    quick = dataclasses.replace(
        profile, constraints=dataclasses.replace(profile.constraints, training_samples=100_000, eval_samples=20_000)
    )
    out = tmp_path_factory.mktemp("parity")
    results = run_variant(reference_variants()["batchtopk"], quick, out, RunOptions.make(seeds=[0], counted=False))
    return quick, model, out, results


def test_metrics_equal_sae_lens_evaluation_on_the_same_sae_and_samples(trained):
    from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
    from sae_lens.synthetic import eval_sae_on_synthetic_data

    profile, model, out, results = trained
    ours = results["per_seed"][0]
    state = load_file(out / "seed_900000" / "variant_state.safetensors")  # quick seed 0
    c = profile.constraints
    sae = BatchTopKTrainingSAE(
        BatchTopKTrainingSAEConfig(
            d_in=profile.model.hidden_dim, d_sae=c.width, k=c.k, rescale_acts_by_decoder_norm=True
        )
    )
    sae.load_state_dict({k: state[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}, strict=False)
    torch.manual_seed(results["quick"]["eval_seed"])  # an uncounted run is scored on the validation samples
    theirs = eval_sae_on_synthetic_data(
        sae, model.feature_dict, model.activation_generator, num_samples=c.eval_samples, batch_size=c.batch_size
    ).to_dict()
    for key, path in KEYS.items():
        value = theirs
        for part in path.split("."):
            value = value[part]
        assert ours[key] == pytest.approx(value, abs=1e-6), key


def test_the_saved_sae_loads_in_sae_lens(trained):
    from sae_lens import SAE

    import autosae.saelens  # noqa: F401  (registers autosae's architecture)

    _, _, out, _ = trained
    loaded = SAE.load_from_disk(str(out / "seed_900000" / "sae"))
    state = load_file(out / "seed_900000" / "variant_state.safetensors")
    assert torch.equal(loaded.W_dec, state["W_dec"])  # unfolded: normalised at run time, as trained
    cfg = json.loads((out / "seed_900000" / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == "autosae_batchtopk" and cfg["d_sae"] == 128
    x = torch.randn(256, 64)
    assert loaded.encode(x).shape == (256, 128)
    assert loaded.to_jumprelu().W_dec.norm(dim=-1).sub(1).abs().max() < 1e-5  # SAELens's own form
