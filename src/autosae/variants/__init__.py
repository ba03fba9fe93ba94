"""Reference variants: working starting points for users and agents.

Each file is a complete variant (a build(spec) function); `autosae train batchtopk` finds
them by name, and `autosae variants` lists them.
"""

from pathlib import Path

VARIANTS_DIR = Path(__file__).parent


def reference_variants() -> dict[str, Path]:
    return {p.stem: p for p in sorted(VARIANTS_DIR.glob("*.py")) if not p.stem.startswith("_")}


def parent_variant(sprints_dir: Path, parent: str) -> Path:
    """The variant file of a sprint's parent: a reference variant ("baseline:matryoshka") or a
    recorded sprint's variant.py under `sprints_dir`."""
    from autosae.errors import AutosaeError

    if parent.startswith("baseline:"):
        ref = reference_variants().get(parent.removeprefix("baseline:"))
        if ref is None:
            raise AutosaeError(f"unknown baseline {parent}")
        return ref
    return sprints_dir / parent / "variant.py"
