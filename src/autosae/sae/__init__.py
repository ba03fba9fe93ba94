"""autosae's SAE component library: parts that variants compose.

from autosae.sae import MatryoshkaBatchTopKSAE, LISTA, LinearK, TERM
"""

from autosae.sae.base import StepInfo, TrainOutput, VariantSAE
from autosae.sae.batchtopk import BatchTopKSAE, batch_topk
from autosae.sae.lista import LISTA
from autosae.sae.matryoshka import MatryoshkaBatchTopKSAE
from autosae.sae.registry import COMPONENTS, component
from autosae.sae.schedules import ConstantK, LinearK
from autosae.sae.term import TERM, MeanLoss, tilted_mean

__all__ = [
    "COMPONENTS",
    "LISTA",
    "TERM",
    "BatchTopKSAE",
    "ConstantK",
    "LinearK",
    "MatryoshkaBatchTopKSAE",
    "MeanLoss",
    "StepInfo",
    "TrainOutput",
    "VariantSAE",
    "batch_topk",
    "component",
    "tilted_mean",
]
