"""`autosae transfer`: does a sprint's synthetic win hold on a real language model?"""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from autosae.cli.common import ProjectDir, emit
from autosae.errors import AutosaeError


def transfer(
    sprint_id: Annotated[str, typer.Argument(help="Sprint id, or any unique part of it.")],
    model: Annotated[str | None, typer.Option(help="Language model (TransformerLens name or a folder).")] = None,
    hook: Annotated[str | None, typer.Option(help="Hook point, e.g. blocks.3.hook_resid_post.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Token dataset (HF name or a save_to_disk folder).")] = None,
    tokens: Annotated[int | None, typer.Option(min=1, help="Training tokens per SAE.")] = None,
    width: Annotated[int | None, typer.Option(min=1, help="Latents of every SAE.")] = None,
    l0s: Annotated[str | None, typer.Option(help="L0s to compare at, comma-separated (e.g. 16,32,64).")] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="Seeds per L0.")] = None,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda or cuda:N (default: TASK.md's gpus, an SAE at a time on each; else its device)."),
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Train a recorded sprint's variant, its parent and the Matryoshka baseline on a real
    language model's activations (TASK.md's transfer settings; options override them), at
    several L0s and seeds, each in the variant's sandbox; evaluate them with SAELens (CE loss
    recovered, explained variance, L0, dead latents); record the verdicts, the cost and the
    plots in the sprint's transfer.json, transfer.md and transfer.pdf, and commit. A killed
    transfer resumes where it stopped."""
    from autosae.config import load_task
    from autosae.sprint.project import Project, ProjectLock
    from autosae.transfer.core import run_and_record, transfer_devices
    from autosae.transfer.settings import TransferSettings
    from autosae.transfer.verdict import SYMBOLS

    project = Project.find(project_dir)
    cfg = load_task(project.task_path).config
    changes = {"model": model, "hook": hook, "dataset": dataset, "tokens": tokens, "width": width, "seeds": seeds}
    changes = {k: v for k, v in changes.items() if v is not None}
    if l0s is not None:
        try:
            changes["l0s"] = [int(x) for x in l0s.split(",") if x.strip()]
        except ValueError:
            raise AutosaeError(f"--l0s {l0s!r}: expected whole numbers separated by commas, e.g. 16,32,64") from None
    try:
        settings = TransferSettings.model_validate({**cfg.transfer.model_dump(), **changes})
    except ValueError as exc:
        raise AutosaeError(f"transfer settings: {str(exc).splitlines()[-1].strip()}") from None
    log = lambda line: typer.echo(line, err=True)  # noqa: E731
    with ProjectLock(project, "autosae transfer"):
        data = run_and_record(
            project, cfg, sprint_id, settings, transfer_devices(cfg, device), contextlib.nullcontext(), log
        )
    for other, by_metric in data["comparisons"].items():
        for metric, c in by_metric.items():
            emit(f"{metric} vs {other}", f"{c['verdict']} (n = {c['n']}, p = {c['p_value']})")
    emit("verdict", f"{SYMBOLS[data['verdict']]} {data['verdict']}")
    cost = data["cost"]
    emit("cost", f"{cost['spent']:.3g} {cost['unit']}; next step {cost['next']:.3g} {cost['unit']}")
    emit("report", project.sprints_dir / data["sprint"] / "transfer.md")
