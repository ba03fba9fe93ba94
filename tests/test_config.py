"""TASK.md parsing: defaults, the template, the repository's own TASK.md, and errors that
name the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosae.config import load_task, parse_task, render_task_template
from autosae.errors import AutosaeError


def error_of(text: str) -> str:
    with pytest.raises(AutosaeError) as info:
        parse_task(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_and_body():
    task = parse_task("---\n---\n\n# Goal\nbeat matryoshka\n")
    assert task.config.profile == "tiny" and task.config.objective == "f1"
    assert task.config.seed_list() == [0, 1, 2] and task.config.agent.backend is None
    assert task.body == "# Goal\nbeat matryoshka\n"


@pytest.mark.parametrize("profile", ["tiny", "synth-16k"])
def test_the_template_round_trips(profile):
    task = parse_task(render_task_template(profile=profile, backend="recipe", seeds=2))
    assert task.config.profile == profile and task.config.agent.backend == "recipe"
    assert task.config.seed_list() == [0, 1]
    for section in ("## Goal", "## Ideas to try", "## Do not"):
        assert section in task.body
    assert parse_task(render_task_template()).config.agent.backend is None


def test_the_repository_task_md_is_a_synth_16k_task():
    task = load_task(Path(__file__).parents[1] / "TASK.md")
    assert task.config.profile == "synth-16k"
    assert "LISTA" in task.body


def test_seeds_constraints_and_profile():
    task = parse_task("---\nseeds: [3, 5]\nconstraints:\n  training_samples: 1000\n  lr: 0.001\n---\n")
    assert task.config.seed_list() == [3, 5]
    assert task.config.profile_overrides() == ["training_samples=1000", "lr=0.001"]
    profile = task.config.build_profile()
    assert profile.constraints.training_samples == 1000 and profile.constraints.lr == 0.001


@pytest.mark.parametrize(
    "text, line, field",
    [
        ("---\nprofile: tiny\nobjective: acc\n---\n", 3, "objective: expected 'f1' or 'mcc', got 'acc'"),
        ("---\nprofile: tinyy\n---\n", 2, "profile: unknown profile 'tinyy'"),
        (
            "---\nagent:\n  backend: recipe\n  hide_pats: true\n---\n",
            4,
            "agent.hide_pats: unknown field (known: backend",
        ),
        ("---\nbudgets:\n  usd_total: lots\n---\n", 3, "budgets.usd_total: expected a number"),
        ("---\nseeds: 0\n---\n", 2, "seeds:"),
        ("---\nloop:\n  max_consecutive_failures: 0\n---\n", 3, "loop.max_consecutive_failures"),
        ("---\nconstraints:\n  widht: 4\n---\n", 3, "constraints.widht: unknown field"),
        ("---\nprofile: [tiny\n---\n", 3, "YAML syntax error"),
        ("---\nprofile: tiny\ngpus: gpu0\n---\n", 3, "gpus: expected GPU indices (0,1), cuda:N, cpu or all"),
        ("---\ngpus: [1, 1]\n---\n", 2, "gpus: a GPU is named twice"),
        ("---\nlauncher: pbs\n---\n", 2, "launcher.kind: expected 'local', 'slurm' or 'submitit-local'"),
        ("---\nlauncher:\n  kind: slurm\n  max_requeue: -1\n---\n", 4, "launcher.max_requeue"),
        (
            "---\nseeds: 2\nlauncher: {kind: submitit-local, folder: jobs}\n---\n",
            3,
            "launcher.folder: 'jobs' is inside",
        ),
        ("---\nlauncher:\n  kind: slurm\n  folder: .autosae/../jobs\n---\n", 4, "launcher.folder: '.autosae/../jobs'"),
        ("---\nlauncher:\n  kind: slurm\n  folder: .autosae\n---\n", 4, "launcher.folder:"),
        ("---\nlauncher:\n  kind: slurm\n  folder: ~/jobs\n---\n", 4, "under .autosae/ (such as .autosae/jobs)"),
    ],
)
def test_errors_name_the_line_and_field(text, line, field):
    message = error_of(text)
    assert message.startswith(f"TASK.md line {line}: ") and field in message


def test_gpus_and_launcher():
    cfg = parse_task("---\ngpus: 0,1\nlauncher:\n  kind: slurm\n  partition: gpu\n---\n").config
    assert cfg.gpus == "0,1" and cfg.launcher.kind == "slurm" and cfg.launcher.partition == "gpu"
    cfg = parse_task("---\ngpus: [cpu, cpu]\nlauncher: submitit-local\n---\n").config
    assert cfg.gpus == ["cpu", "cpu"] and cfg.launcher.kind == "submitit-local" and cfg.launcher.max_requeue == 2


def test_a_launcher_folder_lies_outside_the_project_or_under_its_private_folder(tmp_path):
    """submitit's pickles hold the profile with the secret eval seed: never where an agent's
    tool that reads the project could find them."""
    root = tmp_path / "project"
    root.mkdir()
    task = root / "TASK.md"
    for folder, allowed in [
        (None, True),
        (".autosae/jobs", True),
        (str(tmp_path / "jobs"), True),
        ("../jobs", True),
        (str(root / "jobs"), False),
        ("../project/jobs", False),
        ("sprints/jobs", False),
    ]:
        launcher = "launcher: submitit-local" if folder is None else f"launcher: {{kind: slurm, folder: {folder}}}"
        task.write_text(f"---\nprofile: tiny\n{launcher}\n---\n")
        if allowed:
            assert load_task(task).config.launcher.folder == folder
        else:
            with pytest.raises(AutosaeError, match=r"TASK.md line 3: launcher.folder: .* is inside the project"):
                load_task(task)
    link = root / "elsewhere"
    link.symlink_to(root / "sprints")  # a link out of the private folder's reach: judged by where it leads
    task.write_text("---\nlauncher: {kind: slurm, folder: elsewhere/jobs}\n---\n")
    with pytest.raises(AutosaeError, match="launcher.folder"):
        load_task(task)


def test_missing_or_unclosed_front_matter():
    assert "front matter" in error_of("# just a body\n")
    assert "never closed" in error_of("---\nprofile: tiny\n# body\n")
    assert "mapping" in error_of("---\n- a\n- b\n---\n")


def test_several_errors_are_counted():
    assert "(and 1 more)" in error_of("---\nobjective: acc\nsignificance: 2\n---\n")


def test_missing_file(tmp_path):
    with pytest.raises(AutosaeError, match="autosae init"):
        load_task(tmp_path / "TASK.md")
