"""Name -> component registry, so that agents and configs can refer to parts by name."""

from __future__ import annotations

from typing import Any

from autosae.sae.batchtopk import BatchTopKSAE
from autosae.sae.ista import ISTA
from autosae.sae.leave_one_out import LeaveOneOut
from autosae.sae.lista import LISTA
from autosae.sae.matryoshka import MatryoshkaBatchTopKSAE
from autosae.sae.schedules import ConstantK, LinearK
from autosae.sae.term import TERM, MeanLoss

COMPONENTS: dict[str, type] = {
    "batchtopk": BatchTopKSAE,
    "matryoshka": MatryoshkaBatchTopKSAE,
    "lista": LISTA,
    "ista": ISTA,
    "leave_one_out": LeaveOneOut,
    "term": TERM,
    "mean_loss": MeanLoss,
    "constant_k": ConstantK,
    "linear_k": LinearK,
}


def component(name: str, **kwargs: Any) -> Any:
    """Build a registered component by name, e.g. component("lista", eta=0.3)."""
    try:
        cls = COMPONENTS[name]
    except KeyError:
        known = ", ".join(sorted(COMPONENTS))
        raise ValueError(f"unknown SAE component {name!r}; known: {known}") from None
    return cls(**kwargs)
