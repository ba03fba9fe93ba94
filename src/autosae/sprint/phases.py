"""A sprint's phases up to its verdict: implementing, training, scoring, verifying.

Each takes the Sprint in hand; Engine.run saves the state before and after each (see
engine.PHASES for the order), so a phase only saves what it must keep midway. Each phase's
work is idempotent: a phase killed midway is run again from its start, reusing what it
recorded (the implement commit, the harness's sealed results.json). A failure (the agent
wrote nothing, the variant crashed) does not skip phases: training says it is skipped and
scoring records a failed verdict, which reporting records like any other."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.agents import AgentError, BudgetReached
from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.parts import read_parts
from autosae.harness.seal import read_verified
from autosae.jsonio import read_json
from autosae.records import is_ok
from autosae.sprint import gitexact, gitops
from autosae.sprint.common import TRUSTED_FILES, counted_time_limit, crash_point, proposal_of
from autosae.sprint.coverage import coverage_of
from autosae.sprint.gitexact import GitFailed
from autosae.sprint.heldout import apply_heldout
from autosae.sprint.ledger import best_row, read_ledger, reference
from autosae.sprint.verdict import Reference, compute_verdict, probes_of

if TYPE_CHECKING:
    from autosae.sprint.common import Sprint


def implement(s: Sprint) -> None:
    """The agent writes README.md and variant.py in the sprint's folder; committed on its branch."""
    state, engine = s.state, s.engine
    s.say("implementing", f"agent {state.backend} writes README.md and variant.py")
    tree, folder = s.worktree()
    if gitops.in_head(tree, f"{state.sprint_path}/variant.py") or (
        state.failure and gitops.in_head(tree, f"{state.sprint_path}/README.md")
    ):
        pass  # committed before a crash: keep it
    else:
        rows = read_ledger(engine.project.ledger_path)
        ctx = engine.context(
            s.cfg,
            state.task_body,
            s.profile,
            state.setting,
            rows,
            s.baselines,
            hide_past=s.cfg.agent.hide_past,
            state=state,
        )
        if not (ctx.record_dir / "implement.jsonl").is_file():  # else: a conversation to continue
            shutil.rmtree(folder, ignore_errors=True)
            state.amendments.clear()  # an implementation begun again: its pilot notes too
        folder.mkdir(parents=True, exist_ok=True)
        with s.charging():
            try:
                s.agent.implement(proposal_of(state), folder, ctx)
                missing = [f for f in ("README.md", "variant.py") if not (folder / f).is_file()]
                if missing:
                    state.failure = f"the agent did not write {', '.join(missing)}"
            except BudgetReached as exc:
                state.failure = state.stop = f"budget reached: {exc}"
            except AgentError as exc:
                state.failure = f"the {state.backend} agent could not implement the idea: {exc}"
        _, folder = s.worktree()  # again: the agent may have made sprints/ or its folder a link
        folder.mkdir(parents=True, exist_ok=True)
        for name in TRUSTED_FILES:
            (folder / name).unlink(missing_ok=True)
        links, git_files = refuse_links(folder), refuse_git_files(folder)
        refused = refusal(links, git_files, refuse_oversize(folder))
        if refused and not state.failure:
            state.failure = refused
        if not state.failure and (problem := read_parts(folder)[1]):  # the anthropic backend refuses it at finish
            s.say("implementing", f"{problem}: the ablation phase, if it comes, will refuse it")
        crash_point("implementing")
        commit_implementation(s, folder)
    s.save()


def commit_implementation(s: Sprint, folder: Path) -> None:
    """The agent's folder committed on the sprint's branch as it is on disk. A folder git
    cannot record as it is (a path it refuses, such as `git~1`) fails the sprint: its files
    are removed and the README alone is committed, so that no later phase, and no resume,
    meets the same failure."""
    state = s.state
    message = f"{state.id}: implement: {state.title}"
    if not any(folder.iterdir()):
        (folder / "README.md").write_text(f"# {state.title}\n\n{state.idea}\n")
    try:
        state.commit = s.commit_folder(message) or state.commit
        return
    except GitFailed as exc:
        if not state.failure:
            state.failure = (
                f"refused: the sprint folder cannot be committed as it is ({exc}); "
                f"its files were removed, nothing was trained"
            )
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "README.md").write_text(f"# {state.title}\n\n{state.idea}\n")
    state.commit = s.commit_folder(message) or state.commit  # fails only with git itself: one line


def train(s: Sprint) -> None:
    """The harness's counted run on TASK.md's seeds (skipped after a failure)."""
    from autosae.harness.run import run_variant, sha256_file

    state, run_dir = s.state, s.run_dir
    if state.failure:
        s.say("training", f"skipped: {state.failure}")
        return
    s.say("training", f"{len(state.seeds)} seeds on {s.profile.name} ({s.device})")
    _, folder = s.worktree()
    variant = folder / "variant.py"
    done = read_verified(run_dir / "results.json")  # only a record the harness sealed is reused
    if done and done.get("status") not in (None, "running") and done.get("variant_sha256") == sha256_file(variant):
        s.say("training", "reusing the results recorded before the interruption")
    else:
        if not (run_dir / "launcher.json").is_file():  # else: a job to wait for again (launch.py)
            shutil.rmtree(run_dir, ignore_errors=True)
        limit = counted_time_limit(s.cfg, s.profile) if s.cfg.budgets.hours_per_sprint else None
        opts = s.engine.run_options(
            s.cfg,
            s.device,
            backend=state.backend,
            seeds=list(state.seeds),
            time_limit_s=limit,
            log=lambda line: s.engine.detail(f"{state.id}: {line}"),
        )
        try:
            run_variant(variant, s.profile, run_dir, opts)
        except (VariantFailed, ConstraintBreach) as exc:
            s.say("training", f"the variant failed: {exc}")
    crash_point("training")


def score(s: Sprint) -> None:
    """The verdict against the parent, with the best so far and the baselines alongside;
    under the lock, so that it reads the ledger as it stands."""
    with s.engine.lock:
        _score(s)


def _score(s: Sprint) -> None:
    state, project = s.state, s.engine.project
    results = None if state.failure else read_verified(s.run_dir / "results.json")
    if results is not None and (mismatch := not_the_committed_variant(s, results)):
        state.failure, results = mismatch, None
    rows = read_ledger(project.ledger_path)
    by_id = {r["id"]: r for r in rows}
    refs = {name: Reference.from_results(f"baseline:{name}", res) for name, res in s.baselines.items()}
    if state.parent in by_id:
        parent = reference(by_id[state.parent])
        parent.probes = probes_of(read_json(project.sprints_dir / state.parent / "results.json"))
    elif (state.parent or "baseline:matryoshka").removeprefix("baseline:") in refs:
        parent = refs[(state.parent or "baseline:matryoshka").removeprefix("baseline:")]
    else:  # never another baseline's numbers in its place: the verdict says there are none
        parent = Reference(state.parent or "?", {})
    best = best_row(rows, state.setting)
    coverage = None
    if is_ok(results):
        _, folder = s.worktree()
        coverage = coverage_of(parent_source(s), (folder / "variant.py").read_text(), results)
    verdict = compute_verdict(
        results,
        state.id,
        parent,
        reference(best) if best else None,
        refs,
        state.objective,
        s.cfg.significance,
        coverage,
    )
    if state.failure:
        verdict["reason"] = state.failure
    crash_point("scoring")
    state.verdict = verdict  # saved with the next phase, by Engine.run
    s.say("scoring", f"{verdict['verdict']}: {verdict['reason']}")  # the phase's one status line


def not_the_committed_variant(s: Sprint, results: dict) -> str | None:
    """Why the run is not of the variant.py on the sprint's branch (None: it is). The branch's
    blob is what main receives byte for byte (gitexact), so a variant_sha256 recorded on main
    always names a file there."""
    state = s.state
    trained = results.get("variant_sha256")
    committed = gitexact.blob_sha256(s.engine.repo, f"refs/heads/{state.branch}", f"{state.sprint_path}/variant.py")
    if not trained or trained == committed:
        return None
    return (
        f"refused: the variant that trained (sha256 {trained[:12]}) is not the variant.py committed on "
        f"{state.branch} ({f'sha256 {committed[:12]}' if committed else 'none'}); nothing is recorded of the run"
    )


def verify(s: Sprint) -> None:
    """A new best is trained on the held-out suite, beside its parent, before it is
    confirmed; one that does not hold up there is not the new best (nor the next parent)."""
    state, cfg, v = s.state, s.cfg, s.state.verdict
    if v.get("new_best") and cfg.heldout.auto and cfg.heldout.models > 0 and v.get("held_out") is None:
        s.say(
            "verifying",
            f"{cfg.heldout.models} held-out models, {cfg.heldout.seeds} seeds each, beside the parent {state.parent}",
        )
        _, folder = s.worktree()
        try:
            out = s.engine.verify_on_heldout(
                state.parent, folder / "variant.py", s.profile, cfg, s.device, state.backend, v.get("verdict")
            )
        except AutosaeError as exc:
            out = {"models": [], "confirmed": False, "outcome": "not confirmed", "reason": f"not confirmed: {exc}"}
        state.verdict = apply_heldout(v, out)
        s.say("verifying", out["reason"])
    crash_point("verifying")


def parent_source(s: Sprint) -> str | None:
    """The parent's variant.py as recorded on the main branch (or the baseline's)."""
    parent = s.state.parent
    try:
        path = s.engine.parent_variant_path(parent or "")
    except AutosaeError:
        return None
    return path.read_text() if parent and path.is_file() else None


def refuse_git_files(folder: Path) -> list[str]:
    """Remove every file or folder named like git's own (`.git`, `.gitignore`,
    `.gitattributes`, `.gitmodules`, anything `.git*`, in any case) from a sprint folder:
    on main they would steer how git reads and writes the project (ignore and attribute rules,
    submodules, an embedded repository); returns what was removed."""
    removed = []
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            if name.lower().startswith(".git"):
                path = Path(top) / name
                removed.append(path.relative_to(folder).as_posix())
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        dirs[:] = [d for d in dirs if not d.lower().startswith(".git")]
    return sorted(removed)


SPRINT_FILE_BYTES, SPRINT_FOLDER_BYTES = 4 << 20, 32 << 20
"""The largest file, and the most bytes in all (apparent sizes), of a sprint folder: what the
agent writes is code and notes; everything in it is committed on main and read by our process."""


def refuse_oversize(folder: Path) -> list[str]:
    """Remove from a sprint folder every file with another name on the disk (a hard link: the
    disk bound counts it once, a commit once a name), every file over SPRINT_FILE_BYTES, and,
    smallest first, those past SPRINT_FOLDER_BYTES in all (a sparse file costs the agent no disk,
    and a commit of gigabytes would cost main and our process their size); returns what was
    removed."""
    removed, sized = [], []
    for top, _, files in os.walk(folder):
        for name in files:
            path = Path(top) / name
            info = path.lstat()
            if info.st_nlink > 1 or info.st_size > SPRINT_FILE_BYTES:
                removed.append(path)
            else:
                sized.append((info.st_size, path))
    total = 0
    for size, path in sorted(sized):
        total += size
        if total > SPRINT_FOLDER_BYTES:
            removed.append(path)
    for path in removed:
        path.unlink()
    return sorted(p.relative_to(folder).as_posix() for p in removed)


def refusal(links: list[str], git_files: list[str], oversize: list[str] = ()) -> str | None:
    """The one-line reason a sprint folder was refused (None: nothing was removed)."""
    if not links and not git_files and not oversize:
        return None
    kinds = []
    if links:
        kinds.append("a symlink or a file that is not a regular file")
    if git_files:
        kinds.append("git's own files (.git*), which would steer how git records the project")
    if oversize:
        kinds.append(
            f"hard links, or files over {SPRINT_FILE_BYTES >> 20} MiB each or {SPRINT_FOLDER_BYTES >> 20} MiB in all"
        )
    shown = sorted([*links, *git_files, *oversize])
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return (
        f"refused: the sprint folder held {', '.join(shown[:5])}{more} ({'; '.join(kinds)}); "
        f"they were removed, nothing was trained"
    )


def refuse_links(folder: Path) -> list[str]:
    """Remove every symlink and non-regular file from a sprint folder (a link to ~/.netrc or
    to the held-out seeds must never be read, copied or committed); returns what was removed."""
    removed = []
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            removed.append(path.relative_to(folder).as_posix())
            path.unlink(missing_ok=True)
    return sorted(removed)
