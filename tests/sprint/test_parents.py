"""Every reference variant is a valid parent, compared with its own numbers; an unknown
`baseline:` is refused at propose time with the valid names (the bug the issue found: a
proposal with parent baseline:lista_matryoshka had its verdict computed against the Matryoshka
baseline's numbers, through a silent fallback)."""

from __future__ import annotations

import json

from autosae.parents import baseline_parents
from tests.sprint.conftest import autosae, ledger, one_line_error, write_script


def test_a_reference_variant_parent_is_compared_with_its_own_numbers_and_an_unknown_one_is_refused(project):
    write_script(project, [{"title": "from nowhere", "idea": "x", "parent": "baseline:nope", "variant": "matryoshka"}])
    proc = autosae("sprint", cwd=project)
    assert proc.returncode != 0
    error = one_line_error(proc)
    assert "'baseline:nope' is not a reference variant" in error
    assert all(name in error for name in baseline_parents()) and "baseline:lista_matryoshka" in error
    assert not ledger(project)  # nothing recorded

    write_script(
        project,
        [
            {
                "title": "LISTA-Matryoshka again",
                "idea": "the LISTA-Matryoshka reference itself, against itself",
                "parent": "baseline:lista_matryoshka",
                "variant": "lista_matryoshka",
            }
        ],
    )
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [row] = ledger(project)
    verdict = json.loads((project / "sprints" / row["id"] / "verdict.json").read_text())
    assert verdict["parent"]["id"] == "baseline:lista_matryoshka"
    # the same code as its parent: flagged as a no-op, and compared with LISTA-Matryoshka's own
    # numbers (the replayed runs' eval samples may differ: see the README's Tests section)
    assert verdict["noop"] and verdict["verdict"] == "no change", verdict
    assert verdict["parent"]["f1"] == verdict["baselines"]["lista_matryoshka"]["f1"]
    assert verdict["parent"]["f1"]["mean"] != verdict["baselines"]["matryoshka"]["f1"]["mean"]
