"""The loop's other ways to stop (budget, time, Ctrl-C), no GPU, and what agents get to see."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime

import pytest

from autosae.errors import AutosaeError
from autosae.sprint.loop import parse_until
from tests.sprint.conftest import autosae, autosae_running, ledger, one_line_error, write_script, write_task


def failing_actions(n: int, cost: float = 0.0) -> list[dict]:
    return [
        {
            "title": f"broken {i}",
            "idea": f"broken idea number {i} " + "q" * 9 * i,
            "fail": "implement",
            "cost_usd": cost,
        }
        for i in range(n)
    ]


def test_the_loop_stops_at_its_budget(project):
    write_task(project, max_failures=10)
    write_script(project, failing_actions(6, cost=0.4))
    proc = autosae("loop", "--budget-usd", "1.0", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--budget-usd 1 spent ($1.20)" in proc.stdout
    rows = ledger(project)
    assert len(rows) == 3 and sum(r["cost_usd"] for r in rows) == pytest.approx(1.2)


@pytest.mark.parametrize("lanes", [1, 2])
def test_max_sprints_counts_the_sprints_the_loop_starts(project, lanes):
    """--max-sprints 3 starts three sprints and no more, in one lane or two (two lanes never
    start a fourth while the third is running)."""
    write_task(project, max_failures=10)
    write_script(project, failing_actions(5))
    proc = autosae("loop", "--max-sprints", "3", "--parallel", str(lanes), cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--max-sprints 3 reached" in proc.stdout and "stopped after 3 sprints" in proc.stdout
    assert len(ledger(project)) == 3
    assert len(list((project / ".autosae" / "state").glob("*.json"))) == 3


@pytest.mark.parametrize("lanes", [1, 2])
def test_an_attempt_that_starts_no_sprint_is_not_counted(project, lanes):
    """A proposal that fails starts no sprint: it counts toward the failures in a row, not
    toward --max-sprints (else the loop would stop at the limit with one sprint recorded)."""
    write_task(project, max_failures=3)
    write_script(
        project,
        [
            {"title": "broken", "idea": "a sprint that fails to implement", "fail": "implement"},
            {"title": "mute", "idea": "never proposed", "fail": "propose"},
        ],
    )
    proc = autosae("loop", "--max-sprints", "2", "--parallel", str(lanes), cwd=project)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "3 sprints in a row failed" in one_line_error(proc) and "--max-sprints" not in proc.stdout
    assert "no sprint started: the scripted agent could not propose an idea" in proc.stdout
    assert [r["title"] for r in ledger(project)] == ["broken"]


def test_the_loop_starts_nothing_after_until(project):
    proc = autosae("loop", "--until", "2000-01-01T00:00", cwd=project)
    assert proc.returncode == 0 and "--until 2000-01-01 00:00 reached" in proc.stdout
    assert ledger(project) == []
    bad = autosae("loop", "--until", "tomorrow", cwd=project)
    assert bad.returncode == 1 and "HH:MM" in one_line_error(bad)


def test_parse_until():
    now = datetime(2026, 11, 24, 23, 0)
    assert parse_until("07:30", now) == datetime(2026, 11, 25, 7, 30)
    assert parse_until("23:30", now) == datetime(2026, 11, 24, 23, 30)
    with pytest.raises(AutosaeError):
        parse_until("25:99", now)


def test_no_gpu_is_a_clear_error_before_anything_is_recorded(project):
    text = (project / "TASK.md").read_text().replace("seeds: 2\n", "seeds: 2\ndevice: cuda\n")
    (project / "TASK.md").write_text(text)
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 1 and "no CUDA GPU" in one_line_error(proc)
    assert ledger(project) == [] and not list((project / ".autosae" / "state").glob("*.json"))


@pytest.mark.slow  # the default suite stays near 10 minutes; `make test-all` runs it
@pytest.mark.real_harness  # interrupted while it trains
def test_ctrl_c_leaves_the_sprint_resumable(project):
    proc = autosae_running("loop", cwd=project, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list((project / ".autosae" / "runs").glob("*/seed_0/train_log.jsonl")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "left in phase training; `autosae resume` continues it" in err
    assert not (project / ".autosae" / "lock").exists()
    resumed = autosae("resume", cwd=project)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(ledger(project)) == 1


def test_hide_past_keeps_past_sprints_from_the_implementing_agent(project):
    from autosae.config import load_task
    from autosae.sprint.engine import Engine, setting_of
    from autosae.sprint.project import Project

    cfg = load_task(project / "TASK.md").config
    profile = cfg.build_profile()
    rows = [
        {
            "id": "a",
            "title": "t",
            "verdict": "improved",
            "new_best": True,
            "setting": setting_of(profile),
            "f1": {"mean": 0.8, "std": 0.01},
            "config": {"x": 1},
        }
    ]
    engine = Engine(Project(project))
    seen = engine.context(cfg, "body", profile, setting_of(profile), rows, {})
    hidden = engine.context(cfg, "body", profile, setting_of(profile), rows, {}, hide_past=True)
    assert [p.id for p in seen.past] == ["a"] and seen.best.id == "a"
    assert hidden.past == [] and hidden.best is None and hidden.task_body == "body"
