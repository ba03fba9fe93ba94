"""The anthropic backend end to end: the real anthropic SDK, pointed through base_url at a local
fake Messages API, drives real sprints (real git, the real harness on a shortened tiny)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import git
import pytest

from autosae.harness.validation import VALIDATION_EVAL_SEED
from autosae.variants import reference_variants
from tests.agents.fake_messages_api import FakeMessagesAPI, phase_of, tool_results, turn_of, use
from tests.sprint.conftest import autosae, ledger, one_line_error, write_task

KEY = "sk-ant-fake-0123456789-SECRET"
ENV = {"ANTHROPIC_API_KEY": KEY}
VARIANT = reference_variants()["lista_matryoshka"].read_text()
ESCAPE = "../../../../outside-the-worktree.txt"


def texts_of(body: dict) -> str:
    """The text of a request's first message (the phase's prompt)."""
    first = body["messages"][0]["content"]
    return first if isinstance(first, str) else first[0]["text"]


def sprint_folder(body: dict) -> str:
    """The sprint folder named in the implement prompt."""
    first = body["messages"][0]["content"]
    text = first if isinstance(first, str) else first[0]["text"]
    return text.split("in the folder `", 1)[1].split("`", 1)[0]


def propose(body: dict) -> list[dict]:
    return [
        use(
            "finish",
            {
                "title": "one-step LISTA on Matryoshka",
                "hypothesis": "LISTA sharpens the encoder",
                "idea": "a one-step LISTA encoder on the Matryoshka baseline, eta 0.3",
                "plan": "compose LISTA(iterations=1) with Matryoshka",
                "parent": "baseline:matryoshka",
                "origin": "LISTA (Gregor & LeCun 2010), from sparse coding",
            },
        )
    ]


def conclude(body: dict) -> list[dict]:
    if turn_of(body) == 0:  # forgets the alternatives and cites a sprint that never ran: refused with a tool error
        wrong = [{"section": "findings", "text": "x", "sprints": ["2020-01-01--00-00-00-invented"]}]
        return [
            use(
                "finish", {"checks": "x", "alternatives": [], "conclusion": "x", "next_steps": ["x"], "notebook": wrong}
            )
        ]
    this = texts_of(body).split("trained and scored sprint ", 1)[1].split(" ", 1)[0]
    return [
        {"type": "text", "text": "Checked."},
        use(
            "finish",
            {
                "checks": "the diff adds LISTA and the per-seed F1 moved",
                "alternatives": ["seed noise: two seeds only", "a bug in the encoder"],
                "conclusion": "FAKE-CONCLUSION: no claim beyond the verdict",
                "next_steps": ["try two LISTA steps"],
                "notebook": [{"section": "findings", "text": "FAKE-NOTEBOOK LISTA on Matryoshka", "sprints": [this]}],
            },
        ),
    ]


def implement_steps(folder: str) -> list[list[dict]]:
    return [
        [
            use(
                "str_replace_based_edit_tool",
                {
                    "command": "create",
                    "path": f"{folder}/README.md",
                    "file_text": "# One-step LISTA\n\nIdea, hypothesis, plan.\n",
                },
            )
        ],
        [
            use(
                "str_replace_based_edit_tool",
                {"command": "create", "path": f"{folder}/variant.py", "file_text": VARIANT},
            )
        ],
        [use("bash", {"command": 'echo "key=[$ANTHROPIC_API_KEY]"; env | grep -ci anthropic; pwd; ls sprints'})],
        [
            use("str_replace_based_edit_tool", {"command": "view", "path": ESCAPE}),
            use("str_replace_based_edit_tool", {"command": "create", "path": ESCAPE, "file_text": "escaped"}),
        ],
        [use("str_replace_based_edit_tool", "not a JSON object"), use("no_such_tool", {})],
        [use("run_experiment", {"samples": 20480, "profile": "tiny", "seeds": 1})],
        [use("finish", {"summary": "variant.py composes LISTA with Matryoshka"})],
    ]


def research_policy(body: dict) -> list[dict]:
    phase = phase_of(body)
    if phase == "propose":
        return propose(body)
    if phase == "conclude":
        return conclude(body)
    steps = implement_steps(sprint_folder(body))
    return steps[min(turn_of(body), len(steps) - 1)]


def anthropic_project(project: Path, url: str, **options) -> Path:
    write_task(project, backend="anthropic", options={"base_url": url, "backoff_s": 0.05, "max_retries": 1, **options})
    repo = git.Repo(project)
    repo.git.add("TASK.md")
    repo.git.commit("-q", "-m", "anthropic task")
    return project


def result_after(api: FakeMessagesAPI, phase: str, turn: int) -> list[dict]:
    """The tool results that answered the model's `turn`-th reply in `phase`."""
    return next(tool_results(r) for r in api.answered(phase) if turn_of(r) == turn + 1)


def policy_with_a_wrong_baseline(body: dict) -> list[dict]:
    """research_policy, whose first proposal names a baseline that does not exist."""
    if phase_of(body) == "propose" and turn_of(body) == 0:
        [finish] = propose(body)
        return [use("finish", {**finish["input"], "parent": "baseline:lista"})]
    return research_policy(body)


def test_a_sprint_driven_by_tool_calls_survives_every_injected_fault(project):
    faults = {0: 429, 1: 529, 3: 500, 5: "drop", 8: 529, 9: 429}  # 0+1 and 8+9 outlast the SDK's one retry
    with FakeMessagesAPI(policy_with_a_wrong_baseline, faults=faults) as api:
        anthropic_project(project, api.url)
        proc = autosae("sprint", "--max-turns", "20", cwd=project, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r.get("_fault") for r in api.requests} >= {429, 500, 529, "drop"}
    [row] = ledger(project)
    assert row["backend"] == "anthropic" and row["verdict"] != "failed"
    assert row["cost_usd"] > 0 and row["tokens"]["input_tokens"] > 0
    folder = project / "sprints" / row["id"]
    assert (folder / "variant.py").read_text() == VARIANT  # written by the editor tool, trained by the harness
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    assert "FAKE-CONCLUSION" in (folder / "report.md").read_text()
    assert json.loads((folder / "cost.json").read_text())["tokens"]["output_tokens"] > 0

    wrong = result_after(api, "propose", 0)[0]  # refused at propose time, with the valid names
    assert wrong.get("is_error") and "'baseline:lista' is not a reference variant" in wrong["content"]
    assert "baseline:lista_matryoshka" in wrong["content"] and row["parent"] == "baseline:matryoshka"
    proposing = texts_of(api.answered("propose")[0])  # what it can detect, the references, the budget
    assert "each as a parent that can come out significant (Welch t-test, alpha = 0.05" in proposing, proposing
    assert "`baseline:lista_matryoshka`: F1 0." in proposing and "20 to implement" in proposing  # --max-turns

    bash = result_after(api, "implement", 2)[0]["content"]
    assert "key=[]" in bash and KEY not in bash and "\n0\n" in bash  # no ANTHROPIC_* variable at all
    escape = result_after(api, "implement", 3)
    assert all(r.get("is_error") and "outside the worktree" in r["content"] for r in escape)
    assert not (project.parent / "outside-the-worktree.txt").exists()
    malformed = result_after(api, "implement", 4)
    assert all(r.get("is_error") for r in malformed) and "malformed" in malformed[0]["content"]
    experiment = json.loads(result_after(api, "implement", 5)[0]["content"])
    assert experiment["status"] == "ok" and 0 <= experiment["metrics"]["f1"] <= 1
    for key in ("precision", "recall", "dead_latents", "explained_variance"):
        assert key in experiment["metrics"] and key in experiment["parent"]["metrics"]
    assert experiment["train_seeds"] == [900_000] and experiment["eval_set"].startswith("validation")
    assert experiment["run_folder"] == ".quick/000"  # copies in the worktree; the harness's own record here:
    runs = project / ".autosae" / "runs"
    quick = json.loads(next(runs.glob("*.experiments/000/runs/variant-*/seed_0/results.json")).read_text())
    assert quick["quick"]["eval_seed"] == VALIDATION_EVAL_SEED and quick["counted"] is False
    assert quick["summary"]["f1"]["mean"] == pytest.approx(experiment["metrics"]["f1"], rel=1e-5)
    (state,) = [json.loads(p.read_text()) for p in (project / ".autosae" / "state").glob("*.json")]
    assert [a["arm"] for a in state["quick_runs"][0]["arms"]] == ["variant", "parent"]  # the evidence, recorded
    assert experiment["parent"]["variant"] == "baseline:matryoshka" and experiment["parent"]["status"] == "ok"
    assert experiment["delta_vs_parent"]["f1"] == pytest.approx(
        experiment["metrics"]["f1"] - experiment["parent"]["metrics"]["f1"], abs=1e-5
    )
    logged = experiment["logged"]["variant seed 0"]  # LISTA-Matryoshka logs its own mse and aux
    assert logged["harness"]["loss"]["points"] >= 2 and "mse" in logged["variant"]
    refused = result_after(api, "conclude", 0)[0]
    assert refused.get("is_error") and "alternatives" in refused["content"]
    assert "cites '2020-01-01--00-00-00-invented', not a recorded sprint" in refused["content"]
    notebook = git.Repo(project).git.show("HEAD:reports/notebook.md")  # the fixed entry, with its numbers
    assert f"- FAKE-NOTEBOOK LISTA on Matryoshka Evidence: {row['id']} (F1 {row['f1']['mean']:.4f}" in notebook
    asked = api.answered("conclude")[0]["messages"][0]["content"]  # the parent's full metrics and the curves
    asked = asked if isinstance(asked, str) else asked[0]["text"]
    assert "metric | this sprint | parent baseline:matryoshka" in asked and "\nprecision | 0." in asked
    assert "<notebook>\n# Lab notebook" in asked and "<notebook>\n# Lab notebook" in proposing  # the notebook shown
    assert "\ndead_latents | " in asked and "seed 1:\n  training samples: " in asked and "  variant.mse: " in asked

    first = api.answered("implement")[0]
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}  # the stable prefix is cached
    assert "Beat the Matryoshka baseline" in first["system"][0]["text"]  # TASK.md's body, verbatim
    card = first["system"][0]["text"]  # the contract and benchmark card, from the profile and TASK.md
    assert "The contract and the benchmark (profile `tiny`)" in card and "5 ± 0.25" in card, card
    assert "204,800 training samples" in card and "2 seeds (0, 1)" in card and "alpha = 0.05" in card, card
    assert "512 ground-truth features in a 64-dimensional space" in card and "on_step_end" in card, card
    implement = texts_of(first)
    assert "from autosae.sae import MatryoshkaBatchTopKSAE" in implement  # the parent's variant, inlined
    assert "python -m autosae.sae" in implement and "run_experiment" in implement and "Read," not in implement

    transcript = (folder / "transcript.jsonl").read_text()
    assert len(transcript.splitlines()) >= 10 and KEY not in transcript
    commits = git.Repo(project).git.rev_list("--all").split()  # main and the sprint branch
    found = subprocess.run(["git", "grep", "-I", "-l", "-e", KEY, *commits], cwd=project, capture_output=True)
    assert found.returncode == 1 and not found.stdout  # the key is in no committed file


def test_the_budget_reached_mid_sprint_ends_it_with_a_record_and_stops_the_loop(project):
    def busy(body: dict) -> list[dict]:
        if phase_of(body) == "propose":
            return propose(body)
        return [use("bash", {"command": "echo thinking"})]  # never finishes on its own

    usage = {"input_tokens": 1000, "output_tokens": 0}  # $0.01 a call at $10/Mtok
    with FakeMessagesAPI(busy, usage=usage) as api:
        anthropic_project(project, api.url, price={"input": 10, "output": 10})
        task = (
            (project / "TASK.md")
            .read_text()
            .replace("significance: 0.05", "significance: 0.05\nbudgets:\n  usd_per_sprint: 0.05")
        )
        (project / "TASK.md").write_text(task)
        git.Repo(project).git.commit("-q", "-am", "a budget")
        proc = autosae("loop", "--max-sprints", "3", cwd=project, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "budget reached" in proc.stdout
    [row] = ledger(project)  # one sprint recorded, and no second one started
    assert row["verdict"] == "failed" and "budget" in row["reason"] and row["stop"]
    assert row["cost_usd"] == pytest.approx(0.05, abs=0.011)
    assert len(api.requests) == 5
    assert "budget" in (project / "sprints" / row["id"] / "report.md").read_text()


def test_sigkill_mid_conversation_then_resume_continues_it(project):
    def kill_autosae() -> None:  # from outside: the agent's sandboxed bash cannot see autosae's process
        time.sleep(2)
        os.kill(json.loads((project / ".autosae" / "lock").read_text())["pid"], signal.SIGKILL)

    def killer(body: dict) -> list[dict]:
        if phase_of(body) == "implement" and turn_of(body) == 2:
            threading.Thread(target=kill_autosae, daemon=True).start()
            return [use("bash", {"command": "kill -9 $PPID; sleep 30"})]  # SIGKILL to autosae, mid-tool-call
        return research_policy(body)

    idea = "a one-step LISTA encoder on the Matryoshka baseline, from the command line"
    with FakeMessagesAPI(killer) as api:
        anthropic_project(project, api.url)
        proc = autosae("sprint", "--idea", idea, "--backend", "anthropic", cwd=project, env=ENV)
        assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
        assert ledger(project) == []
        proc = autosae("resume", cwd=project, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(api.answered("propose")) == 1  # the proposal was not asked for again
    resumed = [r for r in api.answered("implement") if turn_of(r) == 3]
    assert resumed and "interrupted" in tool_results(resumed[0])[0]["content"]
    assert turn_of(api.answered("implement")[-1]) == 6  # the conversation went on where it stopped
    [row] = ledger(project)
    assert row["verdict"] != "failed" and row["idea"] == idea and row["user_idea"]
    assert idea in json.dumps(api.answered("propose")[0]["messages"])  # the proposer was given the idea
    transcript = (project / "sprints" / row["id"] / "transcript.jsonl").read_text().splitlines()
    roles = [json.loads(line)["message"]["role"] for line in transcript]
    assert roles.count("assistant") == 1 + 7 + 2  # propose, implement (across the kill), conclude


def test_no_api_key_is_a_one_line_error(project):
    write_task(project, backend="anthropic")
    git.Repo(project).git.commit("-q", "-am", "anthropic task")
    env = {"ANTHROPIC_API_KEY": ""}
    proc = autosae("sprint", cwd=project, env=env)
    assert proc.returncode != 0
    assert "ANTHROPIC_API_KEY" in one_line_error(proc)
    assert ledger(project) == []


def test_an_unknown_model_without_a_price_is_refused(project):
    write_task(project, backend="anthropic")
    git.Repo(project).git.commit("-q", "-am", "anthropic task")
    proc = autosae("sprint", "--model", "claude-unknown-9", cwd=project, env=ENV)
    assert proc.returncode != 0
    assert "no price known" in one_line_error(proc)


def test_claude_code_missing_says_how_to_install_it(project):
    write_task(project, backend="claude_code", options={"claude": "claude-not-installed-here"})
    git.Repo(project).git.commit("-q", "-am", "claude code task")
    proc = autosae("sprint", cwd=project, env=ENV)
    assert proc.returncode != 0
    assert "npm install -g @anthropic-ai/claude-code" in one_line_error(proc)
    assert ledger(project) == []
