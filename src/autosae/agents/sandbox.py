"""What an LLM agent may touch: a bash confined to its worktree with no secrets in sight, and
file tools that refuse any path outside the worktree.

The bash is not an OS sandbox (a determined process can still read files by absolute path);
it removes the credentials from the agent's environment, bounds its time and output, and
kills every process it started when a command ends.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|WEBHOOK", re.I)
KEEP = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR", "SHELL", "TZ",
        "AUTOSAE_CACHE", "XDG_CACHE_HOME", "CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED"}
OUTPUT_LIMIT = 12_000


class ToolError(Exception):
    """The tool call cannot be carried out; the message goes back to the model as an error."""


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like credentials (long enough to
    be worth hiding), longest first so that one secret containing another is hidden whole."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, "[redacted]")
    return text


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


def run_bash(command: str, cwd: Path, timeout_s: float) -> str:
    """Run `command` in bash in `cwd`; the output (stdout and stderr together, truncated) and
    the exit status. Every process of the command's session is killed when it returns."""
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=scrubbed_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        status = f"exit status {proc.returncode}"
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, _ = proc.communicate()
        status = f"killed after the {timeout_s:g} s time limit"
    finally:
        _kill_group(proc.pid)  # background children too
    return redact(truncate(out.decode(errors="replace"))) + f"\n[{status}]"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Files:
    """view / create / str_replace, confined to `root`."""

    def __init__(self, root: Path, writable: bool = True):
        self.root, self.writable = root.resolve(), writable

    def resolve(self, path: str) -> Path:
        if not isinstance(path, str) or not path:
            raise ToolError("path: expected a non-empty string")
        target = (self.root / path).resolve()  # follows symlinks, so a link out is caught too
        if target != self.root and self.root not in target.parents:
            raise ToolError(f"{path}: outside the worktree ({self.root}); paths are relative to it")
        if ".git" in target.relative_to(self.root).parts:
            raise ToolError(f"{path}: git's own files are off limits")
        return target

    def view(self, path: str, view_range: list[int] | None = None) -> str:
        target = self.resolve(path)
        if target.is_dir():
            entries = sorted(p.relative_to(self.root).as_posix() + ("/" if p.is_dir() else "")
                             for p in target.iterdir() if p.name != ".git")
            return "\n".join(entries) or "(empty folder)"
        if not target.is_file():
            raise ToolError(f"{path}: no such file")
        lines = target.read_text(errors="replace").splitlines()
        first, last = 1, len(lines)
        if view_range:
            if len(view_range) != 2:
                raise ToolError("view_range: expected [first, last]")
            first, last = int(view_range[0]), (len(lines) if int(view_range[1]) == -1 else int(view_range[1]))
        return truncate("\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines[first - 1:last], first)))

    def create(self, path: str, file_text: str) -> str:
        self._writable()
        if not isinstance(file_text, str):
            raise ToolError("file_text: expected a string")
        target = self.resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file_text)
        return f"wrote {target.relative_to(self.root)} ({len(file_text.splitlines())} lines)"

    def str_replace(self, path: str, old_str: str, new_str: str = "") -> str:
        self._writable()
        target = self.resolve(path)
        if not target.is_file():
            raise ToolError(f"{path}: no such file")
        if not isinstance(old_str, str) or not old_str:
            raise ToolError("old_str: expected a non-empty string")
        text = target.read_text()
        count = text.count(old_str)
        if count != 1:
            raise ToolError(f"old_str occurs {count} times in {path}; it must occur exactly once")
        target.write_text(text.replace(old_str, new_str if isinstance(new_str, str) else ""))
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
