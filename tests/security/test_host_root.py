"""Red team: no sandbox holds host root. Run as root (CI and most GPU boxes are), each kind of
sandbox (a bare command, the agent's bash on a real worktree, a variant's process in the real
harness; the Claude Code session in tests/agents/test_claude_code.py) runs the probe of
tests/security/host_root.py: it must be an unprivileged host uid in every process, no kernel knob
may take a write, and no root-only file may be read. Off root the same checks hold for the
user's own uid."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import git
import pytest

from autosae import sandbox
from autosae.agents.sandbox import Shell
from autosae.sandbox import Limits, Policy
from autosae.sprint import gitops
from tests.conftest import run_cli
from tests.security.conftest import HONEST, attack, worker_log
from tests.security.host_root import PROBE, check, root_only_files, verdict

pytestmark = pytest.mark.skipif(not sandbox.availability()[0], reason="bubblewrap cannot run here")


def bash_probe(files: list[Path], python: str = "python") -> str:
    return f"ROOT_ONLY={shlex.quote(':'.join(map(str, files)))} {python} -c {shlex.quote(PROBE)}"


@pytest.mark.parametrize("gpu", [False, True], ids=["plain", "gpu-policy"])
def test_a_bare_sandbox_is_no_host_root(tmp_path, gpu):
    """The policy of a GPU run shows all of /sys (read-only) and the nvidia devices: the knobs
    there must refuse the write too."""
    work, shown = tmp_path / "work", tmp_path / "shown"
    work.mkdir()
    files = root_only_files(shown)
    policy = Policy(cwd=work, env={"PATH": "/usr/bin:/bin"}, writable=[work], readable=[shown], gpu=gpu)
    result = sandbox.run(["bash", "-c", bash_probe(files, sys.executable)], policy, Limits(), True, timeout_s=60)
    report = verdict(result.output.decode())
    check(report)
    assert report["root_only"][str(files[0])] == "EACCES"  # visible, and refused by its owner's bits
    assert report["root_only"][str(files[1])] == "ENOENT"  # outside every bind: not there at all
    if gpu:
        assert report["sysfs"] != "absent"


def test_the_agents_bash_is_no_host_root_and_git_still_works(tmp_path):
    """The anthropic backend's bash on a sprint worktree (the project's .git shown read-only):
    as the sandbox user its worktree is writable and git can read the repository, while the
    knobs and a root-only file under the shown .git are refused."""
    root = tmp_path / "project"
    assert run_cli("init", str(root), cwd=tmp_path).returncode == 0
    repo = git.Repo(root)
    tree = gitops.add_worktree(repo, root / ".autosae" / "worktrees" / "s1", "sprint/s1")
    worktree = Path(tree.working_tree_dir)
    inside, _ = root_only_files(root / ".git" / "autosae-probe")
    outside = root / "root-only-in-the-checkout.txt"
    outside.write_text("ROOT-ONLY-SECRET\n")
    outside.chmod(0o600)
    shell = Shell(worktree, tmp_path / "shell-tmp", timeout_s=60, enabled=True, project_root=root)
    out = shell.run(f"{bash_probe([inside, outside])}; echo made > made.txt; git log --oneline | wc -l; git status -s")
    check(verdict(out))
    assert (worktree / "made.txt").read_text() == "made\n"
    assert "made.txt" in out and "exit status 0" in out, out
    assert "dubious ownership" not in out


@pytest.mark.real_harness  # the probe must run, not a recording of it
def test_a_variants_process_is_no_host_root(quick, write_variant, tmp_path):
    """A variant runs the probe while it builds (to its log: its stdout is the protocol) and
    then trains honestly: the run scores, and the probe found no way to host root."""
    files = root_only_files(tmp_path / "beside-the-run")
    path = write_variant(
        HONEST,
        f"""
    import contextlib, os, sys

    def build(spec):
        os.environ["ROOT_ONLY"] = {":".join(map(str, files))!r}
        with contextlib.redirect_stdout(sys.stderr):
            exec({PROBE!r}, {{}})
        return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
    )
    results = attack(path, quick, tmp_path / "run")
    assert results["status"] == "ok", results.get("reason")
    report = verdict(worker_log(tmp_path / "run"))
    check(report)
    assert set(report["root_only"].values()) == {"ENOENT"}
    assert json.loads((tmp_path / "run" / "results.json").read_text())["sandbox"]["enabled"] is True
