"""Red team: links the agent plants in its worktree where our process reads the parent's code.
The conclude prompt's diff, the implement prompt's inlined parent and the report's diff take the
parent from the project's main checkout, never from the worktree, and the report's diff never
reads through a linked folder: a link there to the project's secrets (or any root-only file)
must not bring its text into a prompt, which goes to the model and into a committed transcript."""

from __future__ import annotations

from pathlib import Path

from autosae.agents.base import AgentContext, Proposal
from autosae.agents.prompts import conclude_prompt, implement_prompt
from autosae.report.record import folder_files

SECRET = '{"eval_seed": 918273645, "heldout_seeds": [5551212]}'
HONEST = "def build(spec):\n    return 'the parent as main has it'\n"


def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A main checkout with a recorded parent, and a worktree whose parent files are links to a
    root-only secret: its variant.py, and its whole folder."""
    main, worktree, secrets = tmp_path / "main", tmp_path / "worktree", tmp_path / "secrets"
    (main / "sprints" / "p1").mkdir(parents=True)
    (main / "sprints" / "p1" / "variant.py").write_text(HONEST)
    secrets.mkdir()
    (secrets / "project.json").write_text(SECRET)
    (secrets / "project.json").chmod(0o600)
    (worktree / "sprints" / "p1").mkdir(parents=True)
    (worktree / "sprints" / "p1" / "variant.py").symlink_to(secrets / "project.json")
    (worktree / "sprints" / "p2").symlink_to(secrets)
    (worktree / "sprints" / "s2").mkdir()
    (worktree / "sprints" / "s2" / "variant.py").write_text("def build(spec):\n    return 'mine'\n")
    return main, worktree


def test_the_prompts_take_the_parent_from_main_not_from_a_link_in_the_worktree(tmp_path):
    main, worktree = planted(tmp_path)
    ctx = AgentContext("", "tiny", "f1", 1, project_root=main, worktree=worktree, sprint_id="s2")
    proposal = Proposal(title="t", idea="i", hypothesis="h", plan="p", parent="p1")
    _, concluded = conclude_prompt(proposal, {"summary": {}}, {"verdict": "improved"}, ctx)
    _, _, implementing = implement_prompt(proposal, worktree / "sprints" / "s2", ctx)
    for prompt in (concluded, implementing):
        assert "918273645" not in prompt and "eval_seed" not in prompt
    assert "the parent as main has it" in concluded and "the parent as main has it" in implementing


def test_the_reports_diff_reads_no_linked_folder(tmp_path):
    _, worktree = planted(tmp_path)
    assert folder_files(worktree / "sprints" / "p2", ()) == {}
    assert "project.json" not in str(folder_files(worktree / "sprints", ()))
