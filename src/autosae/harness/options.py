"""How a run's seeds run and what a run reports: plain settings and names, without torch.

The floors that train (autosae.harness.seed, .local, .launch) import torch; this module does
not, so the harness's front door (autosae.harness.run) and everything that only reads runs
(the CLI, the ledger, reports, a replayed run) start without it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from autosae.bench.cache import sha256_of

METRICS = (
    "f1",
    "mcc",
    "precision",
    "recall",
    "accuracy",
    "l0",
    "true_l0",
    "dead_latents",
    "explained_variance",
    "shrinkage",
    "uniqueness",
)
"""The trusted metrics a run records for each seed, in the order reports show them."""

sha256_file = sha256_of
"""The sha256 of a file (a variant's, a record's): the one file hash, bench.cache's."""

MAX_VARIANT_FILES, MAX_VARIANT_BYTES = 200, 4 << 20
"""The most Python files (and bytes each) copied from a variant's folder into its run."""


def staged_files(variant: Path) -> dict[str, Path]:
    """What a run stages with `variant`, by name (autosae.harness.local.stage_variant copies
    them; a recorded run's key names them): the Python files beside it (a variant may import
    its neighbours; regular files only, no links, at most MAX_VARIANT_FILES of at most
    MAX_VARIANT_BYTES each) and the variant itself (which stage_variant refuses past
    MAX_VARIANT_BYTES)."""
    found = sorted(p for p in variant.parent.glob("*.py") if p.is_file() and not p.is_symlink())
    files = {p.name: p for p in found[:MAX_VARIANT_FILES] if p.stat().st_size <= MAX_VARIANT_BYTES or p == variant}
    files[variant.name] = variant
    return files


@dataclass
class Confinement:
    """How a variant's process is confined (from the run's SeedSettings)."""

    sandboxed: bool
    """Under bubblewrap; False: the same bounds without the namespaces."""
    memory_limit_gb: float | None = None
    """None: 3/4 of this machine's memory."""
    disk_limit_gb: float = 8.0
    max_processes: int = 512
    cpu_threads: int | None = None
    matmul_precision: str = "highest"


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SeedSettings:
    """How every seed of a run trains, wherever it runs: its time limit, how the variant's
    process is confined, and where progress lines go."""

    time_limit_s: float | None = None
    """Per-seed limit; the profile's when None."""
    memory_limit_gb: float | None = None
    """Memory cap for each variant's sandbox, in GiB (None: 3/4 of this machine's memory)."""
    disk_limit_gb: float = 8.0
    """Most a variant's process may write (its work folder and /tmp), in GiB."""
    max_processes: int = 512
    """Most tasks (processes and threads) in a variant's sandbox: no fork bomb."""
    sandbox: str = "auto"
    """required | auto | off: run variants under bubblewrap (see autosae.sandbox)."""
    sandboxed: bool | None = None
    """Whether the variants are sandboxed: resolved from `sandbox` where the run executes."""
    cpu_threads: int | None = None
    """Threads of a variant on CPU (default: all cores but one)."""
    matmul_precision: str = "highest"
    """torch.set_float32_matmul_precision in the variant's process: "high" allows TF32 on
    GPUs. The harness's data and scoring always run at full precision."""
    variant_options: tuple = ()
    """Knob values for the variant's build() (VariantSpec.options) as (name, value) pairs; a
    quick run's arm options, empty in every counted run."""
    log: Callable[[str], None] = to_stderr

    def portable(self) -> dict:
        """The settings as plain values for another process (a slot process, a launcher job),
        which brings its own `log`."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "log"}
        if not self.variant_options:  # jobs already submitted keep their payload's format
            del out["variant_options"]
        return out

    def confinement(self) -> Confinement:
        return Confinement(
            bool(self.sandboxed),
            self.memory_limit_gb,
            self.disk_limit_gb,
            self.max_processes,
            self.cpu_threads,
            self.matmul_precision,
        )
