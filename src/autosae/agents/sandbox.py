"""What an LLM agent may touch: a bash in an OS sandbox (bubblewrap, see autosae.sandbox) that
sees its worktree and nothing secret, and file tools that refuse any path outside the worktree.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from autosae.bounded import read_prefix
from autosae.redaction import SECRET_NAME, redact
from autosae.sandbox.identity import GIT_SAFE

KEEP = {
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "SHELL",
    "TZ",
    "AUTOSAE_CACHE",
    "XDG_CACHE_HOME",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONHASHSEED",
}
OUTPUT_LIMIT = 12_000
INSIDE_SANDBOX = {"AUTOSAE_INSIDE_SANDBOX": "1"}
"""In the environment of an agent's sandbox (its bash, the Claude Code session): `autosae train`
there refuses to run a variant it cannot sandbox (bubblewrap does not nest) rather than run it
bare with the agent's rights; the agent asks for quick runs with run_experiment instead."""


class ToolError(Exception):
    """The tool call cannot be carried out; the message goes back to the model as an error."""


def scrubbed_env() -> dict[str, str]:
    """The agent's environment: a short allow-list, never a credential, with this Python's
    bin folder first on PATH so that `python` and `autosae` are ours."""
    env = {k: v for k, v in os.environ.items() if k in KEEP and not SECRET_NAME.search(k)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


AGENT_MEMORY_BYTES = 4 << 30
"""Memory of one agent command's sandbox (its `autosae train` runs are bounded again inside)."""


@dataclass
class Shell:
    """The agent's bash: its worktree read-write, the project's git history read-only, a
    private /tmp, the system and the venv read-only, and nothing else (no network, no other
    process, no $HOME, no model cache, no .autosae/); bounded in time, memory, processes and
    disk, and every process it started is killed when a command returns."""

    worktree: Path
    scratch: Path
    """A host folder, outside the worktree, that is the command's /tmp."""
    timeout_s: float = 600
    enabled: bool = True
    """Under bubblewrap (TASK.md sandbox; off: the same bounds without the namespaces)."""
    project_root: Path | None = None
    """The main checkout, whose .git is shown read-only so that git works in the worktree."""
    disk_bytes: int = 8 << 30
    processes: int = 512

    @functools.cached_property
    def policy(self):
        """What every command of this shell sees (made once: the git config is read once)."""
        from autosae.sandbox import Policy

        readable, replaced = git_view(self.project_root, self.scratch.parent)
        protected = [self.worktree / ".git"]
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "PYTHONDONTWRITEBYTECODE": "1",
            "AUTOSAE_CACHE": "/tmp/autosae-cache",
            "GIT_CONFIG_NOSYSTEM": "1",
            **GIT_SAFE,
            **INSIDE_SANDBOX,
        }
        return Policy(
            cwd=self.worktree,
            env=env,
            writable=[self.worktree],
            readable=readable,
            read_only_within=[p for p in protected if p.exists()],
            replaced=replaced,
            tmp=self.scratch,
            network=False,
        )

    def run(self, command: str) -> str:
        """The command's output (stdout and stderr together, truncated, redacted) and how it ended."""
        from autosae.sandbox import Limits, run

        self.scratch.mkdir(parents=True, exist_ok=True)
        limits = Limits(
            memory_bytes=AGENT_MEMORY_BYTES,
            processes=self.processes,
            disk_bytes=self.disk_bytes,
            file_bytes=min(self.disk_bytes, 4 << 30),
        )
        result = run(
            ["bash", "-c", command],
            self.policy,
            limits,
            self.enabled,
            timeout_s=self.timeout_s,
            output_limit=4 * OUTPUT_LIMIT,
        )
        if result.breach:
            status = f"stopped: {result.breach}"
        elif result.timed_out:
            status = f"killed after the {self.timeout_s:g} s time limit"
        else:
            status = f"exit status {result.returncode}"
        return redact(truncate(result.output.decode(errors="replace"))) + f"\n[{status}]"


def git_view(project_root: Path | None, folder: Path) -> tuple[list[Path], dict[Path, Path]]:
    """What a sandbox needs for git to work read-only in a worktree of `project_root`: its .git
    read-only, with the config replaced by `safe_git_config` (written to `folder`)."""
    git_dir = project_root / ".git" if project_root is not None else None
    if git_dir is None or not git_dir.is_dir():
        return [], {}
    return [git_dir], {git_dir / "config": safe_git_config(git_dir, folder)}


def safe_git_config(git_dir: Path, folder: Path) -> Path:
    """The repository's git config with only its [core] and [extensions] settings (what git
    needs to read the repository), written to `folder`: remotes, credential helpers and
    includes, which may hold or point at secrets, are left out."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["git", "config", "--file", str(git_dir / "config"), "--get-regexp", r"^(core|extensions)\."],
        capture_output=True,
        text=True,
    ).stdout
    lines = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        section, _, name = key.partition(".")
        lines.setdefault(section, []).append(f"\t{name} = {value}")
    path = folder / "git-config"
    path.write_text("".join(f"[{section}]\n" + "\n".join(entries) + "\n" for section, entries in lines.items()))
    return path


def run_bash(command: str, cwd: Path, timeout_s: float, scratch: Path | None = None, enabled: bool = True) -> str:
    """One command in a Shell on `cwd` (see Shell)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="autosae-shell-") as tmp:
        return Shell(cwd, scratch or Path(tmp), timeout_s, enabled).run(command)


VIEW_BYTES = 256 << 10
"""The most of one file that `view` reads (the agent can make a 450 MB sparse file for free)."""
EDIT_BYTES = 1 << 20
"""The largest file that str_replace reads and writes back whole."""
LIST_ENTRIES = 1000
"""The most entries of one folder that `view` lists."""
PROPOSE_SHOWN = ("sprints", "reports", "TASK.md")
"""What the propose phase may see of the project's main checkout (as the claude_code backend
shows it): never its untracked files (a .env with tokens), .autosae/, a launcher's folder of
pickled jobs or the source tree."""


def write_regular(target: Path, text: str) -> None:
    """Write `text` to `target` as a regular file, never through what the agent put there: a
    link is not followed and a named pipe is not waited on (opened without blocking, and
    anything but a regular file refused), where write_text would block our process for ever."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise ToolError(f"{target.name}: cannot be written ({exc.strerror or exc})") from None
    with os.fdopen(fd, "wb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ToolError(f"{target.name}: not a regular file")
        f.truncate(0)
        f.write(text.encode())


class Files:
    """view / create / str_replace, confined to `root`; `mounts` ({"autosae/sae": folder})
    show more folders under a prefix, read-only; `shown` (None: all) names the only entries
    of the root that may be seen at all (the propose phase: sprints/, reports/, TASK.md).
    Every read is bounded (VIEW_BYTES of a file, LIST_ENTRIES of a folder), whatever the
    file's size: a sparse file costs the agent no disk and would cost the host its memory."""

    def __init__(
        self,
        root: Path,
        writable: bool = True,
        mounts: dict[str, Path] | None = None,
        shown: tuple[str, ...] | None = None,
    ):
        self.root, self.writable = root.resolve(), writable
        self.mounts = {prefix.strip("/"): Path(folder).resolve() for prefix, folder in (mounts or {}).items()}
        self.shown = None if shown is None else tuple(shown)

    def mounted(self, path: str) -> Path | None:
        """The file a mounted path names (None: not under a mount); never outside the mount."""
        clean = path.strip("/")
        for prefix, folder in self.mounts.items():
            if clean == prefix or clean.startswith(prefix + "/"):
                target = (folder / clean[len(prefix) :].lstrip("/")).resolve()
                if target != folder and folder not in target.parents:
                    raise ToolError(f"{path}: outside {prefix}/")
                return target
        return None

    def view_mounted(self, target: Path, view_range: list[int] | None) -> str:
        if target.is_dir():
            return _listing(p.name + ("/" if p.is_dir() else "") for p in target.iterdir() if p.name != "__pycache__")
        if not target.is_file():
            raise ToolError(f"{target.name}: no such file")
        return self._numbered(target, view_range)

    def resolve(self, path: str) -> Path:
        if not isinstance(path, str) or not path:
            raise ToolError("path: expected a non-empty string")
        target = (self.root / path).resolve()  # follows symlinks, so a link out is caught too
        if target != self.root and self.root not in target.parents:
            raise ToolError(f"{path}: outside the worktree ({self.root}); paths are relative to it")
        parts = target.relative_to(self.root).parts
        if ".git" in parts or ".autosae" in parts:
            raise ToolError(f"{path}: git's and autosae's own files are off limits")
        if self.shown is not None and parts and parts[0] not in self.shown:
            # checked on the resolved path: a link in sprints/ to .env is refused too
            raise ToolError(f"{path}: not shown in this phase; only {', '.join(self.shown)} can be viewed")
        return target

    def view(self, path: str, view_range: list[int] | None = None) -> str:
        if isinstance(path, str) and self.mounts and (mounted := self.mounted(path)) is not None:
            return self.view_mounted(mounted, view_range)
        target = self.resolve(path)
        if target.is_dir():
            entries = (p for p in target.iterdir() if p.name != ".git")
            if target == self.root and self.shown is not None:
                entries = (p for p in entries if p.name in self.shown)
            return _listing(p.relative_to(self.root).as_posix() + ("/" if p.is_dir() else "") for p in entries)
        if not target.is_file():
            raise ToolError(f"{path}: no such file")
        return self._numbered(target, view_range)

    @staticmethod
    def _numbered(target: Path, view_range: list[int] | None) -> str:
        """The file's lines, numbered: of its first VIEW_BYTES only, saying so where it is longer."""
        try:
            found = read_prefix(target, VIEW_BYTES)
        except OSError as exc:
            raise ToolError(f"{target.name}: cannot be read ({exc.strerror or exc})") from None
        if b"\0" in found.data[:8192]:
            raise ToolError(f"{target.name}: a binary file of {found.size:,} bytes; the view shows text files only")
        lines = found.text().splitlines()
        if found.cut and lines:
            lines.pop()  # the last line read may be cut short
        first, last = 1, len(lines)
        if view_range:
            if len(view_range) != 2:
                raise ToolError("view_range: expected [first, last]")
            first, last = int(view_range[0]), (len(lines) if int(view_range[1]) == -1 else int(view_range[1]))
        if found.cut and last > len(lines):
            last = len(lines)
            if first > last:
                raise ToolError(
                    f"view_range: the view reads only the first {VIEW_BYTES:,} of this file's {found.size:,} "
                    f"bytes (lines 1-{len(lines)})"
                )
        text = truncate("\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines[first - 1 : last], first)))
        return text + (f"\n[only the first {len(lines)} lines of {found.size:,} bytes are shown]" if found.cut else "")

    def create(self, path: str, file_text: str) -> str:
        self._writable()
        if not isinstance(file_text, str):
            raise ToolError("file_text: expected a string")
        target = self.resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_regular(target, file_text)
        return f"wrote {target.relative_to(self.root)} ({len(file_text.splitlines())} lines)"

    def str_replace(self, path: str, old_str: str, new_str: str = "") -> str:
        self._writable()
        target = self.resolve(path)
        if not target.is_file():
            raise ToolError(f"{path}: no such file")
        if not isinstance(old_str, str) or not old_str:
            raise ToolError("old_str: expected a non-empty string")
        try:
            found = read_prefix(target, EDIT_BYTES)
        except OSError as exc:
            raise ToolError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if found.cut:
            raise ToolError(f"{path}: {found.size:,} bytes, too large for str_replace (at most {EDIT_BYTES:,})")
        try:
            text = found.data.decode()
        except UnicodeDecodeError:
            raise ToolError(f"{path}: not UTF-8 text") from None
        count = text.count(old_str)
        if count != 1:
            raise ToolError(f"old_str occurs {count} times in {path}; it must occur exactly once")
        write_regular(target, text.replace(old_str, new_str if isinstance(new_str, str) else ""))
        return f"edited {target.relative_to(self.root)}"

    def _writable(self) -> None:
        if not self.writable:
            raise ToolError("files are read-only in this phase")

    def call(self, args: dict) -> str:
        command = args.get("command")
        args = {k: v for k, v in args.items() if k != "command"}
        try:
            match command:
                case "view":
                    return self.view(**args)
                case "create":
                    return self.create(**args)
                case "str_replace":
                    return self.str_replace(**args)
        except TypeError as exc:
            raise ToolError(f"{command}: {exc}") from None
        raise ToolError(f"command: expected view, create or str_replace, got {command!r}")


def _listing(names) -> str:
    """A folder's entries, sorted: at most LIST_ENTRIES of them (a folder of a million files
    is listed in bounded time and memory), saying how many more there are."""
    import itertools

    names = iter(names)
    shown = sorted(itertools.islice(names, LIST_ENTRIES))
    more = sum(1 for _ in itertools.islice(names, 1_000_000))
    if more:
        shown.append(f"[... {more:,}{'+' if more == 1_000_000 else ''} more entries not listed]")
    return "\n".join(shown) or "(empty folder)"
