"""A sprint's last phase, reporting: the agent's conclusions, the sprint folder's records
(results, verdict, cost, transcript, report), committed on its branch, then one commit on
the main branch with the folder, its ledger row and the leaderboard; and the notice when it
is done.

Idempotent like every phase: a conclusion already drawn is kept, a folder already committed
(DONE) is not written again, a half-done merge is undone and redone, a merge that landed is
recognised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from autosae import notify
from autosae.agents import AgentError, BudgetReached
from autosae.agents.literature import merge_sources, readme_with_sources
from autosae.agents.transcript import merge_transcripts
from autosae.errors import AutosaeError
from autosae.harness.seal import read_verified
from autosae.records import LedgerRow
from autosae.report.record import folder_files, variant_diff
from autosae.sprint import gitexact, gitops, notebook
from autosae.sprint.common import TRUSTED_FILES, crash_point, proposal_of
from autosae.sprint.ledger import in_setting, parse_ledger, read_ledger, write_ledger
from autosae.sprint.state import SprintState, iso

if TYPE_CHECKING:
    from autosae.sprint.common import Sprint

REPORT_FILES = (
    "reports/ledger.jsonl",
    "reports/leaderboard.md",
    "reports/progress.png",
    "reports/progress.pdf",
    "reports/digest.md",
    "reports/lineage.png",
)
"""What a sprint's merge writes under reports/ (and all that a crashed merge may leave)."""
README_LIMIT = 1 << 20
"""The most of an agent's README.md that autosae reads back (to add its Sources section)."""


def report(s: Sprint) -> None:
    from autosae.jsonio import write_json
    from autosae.report import write_report
    from autosae.report.record import read_curves

    state, cfg, engine = s.state, s.cfg, s.engine
    s.say("reporting", "conclusions, report.md, report.pdf, commit, ledger")
    results = read_verified(s.run_dir / "results.json") if not state.failure else None
    if state.conclusion is None:
        state.conclusion = conclude(s, results)
        s.save()
    tree, folder = s.worktree()
    if not gitops.in_head(tree, f"{state.sprint_path}/DONE"):
        folder.mkdir(parents=True, exist_ok=True)
        shown = results or {"status": "failed", "reason": state.failure}
        write_json(folder / "results.json", shown)
        write_json(folder / "verdict.json", state.verdict)
        write_json(
            folder / "cost.json",
            {
                "backend": state.backend,
                "model": cfg.agent.model,
                "cost_usd": round(state.cost_usd, 6),
                "tokens": state.tokens,
            },
        )
        merge_transcripts(engine.agent_dir(state.id), ("propose", "implement", "conclude"), folder / "transcript.jsonl")
        state.sources = merge_sources(state.sources, implement_sources(s))
        write_readme_sources(s, folder / "README.md")
        state.finished = state.finished or iso()
        record = report_info(state) | {
            "conclusion": state.conclusion,
            "stop": state.stop,
            "diff": diff_against_parent(s, folder),
        }
        curves = read_curves(s.run_dir)
        write_json(folder / "sprint.json", record)
        write_json(folder / "curves.json", curves)
        write_report(folder, record, shown, state.verdict, curves, project_root=engine.project.root)
        (folder / "DONE").write_text(
            json.dumps({"id": state.id, "verdict": state.verdict["verdict"], "finished": state.finished}) + "\n"
        )
        state.commit = s.commit_folder(f"{state.id}: {state.verdict['verdict']}: {state.title}") or state.commit
        s.save()
    crash_point("reporting")
    with engine.lock:
        merge(s, results)
        write_notebook(s)
        gitops.remove_worktree(engine.repo, engine.project.worktrees_dir / state.id)


def announce(s: Sprint) -> None:
    """The sprint's last status line, its Slack notice and its experiment tracking (after it
    is saved as done: none of them can fail the sprint)."""
    state, project = s.state, s.engine.project
    v = state.verdict
    s.say("done", f"{v['verdict']}" + (" (new best)" if v.get("new_best") else "") + f" | sprints/{state.id}/report.md")
    results = read_verified(s.run_dir / "results.json") if not state.failure else None
    notify.post(
        notify.webhook_url(s.cfg),
        notify.sprint_notice(
            project.root.name, ledger_row(state, results), project.sprints_dir / state.id / "report.md"
        ),
        lambda line: s.say("notify", line),
    )
    if s.cfg.tracking.wandb is not None:  # off: nothing of tracking is imported
        from autosae.tracking import log_sprint

        project_id = gitops.root_commit(s.engine.repo)
        log_sprint(s.cfg.tracking, project.root, project_id, state.id, lambda line: s.say("wandb", line))


def conclude(s: Sprint, results: dict | None) -> str:
    state, engine = s.state, s.engine
    if results is None:
        return f"The sprint failed before training: {state.failure}"
    from autosae.report.record import compact_curves, read_curves

    rows = read_ledger(engine.project.ledger_path)
    ctx = engine.context(s.cfg, state.task_body, s.profile, state.setting, rows, s.baselines, state=state)
    ctx.parent_metrics = engine.parent_metrics(state.parent, rows, s.baselines)
    ctx.curves = compact_curves(read_curves(s.run_dir))
    ctx.parent_curves = compact_curves(parent_curves(s, rows))
    ctx.quick_runs, ctx.amendments = list(state.quick_runs), list(state.amendments)
    with s.charging():
        try:
            answer = s.agent.conclude(proposal_of(state), results, state.verdict, ctx)
            text = answer.text + notebook_lines(s, results, answer.notebook, rows)
        except BudgetReached as exc:
            state.stop = f"budget reached: {exc}"
            text = f"(No conclusions were drawn: {exc}.)"
        except AgentError as exc:
            text = f"(The {state.backend} agent could not draw conclusions: {exc}.)"
    return text


def notebook_lines(s: Sprint, results: dict, raw: object, rows: list[dict]) -> str:
    """The conclusion's lab-notebook entries, checked against the ledger and written out with
    their evidence into state.notebook (added to the notebook after the merge); an entry
    that cites no recorded sprint, or is malformed, is left out with a warning, and the
    conclusion's note on it ("" when none was left out)."""
    state = s.state
    entries, problems = notebook.check_entries(raw, {r.get("id") for r in rows}, state.id)
    state.notebook = notebook.lines_for(entries, [*rows, ledger_row(state, results)], state.backend, state.id)
    for problem in problems:
        s.say("notebook", f"warning: left out: {problem}")
    return f"\n\n(autosae left out notebook entries: {'; '.join(problems)}.)" if problems else ""


def write_notebook(s: Sprint) -> None:
    """The conclusion's notebook lines in reports/notebook.md, in a commit of their own on the
    main branch after the sprint's merge (so every sprint they cite is on main); the caller
    holds the engine's lock. A resumed sprint whose lines are there already adds none."""
    from autosae.sprint.ablation import notebook_entries

    state = s.state
    found = notebook_entries(state)
    ablated = notebook.lines_for(found, read_ledger(s.engine.project.ledger_path), "autosae ablation", state.id)
    lines = [*(state.notebook or []), *ablated]
    if not lines or state.notebook_done:
        return
    commit, why = notebook.write_lines(
        s.engine.project.root, s.engine.repo, lines, f"notebook: {state.id} ({state.backend})"
    )
    if why:
        s.say("notebook", f"warning: {why}")
    crash_point("notebook")
    state.notebook_done = True
    s.save()


CURVES_BYTES = 32 << 20
"""The most of a parent's curves.json that the conclude phase reads."""


def parent_curves(s: Sprint, rows: list[dict]) -> dict:
    """The parent's counted-run curves: a recorded sprint's curves.json on the main branch (its
    run folder's logs where an old sprint has none), else the baseline's cached run ({} where
    none is found)."""
    from autosae.bounded import read_prefix
    from autosae.report.record import read_curves

    parent, project = s.state.parent or "baseline:matryoshka", s.engine.project
    if any(r.get("id") == parent for r in rows):
        try:
            found = read_prefix(project.sprints_dir / parent / "curves.json", CURVES_BYTES)
            data = None if found.cut else json.loads(found.data)
        except (OSError, ValueError, RecursionError):
            data = None
        return data if isinstance(data, dict) else read_curves(project.runs_dir / parent)
    base = s.baselines.get(parent.removeprefix("baseline:")) or {}  # never another baseline's in its place
    run_dir = base.get("run_dir")
    return read_curves(Path(run_dir)) if isinstance(run_dir, str) and run_dir else {}


def merge(s: Sprint, results: dict | None) -> None:
    """One commit on the main branch: the sprint folder, its ledger row, the leaderboard. The
    folder is written from the sprint's branch and committed byte for byte (gitexact): main
    holds the very blobs the branch holds, whatever attributes the main checkout has."""
    from autosae.report import write_leaderboard

    state, engine = s.state, s.engine
    repo, ledger = engine.repo, "reports/ledger.jsonl"
    ours = [state.sprint_path, *REPORT_FILES]
    recorded = any(r.get("id") == state.id for r in parse_ledger(gitops.head_text(repo, ledger)))
    if recorded and gitops.in_head(repo, f"{state.sprint_path}/DONE"):
        gitexact.sync_index(repo, ours)  # in case the crash came before the index was brought in line
        return  # merged before a crash: never record twice
    gitops.restore(repo, ours)  # drop a half-done merge (only files autosae writes)
    engine.check_tree()
    gitops.checkout_from(repo, state.branch, state.sprint_path)
    rows = parse_ledger(gitops.head_text(repo, ledger))
    rows.append(ledger_row(state, results))
    engine.project.reports_dir.mkdir(exist_ok=True)
    write_ledger(engine.project.ledger_path, rows)
    write_leaderboard(
        engine.project.reports_dir,
        in_setting(rows, state.setting),
        {n: {m: res["summary"].get(m) for m in ("f1", "mcc")} for n, res in s.baselines.items()},
        state.objective,
    )
    crash_point("merging")
    gitexact.commit_exact(repo, f"sprint {state.id}: {state.verdict['verdict']}: {state.title}", ours)
    crash_point("merged")


def implement_sources(s: Sprint) -> list[dict]:
    """What the agent read on the web while implementing (TASK.md literature.phases lists
    implement), from that phase's transcript: the backend parses its own tools' results."""
    settings = s.cfg.agent.literature.resolved()
    if not settings or "implement" not in settings["phases"] or not hasattr(s.agent, "sources"):
        return []
    return s.agent.sources(s.engine.agent_dir(s.state.id), "implement")


def write_readme_sources(s: Sprint, readme: Path) -> None:
    """The sprint README's "Sources" section, written by autosae from the recorded sources
    (the agent writes the rest of the README; whatever it put between autosae's markers is
    replaced). Written where there is something to say: sources, a sprint whose LLM agent
    had web tools, or a README that already has the markers; idempotent."""
    state = s.state
    if readme.is_symlink():
        readme.unlink()  # never written through (refuse_links removed any before; this is belt and braces)
    if readme.exists() and not readme.is_file():
        return  # a folder named README.md: the sprint already failed for want of a README
    text = ""
    if readme.is_file():
        with open(readme, "rb") as f:
            raw = f.read(README_LIMIT + 1)
        text = raw[:README_LIMIT].decode(errors="replace")
        if len(raw) > README_LIMIT:
            text += f"\n\n(autosae cut this README at {README_LIMIT:,} bytes)\n"
    web = bool(s.cfg.agent.literature.resolved()) and state.backend in ("anthropic", "claude_code")
    if not (state.sources or web or "autosae:sources" in text):
        return
    readme.write_text(readme_with_sources(text or f"# {state.title}\n", state.sources))


def diff_against_parent(s: Sprint, folder: Path) -> dict:
    """What the agent changed in code: its folder against the parent sprint's (as main has
    it) or against the baseline's variant.py. README.md, the agent's
    notes, is left out on both sides."""
    skip = (*TRUSTED_FILES, "README.md")
    parent = s.state.parent or ""
    if parent.startswith("baseline:"):
        try:
            parent_files = {"variant.py": s.engine.parent_variant_path(parent).read_text()}
        except AutosaeError:
            parent_files = {}
    else:
        # as main has it: the agent's worktree is its own to change (a link in the parent's place)
        parent_files = folder_files(s.engine.project.sprints_dir / parent, skip) if parent else {}
    return variant_diff(parent or "—", parent_files, folder_files(folder, skip))


REPORT_FIELDS = (
    "id",
    "title",
    "idea",
    "hypothesis",
    "plan",
    "parent",
    "backend",
    "profile",
    "objective",
    "seeds",
    "started",
    "finished",
    "cost_usd",
    "tokens",
    "branch",
    "config",
    "sandboxed",
    "origin",
    "sources",
    "queued_idea",
)
"""The sprint state's fields that sprint.json records."""


def report_info(state: SprintState) -> dict:
    from autosae.report.evidence import clean_amendments, clean_quick_runs

    return {k: getattr(state, k) for k in REPORT_FIELDS} | {
        "quick_runs": clean_quick_runs(state.quick_runs),  # uncounted, bounded: for the reports
        "amendments": clean_amendments(state.amendments),  # beside the proposal, never over it
    }


def ledger_row(state: SprintState, results: dict | None) -> dict:
    """The sprint's line in reports/ledger.jsonl (the record's one writer is records.LedgerRow)."""
    return LedgerRow.from_sprint(state, results).to_dict()
