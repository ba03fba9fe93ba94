"""A recorded sprint verified on the held-out models, on request: `autosae verify <id>`, or a
verification queued from Slack that the loop runs before its next sprint (autosae.sprint.ideas)."""

from __future__ import annotations

from autosae.config import load_task
from autosae.errors import AutosaeError
from autosae.jsonio import read_json
from autosae.sprint import gitops
from autosae.sprint.ledger import read_ledger


def resolve_id(sprint_id: str, ids) -> str:
    """The one sprint id that `sprint_id` is, or is a unique part of."""
    if sprint_id in ids:
        return sprint_id
    matches = sorted(i for i in ids if sprint_id in i)
    if not matches:
        raise AutosaeError(f"no sprint matches {sprint_id!r}; `autosae leaderboard` lists them")
    if len(matches) > 1:
        raise AutosaeError(
            f"{sprint_id!r} matches {len(matches)} sprints ({', '.join(matches[:4])}...); be more specific"
        )
    return matches[0]


def verify_recorded(engine, sprint_id: str) -> tuple[str, dict]:
    """Train recorded sprint `sprint_id`'s variant and its parent's on the held-out suite
    (TASK.md's heldout settings), record the outcome in its verdict.json, ledger row and
    report, and commit. The training runs outside the engine's lock (parallel lanes record
    meanwhile; its runs take the loop's device slots), the record under it. Returns the
    sprint's id and the outcome (autosae.sprint.heldout.verify)."""
    from autosae.harness.devices import resolve_device
    from autosae.report.rerender import rerender
    from autosae.sprint.common import setting_of
    from autosae.sprint.heldout import record_heldout

    project = engine.project
    rows = {r["id"]: r for r in read_ledger(project.ledger_path)}
    sid = resolve_id(sprint_id, rows)
    row = rows[sid]
    cfg = load_task(project.task_path).config
    if cfg.heldout.models == 0:
        raise AutosaeError("TASK.md's heldout.models is 0: there is no held-out model to verify on")
    profile = cfg.model_copy(update={"profile": row["profile"]}).build_profile()
    if setting_of(profile) != row.get("setting"):
        raise AutosaeError(
            f"sprint {sid} ran under another model or other constraints than TASK.md sets now; "
            f"restore them in TASK.md to verify it"
        )
    folder = project.sprints_dir / sid
    verdict = read_json(folder / "verdict.json")
    if verdict is None or not (folder / "variant.py").is_file():
        raise AutosaeError(f"sprint {sid} has no verdict.json or variant.py to verify")
    out = engine.verify_on_heldout(
        row["parent"],
        folder / "variant.py",
        profile,
        cfg,
        resolve_device(cfg.device),
        row.get("backend"),
        verdict.get("verdict") or row.get("verdict") or "failed",
    )
    with engine.lock:
        record_heldout(folder, project.ledger_path, sid, out)
        gitops.commit_paths(
            engine.repo,
            f"verify {sid}: held-out models: {out['outcome']}",
            [f"sprints/{sid}/verdict.json", "reports/ledger.jsonl"],
        )
        rerender(project, [sid], log=lambda line: None)  # the report and the leaderboard, committed
    return sid, out


def run_queued(engine) -> int:
    """Every verification queued (from Slack), each taken under the engine's lock (marked
    `running`, so that no other lane takes it), trained outside it, and settled in
    ideas.jsonl as done (with the outcome) or failed (with why, whatever went wrong: a
    verification never stops the loop); returns how many ran."""
    from autosae.sprint import ideas

    ran = 0
    while True:
        with engine.lock:
            queued = ideas.next_verification(engine.project, engine.repo)
            if queued is None:
                return ran
            ideas.settle(engine.project, engine.repo, queued.n, "running", sprint=queued.sprint)
        engine.say("verify", "queued", f"#{queued.n} {queued.sprint} (asked by {queued.added_by})")
        try:
            sid, out = verify_recorded(engine, queued.sprint or "")
        except Exception as exc:  # noqa: BLE001 (recorded as the request's outcome)
            why = str(exc) if isinstance(exc, AutosaeError) else f"{type(exc).__name__}: {exc}"
            with engine.lock:
                ideas.settle(engine.project, engine.repo, queued.n, "failed", sprint=queued.sprint, reason=why)
            engine.say("verify", "failed", why)
        else:
            outcome = out["reason"]
            with engine.lock:
                ideas.settle(engine.project, engine.repo, queued.n, "done", sprint=sid, reason=outcome)
            engine.say("verify", sid, outcome)
        ran += 1
