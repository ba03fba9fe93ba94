"""Optimisation outside the harness's step: counted in the variant's process, judged outside.

The harness's training step is one backward pass and one step of its own Adam. A variant that
trains more than that (its own optimiser in on_step_end, a second backward pass in
training_loss, test-time training on the eval rows) gets more optimisation than the benchmark
allows. From the moment training starts, this module counts every backward pass
(Tensor.backward, torch.autograd.backward, torch.autograd.grad) that is not the harness's own
and every optimiser step that is not the harness's optimiser's; the trusted side rejects a
run whose counts are not zero.

This is a tripwire, not a wall: it runs inside the variant's process, which the variant
controls, so code written to evade it (restoring torch's functions, updating parameters by
hand without autograd) is not caught here. The README says what is and is not detected.
"""

from __future__ import annotations

import torch
import torch.autograd

_original_backward = torch.autograd.backward
_original_grad = torch.autograd.grad


class Counter:
    def __init__(self):
        self.armed = False
        self.extra_backward = 0
        self.foreign_steps = 0
        self.first: str = ""
        self.harness_optimizer: torch.optim.Optimizer | None = None

    def note(self, what: str) -> None:
        if not self.first:
            import traceback

            frames = [f for f in traceback.extract_stack()[:-2] if "autosae/sandboxed" not in f.filename]
            where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
            self.first = f"{what}{where}"

    def report(self) -> dict[str, float]:
        return {"extra_backward": self.extra_backward, "foreign_steps": self.foreign_steps}


COUNTER = Counter()


def harness_backward(loss: torch.Tensor) -> None:
    """The harness's own backward pass (not counted)."""
    _original_backward(loss)


def _backward(*args, **kwargs):
    if COUNTER.armed:
        COUNTER.extra_backward += 1
        COUNTER.note("a backward pass")
    return _original_backward(*args, **kwargs)


def _grad(*args, **kwargs):
    if COUNTER.armed:
        COUNTER.extra_backward += 1
        COUNTER.note("torch.autograd.grad")
    return _original_grad(*args, **kwargs)


def _step_hook(optimizer, args, kwargs):
    if COUNTER.armed and optimizer is not COUNTER.harness_optimizer:
        COUNTER.foreign_steps += 1
        COUNTER.note(f"a {type(optimizer).__name__} step")


def install() -> None:
    """Count from now on (call before the variant is imported; arm() when training starts)."""
    torch.autograd.backward = _backward
    torch.autograd.grad = _grad
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    register_optimizer_step_pre_hook(_step_hook)


def arm(harness_optimizer: torch.optim.Optimizer) -> None:
    COUNTER.harness_optimizer = harness_optimizer
    COUNTER.armed = True
