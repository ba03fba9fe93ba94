"""`python -m autosae.sae [MODULE...]`: the component library's modules and their files, or
the full source of the named modules (what an agent reads before composing a variant)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(HERE.glob("*.py")) if not p.stem.startswith("__")}


def summary(path: Path) -> str:
    text = path.read_text()
    doc = text.split('"""')[1].strip().splitlines()[0] if text.lstrip().startswith('"""') else ""
    return doc


def main(argv: list[str]) -> int:
    known = modules()
    if not argv:
        print("autosae.sae: `python -m autosae.sae NAME...` prints a module's source.")
        width = max(map(len, known))
        for name, path in known.items():
            print(f"  {name:<{width}} {summary(path)}\n  {'':<{width}} {path}")
        return 0
    wanted = list(known) if argv == ["--all"] else argv
    unknown = [n for n in wanted if n.removesuffix(".py") not in known]
    if unknown:
        print(f"error: no module {', '.join(unknown)} in autosae.sae; known: {', '.join(known)}", file=sys.stderr)
        return 2
    for name in wanted:
        path = known[name.removesuffix(".py")]
        print(f"# ===== autosae/sae/{path.name} ({path})\n{path.read_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
