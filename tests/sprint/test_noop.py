"""No-op detection on real sprints: an added branch that never runs leaves the trained SAE
exactly as its parent's (same probe sketch) and is flagged; a real change is not."""

from __future__ import annotations

import json

from autosae.records import reported_by_variant
from autosae.sprint.coverage import changed_lines, executable_lines, never_ran, spans
from autosae.sprint.verdict import Reference, compute_verdict, same_sketch
from autosae.variants import reference_variants
from tests.sprint.conftest import autosae, ledger, write_script

MATRYOSHKA = reference_variants()["matryoshka"].read_text()
DEAD_BRANCH = MATRYOSHKA.replace(
    "    return MatryoshkaBatchTopKSAE(",
    "    if spec.width < 0:  # never true\n        levels = levels[::-1]\n    return MatryoshkaBatchTopKSAE(",
)
OTHER_LEVELS = MATRYOSHKA.replace("spec.width // 32, ", "spec.width // 16, ")


def test_a_dead_branch_is_a_no_op_and_a_real_change_is_not(project):
    assert DEAD_BRANCH != MATRYOSHKA and OTHER_LEVELS != MATRYOSHKA
    write_script(
        project,
        [
            {"title": "a branch that never runs", "idea": "reverse the levels when width < 0", "variant": DEAD_BRANCH},
            {"title": "coarser first level", "idea": "first Matryoshka level at 1/16", "variant": OTHER_LEVELS},
        ],
    )
    for _ in range(2):
        proc = autosae("sprint", cwd=project)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    dead, real = ledger(project)
    assert dead["noop"] and dead["verdict"] == "no change"
    verdict = json.loads((project / "sprints" / dead["id"] / "verdict.json").read_text())
    assert "probe batch" in verdict["noop_reason"]
    body = DEAD_BRANCH.splitlines().index("        levels = levels[::-1]") + 1
    assert verdict["coverage"] == {"changed": 2, "never_ran": [body]}  # the `if` ran, its body did not
    assert "No-op suspected" in (project / "sprints" / dead["id"] / "report.md").read_text()
    assert not real["noop"]
    verdict = json.loads((project / "sprints" / real["id"] / "verdict.json").read_text())
    assert verdict["coverage"] == {"changed": 1, "never_ran": []}
    results = json.loads((project / "sprints" / real["id"] / "results.json").read_text())
    assert all(
        len(r["probe_sketch"]) == 64 * 8 and reported_by_variant(r)["executed_lines"] for r in results["per_seed"]
    )


def test_changed_and_executable_lines():
    old = "def f(x):\n    return x\n"
    new = "def f(x):\n    if x > 10**9:\n        # never\n        return -x\n    return x\n"
    assert changed_lines(old, new) == {2, 3, 4} and executable_lines(new) == {1, 2, 4, 5}
    assert never_ran(old, new, [[1, 2, 5], None]) == {"changed": 2, "never_ran": [4]}
    assert never_ran(None, new, [[1]]) is None and never_ran(old, new, [None]) is None
    # a report that claimed lines the file does not have is forged: no line counts as run
    assert never_ran(old, new, [[1, 2, 4, 5]], forged=True) == {"changed": 2, "never_ran": [2, 4], "forged": True}
    assert spans([3, 4, 5, 9]) == "3-5, 9" and executable_lines("def (") == set()


def test_a_change_that_never_ran_is_a_no_op_and_sketches_compare_within_float_noise():
    parent = Reference("p", {"f1": [0.76, 0.77, 0.75], "mcc": [0.7, 0.7, 0.7]}, "aaa")
    results = {
        "status": "ok",
        "variant_sha256": "bbb",
        "per_seed": [{"seed": i, "status": "ok", "f1": f, "mcc": 0.71} for i, f in enumerate([0.8, 0.81, 0.82])],
    }
    flagged = compute_verdict(results, "s", parent, None, {}, "f1", 0.05, {"changed": 2, "never_ran": [7, 8]})
    assert flagged["noop"] and flagged["verdict"] == "no change" and "lines 7-8" in flagged["noop_reason"]
    partial = compute_verdict(results, "s", parent, None, {}, "f1", 0.05, {"changed": 3, "never_ran": [8]})
    assert not partial["noop"] and partial["verdict"] == "improved"
    assert same_sketch([1.0, -2.0], [1.00001, -2.0]) and not same_sketch([1.0, -2.0], [1.01, -2.0])
    assert not same_sketch([], []) and not same_sketch([1.0], [1.0, 2.0])
