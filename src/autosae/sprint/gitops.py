"""The git operations of a sprint, through GitPython: the project repository, sprint branches
and worktrees, and the one commit per sprint on the main branch.

Only sprints/ and reports/ are ever committed on the main branch: every commit there names
its paths explicitly, so nothing the user has staged elsewhere is swept in. A sprint's own
commits (on its branch, and its merge on main) go through autosae.sprint.gitexact: the bytes
on disk, whatever ignore or attribute rules the agent's worktree holds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import git

from autosae.errors import AutosaeError
from autosae.sprint.gitexact import env, same_as_index, subject, sync_index, write_exact

OWNED = ("sprints", "reports")
"""The paths autosae commits on the main branch."""


def open_repo(root: Path) -> git.Repo:
    try:
        return git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise AutosaeError(f"{root} is not a git repository; run `autosae init {root}`") from None


def init_repo(root: Path) -> git.Repo:
    """Open the repository at root, or create one (its first branch is called main)."""
    if (root / ".git").exists():
        return open_repo(root)
    repo = git.Repo.init(root)
    repo.git.symbolic_ref("HEAD", "refs/heads/main")
    return repo


def commit_paths(repo: git.Repo, message: str, paths: list[str]) -> str | None:
    """Stage and commit exactly `paths` (relative to the repository); None when they hold no
    change. Other staged or unstaged changes are left alone."""
    repo.git.add("-A", "--", *paths)
    if not repo.git.diff("--cached", "--name-only", "--", *paths).strip():
        return None
    with repo.git.custom_environment(**env(repo)):
        repo.git.commit("-q", "-m", subject(message).decode(), "--", *paths)
    return repo.head.commit.hexsha


def root_commit(repo: git.Repo) -> str:
    """The repository's first commit: a stable name for the project, wherever it is cloned."""
    return repo.git.rev_list("--max-parents=0", "HEAD").split()[0]


def current_branch(repo: git.Repo) -> str:
    if repo.head.is_detached:
        raise AutosaeError(
            "HEAD is detached; check out the branch that records your sprints (for example `git checkout main`)"
        )
    return repo.active_branch.name


def has_commits(repo: git.Repo) -> bool:
    try:
        _ = repo.head.commit
    except ValueError:
        return False
    return True


def dirty_paths(repo: git.Repo, paths=OWNED) -> list[str]:
    """Uncommitted changes (staged, unstaged or untracked) under `paths`."""
    out = repo.git.status("--porcelain", "--untracked-files=all", "--", *paths)
    entries = [(line[:2], line[3:]) for line in out.splitlines() if line.strip()]
    # a file that differs only through the checkout's attributes (git status compares it
    # after its filters; autosae writes and commits the bytes as they are) is not a change
    exact = same_as_index(repo, [name for xy, name in entries if xy == " M" and not name.startswith('"')])
    return [name for _, name in entries if name not in exact]


def refuse_dirty(repo: git.Repo, allow: tuple[str, ...] = ()) -> None:
    dirty = [p for p in dirty_paths(repo) if not p.startswith(allow)]
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise AutosaeError(
            f"uncommitted changes in sprints/ or reports/ ({shown}); autosae commits "
            f"these folders itself: commit, stash or remove the changes first"
        )


def in_head(repo: git.Repo, path: str) -> bool:
    """Whether the main branch's last commit has `path`."""
    try:
        repo.git.cat_file("-e", f"HEAD:{path}")
    except git.GitCommandError:
        return False
    return True


def head_text(repo: git.Repo, path: str) -> str:
    try:
        return repo.git.show(f"HEAD:{path}", strip_newline_in_stdout=False)
    except git.GitCommandError:
        return ""


def branch_exists(repo: git.Repo, branch: str) -> bool:
    return f"refs/heads/{branch}" in {r.path for r in repo.branches}


def add_worktree(repo: git.Repo, path: Path, branch: str) -> git.Repo:
    """The sprint's worktree on its branch (created from HEAD the first time); idempotent, so
    that a resumed sprint finds the same tree."""
    forget_elsewhere(repo, path)
    repo.git.worktree("prune")
    if path.exists():
        try:
            tree = git.Repo(path)
            # the tree must still be this repository's (an agent may not re-point its .git file)
            ours = Path(tree.common_dir).resolve() == Path(repo.common_dir).resolve()
            if ours and tree.active_branch.name == branch:
                return tree
        except (git.InvalidGitRepositoryError, TypeError):
            pass
        shutil.rmtree(path)
        repo.git.worktree("prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    if branch_exists(repo, branch):
        repo.git.worktree("add", "-q", str(path), branch)
    else:
        repo.git.worktree("add", "-q", "-b", branch, str(path), "HEAD")
    return git.Repo(path)


def forget_elsewhere(repo: git.Repo, path: Path) -> None:
    """Drop git's record of a worktree named like `path` that lies in another folder: in a
    project moved or copied to a new place (where the original may still live), git's records
    still name the old place, and git would refuse to check the sprint's branch out here. Only
    this repository's record goes (the original's tree and records are left alone); the
    worktree is then made anew from the sprint's branch, where its work is committed."""
    admin = Path(repo.common_dir) / "worktrees"
    for record in sorted(admin.glob("*/gitdir")) if admin.is_dir() else []:
        where = Path(record.read_text().strip()).parent
        if where.name == path.name and where.resolve() != path.resolve():
            shutil.rmtree(record.parent)


def remove_worktree(repo: git.Repo, path: Path) -> None:
    if path.exists():
        try:
            repo.git.worktree("remove", "--force", str(path))
        except git.GitCommandError:
            shutil.rmtree(path, ignore_errors=True)
    repo.git.worktree("prune")


def checkout_from(repo: git.Repo, branch: str, path: str) -> None:
    """Put `path` as it is on `branch` into the main checkout, byte for byte: no attribute
    (`ident`, `eol`, a filter) of the checkout applies. The index is left alone (the commit
    that follows, gitexact.commit_exact, brings it in line)."""
    write_exact(repo, branch, path)


def restore(repo: git.Repo, paths: list[str]) -> None:
    """Undo uncommitted changes under `paths` (a merge interrupted by a crash): back to HEAD
    byte for byte, in the index and on disk, and what HEAD does not have removed."""
    sync_index(repo, paths)
    for path in paths:
        write_exact(repo, "HEAD", path)
