"""The claude_code backend end to end: the real Claude Code CLI (installed by `make test` into
.venv/claude-code), pointed through ANTHROPIC_BASE_URL at the local fake Messages API, runs a
real sprint (real git, the real harness on a shortened tiny)."""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import git
import pytest

from autosae.variants import reference_variants
from tests.agents.fake_messages_api import FakeMessagesAPI
from tests.security.host_root import PROBE, check, root_only_files, verdict
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


def call(name: str, args: dict, n: int) -> list[dict]:
    return [{"type": "tool_use", "id": f"toolu_{name.split('__')[-1]}_{n}", "name": name, "input": args}]


def policy(body: dict, attacks: list[list[dict]] = ()) -> list[dict]:
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
            *attacks,
            call(
                "mcp__autosae__run_experiment", {"samples": 20_480, "seeds": 1}, 10
            ),  # the quick run, through autosae: the parent trained beside
            call(
                "mcp__autosae__run_experiment", {"seed": 0, "samples": 20_480, "seeds": 1}, 11
            ),  # again: the parent from the cache
            call("mcp__autosae__past_results", {"sprint": "parent"}, 12),
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


def home_with_secrets(home: Path) -> dict[str, str]:
    """A $HOME as on a user's machine: Claude Code in ~/bin as a single file (a hard link to the
    real executable, or a copy), an ssh key, a .netrc and cloud credentials; the secrets in it."""
    (home / "bin").mkdir(parents=True)
    real = Path(CLAUDE).resolve()
    try:
        os.link(real, home / "bin" / "claude")
    except OSError:  # another filesystem
        shutil.copy2(real, home / "bin" / "claude")
    secrets = {
        ".ssh/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nSSH-KEY-BODY-f00dfeed\n-----END OPENSSH PRIVATE KEY-----\n",
        ".netrc": "machine example login me password hunter2\n",
        ".aws/credentials": "[default]\naws_secret_access_key = AWS-SECRET-0badc0de\n",
    }
    for name, text in secrets.items():
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(text)
    return {"ssh": "SSH-KEY-BODY-f00dfeed", "netrc": "hunter2", "aws": "AWS-SECRET-0badc0de"}


def cache_secrets() -> list[str]:
    """The results key (hex and base64) and the secret seeds of this cache, as text to look for."""
    cache = Path(os.environ["AUTOSAE_CACHE"])
    key = (cache / "keys" / "results.key").read_bytes()
    found = [key.hex(), base64.b64encode(key).decode()]
    for path in (cache / "secrets").glob("*.json"):
        data = json.loads(path.read_text())
        seeds = [data.get("eval_seed"), *(data.get("heldout_seeds") or [])]
        found += [str(s) for s in seeds if isinstance(s, int) and s >= 10**6]  # shorter ones occur by chance
    return found


def test_a_sprint_by_the_real_claude_code_cli(project, tmp_path):
    home = tmp_path / "home"
    planted = home_with_secrets(home)
    cache = os.environ["AUTOSAE_CACHE"]
    hunt = (
        f"cat {home}/.ssh/id_rsa {home}/.netrc {home}/.aws/credentials 2>&1; ls -la {home} {home}/bin 2>&1; "
        f"od -An -tx1 {cache}/keys/results.key 2>&1; base64 -w0 {cache}/keys/results.key 2>&1; "
        f"cat {cache}/secrets/*.json 2>&1; ls {cache} 2>&1; echo forged >> {project}/TASK.md 2>&1; "
        f"ls {project}/.autosae 2>&1; echo hunt-done"
    )
    # root-only files: one under the .git the session is shown, one in the main checkout, which it is not
    root_only = [root_only_files(project / ".git" / "autosae-probe")[0], root_only_files(project / "probe")[0]]
    # Claude Code's own tools, in its sandbox: no home, no cache, no main checkout to write, no nested quick runs
    attacks = [
        bash(hunt, 3),
        call("Read", {"file_path": f"{home}/.ssh/id_rsa"}, 4),
        call("Read", {"file_path": f"{cache}/secrets/eval.json"}, 5),
        bash("autosae train lista_matryoshka --uncounted --seeds 1 --samples 2048 --out /tmp/quick; echo exit=$?", 6),
        bash(f"ROOT_ONLY={':'.join(map(str, root_only))} python -c {shlex.quote(PROBE)}", 7),  # no host root
    ]
    with FakeMessagesAPI(lambda body: policy(body, attacks)) as api:
        write_task(
            project, backend="claude_code", options={"claude": str(home / "bin" / "claude"), "time_limit_s": 600}
        )
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
    hunted = next(output(b) for b in tool_outputs if "hunt-done" in output(b))
    assert not [v for v in planted.values() if v in hunted], hunted
    assert "No such file" in hunted and "models" not in hunted and "state" not in hunted, hunted
    nested = next(output(b) for b in tool_outputs if "exit=" in output(b))
    assert "refuses to run here" in nested and "run_experiment" in nested and "exit=1" in nested, nested
    assert "sandboxed: NO" not in nested and "f1:" not in nested, nested
    probed = verdict(next(output(b) for b in tool_outputs if "HOST-ROOT-PROBE" in output(b)))
    check(probed)  # the session, its Bash included, is no host root, and no knob or root-only file gives
    assert probed["root_only"][str(root_only[0])] == "EACCES" and probed["root_only"][str(root_only[1])] == "ENOENT"

    # $HOME's secrets, the results key, the secret eval seed and the held-out seeds: in no commit on main
    # (nor on the sprint's branch), no transcript, and nothing the model was shown
    secrets = [*planted.values(), *cache_secrets(), KEY]
    commits = git.Repo(project).git.rev_list("--all").split()
    for secret in secrets:
        found = subprocess.run(
            ["git", "grep", "-I", "-l", "-F", "-e", secret, *commits], cwd=project, capture_output=True
        )
        assert found.returncode == 1 and not found.stdout, secret
    transcripts = "".join(p.read_text() for p in (project / ".autosae" / "agent").rglob("*.jsonl"))
    shown = json.dumps(api.requests)
    for secret in secrets:
        assert secret not in transcripts and secret not in transcript and secret not in shown, secret

    # the quick runs: autosae's run_experiment, run outside the session in a sandbox of its own, on the project's
    # profile (20,480 of TASK.md's 204,800 samples, one seed), the validation samples, the parent beside, then cached
    quick = [json.loads(output(b)) for b in tool_outputs if b.get("tool_use_id", "").startswith("toolu_run_experiment")]
    first, second = quick[0], quick[-1]
    assert first["status"] == "ok" and first["sandboxed"] == "yes" and first["eval_set"].startswith("validation")
    assert first["train_seeds"] == [900_000] and first["training_samples"] == 20_480, first
    assert first["parent"]["variant"] == "baseline:matryoshka" and first["parent"]["status"] == "ok", first
    assert second["sandboxed"] == "yes" and second["parent"]["cached"] is True, second
    assert 0 <= first["metrics"]["f1"] <= 1 and "f1" in first["delta_vs_parent"], first
    runs = project / ".autosae" / "runs" / f"{row['id']}.experiments"
    assert first["run_folder"] == ".quick/000" and second["run_folder"] == ".quick/001", first  # in the worktree
    run = json.loads(next(runs.glob("000/runs/variant-*/seed_0/results.json")).read_text())
    assert run["constraints"]["training_samples"] == 20_480 and run["quick"]["eval_set"] == "validation"
    homes = project / ".autosae" / "agent" / row["id"] / "claude-home"
    assert not [p for p in homes.rglob("*") if p.name in ("models", "autosae")]  # no model built in the session
    parent = json.loads(next(output(b) for b in tool_outputs if "toolu_past_results" in b.get("tool_use_id", "")))
    assert parent["sprint"] == "baseline:matryoshka" and "f1" in parent["means"], parent
    assert (project / "TASK.md").read_text() == task

    def tools_of(phrase: str) -> set[str]:
        """The tools Claude Code offered the model in the session whose prompt holds `phrase`."""
        return next({t.get("name") for t in r["tools"]} for r in api.requests if r.get("tools") and phrase in texts(r))

    # only what each phase needs: no Bash while proposing, no sub-agents, schedulers or notebooks anywhere;
    # TASK.md agent.literature, on for the propose phase by default: WebSearch and WebFetch there only
    own = {"mcp__autosae__past_results"}
    assert tools_of("Propose one idea") == {"Read", "Glob", "Grep", "WebSearch", "WebFetch", *own}
    assert tools_of("Implement this sprint's idea") == {
        *("Read", "Write", "Edit", "Bash", "Glob", "Grep"),
        *own,
        "mcp__autosae__run_experiment",
        "mcp__autosae__amend_proposal",
    }
    assert tools_of("The harness has trained and scored") == {"Read", "Glob", "Grep", *own}
