"""Red team: git in the agent's worktree. While the scripted agent implements (it waits for the
test, as an LLM agent's tools would be busy), the test writes hostile git files into the
sprint's worktree, as the agent could: ignore and attribute rules at the worktree's root, git's
own files in the sprint folder, a path git refuses. Each sprint must end recorded (refused
with one line where it must be), `autosae resume` must have nothing left to do, and main must
hold byte for byte the variant.py whose sha256 the ledger records."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import git
import pytest

from autosae.sprint import gitops
from autosae.variants import reference_variants
from tests.sprint.conftest import COMMIT_ENV, autosae, autosae_running, ledger, sprint_commits, write_script

PLANTED = "planted"
"""The file in the project that the scripted agent waits for before it writes its variant."""


def sprint_with(project: Path, plant: Callable[[Path, Path], None], variant: str = "lista_matryoshka", env=None):
    """`autosae sprint`, with `plant(worktree, sprint_folder)` run while the agent implements;
    (the finished process, its stdout, its stderr, the ledger row). A later sprint plants
    nothing and runs another idea."""
    write_script(
        project,
        [
            {"title": "git games", "idea": "hostile git files", "variant": variant, "wait": {"implement": PLANTED}},
            {"title": "after the games", "idea": "the seed recipe, nothing planted", "variant": "lista_matryoshka"},
        ],
    )
    proc = autosae_running("sprint", cwd=project, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (folders := [p for p in (project / ".autosae" / "worktrees").glob("*/sprints/*") if p.is_dir()]):
        assert time.monotonic() < deadline and proc.poll() is None, "the sprint never reached implementing"
        time.sleep(0.05)
    (folder,) = folders
    plant(folder.parents[1], folder)
    (project / PLANTED).touch()
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err and "internal error" not in err, err
    (row,) = ledger(project)
    return proc, out, err, row


def ends_cleanly(project: Path, row: dict) -> None:
    """Recorded once on main, with nothing left to resume and nothing dirty."""
    resumed = autosae("resume", cwd=project)
    assert resumed.returncode == 0 and resumed.stdout.startswith("nothing to resume"), resumed.stdout + resumed.stderr
    assert [r["id"] for r in ledger(project)] == [row["id"]] and len(sprint_commits(project)) == 1
    assert gitops.dirty_paths(git.Repo(project)) == []


def committed(project: Path, rev: str, path: str) -> bytes:
    return subprocess.run(["git", "cat-file", "blob", f"{rev}:{path}"], cwd=project, capture_output=True).stdout


def test_git_files_in_the_sprint_folder_are_refused(project):
    def plant(_worktree: Path, folder: Path) -> None:
        (folder / ".gitignore").write_text("*\n")
        (folder / ".gitattributes").write_text("*.py ident\n")
        (folder / ".gitmodules").write_text('[submodule "x"]\n\tpath = x\n\turl = /tmp/x\n')
        (folder / ".git").mkdir()
        (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        (folder / "notes").mkdir()
        (folder / "notes" / ".GIT").write_text("gitdir: /tmp/elsewhere\n")
        (folder / "notes" / "kept.txt").write_text("the agent's notes\n")

    proc, _, _, row = sprint_with(project, plant)
    assert proc.returncode == 3
    assert row["verdict"] == "failed" and row["reason"].startswith("refused: the sprint folder held .git, ")
    assert "git's own files" in row["reason"] and "\n" not in row["reason"]
    for rev in ("main", f"sprint/{row['id']}"):
        names = git.Repo(project).git.ls_tree("-r", "--name-only", rev, f"sprints/{row['id']}").split()
        assert f"sprints/{row['id']}/notes/kept.txt" in names
        assert not [n for n in names if "/.git" in n.lower()], names
    ends_cleanly(project, row)


def test_a_worktree_that_ignores_everything_still_commits_and_never_wedges(project):
    def plant(worktree: Path, folder: Path) -> None:
        (worktree / ".gitignore").write_text("*\n")
        (worktree / "sprints" / ".gitignore").write_text("*\n!.gitignore\n")
        (folder / "extra.txt").write_text("ignored by the worktree's rules, committed all the same\n")

    proc, _, err, row = sprint_with(project, plant)
    assert proc.returncode == 0, err
    assert row["verdict"] != "failed"
    variant = committed(project, "main", f"sprints/{row['id']}/variant.py")
    assert variant == reference_variants()["lista_matryoshka"].read_bytes()
    assert committed(project, "main", f"sprints/{row['id']}/extra.txt").startswith(b"ignored")
    ends_cleanly(project, row)


CRLF_VARIANT = (
    reference_variants()["lista_matryoshka"].read_text().replace("\n", "\r\n") + "# $Id: the bytes that trained $\r\n"
)
"""Lines that `* text eol=crlf` would normalise and an `$Id$` that `ident` would rewrite."""
ATTRIBUTES = "*.py ident\n* text eol=crlf\n*.py filter=shout\n"
SHOUT = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "filter.shout.clean", "GIT_CONFIG_VALUE_0": "tr a-z A-Z"}
"""A filter driver the user has configured (as git-lfs configures one), that the agent's
attributes would turn on for variant.py."""


def test_worktree_and_main_attributes_change_nothing_that_is_committed(project):
    (project / ".gitattributes").write_text(ATTRIBUTES)  # main's own: they apply to every checkout of it
    repo = git.Repo(project)
    repo.git.add(".gitattributes")
    repo.git.commit("-q", "-m", "attributes", env=COMMIT_ENV)

    def plant(worktree: Path, folder: Path) -> None:
        (worktree / ".gitattributes").write_text(ATTRIBUTES)

    proc, _, err, row = sprint_with(project, plant, variant=CRLF_VARIANT, env=SHOUT)
    assert proc.returncode == 0, err
    wrote = CRLF_VARIANT.encode()
    assert row["verdict"] != "failed" and row["variant_sha256"] == hashlib.sha256(wrote).hexdigest()
    for rev in ("main", f"sprint/{row['id']}"):
        assert committed(project, rev, f"sprints/{row['id']}/variant.py") == wrote
    assert (project / "sprints" / row["id"] / "variant.py").read_bytes() == wrote  # main's checkout of it
    ends_cleanly(project, row)


def test_a_path_git_refuses_fails_the_sprint_and_the_loop_goes_on(project):
    def plant(_worktree: Path, folder: Path) -> None:
        (folder / "git~1").write_text("git will not record this name\n")

    proc, _, _, row = sprint_with(project, plant)
    assert proc.returncode == 3
    assert row["verdict"] == "failed" and "\n" not in row["reason"]
    assert row["reason"].startswith("refused: the sprint folder cannot be committed as it is (git refuses the path")
    names = git.Repo(project).git.ls_tree("-r", "--name-only", "main", f"sprints/{row['id']}").split()
    assert f"sprints/{row['id']}/README.md" in names and not [n for n in names if n.endswith("git~1")]
    ends_cleanly(project, row)
    loop = autosae("loop", "--max-sprints", "1", cwd=project)  # the next sprint (nothing planted) records
    assert loop.returncode == 0 and "Traceback" not in loop.stderr, loop.stdout + loop.stderr
    rows = ledger(project)
    assert len(rows) == 2 and rows[0] == row and rows[1]["verdict"] != "failed"


def test_a_run_of_another_variant_than_the_committed_one_is_refused(project):
    """The check behind variant_sha256: the run is of the variant.py on the sprint's branch
    (which main receives byte for byte), else nothing of it is recorded. Here the branch is
    changed behind the engine's back while it is stopped after training."""
    killed = autosae("sprint", cwd=project, env={"AUTOSAE_CRASH_AT": "training"})
    assert killed.returncode < 0
    (tree_dir,) = (project / ".autosae" / "worktrees").iterdir()
    tree = git.Repo(tree_dir)
    variant = tree_dir / "sprints" / tree_dir.name / "variant.py"
    trained = variant.read_bytes()
    variant.write_bytes(trained + b"# not what trained\n")
    tree.git.commit("-q", "-am", "swap", env=COMMIT_ENV)
    variant.write_bytes(trained)
    resumed = autosae("resume", cwd=project)
    assert resumed.returncode in (0, 3), resumed.stdout + resumed.stderr
    (row,) = ledger(project)
    assert row["verdict"] == "failed" and "is not the variant.py committed on" in row["reason"]
    assert row.get("variant_sha256") is None  # nothing of the run is recorded
    ends_cleanly(project, row)


def victim_folder(path: Path) -> dict[str, bytes | str]:
    """A host folder the agent must not reach through a link: git's files, a record, a link."""
    (path / ".git").mkdir(parents=True)
    (path / ".git" / "config").write_text("[core]\n")
    (path / ".gitignore").write_text("*\n")
    (path / "results.json").write_text('{"status": "ok"}\n')
    (path / "link").symlink_to(path / "results.json")
    return {
        str(p.relative_to(path)): os.readlink(p) if p.is_symlink() else p.read_bytes()
        for p in path.rglob("*")
        if not p.is_dir()
    }


@pytest.mark.parametrize("which", ["the sprint folder", "sprints/"])
def test_a_sprint_folder_or_sprints_made_a_link_is_refused_and_where_it_points_is_left_alone(project, tmp_path, which):
    """The agent owns its worktree: it replaces its sprint folder, or the worktree's sprints/,
    by a link to a host folder, so that our process (root, on GPU boxes) would delete git's files
    and links there, write its records there or commit what is there. The link is removed, a real
    folder made in its place, the sprint refused with one line, and the host folder untouched
    (but for what the scripted agent itself wrote through the link: it runs in our process)."""
    victim = tmp_path / "victim"
    before: dict = {}

    def plant(worktree: Path, folder: Path) -> None:
        if which == "sprints/":
            before.update(victim_folder(victim / folder.name))
            shutil.rmtree(worktree / "sprints")
            (worktree / "sprints").symlink_to(victim)
        else:
            before.update(victim_folder(victim))
            shutil.rmtree(folder)
            folder.symlink_to(victim)

    proc, _, err, row = sprint_with(project, plant)
    assert proc.returncode == 3, err
    assert row["verdict"] == "failed" and row["reason"].startswith("refused: sprints/"), row["reason"]
    assert "was a link" in row["reason"] and "\n" not in row["reason"]
    where = victim / row["id"] if which == "sprints/" else victim
    after = {
        str(p.relative_to(where)): os.readlink(p) if p.is_symlink() else p.read_bytes()
        for p in where.rglob("*")
        if not p.is_dir()
    }
    assert {k: v for k, v in after.items() if k not in ("variant.py", "README.md")} == before
    names = git.Repo(project).git.ls_tree("-r", "--name-only", "main", f"sprints/{row['id']}").split()
    assert not [n for n in names if "results.json" in n and "victim" in n]
    assert not (victim / "report.md").exists() and not (where / "report.md").exists()
    ends_cleanly(project, row)


def test_huge_sparse_and_hard_linked_files_are_refused_not_committed(project):
    """A sparse file of 512 MB (no disk) and three hard links to it (the disk bound counts it
    once): committed, they would put gigabytes on main and through our process's memory."""

    def plant(_worktree: Path, folder: Path) -> None:
        with open(folder / "big.bin", "wb") as f:
            f.truncate(512 << 20)
        for n in range(3):
            os.link(folder / "big.bin", folder / f"copy{n}.bin")
        (folder / "notes.txt").write_text("kept\n")

    started = time.monotonic()
    proc, _, err, row = sprint_with(project, plant)
    assert proc.returncode == 3, err
    assert row["verdict"] == "failed" and row["reason"].startswith("refused: the sprint folder held big.bin, "), row
    assert "hard links, or files over 4 MiB" in row["reason"] and "\n" not in row["reason"]
    names = git.Repo(project).git.ls_tree("-r", "--name-only", "main", f"sprints/{row['id']}").split()
    assert f"sprints/{row['id']}/notes.txt" in names and not [n for n in names if n.endswith(".bin")]
    assert time.monotonic() - started < 120
    ends_cleanly(project, row)
