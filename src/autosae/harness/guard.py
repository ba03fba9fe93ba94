"""Import guard for the variant's process: the ground truth must stay out of its reach.

The trusted process builds the synthetic model and scores; the variant's process only ever
receives hidden activations. This guard makes the boundary explicit: inside the variant's
process, importing the modules that build, hold or score the ground truth raises
ImportError, whether the variant imports them directly or through another package.

It is a tripwire against accidents and shortcuts, not an OS sandbox: code that reads the
cache files from disk by hand is outside what an import hook can see.
"""

from __future__ import annotations

import importlib.abc
import sys

BLOCKED = ("sae_lens.synthetic", "autosae.bench", "autosae.harness.run")


def is_blocked(name: str) -> bool:
    return any(name == b or name.startswith(b + ".") for b in BLOCKED)


class GroundTruthImportError(ImportError):
    pass


class _Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if is_blocked(fullname):
            raise GroundTruthImportError(
                f"{fullname} is blocked in the variant's process: the ground truth lives only "
                "in autosae's trusted scorer"
            )
        return None


def install() -> None:
    """Block the ground-truth modules for the rest of this process's life."""
    for name in [m for m in sys.modules if is_blocked(m)]:
        del sys.modules[name]
    if not any(isinstance(f, _Guard) for f in sys.meta_path):
        sys.meta_path.insert(0, _Guard())
