"""A real sprint with `seeds: 1` in TASK.md (real git, the real harness on a shortened tiny):
its std and noise floor cannot be measured, and every reader says "not measurable (n = 1)",
never 0.0000: the verdict, report.md, report.pdf, the leaderboard, `autosae status` and
`show`, and the propose and conclude prompts rendered from its real ledger row and results.
Its variant logs metrics of its own, one named like the harness's loss and one with odd
characters: they are kept apart in curves.json, cleaned, listed in report.md and plotted."""

from __future__ import annotations

import json

import git
import pytest

from tests.report import pdftools
from tests.sprint.conftest import autosae, ledger, write_script, write_task

NOT_MEASURABLE = "not measurable (n = 1)"
LOGGING_VARIANT = '''"""LISTA-Matryoshka that logs metrics of its own."""
import torch

from autosae.sae import LISTA, MatryoshkaBatchTopKSAE


class Logged(MatryoshkaBatchTopKSAE):
    def training_loss(self, x, info):
        out = super().training_loss(x, info)
        out.metrics["loss"] = torch.tensor(12345.0)  # the harness's name: must not replace its loss
        out.metrics["share|<b>*"] = torch.tensor(info.step / info.total_steps)  # odd characters
        return out


def build(spec):
    levels = [spec.width // 32, spec.width // 8, spec.width // 2, spec.width]
    return Logged(spec.d_in, spec.width, spec.k, levels=levels, encoder=LISTA(iterations=1, eta=0.3),
                  dead_steps=min(1000, spec.total_steps // 4))
'''


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-seed")
    root = tmp / "research"
    assert autosae("init", str(root), cwd=tmp).returncode == 0
    write_task(root)
    task = (root / "TASK.md").read_text().replace("seeds: 2\n", "seeds: 1\n", 1)
    (root / "TASK.md").write_text(task.replace("training_samples: 204800", "training_samples: 102400", 1))  # quick
    write_script(
        root,
        [
            {
                "title": "logged LISTA",
                "idea": "A one-step LISTA encoder. It logs its own metrics.",
                "variant": LOGGING_VARIANT,
            }
        ],
    )
    repo = git.Repo(root)
    repo.git.add("TASK.md", "script.yaml")
    repo.git.commit(
        "-q",
        "-m",
        "one seed",
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    proc = autosae("sprint", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = ledger(root)
    return {"root": root, "row": row, "folder": root / "sprints" / row["id"]}


def test_the_verdict_and_ledger_record_no_noise_floor(one_seed):
    row, folder = one_seed["row"], one_seed["folder"]
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["noise_floor"] is None and verdict["noise_floor_note"] == NOT_MEASURABLE
    assert verdict["verdict"] == "inconclusive" and NOT_MEASURABLE in verdict["reason"]
    assert row["noise_floor"] is None and row["noise_floor_note"] == NOT_MEASURABLE and row["f1"]["n"] == 1
    for metric in ("precision", "recall", "dead_latents"):  # the propose table's numbers
        assert row[metric]["n"] == 1 and row[metric]["mean"] is not None, metric


def test_report_md_and_pdf_say_not_measurable(one_seed):
    folder = one_seed["folder"]
    md = (folder / "report.md").read_text()
    results = json.loads((folder / "results.json").read_text())
    assert f"| F1 | {results['summary']['f1']['mean']:.4f} ± {NOT_MEASURABLE} |" in md
    assert f"sprint's noise floor (the larger seed std of it and its parent) {NOT_MEASURABLE};" in md
    assert f"(the larger seed std of the baselines) F1 {NOT_MEASURABLE}, MCC {NOT_MEASURABLE}." in md
    assert "0.0000" not in md.split("## The change against the parent")[0]
    text = pdftools.text(folder / "report.pdf")
    assert NOT_MEASURABLE in text and "± 0.0000" not in text and "0.0000 /" not in text
    assert "noise floor, this sprint" in text


def test_the_variants_own_metrics_are_kept_apart_listed_and_plotted(one_seed):
    folder = one_seed["folder"]
    curves = json.loads((folder / "curves.json").read_text())["0"]
    assert set(curves["variant"]) >= {"loss", "share__b__", "mse"}  # cleaned names, the library's own mse too
    assert all(v == 12345.0 for v in curves["variant"]["loss"])
    assert 12345.0 not in curves["loss"] and curves["loss"][0] > 0  # the harness's loss is its own
    md = (folder / "report.md").read_text()
    section = md.split("## The variant's own logged metrics")[1].split("## Comparison")[0]
    assert "| `share__b__` | 0 → 0.99" in section and "| `loss` | 1.234e+04 → 1.234e+04 |" in section
    assert "<b>" not in section and "share|" not in section
    text = pdftools.text(folder / "report.pdf")
    assert "The variant's own logged metrics" in text and "share__b__" in text
    assert pdftools.pages(folder / "report.pdf") == 6


def test_leaderboard_status_and_show_say_not_measurable(one_seed):
    root, row = one_seed["root"], one_seed["row"]
    board = (root / "reports" / "leaderboard.md").read_text()
    assert f"± {NOT_MEASURABLE}" in board and f"baselines): F1 {NOT_MEASURABLE}, MCC {NOT_MEASURABLE};" in board
    assert "(n = 1)" in pdftools.text(root / "reports" / "progress.pdf")
    status = autosae("status", cwd=root)
    assert status.returncode == 0 and f"latest: {row['id']}: inconclusive" in status.stdout
    assert f"noise floor {NOT_MEASURABLE}" in status.stdout
    show = autosae("show", row["id"], cwd=root)
    assert (
        f"noise_floor: {NOT_MEASURABLE}" in show.stdout
        and f"f1: {row['f1']['mean']:.4f} ± {NOT_MEASURABLE}" in show.stdout
    )


def test_the_prompts_from_the_real_records(one_seed):
    """The propose table from the real ledger row; the conclude prompt from the real results,
    verdict and curves, with the parent's full metrics found as the engine finds them."""
    from autosae.agents import AgentContext
    from autosae.agents.prompts import conclude_prompt, propose_prompt
    from autosae.config import load_task
    from autosae.report.record import compact_curves
    from autosae.sprint.engine import Engine, proposal_of
    from autosae.sprint.ledger import past_sprint, read_ledger
    from autosae.sprint.project import Project
    from autosae.sprint.state import StateStore

    root, row, folder = one_seed["root"], one_seed["row"], one_seed["folder"]
    rows = read_ledger(root / "reports" / "ledger.jsonl")
    ctx = AgentContext(
        task_body="",
        profile="tiny",
        objective="f1",
        sprint_number=1,
        width=128,
        k=5,
        past=[past_sprint(r) for r in rows],
        baselines={"matryoshka": {"f1": 0.7, "mcc": 0.7}},
    )
    line = next(x for x in propose_prompt(ctx, None).splitlines() if x.startswith(f"- {row['id']} | logged LISTA"))
    assert f"F1 {row['f1']['mean']:.4f} ± {NOT_MEASURABLE}, MCC" in line and "p - |" in line
    assert f"precision {row['precision']['mean']:.4f}, recall {row['recall']['mean']:.4f}" in line
    assert "| parent baseline:matryoshka | A one-step LISTA encoder." in line and "its own metrics" not in line

    engine = Engine(Project(root), status=lambda _: None)
    cfg = load_task(root / "TASK.md").config
    baselines = engine.baselines(cfg, engine.profile_for(cfg, "tiny"), "cpu")  # cached by the sprint
    assert engine.parent_metrics(row["id"], rows, baselines)["f1"]["mean"] == row["f1"]["mean"]  # a sprint parent
    parent = engine.parent_metrics("baseline:matryoshka", rows, baselines)
    assert parent == baselines["matryoshka"]["summary"] and parent["precision"]["n"] == 1
    state = StateStore(Project(root).state_dir).load(row["id"])
    ctx.sprint_id, ctx.parent_metrics = row["id"], parent
    ctx.curves = compact_curves(json.loads((folder / "curves.json").read_text()))
    _, prompt = conclude_prompt(
        proposal_of(state),
        json.loads((folder / "results.json").read_text()),
        json.loads((folder / "verdict.json").read_text()),
        ctx,
    )
    assert (
        f"precision | {row['precision']['mean']:.4f} ± {NOT_MEASURABLE} | "
        f"{parent['precision']['mean']:.4f} ± {NOT_MEASURABLE}" in prompt
    )
    assert f"noise floor (the larger seed std of this sprint and its parent): {NOT_MEASURABLE}." in prompt
    assert "  variant.loss: 1.234e+04" in prompt and "  variant.share__b__: 0" in prompt and "seed 0:" in prompt
    assert '"std": 0.0' not in prompt and f'"std": "{NOT_MEASURABLE}"' in prompt


def test_without_tracking_nothing_of_wandb_is_written(one_seed):
    private = one_seed["root"] / ".autosae"
    assert not any((private / name).exists() for name in ("wandb", "wandb.log", "tracking"))
