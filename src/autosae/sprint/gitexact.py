"""Commits and checkouts of exact bytes, through git's plumbing.

A sprint's worktree is the agent's: it may hold a `.gitignore` of `*`, a `.gitattributes` with
`*.py ident`, `* text eol=crlf` or a filter. `git add` and `git checkout` obey those rules, so
the commit failed (a wedge that every resume repeated) or recorded a variant.py other than the
one that trained (its variant_sha256 then matched no file on main). Here nothing reads an
ignore or attribute rule, and no hook runs:

- commit_exact: each file's bytes as they are on disk (`git hash-object --no-filters`) go into
  a temporary index (GIT_INDEX_FILE) made from the branch's last commit, then `write-tree`,
  `commit-tree` and `update-ref` (refusing to move a branch that moved meanwhile);
- write_exact: a path as a commit has it, each blob's bytes written as they are
  (`git cat-file`), never through `git checkout`.

Every git failure is a GitFailed with one line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import git

from autosae.errors import AutosaeError, first_line

REGULAR = {"100644", "100755"}
"""The modes of the files autosae commits and writes: no links, no submodules."""
ELSEWHERE = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")
"""Environment variables that would point git at another repository, index or object store."""


IDENTITY = {
    "GIT_AUTHOR_NAME": "autosae",
    "GIT_AUTHOR_EMAIL": "autosae@localhost",
    "GIT_COMMITTER_NAME": "autosae",
    "GIT_COMMITTER_EMAIL": "autosae@localhost",
}


def env(repo: git.Repo) -> dict[str, str]:
    """A committer identity for machines without one configured (CI, fresh servers)."""
    reader = repo.config_reader()
    have_name = reader.has_option("user", "name") or "GIT_AUTHOR_NAME" in os.environ
    have_email = reader.has_option("user", "email") or "GIT_AUTHOR_EMAIL" in os.environ
    return {} if have_name and have_email else dict(IDENTITY)


class GitFailed(AutosaeError):
    """A git command failed, or git would not record a path as it is; one line says which."""


def run_git(repo: git.Repo, *args: str, stdin: bytes | None = None, index: Path | None = None) -> bytes:
    """`git ARGS` in the main checkout `repo` (its git directory named outright, so that no
    worktree's `.git` file is read), pathspecs taken literally; its stdout."""
    variables = {k: v for k, v in os.environ.items() if k not in ELSEWHERE}
    variables |= {"GIT_DIR": str(Path(repo.git_dir).resolve()), "GIT_LITERAL_PATHSPECS": "1", **env(repo)}
    if index is not None:
        variables["GIT_INDEX_FILE"] = str(index)
    proc = subprocess.run(["git", *args], input=stdin, capture_output=True, env=variables, cwd=main_root(repo))
    if proc.returncode != 0:
        said = first_line(Exception(proc.stderr.decode(errors="replace")))
        raise GitFailed(f"git {args[0]} failed: {said}")
    return proc.stdout


def subject(message: str) -> bytes:
    """A commit message of ours as one line: it may quote a sprint's title, the agent's text,
    whose line breaks would forge a body or trailers (`Signed-off-by:`, a second verdict) in
    `git log`."""
    return " ".join(message.split()).encode()


def git_error(exc: git.GitCommandError) -> str:
    """A GitPython failure as one line: the command and what git said."""
    said = str(exc.stderr or "").strip().removeprefix("stderr:").strip().strip("'")
    command = exc.command[1] if isinstance(exc.command, list) and len(exc.command) > 1 else "git"
    return f"git {command} failed: {first_line(Exception(said)) if said else f'exit status {exc.status}'}"


def main_root(repo: git.Repo) -> Path:
    """The main checkout's folder."""
    return Path(repo.working_tree_dir).resolve()


def resolve(repo: git.Repo, ref: str) -> str | None:
    """The commit `ref` names; None for a branch with no commit yet."""
    try:
        return run_git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}").decode().strip() or None
    except GitFailed:
        return None


def files_under(root: Path, paths: list[str]) -> list[tuple[str, Path]]:
    """Every file under `paths` (relative to root) as (mode, path): regular files only. A link
    or a special file is refused (the sprint folder was cleared of them before)."""
    found = []
    for rel in paths:
        top = root / rel
        if top.is_dir() and not top.is_symlink():
            walked = os.walk(top)  # never into a linked folder: it is listed, then refused below
            candidates = [Path(d) / n for d, dirs, files in walked for n in sorted(files) + sorted(dirs)]
        else:
            candidates = [top] if os.path.lexists(top) else []
        for path in sorted(candidates):
            info = path.lstat()
            if stat.S_ISDIR(info.st_mode):
                continue
            name = path.relative_to(root).as_posix()
            if not stat.S_ISREG(info.st_mode):
                raise GitFailed(f"{name} is a link or not a regular file: autosae commits regular files only")
            if "\n" in name or "\r" in name:
                raise GitFailed(f"git cannot record the file name {name!r} (a line break)")
            found.append(("100755" if info.st_mode & stat.S_IXUSR else "100644", path))
    return found


def commit_exact(
    repo: git.Repo, message: str, paths: list[str], ref: str = "HEAD", source: Path | None = None
) -> str | None:
    """Commit on `ref` exactly the files under `paths` as they are in `source` (default: the
    main checkout), removing from the commit what is no longer there; the rest of the tree is
    the branch's last commit, whatever is staged. Returns the new commit, or None when nothing
    changed. The index of the main checkout is brought in line for `paths` when `ref` is its
    HEAD (so `git status` stays clean)."""
    source = source or main_root(repo)
    parent = resolve(repo, ref)
    wanted = files_under(source, paths)
    with tempfile.TemporaryDirectory(prefix="autosae-index-") as tmp:
        index = Path(tmp) / "index"
        run_git(repo, "read-tree", *([parent] if parent else ["--empty"]), index=index)
        blobs = hash_files(repo, [p for _, p in wanted])
        names = [os.fsencode(p.relative_to(source).as_posix()) for _, p in wanted]
        want = {name: (mode.encode(), blob) for (mode, _), name, blob in zip(wanted, names, blobs, strict=True)}
        stale = [name for name in staged(repo, index) if under(name, paths) and name not in want]
        zero = b"0" * len(blobs[0] if blobs else (parent or "0" * 40).encode())
        lines = [b"0 %s\t%s\0" % (zero, name) for name in stale]
        lines += [b"%s %s\t%s\0" % (mode, blob, name) for name, (mode, blob) in want.items()]
        if lines:
            run_git(repo, "update-index", "-z", "--add", "--index-info", stdin=b"".join(lines), index=index)
        got = {name: entry for name, entry in staged(repo, index).items() if under(name, paths)}
        if got != want:  # git drops a path it refuses (`git~1`, `.git/...`) without an error
            odd = sorted(set(want) ^ set(got)) or sorted(n for n in want if want[n] != got.get(n))
            raise GitFailed(f"git refuses the path {os.fsdecode(odd[0])!r}")
        tree = run_git(repo, "write-tree", index=index).decode().strip()
    if parent and tree == run_git(repo, "rev-parse", f"{parent}^{{tree}}").decode().strip():
        return None
    commit = (
        run_git(repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-", stdin=subject(message))
        .decode()
        .strip()
    )
    run_git(repo, "update-ref", "-m", f"autosae: {message.splitlines()[0]}", ref, commit, parent or "")
    if ref == "HEAD":
        sync_index(repo, paths)
    return commit


def hash_files(repo: git.Repo, files: list[Path]) -> list[bytes]:
    """Each file's blob, its bytes as they are (no attribute, filter or line-ending rule)."""
    if not files:
        return []
    out = run_git(
        repo,
        "hash-object",
        "-w",
        "--no-filters",
        "--stdin-paths",
        stdin=b"".join(os.fsencode(p) + b"\n" for p in files),
    )
    blobs = out.split()
    if len(blobs) != len(files):
        raise GitFailed(f"git hash-object gave {len(blobs)} objects for {len(files)} files")
    return blobs


def staged(repo: git.Repo, index: Path | None) -> dict[bytes, tuple[bytes, bytes]]:
    """The index's entries: {path: (mode, blob)}."""
    entries = {}
    for record in run_git(repo, "ls-files", "-z", "-s", index=index).split(b"\0"):
        if record:
            info, name = record.split(b"\t", 1)
            mode, blob, _stage = info.split()
            entries[name] = (mode, blob)
    return entries


def under(name: bytes, paths: list[str]) -> bool:
    return any(name == (p := os.fsencode(path.rstrip("/"))) or name.startswith(p + b"/") for path in paths)


def same_as_index(repo: git.Repo, names: list[str]) -> set[str]:
    """Those of `names` (files in the main checkout) whose bytes and mode are their index entry's."""
    index = staged(repo, None) if names else {}
    names = [name for name in names if os.fsencode(name) in index]
    if not names:
        return set()
    root = main_root(repo)
    try:
        present = files_under(root, names)
    except GitFailed:
        return set()
    same = set()
    for (mode, path), blob in zip(present, hash_files(repo, [p for _, p in present]), strict=True):
        name = path.relative_to(root).as_posix()
        if index[os.fsencode(name)] == (mode.encode(), blob):
            same.add(name)
    return same


def sync_index(repo: git.Repo, paths: list[str]) -> None:
    """The main checkout's index for `paths` as HEAD has them (after a commit made outside it)."""
    run_git(repo, "reset", "-q", "HEAD", "--", *paths)


def sync_worktree_index(tree: git.Repo, paths: list[str]) -> None:
    """A sprint worktree's index for `paths` as its branch now has them, so that `git status`
    there shows what the agent changed since (best effort: nothing reads that index)."""
    try:
        tree.git.reset("-q", "HEAD", "--", *paths, env={"GIT_LITERAL_PATHSPECS": "1"})
    except git.GitCommandError:
        pass


def tree_files(repo: git.Repo, rev: str, path: str) -> list[tuple[str, str, str]]:
    """(mode, blob, path) of every file under `path` in commit `rev`."""
    out = run_git(repo, "ls-tree", "-r", "-z", "--full-tree", rev, "--", path)
    files = []
    for record in out.split(b"\0"):
        if record:
            info, name = record.split(b"\t", 1)
            mode, _kind, blob = info.decode().split()
            files.append((mode, blob, os.fsdecode(name)))
    return files


def read_blobs(repo: git.Repo, blobs: list[str]) -> list[bytes]:
    """The blobs' bytes, as stored (`git cat-file --batch`: no filter is applied)."""
    if not blobs:
        return []
    out = run_git(repo, "cat-file", "--batch", stdin="".join(b + "\n" for b in blobs).encode())
    contents, at = [], 0
    for _ in blobs:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitFailed(f"git cat-file: {out[at:end].decode(errors='replace')}")
        size = int(header[2])
        contents.append(out[end + 1 : end + 1 + size])
        at = end + 1 + size + 1
    return contents


def write_exact(repo: git.Repo, rev: str, path: str) -> None:
    """Replace `path` in the main checkout by what commit `rev` has there, byte for byte
    (nothing there when `rev` has nothing); the index is left alone."""
    root = main_root(repo)
    remove(root / path)
    files = tree_files(repo, rev, path)
    for (mode, _, name), data in zip(files, read_blobs(repo, [b for _, b, _ in files]), strict=True):
        if mode not in REGULAR:
            raise GitFailed(f"{rev}:{name} is not a regular file (mode {mode}); autosae writes regular files only")
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if mode == "100755" else 0o644)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def blob_sha256(repo: git.Repo, rev: str, path: str) -> str | None:
    """The sha256 of the file `path` as commit `rev` records it (None: it has none there)."""
    files = [(mode, blob) for mode, blob, name in tree_files(repo, rev, path) if name == path]
    if not files:
        return None
    return hashlib.sha256(read_blobs(repo, [files[0][1]])[0]).hexdigest()
