"""Reading a PDF back as a reader would: poppler's pdftotext, pdfinfo and pdftoppm (which
`make test` installs where it can), else the same through pypdfium2 (a dev dependency)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

POPPLER = all(shutil.which(tool) for tool in ("pdftotext", "pdfinfo", "pdftoppm"))


def text(pdf: Path) -> str:
    if POPPLER:
        return subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
    import pypdfium2

    doc = pypdfium2.PdfDocument(pdf)
    return "\n".join(page.get_textpage().get_text_range() for page in doc)


def pages(pdf: Path) -> int:
    if POPPLER:
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    import pypdfium2

    return len(pypdfium2.PdfDocument(pdf))


def render(pdf: Path, out: Path, dpi: int = 50) -> list[Path]:
    """Every page as a PNG."""
    out.mkdir(parents=True, exist_ok=True)
    if POPPLER:
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(out / "page")], check=True)
    else:
        import pypdfium2

        for i, page in enumerate(pypdfium2.PdfDocument(pdf), 1):
            page.render(scale=dpi / 72).to_pil().save(out / f"page-{i}.png")
    return sorted(out.glob("page-*.png"))


def ink(png: Path) -> float:
    """The fraction of pixels that are not white: 0 for a blank page."""
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    return float((pixels.min(axis=-1) < 0.9).mean())
