"""Weights & Biases tracking of recorded sprints, through the real wandb in offline mode (no
network), its run files read back: one run per seed with the recorded curves as its history
and the seed's metrics as its summary, one run for the sprint with its verdict, the loop's
best so far and the report as an artifact, grouped and linked. The recorded sprints are those
of the 0.1.0 project in tests/data (no sprint runs here); test_rendered's `night` proves the
hook wired into a real sprint. Off, missing or broken, tracking is one status line at most."""

from __future__ import annotations

import importlib.util
import json
import os
import tarfile
from pathlib import Path

import pytest

from autosae.config import TrackingSettings, WandbSettings, parse_task
from autosae.errors import AutosaeError
from autosae.tracking import log_sprint
from autosae.tracking.runs import history, run_id
from tests.tracking.wandb_files import offline_runs

ARCHIVE = Path(__file__).parents[1] / "data" / "project-0.1.0.tar.gz"
SPRINT = "2026-11-25--21-41-23-detached-inner-levels"
"""The project's second sprint: 3 seeds, inconclusive against the Matryoshka baseline."""
PROJECT_ID = "0dcd61d"


@pytest.fixture(autouse=True)
def quiet_wandb(monkeypatch, tmp_path):
    """wandb's own folders in tmp_path, and nothing printed or sent."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def old_project(tmp_path) -> Path:
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "oldproj"


def offline(**kw) -> TrackingSettings:
    return TrackingSettings(wandb=WandbSettings(project="autosae-tests", mode="offline", **kw))


def test_a_recorded_sprint_is_one_run_per_seed_and_one_for_the_sprint(old_project):
    lines = []
    assert log_sprint(offline(), old_project, PROJECT_ID, SPRINT, lines.append)
    assert lines == [f"4 runs logged to {old_project / '.autosae' / 'wandb'} (offline)"]
    folder = old_project / "sprints" / SPRINT
    results = json.loads((folder / "results.json").read_text())
    curves = json.loads((folder / "curves.json").read_text())
    runs = offline_runs(old_project / ".autosae" / "wandb")
    assert sorted(runs) == [SPRINT] + [f"{SPRINT}/seed {n}" for n in (0, 1, 2)]
    assert {r.group for r in runs.values()} == {SPRINT} and {r.project for r in runs.values()} == {"autosae-tests"}
    sprint = runs[SPRINT]
    assert sprint.job_type == "sprint" and sprint.id == run_id(PROJECT_ID, SPRINT, "sprint")
    for seed in results["per_seed"]:
        run = runs[f"{SPRINT}/seed {seed['seed']}"]
        assert run.job_type == "seed" and run.config["seed"] == seed["seed"]
        assert run.config["sprint_run"] == sprint.id  # the link from the seed to its sprint
        assert run.config["constraints"] == results["constraints"] and run.config["variant_config"]["detach_inner"]
        # the history is the recorded curves, point for point, the variant's own metrics included
        recorded = curves[str(seed["seed"])]
        assert len(run.history) == len(recorded["samples"]) == 13
        assert [h["samples"] for h in run.history] == recorded["samples"]
        assert [h["loss"] for h in run.history] == recorded["loss"]
        assert [h["l0"] for h in run.history] == recorded["l0"]
        assert [h["dead"] for h in run.history] == recorded["dead"]
        assert [h["variant/mse"] for h in run.history] == recorded["variant"]["mse"]
        assert run.history == history(recorded)
        for metric in ("f1", "mcc", "precision", "recall", "l0", "dead_latents", "explained_variance"):
            assert run.summary[metric] == seed[metric], metric
        assert "probe_sketch" not in run.summary  # lists are not metrics
        # what the variant's process said of itself is labelled as its word, in an old record too
        assert "architecture" not in run.summary and "parameters" not in run.summary
        assert run.summary["reported_by_variant/architecture"] == seed["architecture"]
        assert run.summary["reported_by_variant/peak_rss_mb"] == seed["worker_memory"]["peak_rss_mb"]
        (code,) = run.artifacts
        assert code["type"] == "code" and code["files"] == {"variant.py": (folder / "variant.py").stat().st_size}
    # the sprint run: its verdict, scores, the best so far, the report, and links to the seeds
    row = [json.loads(line) for line in (old_project / "reports" / "ledger.jsonl").read_text().splitlines()][-1]
    verdict = json.loads((folder / "verdict.json").read_text())
    assert sprint.summary["verdict"] == "inconclusive" and sprint.summary["p_value"] == row["p_value"]
    assert sprint.summary["f1"] == row["f1"]["mean"] and sprint.summary["f1_std"] == row["f1"]["std"]
    assert sprint.summary["mcc"] == row["mcc"]["mean"] and sprint.summary["delta_parent"] == row["delta_parent"]
    assert sprint.summary["new_best"] is False
    # no sprint of this project is a new best: the best so far is the Matryoshka baseline
    assert sprint.summary["best_so_far"] == "baseline:matryoshka"
    assert sprint.summary["best_f1_so_far"] == verdict["baselines"]["matryoshka"]["f1"]["mean"]
    assert sprint.summary["best_mcc_so_far"] == verdict["baselines"]["matryoshka"]["mcc"]["mean"]
    (report,) = sprint.artifacts
    assert report["type"] == "report" and report["files"]["report.pdf"] == (folder / "report.pdf").stat().st_size
    assert sprint.config["seed_runs"] == [
        {"seed": n, "id": runs[f"{SPRINT}/seed {n}"].id} for n in (0, 1, 2)
    ]  # offline: no URLs
    assert sprint.config["constraints"] == results["constraints"] and sprint.config["parent"] == "baseline:matryoshka"
    # wandb's files stayed in the project's private folder (staging and cache included)
    assert not (old_project / "wandb").exists() and (old_project / ".autosae" / "wandb" / "data").is_dir()


def test_the_best_so_far_is_the_ledgers_new_best(old_project):
    """A ledger whose first sprint is a new best: the second sprint's run names it as the best."""
    ledger = old_project / "reports" / "ledger.jsonl"
    rows = [json.loads(line) for line in ledger.read_text().splitlines()]
    rows[0]["new_best"] = True
    ledger.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from autosae.tracking.runs import sprint_runs

    summary = sprint_runs(old_project, PROJECT_ID, SPRINT)["sprint"]["summary"]
    assert summary["best_so_far"] == rows[0]["id"] and summary["best_f1_so_far"] == rows[0]["f1"]["mean"]


def test_off_nothing_is_written_and_without_wandb_one_line(old_project, monkeypatch):
    lines = []
    assert not log_sprint(TrackingSettings(), old_project, PROJECT_ID, SPRINT, lines.append)
    assert lines == [] and not (old_project / ".autosae" / "wandb").exists()
    assert not (old_project / ".autosae" / "tracking").exists()
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find(name, *a))
    assert not log_sprint(offline(), old_project, PROJECT_ID, SPRINT, lines.append)
    assert lines == ["tracking is off: wandb is not installed (pip install 'autosae[wandb]')"]
    assert not (old_project / ".autosae" / "wandb").exists()


def test_a_broken_or_slow_wandb_is_one_status_line(old_project):
    lines = []
    (old_project / "not-a-folder").write_text("")
    assert not log_sprint(offline(dir="not-a-folder/wandb"), old_project, PROJECT_ID, SPRINT, lines.append)
    (line,) = lines
    assert line.startswith("not logged to W&B: ") and line.endswith("(see .autosae/wandb.log)"), line
    assert "Traceback" in (old_project / ".autosae" / "wandb.log").read_text()  # the details are kept there
    lines.clear()
    assert not log_sprint(offline(timeout_s=0.05), old_project, PROJECT_ID, SPRINT, lines.append)
    assert lines == ["not logged to W&B: wandb took more than 0.05 s and was stopped (see .autosae/wandb.log)"]
    lines.clear()
    assert not log_sprint(offline(), old_project, PROJECT_ID, "2026-01-01--00-00-00-never-ran", lines.append)
    assert lines[0].startswith("not logged to W&B: sprint 2026-01-01--00-00-00-never-ran is not recorded")


def test_task_md_tracking_settings_are_checked():
    task = parse_task("---\ntracking:\n  wandb: {project: sae-research, entity: me, mode: offline}\n---\n")
    assert task.config.tracking.wandb.model_dump() == {
        "project": "sae-research",
        "entity": "me",
        "mode": "offline",
        "dir": None,
        "timeout_s": 300,
    }
    assert parse_task("---\nprofile: tiny\n---\n").config.tracking.wandb is None  # off by default
    for front, error in (
        ("tracking:\n  wandb: {project: a/b}", "TASK.md line 3: tracking.wandb.project: expected a W&B name"),
        ("tracking:\n  wandb: {project: x, mode: cloud}", "tracking.wandb.mode: expected 'online' or 'offline'"),
        ("tracking:\n  wandb: {entity: me}", "TASK.md line 3: tracking.wandb.project: required"),
        ("tracking:\n  mlflow: {}", "tracking.mlflow: unknown field (known: wandb)"),
        ("tracking:\n  wandb: {project: x, api_key: abc}", "tracking.wandb.api_key: unknown field"),
    ):
        with pytest.raises(AutosaeError) as exc:
            parse_task(f"---\n{front}\n---\n")
        assert error in str(exc.value), str(exc.value)


def test_the_agent_never_gets_the_wandb_key(monkeypatch):
    from autosae.agents.sandbox import scrubbed_env
    from autosae.harness.variant_process import variant_env
    from autosae.redaction import redact

    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    assert "WANDB_API_KEY" not in scrubbed_env() and "WANDB_API_KEY" not in variant_env(1)
    assert os.environ["WANDB_API_KEY"] not in redact(f"key={os.environ['WANDB_API_KEY']}")
