"""The claude_code backend end to end: the real Claude Code CLI (installed by `make test` into
.venv/claude-code), pointed through ANTHROPIC_BASE_URL at the local fake Messages API, runs a
real sprint (real git, the real harness on a shortened tiny)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import git
import pytest

from autosae.variants import reference_variants
from tests.agents.fake_messages_api import FakeMessagesAPI
from tests.sprint.conftest import autosae, ledger, write_task

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = os.environ.get("AUTOSAE_TEST_CLAUDE") or str(
    ROOT / ".venv" / "claude-code" / "node_modules" / ".bin" / "claude"
)
if not Path(CLAUDE).is_file():
    CLAUDE = shutil.which("claude") or ""
pytestmark = pytest.mark.skipif(
    not CLAUDE, reason="the Claude Code CLI is not installed (`make test` installs it with npm)"
)

KEY = "sk-ant-fake-0123456789-SECRET"
VARIANT = reference_variants()["lista_matryoshka"].read_text()


def texts(body: dict) -> str:
    """All the text of a request's messages."""
    out = []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, str):
            out.append(content)
        else:
            out += [b.get("text", "") if b.get("type") == "text" else json.dumps(b.get("content", "")) for b in content]
    return "\n".join(out)


def turn(body: dict) -> int:
    return sum(m["role"] == "assistant" for m in body["messages"])


def bash(command: str, n: int) -> list[dict]:
    return [
        {
            "type": "tool_use",
            "id": f"toolu_bash_{n}",
            "name": "Bash",
            "input": {"command": command, "description": "autosae test step"},
        }
    ]


def output(block: dict) -> str:
    """A tool result's text (Claude Code sends a string or a list of text blocks)."""
    content = block.get("content")
    return (
        content
        if isinstance(content, str)
        else "\n".join(c.get("text", "") for c in content or [] if isinstance(c, dict))
    )


def quick_command(prompt: str) -> str:
    """The quick-run command of the implement prompt: its indented `autosae train` line."""
    return re.search(r"^    (autosae train .+)$", prompt, re.M).group(1)


def policy(body: dict, attack: str = "echo attacks-done") -> list[dict]:
    text = texts(body)
    if "Propose one idea" in text:
        return [
            {
                "type": "text",
                "text": json.dumps(
                    {
                        "title": "LISTA via Claude Code",
                        "idea": "a one-step LISTA encoder on Matryoshka, via Claude Code",
                        "hypothesis": "LISTA sharpens the encoder",
                        "plan": "compose LISTA with Matryoshka",
                        "parent": "baseline:matryoshka",
                    }
                ),
            }
        ]
    if "Implement this sprint's idea" in text:
        folder = text.split("in the folder `", 1)[1].split("`", 1)[0]
        steps = [
            bash(f"mkdir -p {folder} && printf '# LISTA\\n\\nidea, hypothesis, plan\\n' > {folder}/README.md", 0),
            bash(f"echo {base64.b64encode(VARIANT.encode()).decode()} | base64 -d > {folder}/variant.py", 1),
            bash("env | grep -c SLACK_WEBHOOK_URL; echo done", 2),
            bash(attack, 3),
            bash(quick_command(text), 4),  # the quick-run command, exactly as the prompt renders it
        ]
        return steps[turn(body)] if turn(body) < len(steps) else [{"type": "text", "text": "Both files are written."}]
    if "The harness has trained and scored" in text:
        return [
            {
                "type": "text",
                "text": "Conclusions:\n"
                + json.dumps(
                    {
                        "checks": "the diff adds LISTA",
                        "alternatives": ["seed noise"],
                        "conclusion": "CC-CONCLUSION within the noise",
                        "next_steps": ["two LISTA steps"],
                    }
                ),
            }
        ]
    return [{"type": "text", "text": "ok"}]  # side requests (titles, summaries)


def test_a_sprint_by_the_real_claude_code_cli(project, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine example login me password hunter2\n")
    # Claude Code's own Bash tool, in its sandbox: no home, no cache, no main checkout to write
    attack = (
        f"cat {home}/.netrc 2>&1; ls {os.environ['AUTOSAE_CACHE']} 2>&1; echo forged >> {project}/TASK.md 2>&1; "
        f"ls {project}/.autosae 2>&1; echo attacks-done"
    )
    with FakeMessagesAPI(lambda body: policy(body, attack)) as api:
        write_task(project, backend="claude_code", options={"claude": CLAUDE, "time_limit_s": 600})
        git.Repo(project).git.commit("-q", "-am", "claude code task")
        task = (project / "TASK.md").read_text()
        env = {
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": api.url,
            "HOME": str(home),
            "SLACK_WEBHOOK_URL": "https://hooks.example/very-secret",
        }
        proc = autosae("sprint", cwd=project, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = ledger(project)
    assert row["backend"] == "claude_code" and row["verdict"] != "failed", row
    assert row["cost_usd"] > 0  # from the CLI's own result lines
    folder = project / "sprints" / row["id"]
    assert (folder / "variant.py").read_text() == VARIANT
    assert "CC-CONCLUSION" in (folder / "report.md").read_text()
    transcript = (folder / "transcript.jsonl").read_text()
    assert '"type": "result"' in transcript and KEY not in transcript
    env_check = [json.loads(line) for line in transcript.splitlines() if "SLACK_WEBHOOK_URL" in line]
    assert env_check and "very-secret" not in transcript
    tool_outputs = [
        b
        for r in api.requests
        for m in r["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert any("0\ndone" in json.dumps(b.get("content")).replace("\\n", "\n") for b in tool_outputs)
    attacked = next(
        json.dumps(b.get("content")) for b in tool_outputs if "attacks-done" in json.dumps(b.get("content"))
    )
    assert "hunter2" not in attacked and "models" not in attacked and "state" not in attacked, attacked
    # the quick-run command, run as rendered by Claude Code's Bash tool in its sandbox: it trains and scores on
    # the project's profile (TASK.md's 204,800 samples, a tenth of them), validation samples, the parent beside
    command = quick_command(texts(next(r for r in api.requests if "Implement this sprint's idea" in texts(r))))
    assert "--uncounted" in command and f"agent/{row['id']}/quick-runs" in command, command
    quick = next(output(b) for b in tool_outputs if "eval_set: validation" in output(b))
    lines = dict(line.split(": ", 1) for line in quick.splitlines() if ": " in line)
    assert lines["status"] == "ok" and lines["profile"] == "tiny" and lines["counted"] == "no", quick
    assert lines["train_seeds"] == "900000" and lines["parent"] == "matryoshka" and lines["parent_status"] == "ok"
    assert 0 <= float(lines["f1"]) <= 1 and "delta_f1" in lines, quick
    run = json.loads(Path(lines["results"]).read_text())
    assert run["constraints"]["training_samples"] == 20_480 and run["quick"]["eval_set"] == "validation"
    assert (project / "TASK.md").read_text() == task

    def tools_of(phrase: str) -> set[str]:
        """The tools Claude Code offered the model in the session whose prompt holds `phrase`."""
        return next(
            {t.get("name") for t in r["tools"]}
            for r in api.requests
            if any(t.get("name") == "Read" for t in r.get("tools", [])) and phrase in texts(r)
        )

    # TASK.md agent.literature, on for the propose phase by default: WebSearch and WebFetch there only
    assert {"WebSearch", "WebFetch"} <= tools_of("Propose one idea")
    assert not {"WebSearch", "WebFetch"} & (
        tools_of("Implement this sprint's idea") | tools_of("The harness has trained and scored")
    )
