"""The offline agent does real research: ten recipe sprints on the full tiny benchmark end
with a best variant that beat the Matryoshka baseline significantly (about 8 minutes)."""

from __future__ import annotations

import json

import pytest

from autosae.agents.recipe.agent import SEARCH
from autosae.agents.recipe.search import STUDY_FILE
from tests.sprint.conftest import autosae, ledger


@pytest.mark.slow
def test_ten_recipe_sprints_beat_matryoshka(tmp_path):
    root = tmp_path / "research"
    assert autosae("init", str(root), "--backend", "recipe", cwd=tmp_path).returncode == 0
    proc = autosae("loop", "--max-sprints", "10", cwd=root, timeout=3000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = ledger(root)
    assert len(rows) == 10
    if SEARCH == "tpe":  # the Optuna study lives in the project, beside the ledger it mirrors
        assert (root / ".autosae" / STUDY_FILE).stat().st_size > 0
    assert len({json.dumps(r["config"], sort_keys=True) for r in rows}) == 10
    bests = [r for r in rows if r["new_best"]]
    assert bests, "no sprint improved significantly on the Matryoshka baseline"
    best = bests[-1]
    verdict = json.loads((root / "sprints" / best["id"] / "verdict.json").read_text())
    matryoshka = verdict["baselines"]["matryoshka"]["f1"]["mean"]
    assert best["verdict"] == "improved" and best["f1"]["mean"] > matryoshka
    print(
        f"best: {best['id']} F1 {best['f1']['mean']:.4f} ± {best['f1']['std']:.4f} "
        f"vs matryoshka {matryoshka:.4f} (p = {best['p_value']:.3g})"
    )
