"""Reference variants: working starting points for users and agents.

Each file is a complete variant (a build(spec) function); `autosae train batchtopk` finds
them by name, and `autosae variants` lists them.
"""

from pathlib import Path

VARIANTS_DIR = Path(__file__).parent


def reference_variants() -> dict[str, Path]:
    return {p.stem: p for p in sorted(VARIANTS_DIR.glob("*.py")) if not p.stem.startswith("_")}
