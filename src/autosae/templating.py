"""One jinja Environment for every text autosae writes from a template.

A project may override any packaged template by putting a file of the same name under its own
`templates/` folder; StrictUndefined makes a misspelt variable an error rather than an empty
string, and templates control their own whitespace (trim_blocks and lstrip_blocks are off).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment(project_root: Path | None = None) -> jinja2.Environment:
    folders = ([str(Path(project_root) / "templates")] if project_root is not None else []) + [str(PACKAGE_TEMPLATES)]
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder) for folder in folders]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
        autoescape=False,
    )


def render(name: str, project_root: Path | None = None, **variables) -> str:
    """The template `name` (a path under templates/, e.g. "recipe/conclusion.md.j2") rendered
    with `variables`, the project's own copy first when it has one."""
    return environment(project_root).get_template(name).render(**variables)
