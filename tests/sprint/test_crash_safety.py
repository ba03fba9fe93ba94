"""SIGKILL in every phase, then resume: nothing lost, nothing recorded twice. The lock, a
stale lock, the STOP file, and a loop that stops after failures in a row."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import git
import pytest

from autosae.sprint.engine import PHASES, PROPOSED
from tests.sprint.conftest import (
    autosae,
    autosae_running,
    head_ledger,
    ledger,
    one_line_error,
    sprint_commits,
    write_script,
    write_task,
)

# The point where a half-done merge must be undone runs by default (a kill in the middle of
# training is test_sigkill_mid_training_from_outside_then_loop_resumes); the others (16 s
# each) run with `make test-all`, to keep the default suite near 10 minutes.
SLOW = pytest.mark.slow
# every phase's crash point, in order: start()'s, each phase's own, then the merge's two inside reporting
ORDER = [PROPOSED, *(name for name, _ in PHASES), "merging", "merged"]
CRASH_POINTS = ["merging", *(pytest.param(point, marks=SLOW) for point in ORDER if point != "merging")]


def states(root):
    folder = root / ".autosae" / "state"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_in_each_phase_then_resume(project, point):
    killed = autosae("sprint", cwd=project, env={"AUTOSAE_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    (state,) = states(project)
    assert state["phase"] != "done"
    status = autosae("status", cwd=project)
    assert f"current: {state['id']}" in status.stdout and "autosae resume" in status.stdout
    # a new sprint is refused until the interrupted one is finished; the dead lock is taken over
    refused = autosae("sprint", cwd=project)
    assert refused.returncode == 1 and "autosae resume" in one_line_error(refused)
    resumed = autosae("resume", cwd=project)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = ledger(project)
    assert [r["id"] for r in rows] == [state["id"]] == [r["id"] for r in head_ledger(project)]
    assert len(sprint_commits(project)) == 1
    assert rows[0]["verdict"] != "failed"
    git.Repo(project).git.cat_file("-e", f"HEAD:sprints/{state['id']}/DONE")
    if point == "training":  # killed after the harness recorded its results: reused, not retrained
        assert "reusing the results" in resumed.stdout
    elif ORDER.index(point) > ORDER.index("training"):
        assert " | training" not in resumed.stdout
    assert [s["phase"] for s in states(project)] == ["done"]
    assert autosae("resume", cwd=project).stdout.startswith("nothing to resume")


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
@pytest.mark.real_harness  # killed while it trains
def test_sigkill_mid_training_from_outside_then_loop_resumes(project):
    proc = autosae_running("loop", "--max-sprints", "1", cwd=project)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = list((project / ".autosae" / "runs").glob("*/seed_0/train_log.jsonl"))
        if runs and runs[0].stat().st_size > 0:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("training never started")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (state,) = states(project)
    assert state["phase"] == "training"
    again = autosae("loop", "--max-sprints", "1", cwd=project)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "taking over a stale lock" in again.stdout
    assert f"resuming {state['id']}" in again.stdout
    assert [r["id"] for r in ledger(project)] == [state["id"]]
    assert len(sprint_commits(project)) == 1


def test_a_live_lock_keeps_a_second_run_out(project):
    lock = project / ".autosae" / "lock"
    lock.parent.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(
            json.dumps({"pid": holder.pid, "host": socket.gethostname(), "command": "autosae loop", "started": "now"})
        )
        for args in (["sprint"], ["loop"], ["resume"]):
            proc = autosae(*args, cwd=project)
            assert proc.returncode == 1
            assert "another autosae is running" in one_line_error(proc) and str(holder.pid) in proc.stderr
        assert f"pid {holder.pid}" in autosae("status", cwd=project).stdout
    finally:
        holder.kill()
        holder.wait()
    assert ledger(project) == []


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
def test_stop_file_ends_the_loop_after_the_current_sprint(project):
    write_script(
        project,
        [
            {
                "title": f"idea {i}",
                "idea": f"variant number {i} " + "x" * i * 7,
                "variant": "lista_matryoshka",
                "sleep": {"implement": 3},
            }
            for i in range(5)
        ],
    )
    proc = autosae_running("loop", "--max-sprints", "5", cwd=project, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (project / ".autosae" / "state").exists() or not list((project / ".autosae" / "state").glob("*.json")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    stop = autosae("stop", cwd=project)
    assert stop.returncode == 0 and "stop requested" in stop.stdout
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "`autosae stop` was requested" in out
    assert len(ledger(project)) == 1
    assert not (project / ".autosae" / "STOP").exists()
    assert "no loop is running" in autosae("stop", cwd=project).stdout


def test_the_loop_stops_after_k_failures_in_a_row(project):
    write_task(project, max_failures=2)
    write_script(
        project,
        [{"title": f"broken {i}", "idea": f"broken idea {i} " + "y" * 9 * i, "fail": "implement"} for i in range(4)],
    )
    proc = autosae("loop", "--max-sprints", "10", cwd=project)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "2 sprints in a row failed" in one_line_error(proc)
    assert [r["verdict"] for r in ledger(project)] == ["failed", "failed"]
