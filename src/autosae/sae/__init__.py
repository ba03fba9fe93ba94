"""autosae's SAE component library: parts that variants compose.

from autosae.sae import MatryoshkaBatchTopKSAE, LISTA, ISTA, LeaveOneOut, LinearK, TERM
"""

from autosae.sae.base import StepInfo, TrainOutput, VariantSAE
from autosae.sae.batchtopk import BatchTopKSAE, batch_topk
from autosae.sae.ista import ISTA
from autosae.sae.leave_one_out import LeaveOneOut
from autosae.sae.lista import LISTA
from autosae.sae.matryoshka import MatryoshkaBatchTopKSAE
from autosae.sae.registry import COMPONENTS, component
from autosae.sae.schedules import ConstantK, LinearK
from autosae.sae.term import TERM, MeanLoss, tilted_mean

__all__ = [
    "COMPONENTS",
    "ISTA",
    "LISTA",
    "TERM",
    "BatchTopKSAE",
    "ConstantK",
    "LeaveOneOut",
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
