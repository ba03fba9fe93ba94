"""report.md: the report's content (report.content) through the report.md.j2 template, the
project's own copy where its main checkout has one (see autosae.templating)."""

from __future__ import annotations

from pathlib import Path

from autosae.templating import render


def render_markdown(content: dict, project_root: Path | None = None) -> str:
    """report.md's text; `content` as report.content.report_content."""
    return render("report.md.j2", project_root, **content)
