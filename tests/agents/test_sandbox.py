"""The LLM agents' tools: confinement to the worktree, no secrets, bounded time and output."""

from __future__ import annotations

import time
import uuid

import pytest

from autosae.agents.pricing import Price
from autosae.agents.sandbox import Files, ToolError, redact, run_bash, scrubbed_env
from autosae.agents.transcript import Transcript
from tests.procs import processes_with, sleeper


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "worktree"
    (root / "sprints" / "s1").mkdir(parents=True)
    (root / ".git").write_text("gitdir: elsewhere\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    return root


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "sprints/../../secret.txt", ".git", ""])
def test_paths_outside_the_worktree_are_refused(tree, path):
    with pytest.raises(ToolError):
        Files(tree).view(path)
    with pytest.raises(ToolError):
        Files(tree).create(path or "../x", "text")


def test_a_symlink_out_of_the_worktree_is_refused(tree):
    (tree / "link").symlink_to(tree.parent)
    with pytest.raises(ToolError, match="outside the worktree"):
        Files(tree).view("link/secret.txt")


def test_create_view_and_str_replace_inside(tree):
    files = Files(tree)
    files.call({"command": "create", "path": "sprints/s1/variant.py", "file_text": "a = 1\nb = 2\n"})
    files.call({"command": "str_replace", "path": "sprints/s1/variant.py", "old_str": "b = 2", "new_str": "b = 3"})
    assert (tree / "sprints/s1/variant.py").read_text() == "a = 1\nb = 3\n"
    assert "b = 3" in files.call({"command": "view", "path": "sprints/s1/variant.py", "view_range": [2, 2]})
    with pytest.raises(ToolError, match="exactly once"):
        files.call({"command": "str_replace", "path": "sprints/s1/variant.py", "old_str": "zzz"})
    with pytest.raises(ToolError):
        files.call({"command": "delete", "path": "sprints/s1/variant.py"})
    with pytest.raises(ToolError, match="read-only"):
        Files(tree, writable=False).create("sprints/s1/x.py", "")


def test_bash_sees_no_secret_and_runs_in_the_worktree(tree, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret-value")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example/very-secret")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    assert not {"ANTHROPIC_API_KEY", "SLACK_WEBHOOK_URL", "MY_SERVICE_TOKEN"} & set(scrubbed_env())
    out = run_bash("pwd; env", tree, timeout_s=30)
    assert str(tree.resolve()) in out and "exit status 0" in out
    assert "very-secret" not in out and "tok-0123456789" not in out
    # a secret that reaches the output another way is redacted
    (tree / "leak.txt").write_text("sk-ant-very-secret-value")
    assert "[redacted]" in run_bash("cat leak.txt", tree, timeout_s=30)


def test_bash_time_limit_kills_the_whole_process_group(tree):
    marker = f"autosae-timed-out-child-{uuid.uuid4().hex}"
    started = time.monotonic()
    # 5 s: time for the sandbox to start on a loaded machine, so that the child is surely running
    out = run_bash(f"{sleeper(marker)} & echo started; sleep 60", tree, timeout_s=5)
    assert "started" in out and "killed after the 5 s time limit" in out, out
    assert time.monotonic() - started < 10
    assert processes_with(marker) == []  # the background child died with it


def test_bash_output_is_truncated(tree):
    out = run_bash("python -c \"print('x' * 100000)\"", tree, timeout_s=30)
    assert len(out) < 20000 and "characters cut" in out


def test_transcript_redacts_and_survives_a_torn_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret-value")
    t = Transcript(tmp_path / "implement.jsonl")
    t.append({"message": {"role": "user", "content": "the key is sk-ant-very-secret-value"}})
    with open(t.path, "a") as f:
        f.write('{"message": {"role": "assis')  # a kill in the middle of a write
    assert [r["message"]["content"] for r in t.records()] == ["the key is [redacted]"]
    assert "very-secret" not in t.path.read_text()
    assert redact("a sk-ant-very-secret-value b") == "a [redacted] b"


def test_prices_come_from_the_table_or_task_md():
    usage = {
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
        "cache_creation_input_tokens": 1_000_000,
        "cache_read_input_tokens": 1_000_000,
    }
    assert Price.of("claude-sonnet-4-5-20250929").cost(usage) == pytest.approx(3 + 15 + 3.75 + 0.3)
    assert Price.of("anything", {"input": 1, "output": 2}).cost(usage) == pytest.approx(1 + 2 + 1.25 + 0.1)
    from autosae.agents import AgentError

    with pytest.raises(AgentError, match="no price known"):
        Price.of("gpt-4")
    with pytest.raises(AgentError, match="no price known"):
        Price.of("claude-fable-5-3")  # a new point release never borrows its family's price


def test_the_default_model_is_priced_and_its_cache_reads_are_cheaper():
    from autosae.agents.pricing import DEFAULT_MODEL
    from autosae.config import TaskConfig

    assert TaskConfig().agent.model == DEFAULT_MODEL == "claude-fable-5-2"
    usage = {
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
        "cache_creation_input_tokens": 1_000_000,
        "cache_read_input_tokens": 1_000_000,
    }
    assert Price.of(DEFAULT_MODEL).cost(usage) == pytest.approx(8 + 40 + 10 + 0.2)
    assert Price.of("claude-opus-5-5").cost(usage) == pytest.approx(4 + 20 + 5 + 0.4)


def test_the_proposer_reads_the_component_library_and_nothing_beside_it(tree):
    """propose's `view` shows autosae/sae/ and autosae/variants/ read-only; a path that climbs
    out of a mount (to the package, the venv, the home folder) is refused like one out of the
    worktree."""
    from autosae.agents.prompts import library_mounts

    files = Files(tree, writable=False, mounts=library_mounts())
    listing = files.view("autosae/sae")
    assert "batchtopk.py" in listing and "__pycache__" not in listing
    assert "class BatchTopKSAE" in files.view("autosae/sae/batchtopk.py")
    assert "def build(spec)" in files.view("/autosae/variants/matryoshka.py")
    for escape in ("autosae/sae/../../config.py", "autosae/variants/../../../../etc/passwd", "autosae/sae/../sandbox"):
        with pytest.raises(ToolError, match="outside autosae/"):
            files.view(escape)
    with pytest.raises(ToolError, match="read-only"):
        files.create("autosae/sae/evil.py", "x = 1")


def test_python_m_autosae_sae_prints_the_components_source():
    """The command the implement prompt gives prints real source, module by module."""
    import subprocess
    import sys

    listing = subprocess.run([sys.executable, "-m", "autosae.sae"], capture_output=True, text=True)
    assert listing.returncode == 0 and "matryoshka" in listing.stdout and "lista" in listing.stdout
    source = subprocess.run(
        [sys.executable, "-m", "autosae.sae", "batchtopk", "lista.py"], capture_output=True, text=True
    )
    assert source.returncode == 0
    assert "class BatchTopKSAE(nn.Module)" in source.stdout and "class LISTA" in source.stdout
    unknown = subprocess.run([sys.executable, "-m", "autosae.sae", "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no module nope")


def test_aliases_and_an_override_with_its_own_cache_read_price():
    usage = {"cache_read_input_tokens": 1_000_000}
    assert Price.of("claude-opus-4-0") == Price.of("claude-opus-4")
    assert Price.of("x", {"input": 8, "output": 40, "cache_read": 0.025}).cost(usage) == pytest.approx(0.2)
