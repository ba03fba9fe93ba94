"""BatchTopK baseline: SAELens's BatchTopKTrainingSAE defaults (published F1 0.73 on synth-16k)."""

from autosae.sae import BatchTopKSAE


def build(spec):
    # SAELens counts a latent dead after 1000 steps without firing; short CPU runs use a
    # quarter of training so that the auxiliary loss still gets to revive latents.
    return BatchTopKSAE(spec.d_in, spec.width, spec.k, dead_steps=min(1000, spec.total_steps // 4))
