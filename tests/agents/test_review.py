"""The stuck ladder's step-back review by the LLM backends: the anthropic backend holds one
read-only conversation through the real SDK (against the local fake Messages API), the
claude_code backend one read-only session of the real CLI; the answer goes into the notebook,
and what the call cost is charged to the project's budget, which can stop the loop."""

from __future__ import annotations

import json

import git

from autosae.config import load_task
from autosae.sprint import ladder
from autosae.sprint.engine import Engine
from autosae.sprint.project import Project
from tests.agents.fake_messages_api import FakeMessagesAPI, tool_results, turn_of, use
from tests.sprint.conftest import autosae, commit, ledger, write_script, write_task

KEY = "sk-ant-fake-0123456789-SECRET"
REVIEW = {
    "untested_axes": ["REVIEW-AXIS a decreasing K schedule", "REVIEW-AXIS a TERM tilt sweep"],
    "blind_spots": ["REVIEW-BLIND only one parent was ever used"],
    "argument_against": "REVIEW-AGAINST the controls cannot move F1 at all",
}


def is_review(body: dict) -> bool:
    finish = next((t for t in body.get("tools", []) if t["name"] == "finish"), None)
    return finish is not None and "untested_axes" in finish["input_schema"]["properties"]


def first_text(body: dict) -> str:
    first = body["messages"][0]["content"]
    return first if isinstance(first, str) else first[0]["text"]


def reviewer(body: dict) -> list[dict]:
    """Looks at the notebook, tries the private state and a path out of the project, sends a
    review with a field missing (refused), then the whole review."""
    assert is_review(body), "only the review should reach the model here"
    turn = turn_of(body)
    if turn == 0:
        return [
            {"type": "text", "text": "Reading the notebook first."},
            use("str_replace_based_edit_tool", {"command": "view", "path": "reports/notebook.md"}, 0),
            use("str_replace_based_edit_tool", {"command": "view", "path": ".autosae/ladder.json"}, 1),
            use("str_replace_based_edit_tool", {"command": "view", "path": "../../../etc/shadow"}, 2),
        ]
    if turn == 1:
        return [use("finish", {**REVIEW, "blind_spots": [""], "argument_against": " "}, 3)]
    return [use("finish", REVIEW, 4)]


def a_dry_sprint(project) -> str:
    """One scripted sprint that cannot gain (the parent's own variant): the ladder's first rung is due."""
    write_script(
        project, [{"title": "control", "idea": "reference matryoshka as a control run", "variant": "matryoshka"}]
    )
    commit(project, "a control", "script.yaml")
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = ledger(project)
    return row["id"]


def stuck_after_one(project, backend: str, options: dict, usd_total: float | None = None) -> None:
    write_task(project, backend=backend, options=options)
    task = project / "TASK.md"
    extra = "stuck:\n  after: 1\n" + (f"budgets:\n  usd_total: {usd_total}\n" if usd_total is not None else "")
    task.write_text(task.read_text().replace("heldout:\n", extra + "heldout:\n", 1))
    commit(project, f"{backend}, stuck after one sprint", "TASK.md", "script.yaml")


def test_the_anthropic_review_is_read_only_writes_the_notebook_and_is_charged_to_the_budget(project):
    dry = a_dry_sprint(project)
    # 3 calls at $0.016 each (1,000 input and 200 output tokens at $8 and $40 per Mtok): the third is
    # made with $0.032 spent of $0.04, and the $0.048 spent leaves the project nothing for a sprint
    with FakeMessagesAPI(reviewer) as api:
        stuck_after_one(project, "anthropic", {"base_url": api.url, "max_retries": 0}, usd_total=0.04)
        proc = autosae("loop", "--max-sprints", "1", cwd=project, env={"ANTHROPIC_API_KEY": KEY})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "stuck: rung review" in out and "review by anthropic: 4 notebook entries" in out, out
    assert "usd_total" in out or "budget" in out, out
    assert len(ledger(project)) == 1  # the review spent the project's money: no sprint started

    requests = api.requests
    assert len(requests) == 3 and all(is_review(r) for r in requests)
    assert {t["name"] for t in requests[0]["tools"]} == {"str_replace_based_edit_tool", "finish"}  # no bash, no runs
    prompt = first_text(requests[0])
    assert "The loop is STUCK: 1 sprints without a confirmed gain" in prompt
    assert dry in prompt and "<notebook>" in prompt  # the ledger and the notebook are shown
    shown, private, outside = tool_results(requests[1])
    assert "# Lab notebook" in json.dumps(shown["content"]) and not shown.get("is_error")
    assert private.get("is_error") and outside.get("is_error"), (private, outside)
    assert '"rung"' not in json.dumps(private) and "root:" not in json.dumps(outside)
    [refused] = tool_results(requests[2])
    assert refused.get("is_error") and "blind_spots: expected a list of non-empty strings" in refused["content"]
    assert "argument_against: expected a non-empty string" in refused["content"]

    notebook = (project / "reports" / "notebook.md").read_text()
    for text in ("untested axis: REVIEW-AXIS a decreasing K", "blind spot: REVIEW-BLIND", "REVIEW-AGAINST"):
        assert text in notebook
    assert "REVIEW-AXIS" in git.Repo(project).git.show("HEAD:reports/notebook.md")  # committed
    [taken] = [e for e in ladder.load(Project(project))["events"] if e["rung"] == "review"]
    assert taken["outcome"].startswith("review by anthropic") and abs(taken["cost_usd"] - 0.048) < 1e-9
    assert abs(ladder.review_cost(Project(project)) - 0.048) < 1e-9
    [transcript] = (project / ".autosae" / "agent").glob("_review-*/review.jsonl")  # named after the rung's time
    assert transcript.parent.name == "_review-" + taken["at"].replace(":", "")
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert sum(x["message"]["role"] == "assistant" for x in lines) == 3 and KEY not in transcript.read_text()
    status = autosae("status", cwd=project).stdout
    assert "stuck: rung 1/4 review since sprint 1" in status, status


def test_a_review_that_fails_costs_what_it_spent_and_the_loop_goes_on(project):
    """A model that never calls finish: the review fails after agent.max_turns, in one line, its
    calls are charged, and the ladder records the rung as taken (it is not repeated)."""
    a_dry_sprint(project)
    with FakeMessagesAPI(lambda body: [{"type": "text", "text": "thinking"}]) as api:
        stuck_after_one(project, "anthropic", {"base_url": api.url, "max_retries": 0, "max_turns": 2}, usd_total=0.03)
        proc = autosae("loop", "--max-sprints", "1", cwd=project, env={"ANTHROPIC_API_KEY": KEY})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert "review: the review failed: review: no `finish` after 2 turns" in out, out
    [taken] = [e for e in ladder.load(Project(project))["events"] if e["rung"] == "review"]
    assert abs(taken["cost_usd"] - 0.032) < 1e-9 and len(api.requests) == 2
    assert abs(ladder.review_cost(Project(project)) - 0.032) < 1e-9
    assert len(ledger(project)) == 1  # $0.032 of $0.03 spent: no sprint


def test_the_claude_code_review_answers_json_from_a_read_only_session(project, monkeypatch):
    from tests.agents.test_claude_code import CLAUDE

    if not CLAUDE:
        import pytest

        pytest.skip("the Claude Code CLI is not installed (`make test` installs it with npm)")
    dry = a_dry_sprint(project)
    notebook = project / "reports" / "notebook.md"

    def policy(body: dict) -> list[dict]:
        text = json.dumps(body.get("messages", []))
        if "Answer three things" not in text or not body.get("tools"):
            return [{"type": "text", "text": "ok"}]  # Claude Code's side requests
        if turn_of(body) == 0:
            return [{"type": "tool_use", "id": "toolu_read_0", "name": "Read", "input": {"file_path": str(notebook)}}]
        return [{"type": "text", "text": "My review:\n" + json.dumps(REVIEW)}]

    with FakeMessagesAPI(policy) as api:
        stuck_after_one(project, "claude_code", {"claude": CLAUDE, "time_limit_s": 300})
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        cfg = load_task(project / "TASK.md").config
        engine = Engine(Project(project), status=lambda line: None)
        outcome, cost = ladder.run_review(engine, cfg, "body", ledger(project), "1 sprints without a confirmed gain")
    assert outcome.startswith("review by claude_code: 4 notebook entries"), outcome
    assert cost > 0
    assert "REVIEW-AXIS a TERM tilt sweep" in notebook.read_text()
    review = [r for r in api.requests if r.get("tools") and "Answer three things" in json.dumps(r["messages"])]
    assert dry in json.dumps(review[0]["messages"])
    assert {t["name"] for t in review[0]["tools"]} == {"Read", "Glob", "Grep", "mcp__autosae__past_results"}
    read = [b for r in review for b in tool_results(r)]
    assert read and "Lab notebook" in json.dumps(read[0])


def test_the_review_uses_the_loops_backend_as_the_sprints_do(project):
    """`autosae loop --backend scripted` in a project whose TASK.md names anthropic: the review
    is the scripted agent's, as the sprints are, and no request is sent (nor paid for)."""
    a_dry_sprint(project)
    write_script(
        project, [{"title": "control 2", "idea": "matryoshka again as a second control", "variant": "matryoshka"}]
    )
    with FakeMessagesAPI(lambda body: [{"type": "text", "text": "never asked"}]) as api:
        stuck_after_one(project, "anthropic", {"base_url": api.url, "max_retries": 0, "script": "script.yaml"})
        proc = autosae(
            "loop", "--max-sprints", "1", "--backend", "scripted", cwd=project, env={"ANTHROPIC_API_KEY": KEY}
        )
    out = proc.stdout + proc.stderr
    assert "review by scripted" in out and api.requests == [], out
