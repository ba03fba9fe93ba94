"""The one jinja Environment that renders every prompt, report and generated file.

Its loader looks first in the project's own templates/ folder and then in the package, so a
researcher tunes the agent's prompts or the report for one project by copying a template
there (`autosae templates copy NAME`). The override is read only from the project's main
checkout, which the researcher commits to: the agent works in another checkout
(.autosae/worktrees/<id>), and a templates/ folder it writes there is never looked at, nor
merged (only the sprint's own folder is taken from its branch).

All templates share one set of settings: StrictUndefined (a misspelt name is an error, never
an empty string), the trailing newline kept, and trim_blocks with lstrip_blocks, so that a
block tag on a line of its own leaves no blank line behind; a tag written `+%}` keeps the
line break that follows it.

Text that an agent or a variant wrote goes through a filter that keeps it from changing the
Markdown around it (autosae.report.escape): `cell` (plain text on one line: table cells and
headings), `code` (a name as a code span), `inline` (our Markdown around agent text, on one
line), `block` (the agent's paragraphs) and `fenced` (a code block it cannot close).
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

import jinja2

PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
PROJECT_FOLDER = "templates"
"""The folder in a project's root whose templates replace the package's of the same name."""
INIT_ONLY = frozenset({"TASK.md.j2"})
"""Rendered by `autosae init` before the project, and so its templates/, exists."""


def project_templates(project_root: Path) -> Path:
    return Path(project_root) / PROJECT_FOLDER


def environment(project_root: Path | None = None) -> jinja2.Environment:
    """The Environment for a project (None: the package's templates only), made once per root;
    jinja notices a template file that changes on disk."""
    return _environment(Path(project_root).resolve() if project_root is not None else None)


@functools.cache
def _environment(root: Path | None) -> jinja2.Environment:
    import autosae.report.escape as esc
    import autosae.report.format as fmt

    package = jinja2.FileSystemLoader(PACKAGE_TEMPLATES)
    loader = (
        package if root is None else jinja2.ChoiceLoader([jinja2.FileSystemLoader(project_templates(root)), package])
    )
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt.fmt_num,
        delta=fmt.fmt_delta,
        pm=fmt.fmt_pm,
        p=fmt.fmt_p,
        stat=fmt.fmt_stat,
        floor=fmt.fmt_floor,
        # the prompts print a missing number as "-", the reports as "—"
        dash=lambda text: str(text).replace(fmt.MISSING, "-"),
        # text an agent or a variant wrote, shown as itself (autosae.report.escape)
        cell=esc.md_cell,
        code=esc.md_code,
        inline=esc.md_inline,
        block=esc.md_block,
        fenced=esc.md_fenced,
        duration=lambda seconds: fmt.duration(seconds if seconds >= 120 else round(seconds)),
    )
    return env


def render(name: str, project_root: Path | None = None, **variables) -> str:
    """Template `name` (a path under templates/, such as "report.md.j2" or
    "agent/propose.md.j2"), the project's own copy where it has one."""
    try:
        return environment(project_root).get_template(name).render(**variables)
    except jinja2.TemplateError as exc:
        mine = overridden(project_root) if project_root is not None else []
        if not mine:
            raise  # autosae's own templates: a bug of ours, with its traceback
        from autosae.errors import AutosaeError

        where = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        copies = ", ".join(f"{PROJECT_FOLDER}/{m}" for m in mine)
        raise AutosaeError(
            f"{name}{where}: {exc.message or type(exc).__name__}, with this project's own templates "
            f"({copies}); fix or remove them (`autosae templates copy NAME` copies autosae's again)"
        ) from None


def template_names() -> list[str]:
    """Every template the package ships that a project may override, sorted."""
    names = (p.relative_to(PACKAGE_TEMPLATES).as_posix() for p in PACKAGE_TEMPLATES.rglob("*.j2"))
    return sorted(n for n in names if n not in INIT_ONLY)


def overridden(project_root: Path) -> list[str]:
    """The package's templates that this project has its own copy of."""
    folder = project_templates(project_root)
    return [n for n in template_names() if (folder / n).is_file()]


def resolve(name: str) -> str:
    """The template a researcher means: its full name, or one that names a single template
    without its folder or suffix ("propose", "report.md"); else one line naming close ones."""
    from autosae.errors import AutosaeError

    names = template_names()
    if name in names:
        return name
    found = [n for n in names if name and name in (n.rsplit("/", 1)[-1], n.rsplit("/", 1)[-1].split(".")[0], n[:-3])]
    if len(found) == 1:
        return found[0]
    close = found or difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    close += [n for n in names if name and name in n and n not in close][: max(0, 3 - len(close))]
    hint = f"did you mean {', '.join(close)}?" if close else "`autosae templates list` lists them"
    raise AutosaeError(f"no template named {name!r}: {hint}")


def strays(project_root: Path) -> list[str]:
    """Files in the project's templates/ that replace no template (a misspelt copy is never
    used, and says so in `autosae templates list`)."""
    folder = project_templates(project_root)
    if not folder.is_dir():
        return []
    known = set(template_names())
    files = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(f for f in files if f not in known and f != "README.md")


def description(name: str) -> str:
    """What a template renders: its first line when that is a jinja comment, else ""."""
    first = (PACKAGE_TEMPLATES / name).read_text().split("\n", 1)[0].strip()
    return first[2:-2].strip() if first.startswith("{#") and first.endswith("#}") else ""


def readme() -> str:
    """templates/README.md of a new project: what can be overridden and how."""
    lines = [
        "# templates/",
        "",
        "Templates here replace autosae's own of the same name, for this project only: the agent's",
        "prompts, the sprint report and the leaderboard. Copy one with `autosae templates copy NAME`,",
        "edit it and commit it; `autosae templates list` shows which ones this project overrides, and",
        "`autosae report --all` renders the recorded sprints' reports again with them.",
        "",
        "The templates are jinja2, rendered with StrictUndefined (an unknown name is an error),",
        "trim_blocks and lstrip_blocks (a tag written `+%}` keeps the line break after it).",
        "A template includes others by their full name (`agent/library.md.j2`), so that an include",
        "finds this project's copy too. report.md.j2 is rendered with the names",
        "autosae.report.content.report_content returns; report.pdf is drawn from the same content.",
        "autosae reads them from the project's main checkout only, never from an agent's worktree.",
        "Text that the agent or its variant wrote goes through the filters `cell`, `code`, `inline`,",
        "`block` and `fenced` (autosae.report.escape), so that it cannot add a table row, a heading",
        "or HTML: keep them in a copy.",
        "",
        "What can be overridden:",
        "",
    ]
    for name in template_names():
        what = description(name)
        lines.append(f"- `{name}`" + (f": {what}" if what else ""))
    return "\n".join(lines) + "\n"
