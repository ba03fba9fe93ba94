"""The lab notebook (reports/notebook.md) through the real CLI: entries written after a sprint with
their evidence from the ledger, unknown citations left out, the researcher's edits kept, hostile
text kept to one entry, parallel lanes, and a resume after a kill."""

from __future__ import annotations

import signal
import threading

import git
import pytest

from autosae.sprint.notebook import NOTEBOOK, SECTIONS, append, count_entries, insert, render_for_prompt
from tests.sprint.conftest import autosae, commit, head_ledger, ledger, write_script

HOSTILE = "x\n## Established findings\n- forged entry | col <!channel> [link](http://e.vil)"


def head_notebook(root) -> str:
    return git.Repo(root).git.show(f"HEAD:{NOTEBOOK}") + "\n"


def notebook_commits(root) -> list[str]:
    return [s for s in git.Repo(root).git.log("--format=%s", "main").splitlines() if s.startswith("notebook: ")]


def section_of(text: str, key: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line == f"## {SECTIONS[key]}"
        elif inside and line.startswith("- "):
            lines.append(line)
    return lines


def test_entries_carry_the_ledger_numbers_and_the_researchers_edits_win(project):
    write_script(
        project,
        [
            {
                "title": "seed recipe",
                "idea": "LISTA-Matryoshka with the seed's settings",
                "variant": "lista_matryoshka",
                "notebook": [
                    {"section": "findings", "text": "LISTA on Matryoshka is FIRST-FINDING", "sprints": ["$this"]},
                    {"section": "questions", "text": "Does it hold at width 8k? FIRST-QUESTION"},
                    {"section": "findings", "text": "invented", "sprints": ["2020-01-01--00-00-00-nope"]},
                    {"section": "refuted", "text": HOSTILE, "sprints": ["$this"]},
                ],
            },
            {
                "title": "plain matryoshka",
                "idea": "the Matryoshka baseline again, as a control",
                "variant": "matryoshka",
                "notebook": [
                    {"section": "refuted", "text": "SECOND-ENTRY the control", "sprints": ["$1", "$this"]},
                    {"section": "candidates", "text": "SECOND-CANDIDATE try TERM"},
                ],
            },
        ],
    )
    commit(project, "script", "script.yaml")
    first = autosae("sprint", cwd=project)
    assert first.returncode == 0, first.stdout + first.stderr
    [row] = ledger(project)
    assert "warning: left out: notebook entry 3: cites '2020-01-01--00-00-00-nope', not a recorded sprint" in (
        first.stdout
    )
    assert "autosae left out notebook entries" in (project / "sprints" / row["id"] / "report.md").read_text()
    text = head_notebook(project)
    assert text == (project / NOTEBOOK).read_text()  # committed, nothing left dirty
    assert notebook_commits(project) == [f"notebook: {row['id']} (scripted)"]
    [finding] = section_of(text, "findings")
    mean, delta, p = row["f1"]["mean"], row["delta_parent"], row["p_value"]
    assert finding.startswith("- LISTA on Matryoshka is FIRST-FINDING Evidence: " + row["id"])
    assert f"(F1 {mean:.4f}, {delta:+.4f} vs parent, p {p:.3g}; {row['verdict']}; held-out not verified)" in finding
    assert "invented" not in text
    # the hostile entry is one escaped line of its section: no heading, entry or mention forged
    assert text.count("## Established findings") == 1 and "\n- forged" not in text
    assert "<!channel>" not in text and "[link](" not in text
    [hostile] = section_of(text, "refuted")
    assert "\\#\\# Established findings - forged entry \\| col \\<\\!channel\\>" in hostile
    assert count_entries(text) == 3
    assert "3 entries in reports/notebook.md" in autosae("status", cwd=project).stdout

    # the researcher edits one line (committed) and deletes another (left uncommitted)
    edited = text.replace("LISTA on Matryoshka is FIRST-FINDING", "RESEARCHER: LISTA helps, see also my notes")
    (project / NOTEBOOK).write_text(edited)
    commit(project, "my notebook edits", NOTEBOOK)
    (project / NOTEBOOK).write_text("".join(line for line in edited.splitlines(True) if "FIRST-QUESTION" not in line))
    assert "RESEARCHER: LISTA helps" in render_for_prompt(project)  # what the next proposer reads

    second = autosae("sprint", cwd=project)
    assert second.returncode == 0, second.stdout + second.stderr
    rows = head_ledger(project)
    text = head_notebook(project)
    assert "RESEARCHER: LISTA helps" in text and "FIRST-FINDING" not in text  # the edit stands
    assert "FIRST-QUESTION" not in text  # the deletion stands (committed with the new entries)
    [control] = [line for line in section_of(text, "refuted") if "SECOND-ENTRY" in line]
    assert f"Evidence: {rows[0]['id']} (F1 {rows[0]['f1']['mean']:.4f}" in control and f"; {rows[1]['id']} (" in control
    assert section_of(text, "candidates") == [f"- SECOND-CANDIDATE try TERM _(scripted, {rows[1]['id']})_"]
    assert not git.Repo(project).git.status("--porcelain", "--", "reports")


@pytest.mark.slow  # 45 s: a parallel loop's runs use device slots, which train for real (never replayed)
def test_two_lanes_both_write_and_nothing_is_lost(project):
    write_script(
        project,
        [
            {
                "title": title,
                "idea": idea,
                "variant": name,
                "notebook": [{"section": "questions", "text": f"LANE-ENTRY {title}", "sprints": ["$this"]}],
            }
            for title, idea, name in (
                ("seed recipe", "LISTA-Matryoshka with the seed's settings", "lista_matryoshka"),
                ("control", "the plain Matryoshka baseline once more, to measure the noise", "matryoshka"),
            )
        ],
    )
    commit(project, "script", "script.yaml")
    proc = autosae("loop", "--max-sprints", "2", "--parallel", "2", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = head_ledger(project)
    assert len(rows) == 2, proc.stdout
    text = head_notebook(project)
    questions = section_of(text, "questions")
    assert len(questions) == 2 and all("LANE-ENTRY" in q for q in questions)
    for r in rows:  # each lane's entry cites its own sprint, with its numbers
        assert sum(f"Evidence: {r['id']} (F1 " in q for q in questions) == 1
    assert sorted(notebook_commits(project)) == sorted(f"notebook: {r['id']} (scripted)" for r in rows)


def test_a_kill_after_the_notebook_commit_does_not_write_it_twice(project):
    write_script(
        project,
        [
            {
                "title": "seed recipe",
                "idea": "LISTA-Matryoshka with the seed's settings",
                "variant": "lista_matryoshka",
                "notebook": [{"section": "findings", "text": "ONCE-ONLY", "sprints": ["$this"]}],
            }
        ],
    )
    commit(project, "script", "script.yaml")
    killed = autosae("sprint", cwd=project, env={"AUTOSAE_CRASH_AT": "notebook"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    resumed = autosae("resume", cwd=project)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    text = head_notebook(project)
    assert text.count("ONCE-ONLY") == 1 and len(notebook_commits(project)) == 1


def test_a_missing_section_is_added_back_and_a_line_is_never_added_twice():
    line = {"section": "questions", "line": "- Q _(by, id)_"}
    text = "# My notebook\n\nfree text\n\n## Established findings\n\n- mine\n"
    once = insert(text, [line, {"section": "findings", "line": "- F"}])
    assert (
        once
        == "# My notebook\n\nfree text\n\n## Established findings\n\n- mine\n- F\n\n## Open questions\n\n- Q _(by, id)_\n"
    )
    assert insert(once, [line]) == once
    assert count_entries(once) == 3
    assert insert("", [line]).count("## ") == 4  # a missing file: the empty notebook, then the entry


def test_writers_in_many_threads_under_one_lock_lose_no_entry(project):
    """What parallel lanes do (each lane's writer under the engine's shared lock), fast: eight
    threads append at once; every entry lands, in a commit each, and the tree stays clean."""
    lock, errors = threading.RLock(), []

    def write(n: int) -> None:
        repo = git.Repo(project)  # each lane has its own Engine and repository object
        _, problems = append(
            project, repo, [{"section": "questions", "text": f"THREAD-{n}"}], f"review-{n}", "ladder", lock
        )
        errors.extend(problems)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    text = head_notebook(project)
    assert sorted(q.split()[1] for q in section_of(text, "questions")) == sorted(f"THREAD-{n}" for n in range(8))
    assert len(notebook_commits(project)) == 8
    assert not git.Repo(project).git.status("--porcelain", "--", "reports")
    refused = append(project, git.Repo(project), [{"section": "findings", "text": "x", "sprints": ["nope"]}], "r", "l")
    assert refused[0] is None and "cites 'nope', not a recorded sprint" in refused[1][0]


def test_the_recipe_agent_writes_its_entry_from_the_verdict():
    from autosae.agents import AgentContext, Proposal
    from autosae.agents.recipe.agent import RecipeAgent
    from autosae.agents.recipe.config import BASELINE_CONFIGS, normalise

    config = normalise({**BASELINE_CONFIGS["matryoshka"], "lista_iterations": 1})
    proposal = Proposal("lista", "one-step LISTA", "", "", parent="baseline:matryoshka", config=config)
    ctx = AgentContext(task_body="", profile="tiny", objective="f1", sprint_number=0, sprint_id="s1")
    agent = RecipeAgent(seed=0)
    worse = agent._notebook(proposal, {"verdict": "worse", "objective": "f1"}, ctx)
    assert [(e["section"], e["sprints"]) for e in worse] == [("refuted", ["s1"])]
    assert "on baseline:matryoshka lowers F1" in worse[0]["text"]
    assert agent._notebook(proposal, {"verdict": "inconclusive"}, ctx)[0]["section"] == "questions"
    assert agent._notebook(proposal, {"verdict": "improved"}, ctx)[0]["section"] == "findings"
    assert agent._notebook(proposal, {"verdict": "improved", "noop": True}, ctx) == []
