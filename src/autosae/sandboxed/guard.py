"""Import guard for the variant's process: the ground truth must stay out of its reach.

The trusted process builds the synthetic model and scores; the variant's process only ever
receives hidden activations. This guard makes the boundary explicit: inside the variant's
process, importing the modules that build, hold or score the ground truth raises
ImportError, whether the variant imports them directly or through another package.

It is a tripwire against accidents, not the wall: code in the variant's process can switch
it off. The wall is the OS sandbox around the process (autosae.sandbox), which hides the
model cache and these modules' files.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import sys

BLOCKED = ("sae_lens.synthetic", "autosae.bench", "autosae.harness")
"""Whole prefixes: the ground truth's generator, the benchmark's models and metrics, and every
trusted module (everything under autosae.harness is trusted; the variant's side is
autosae.sandboxed)."""


def is_blocked(name: str) -> bool:
    return any(name == b or name.startswith(b + ".") for b in BLOCKED)


class GroundTruthImportError(ImportError):
    pass


class _Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if is_blocked(fullname):
            _refuse(fullname)
        return None


def _refuse(name: str) -> None:
    raise GroundTruthImportError(
        f"{name} is blocked in the variant's process: the ground truth lives only in autosae's trusted scorer"
    )


def _checked(original, by_name: bool):
    """Wrap __import__ / import_module so a blocked name is refused before its parent
    packages are imported (sae_lens's own import takes many seconds on a CPU)."""
    if getattr(original, "_autosae_guard", False):
        return original

    def guarded(name, *args, **kwargs):
        if isinstance(name, str) and not name.startswith("."):
            if is_blocked(name):
                _refuse(name)
            if not by_name:  # __import__(name, globals, locals, fromlist, level)
                fromlist = args[2] if len(args) > 2 else kwargs.get("fromlist")
                level = args[3] if len(args) > 3 else kwargs.get("level", 0)
                for item in (fromlist or ()) if level == 0 else ():
                    if isinstance(item, str) and is_blocked(f"{name}.{item}"):
                        _refuse(f"{name}.{item}")
        return original(name, *args, **kwargs)

    guarded._autosae_guard = True
    return guarded


def install() -> None:
    """Block the ground-truth modules for the rest of this process's life."""
    for name in [m for m in sys.modules if is_blocked(m)]:
        del sys.modules[name]
    if not any(isinstance(f, _Guard) for f in sys.meta_path):
        sys.meta_path.insert(0, _Guard())
    builtins.__import__ = _checked(builtins.__import__, by_name=False)
    importlib.import_module = _checked(importlib.import_module, by_name=True)
