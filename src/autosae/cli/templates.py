"""`autosae templates list | copy NAME`: the templates a project can override (the agent's
prompts, the sprint report, the leaderboard) and a copy of one to edit in its templates/."""

from __future__ import annotations

import shutil

import typer

from autosae.cli.common import ProjectDir

app = typer.Typer(
    help="The templates a project can override: list them, copy one into templates/.", no_args_is_help=True
)


@app.command("list")
def list_templates(project_dir: ProjectDir = None) -> None:
    """List the templates and which of them this project overrides (`project`) in templates/."""
    from autosae import templating
    from autosae.errors import AutosaeError
    from autosae.sprint.project import Project

    try:
        project = Project.find(project_dir)
    except AutosaeError:
        if project_dir is not None:
            raise
        project = None  # outside a project: autosae's own templates, nothing to mark
    mine = set(templating.overridden(project.root)) if project else set()
    names = templating.template_names()
    width = max(len(n) for n in names)
    typer.echo(f"{'template':<{width}}  {'used':<7}  what it renders")
    for name in names:
        used = "project" if name in mine else "autosae"
        typer.echo(f"{name:<{width}}  {used:<7}  {templating.description(name)}".rstrip())
    for stray in templating.strays(project.root) if project else []:
        typer.echo(f"not used: {templating.PROJECT_FOLDER}/{stray} (no template has this name)")


@app.command()
def copy(
    name: str = typer.Argument(help="A template from `autosae templates list`, e.g. report.md.j2 or propose."),
    project_dir: ProjectDir = None,
) -> None:
    """Copy autosae's template NAME into the project's templates/, to edit and commit there."""
    from autosae import templating
    from autosae.errors import AutosaeError
    from autosae.sprint.project import Project

    project = Project.find(project_dir)
    name = templating.resolve(name)
    target = templating.project_templates(project.root) / name
    shown = f"{templating.PROJECT_FOLDER}/{name}"
    if target.exists():
        raise AutosaeError(f"{shown} exists in {project.root}: edit it there, or remove it to copy autosae's again")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(templating.PACKAGE_TEMPLATES / name, target)
    typer.echo(f"copied: {target}")
    later = "the next sprint's prompts use it" if name.startswith("agent/") else "the next sprint uses it"
    if name in ("report.md.j2", "leaderboard.md.j2", "digest.md.j2"):
        later += "; `autosae report --all` renders the recorded sprints' reports again with it"
    typer.echo(f"next: edit it and commit it; {later}")
