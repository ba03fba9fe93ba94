"""Matryoshka BatchTopK baseline (published F1 0.88 on synth-16k).

Levels at 1/32, 1/8 and 1/2 of the width plus the full width: [128, 512, 2048, 4096] on
synth-16k, as in the seed's runs.
"""

from autosae.sae import MatryoshkaBatchTopKSAE


def build(spec):
    levels = [spec.width // 32, spec.width // 8, spec.width // 2, spec.width]
    return MatryoshkaBatchTopKSAE(
        spec.d_in, spec.width, spec.k, levels=levels, dead_steps=min(1000, spec.total_steps // 4)
    )
