"""Sprint reports and the leaderboard, from realistic result and verdict records."""

from __future__ import annotations

import json

from autosae.report import fmt_pm, leaderboard_rows, render_leaderboard, write_leaderboard, write_report

SPRINT = {"id": "2026-11-24--10-00-00-lista", "title": "one-step LISTA", "idea": "add a LISTA step",
          "hypothesis": "explaining away helps", "plan": "change the encoder", "parent": "baseline:matryoshka",
          "backend": "recipe", "profile": "tiny", "objective": "f1", "seeds": [0, 1, 2],
          "started": "2026-11-24T10:00:00Z", "finished": "2026-11-24T10:01:00Z", "cost_usd": 0.0,
          "branch": "sprint/2026-11-24--10-00-00-lista", "config": None}
BASELINES = {"batchtopk": {"f1": {"mean": 0.60, "std": 0.01}, "mcc": {"mean": 0.70, "std": 0.01}},
             "matryoshka": {"f1": {"mean": 0.76, "std": 0.008}, "mcc": {"mean": 0.73, "std": 0.01}}}


def results_ok():
    per_seed = [{"seed": s, "status": "ok", "f1": 0.78 + s / 100, "mcc": 0.74, "l0": 5.0, "dead_latents": 1,
                 "explained_variance": 0.8, "train_s": 5.0} for s in range(3)]
    return {"status": "ok", "reason": None, "counted": True, "profile": "tiny", "model_hash": "abc",
            "constraints": {"width": 128, "k": 5}, "variant_sha256": "f" * 64, "device": "cpu", "wall_s": 30.0,
            "per_seed": per_seed,
            "summary": {"f1": {"mean": 0.79, "std": 0.01, "n": 3}, "mcc": {"mean": 0.74, "std": 0.0, "n": 3},
                        "l0": {"mean": 5.0, "std": 0.0, "n": 3}}}


def verdict(**extra):
    return {"verdict": "improved", "objective": "f1", "alpha": 0.05, "delta_parent": 0.03, "p_value": 0.004,
            "noise_floor": 0.01, "noop": False, "noop_reason": None, "new_best": True, "delta_best": None,
            "best": None, "reason": "F1 +0.0300 vs baseline:matryoshka, p = 0.004 < 0.05",
            "parent": {"id": "baseline:matryoshka", "mean": 0.76, "std": 0.008, "values": [0.75, 0.76, 0.77]},
            "baselines": BASELINES, **extra}


def test_a_report_for_an_improvement(tmp_path):
    run = tmp_path / "run"
    for seed in range(3):
        (run / f"seed_{seed}").mkdir(parents=True)
        lines = [json.dumps({"step": i, "samples": i * 1024, "loss": 10.0 / (i + 1), "l0": 5.0, "dead": 0, "k": 6.0})
                 for i in range(5)]
        (run / f"seed_{seed}" / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    paths = write_report(tmp_path / "sprint", SPRINT, results_ok(), verdict(), "It works.", run)
    md = (tmp_path / "sprint" / "report.md").read_text()
    assert "**Verdict: improved** (new best)" in md
    assert "0.790 ± 0.010 vs parent 0.760 ± 0.008 (+0.030, p = 0.004, n = 3)" in md
    assert "## Conclusions (agent)\n\nIt works." in md and "baseline matryoshka" in md
    pdf = (tmp_path / "sprint" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 2
    assert len(paths) == 2


def test_a_report_for_a_failure(tmp_path):
    results = {"status": "failed", "reason": "seed 0: training loss became nan", "failure_kind": "nan",
               "log_tail": "Traceback...\nValueError: nan"}
    write_report(tmp_path, SPRINT, results, verdict(verdict="failed", reason="seed 0: nan"), "Failed.")
    md = (tmp_path / "report.md").read_text()
    assert "**Verdict: failed**" in md and "training loss became nan" in md and "ValueError: nan" in md
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")


def test_a_no_op_is_flagged(tmp_path):
    write_report(tmp_path, SPRINT, results_ok(), verdict(verdict="no change", noop=True, new_best=False,
                                                         noop_reason="variant.py is byte-for-byte the parent's"), "")
    assert "Warning: no-op" in (tmp_path / "report.md").read_text()


def row(i, f1, verdict="improved", **extra):
    return {"id": f"s{i}", "title": f"idea {i}", "parent": "baseline:matryoshka", "verdict": verdict,
            "f1": None if f1 is None else {"mean": f1, "std": 0.01, "n": 3},
            "mcc": None if f1 is None else {"mean": 0.7, "std": 0.01, "n": 3}, "cost_usd": 0.5,
            "profile": "tiny", **extra}


def test_the_leaderboard_ranks_best_first_with_baselines(tmp_path):
    ledger = [row(0, 0.70, "worse"), row(1, None, "failed"), row(2, 0.80, new_best=True)]
    assert [r["id"] for r in leaderboard_rows(ledger)] == ["s2", "s0", "s1"]
    md = render_leaderboard(ledger, BASELINES)
    ranked = md.split("## In order")[0]
    assert ranked.index("s2") < ranked.index("**matryoshka**") < ranked.index("s0") < ranked.index("s1")
    assert "[s2](../sprints/s2/report.md)" in md and "★" in md
    assert "3 sprints: 1 improved, 1 failed, 0 no-ops; agent cost $1.50" in md
    paths = write_leaderboard(tmp_path, ledger, BASELINES)
    assert (tmp_path / "progress.png").read_bytes().startswith(b"\x89PNG") and len(paths) == 2


def test_an_empty_leaderboard():
    assert "No sprints yet" in render_leaderboard([], None)
    assert fmt_pm(None) == "—" and fmt_pm({"mean": 0.5, "std": 0.01}) == "0.500 ± 0.010"
