"""Reports rendered from real sprint records: a scored sprint and a failed one, made by the
real CLI on a shortened tiny benchmark, read back with pdftotext / pdftoppm; the leaderboard
and progress.pdf after each; Slack notices to a local webhook; `autosae report`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import git
import pytest

from autosae.tracking.runs import history
from tests.report import pdftools
from tests.sprint.conftest import COMMIT_ENV, SPRINT_ID, autosae, ledger, write_script, write_task
from tests.tracking.wandb_files import offline_runs

CRASH = "raise RuntimeError('this variant cannot even be imported')\n"
QUIET_WANDB = {"WANDB_SILENT": "true", "WANDB_MODE": "offline"}


class Webhook:
    """A local stand-in for a Slack incoming webhook: records each JSON payload."""

    def __init__(self, status: int = 200):
        self.payloads: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.payloads.append(json.loads(body))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def dead_url() -> str:
    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Two sprints: a LISTA-Matryoshka that scores, then a variant that crashes. The first
    posts to a dead webhook (set in TASK.md); the second runs under `autosae loop` with a live
    one (set in the environment). Snapshots of the leaderboard are taken after each."""
    tmp = tmp_path_factory.mktemp("night")
    root = tmp / "research"
    assert autosae("init", str(root), cwd=tmp).returncode == 0
    write_task(root)
    tracking = "tracking:\n  wandb: {project: autosae-tests, mode: offline}\n"  # W&B, offline: no network
    task = (root / "TASK.md").read_text()
    task = task.replace("loop:\n", f"notify:\n  slack_webhook: {dead_url()}\n{tracking}loop:\n", 1)
    (root / "TASK.md").write_text(task)
    lista = {
        "title": "LISTA Matryoshka",
        "idea": "a one-step LISTA encoder on Matryoshka",
        "hypothesis": "explaining away sharpens the latents",
        "variant": "lista_matryoshka",
        "conclusion": "The LISTA step ran (its eta is logged). Next: try 2 steps.",
    }
    write_script(root, [lista, {"title": "a broken variant", "idea": "import-time crash", "variant": CRASH}])
    repo = git.Repo(root)
    repo.git.add("TASK.md", "script.yaml")
    repo.git.commit(
        "-q",
        "-m",
        "task",
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    first = autosae("sprint", cwd=root, env=QUIET_WANDB | {"WANDB_CONFIG_DIR": str(tmp / "wandb-config")})
    assert first.returncode == 0, first.stdout + first.stderr
    after_one = {name: (root / "reports" / name).read_bytes() for name in ("leaderboard.md", "progress.pdf")}
    first_id = SPRINT_ID.search(first.stdout).group(1)  # the second is built on the first (a lineage of two)
    crash = {"title": "a broken variant", "idea": "import-time crash", "variant": CRASH, "parent": first_id}
    write_script(root, [lista, crash])
    repo.git.commit("-q", "-am", "the second sprint's parent", env=COMMIT_ENV)
    hook = Webhook()
    try:
        second = autosae("loop", "--max-sprints", "1", cwd=root, env=QUIET_WANDB | {"AUTOSAE_SLACK_WEBHOOK": hook.url})
    finally:
        hook.close()
    assert second.returncode == 0, second.stdout + second.stderr
    ids = [SPRINT_ID.search(first.stdout).group(1), ledger(root)[-1]["id"]]
    return {
        "root": root,
        "ids": ids,
        "first": first,
        "second": second,
        "after_one": after_one,
        "payloads": hook.payloads,
        "png": tmp / "png",
    }


def test_a_scored_sprint_report_holds_its_numbers(night):
    folder = night["root"] / "sprints" / night["ids"][0]
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "ok"
    # the suite's runs are replayed recordings (tests/replay): the report says so, never hides it
    assert results["replayed"] is True and "**Replayed, not trained:**" in (folder / "report.md").read_text()
    text = pdftools.text(folder / "report.pdf")
    for metric in ("f1", "mcc", "precision", "recall", "explained_variance"):
        assert f"{results['summary'][metric]['mean']:.4f}" in text, metric
    for seed in results["per_seed"]:
        assert f"{seed['f1']:.4f}" in text and f"{seed['mcc']:.4f}" in text
    for words in (
        "Verdict:",
        "LISTA Matryoshka",
        "Training curves, every seed",
        "training samples",
        "probe ceiling",
        "baseline",
        "next: try 2 steps",
        "explaining away sharpens the latents",
    ):
        assert words.lower() in text.lower(), words
    assert pdftools.pages(folder / "report.pdf") == 6  # title, scores, curves, the variant's own, metrics, conclusions
    assert "The variant's own logged metrics" in text and "mse" in text  # LISTA-Matryoshka logs its mse
    md = (folder / "report.md").read_text()
    assert f"| F1 | {results['summary']['f1']['mean']:.4f} ± {results['summary']['f1']['std']:.4f} |" in md
    assert "baseline matryoshka (the parent)" in md and "probe ceiling (not measured for `tiny`)" in md
    # the diff against the parent (the Matryoshka baseline's variant.py), with line counts
    assert "## The change against the parent" in md and "| `variant.py` | changed |" in md and "```diff" in md
    assert "The LISTA step ran" in md and "## Cost and time" in md
    record = json.loads((folder / "sprint.json").read_text())
    assert record["diff"]["added"] > 0 and record["hypothesis"] == "explaining away sharpens the latents"
    curves = json.loads((folder / "curves.json").read_text())
    assert sorted(curves) == ["0", "1"] and curves["0"]["samples"][-1] == results["constraints"]["training_samples"]
    assert len(curves["1"]["variant"]["mse"]) == len(curves["1"]["samples"]) and "| `mse` | " in md


def test_every_page_renders_and_is_not_blank(night):
    root = night["root"]
    pdfs = [root / "sprints" / sid / "report.pdf" for sid in night["ids"]] + [root / "reports" / "progress.pdf"]
    for i, pdf in enumerate(pdfs):
        pngs = pdftools.render(pdf, night["png"] / str(i))
        assert len(pngs) == pdftools.pages(pdf) >= 2
        for png in pngs:
            assert pdftools.ink(png) > 0.003, f"{png} looks blank"


def test_a_failed_sprint_still_gets_both_reports(night):
    folder = night["root"] / "sprints" / night["ids"][1]
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "failed" and "this variant cannot even be imported" in results["log_tail"]
    md = (folder / "report.md").read_text()
    assert "**Verdict: failed**" in md and "## Failure" in md and "cannot even be imported" in md
    assert "| this sprint | — | — | — |" in md  # missing is shown as missing, never as a zero
    text = pdftools.text(folder / "report.pdf")
    assert "Verdict: failed" in text and "cannot even be imported" in text and "No training curves" in text
    assert "The variant logged no metrics of its own" in text and "The variant logged no metrics" in md
    assert pdftools.pages(folder / "report.pdf") == 5  # title, failure, curves, the variant's (none), conclusions


def test_the_leaderboard_and_progress_update_after_the_second_sprint(night):
    root, (one, two) = night["root"], night["ids"]
    before = night["after_one"]["leaderboard.md"].decode()
    assert one in before and two not in before
    after = (root / "reports" / "leaderboard.md").read_text()
    assert one in after and two in after and "2 sprints: " in after and "1 failed" in after
    assert (root / "reports" / "progress.pdf").read_bytes() != night["after_one"]["progress.pdf"]
    text = pdftools.text(root / "reports" / "progress.pdf")
    assert "F1 over the sprints" in text and "MCC over the sprints" in text
    assert "a broken variant" in text and "failed" in text and "LISTA Matryoshka" in text
    assert "reports/progress.pdf" in git.Repo(root).git.show("--name-only", "--format=", "HEAD")


def test_slack_notices_and_a_dead_webhook(night):
    first, second = night["first"], night["second"]
    assert "slack notice not sent" in first.stdout  # the dead webhook in TASK.md: logged, survived
    sprint, stop = night["payloads"]
    assert f"sprint `{night['ids'][1]}`: *failed*" in sprint["text"]
    assert "cannot even be imported" in sprint["text"]
    assert f"sprints/{night['ids'][1]}/report.md" in sprint["text"]
    assert "the autosae loop stopped after 1 sprint: --max-sprints 1 reached" in stop["text"]
    assert "slack notice not sent" not in second.stdout


def test_report_re_renders_recorded_sprints(night):
    root, (one, two) = night["root"], night["ids"]
    repo = git.Repo(root)
    head = repo.head.commit.hexsha
    md = root / "sprints" / one / "report.md"
    kept = md.read_text()
    md.write_text("stale\n")
    (root / "sprints" / two / "report.pdf").unlink()
    repo.git.commit(
        "-q",
        "-am",
        "a stale report",
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    proc = autosae("report", "--all", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert md.read_text() == kept and (root / "sprints" / two / "report.pdf").is_file()
    assert "sprints: 2" in proc.stdout and not repo.is_dirty(untracked_files=True)
    assert repo.head.commit.summary.startswith("report: re-rendered") and repo.head.commit.hexsha != head
    assert autosae("report", one, cwd=root).returncode == 0
    assert not repo.is_dirty(untracked_files=True)
    missing = autosae("report", "no-such-sprint", cwd=root)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no sprint matches 'no-such-sprint'")
    assert "Traceback" not in missing.stderr


def test_a_webhook_that_answers_an_error_is_logged_not_raised():
    from autosae import notify

    hook, lines = Webhook(status=500), []
    try:
        assert notify.post(hook.url, "hello", lines.append) is False
    finally:
        hook.close()
    assert hook.payloads == [{"text": "hello"}] and lines == ["slack notice not sent: the webhook answered HTTP 500"]
    assert notify.post(dead_url(), "hello", lines.append) is False and len(lines) == 2
    assert notify.post(None, "hello", lines.append) is False and len(lines) == 2  # no webhook set: silent


def test_each_recorded_sprint_is_logged_to_wandb(night):
    """TASK.md's tracking.wandb (offline) through the real CLI: after each sprint is recorded,
    the runs wandb wrote hold its seeds' curves and metrics, its verdict and its report."""
    root, (one, two) = night["root"], night["ids"]
    where = root / ".autosae" / "wandb"
    assert f"{one} | wandb | 3 runs logged to {where} (offline)" in night["first"].stdout
    assert f"{two} | wandb | 2 runs logged to {where} (offline)" in night["second"].stdout
    runs = offline_runs(where)
    assert sorted(runs) == sorted([one, f"{one}/seed 0", f"{one}/seed 1", two, f"{two}/seed 0"])
    folder = root / "sprints" / one
    results = json.loads((folder / "results.json").read_text())
    curves = json.loads((folder / "curves.json").read_text())
    for seed in results["per_seed"]:
        run = runs[f"{one}/seed {seed['seed']}"]
        assert run.group == one and run.job_type == "seed" and run.config["sprint_run"] == runs[one].id
        assert run.history == history(curves[str(seed["seed"])]) and len(run.history) > 1
        assert "variant/mse" in run.history[-1]  # the variant's own metric, as a curve of its own
        assert run.summary["f1"] == seed["f1"] and run.summary["mcc"] == seed["mcc"]
    row = ledger(root)[0]
    assert runs[one].summary["verdict"] == row["verdict"] and runs[one].summary["f1"] == row["f1"]["mean"]
    assert "report.pdf" in runs[one].artifacts[0]["files"]
    # the failed sprint: its run says so, and so does the run of the seed that failed
    assert runs[two].summary["verdict"] == "failed" and runs[two].group == two
    failed = runs[f"{two}/seed 0"]
    assert failed.summary["status"] == "failed" and "cannot even be imported" in failed.summary["reason"]
    assert failed.history == [] and "log_tail" not in failed.summary
    assert "report.pdf" in runs[two].artifacts[0]["files"]


def test_the_morning_digest_shows_the_night_its_tree_and_the_best(night):
    """reports/digest.md and lineage.png after the night's two sprints (the second built on
    the first, the best), committed with the leaderboard; a page of progress.pdf holds the
    tree; `autosae report --digest` shows the lines the notebook gained tonight."""
    root, (one, two) = night["root"], night["ids"]
    rows = {r["id"]: r for r in ledger(root)}
    md = (root / "reports" / "digest.md").read_text()
    assert "# The morning digest" in md and "2 of 2 sprints finished since " in md
    assert "![The night's sprints as a tree" in md and "(lineage.png)" in md
    for sid in (one, two):
        assert f"[{sid}](../sprints/{sid}/report.md)" in md
    assert "| a broken variant | " in md and " | failed | — |" in md
    assert rows[two]["parent"] == one  # a tree of depth two: the baseline, LISTA, the crash built on it
    assert f"| {one} | failed | " in md  # its parent column
    if rows[one].get("new_best"):  # on this short training LISTA may or may not beat Matryoshka significantly
        assert f"[#1 LISTA Matryoshka](../sprints/{one}/report.md)" in md and "No ablation recorded." in md
        assert f"F1 {rows[one]['f1']['mean']:.4f} ± {rows[one]['f1']['std']:.4f}" in md and "The LISTA step ran" in md
    else:
        assert "No new best yet: the baselines lead." in md
    # `autosae init` wrote the notebook's header and sections: not what the night learned
    assert "Nothing was added to the notebook tonight." in md
    # rendered by the second sprint (before its loop ended) or again by `autosae report --digest` (after)
    assert "Why the loop stopped: not recorded." in md or "The loop stopped: --max-sprints 1 reached (at " in md
    png = root / "reports" / "lineage.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdftools.ink(png) > 0.003
    for path in ("reports/digest.md", "reports/lineage.png"):  # committed by each sprint's merge
        subjects = git.Repo(root).git.log("--format=%s", "--", path).splitlines()
        assert [s for s in subjects if s.startswith("sprint ")], path
    text = pdftools.text(root / "reports" / "progress.pdf")
    assert "The night's lineage: 2 of 2 sprints" in text and "baseline:matryoshka" in text and "#2 a broken" in text
    # the notebook's lines of the night, after a researcher commits them
    repo = git.Repo(root)
    (root / "reports" / "notebook.md").write_text("# Notebook\n\n- LISTA helps | a lot\n")
    repo.git.add("reports/notebook.md")
    repo.git.commit("-q", "-m", "notebook", env=COMMIT_ENV)
    proc = autosae("report", "--digest", "--since", "2000-01-01T00:00:00Z", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = (root / "reports" / "digest.md").read_text()
    assert "\n- LISTA helps | a lot\n" in md and "Notebook" not in md.split("tonight (the last")[1]
    assert "sprints: 0" in proc.stdout
    assert "finished since 2000-01-01 00:00 UTC:" in md and not repo.is_dirty(untracked_files=True)
    bad = autosae("report", "--digest", "--since", "yesterday", cwd=root)
    assert bad.returncode == 1 and "not an ISO time" in bad.stderr
