"""The quick-run command given to the claude_code agent, rendered from the project's settings.

Claude Code has no `run_experiment` tool: it quick-runs a variant with `autosae train
--uncounted` in its Bash tool. The command must work exactly as written, so it is built here
from what the counted run uses (the profile, TASK.md's model seed and constraint overrides),
trains the parent beside the variant where that is cheap (harness.quick.PARENT_AUTO_SAMPLES),
and writes into a folder of the sprint's own (parallel sprints never share one). Inside Claude
Code's sandbox `autosae` has no model cache of ours and no secret: the run builds the model in
the session's private home and is scored on the public validation samples, like every quick run.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.harness.quick import PARENT_AUTO_SAMPLES, clamp_samples

if TYPE_CHECKING:
    from autosae.bench.profiles import Profile
    from autosae.config import TaskConfig


def parent_argument(parent: str | None, worktree: Path) -> str | None:
    """How `autosae train --parent` names the sprint's parent from the worktree: a reference
    variant by name (baselines), or the parent sprint's variant.py as the worktree has it."""
    from autosae.variants import reference_variants

    parent = parent or "baseline:matryoshka"
    if parent.startswith("baseline:"):
        name = parent.removeprefix("baseline:")
        return name if name in reference_variants() else None
    path = f"sprints/{parent}/variant.py"
    return path if (worktree / path).is_file() else None


def quick_command(
    cfg: TaskConfig, profile: Profile, folder: str, parent: str | None, worktree: Path, quick_dir: Path
) -> str:
    """`autosae train <folder>/variant.py` on the project's profile and model, one quick seed, a
    tenth of the training samples, the parent beside it when cheap, into a new folder under
    `quick_dir` (named by the time it starts)."""
    samples = clamp_samples(None, profile.constraints)
    args = ["autosae", "train", f"{folder}/variant.py", "--profile", profile.name]
    if cfg.model_seed is not None:
        args += ["--model-seed", str(cfg.model_seed)]
    for item in cfg.profile_overrides():
        if not item.startswith("training_samples="):
            args += ["--set", item]
    args += ["--seeds", "1", "--uncounted", "--samples", str(samples)]
    ref = parent_argument(parent, worktree)
    if ref is not None and samples <= PARENT_AUTO_SAMPLES:
        args += ["--parent", ref]
    return " ".join(shlex.quote(a) for a in args) + f" --out {shlex.quote(str(quick_dir))}/run-$(date +%m%d-%H%M%S)"


def quick_fields(
    cfg: TaskConfig, profile: Profile, sprint_path: str, parent: str | None, worktree: Path, record_dir: Path
) -> dict:
    """AgentContext's quick_command and quick_dir for one sprint: the folder is `quick-runs`
    beside the agent's transcripts (outside the worktree, so nothing of it is committed)."""
    quick_dir = record_dir / "quick-runs"
    return {
        "quick_dir": quick_dir,
        "quick_command": quick_command(cfg, profile, sprint_path, parent, worktree, quick_dir),
    }
