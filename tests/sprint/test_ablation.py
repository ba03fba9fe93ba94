"""Ablations of every new best: each declared part trained removed, judged, reported, noted."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from autosae.agents.claude_tools import implemented
from autosae.agents.sandbox import ToolError
from autosae.harness.parts import MAX_PARTS, read_parts
from tests.report.pdftools import text
from tests.sprint.conftest import SPRINT_ID, autosae, commit, ledger, write_script

# Matryoshka (nested levels) over its parent BatchTopK; the nesting can be switched off by a
# knob (spec.options), the fine levels by a file of its own.
VARIANT = '''"""Matryoshka with switchable parts."""

from autosae.sae import BatchTopKSAE, MatryoshkaBatchTopKSAE


def build(spec):
    opts = getattr(spec, "options", None) or {}
    dead = min(1000, spec.total_steps // 4)
    if not opts.get("nested", True):
        return BatchTopKSAE(spec.d_in, spec.width, spec.k, dead_steps=dead)
    levels = [spec.width // 32, spec.width // 8, spec.width // 2, spec.width]
    return MatryoshkaBatchTopKSAE(spec.d_in, spec.width, spec.k, levels=levels, dead_steps=dead)
'''
COARSE = """from autosae.sae import MatryoshkaBatchTopKSAE


def build(spec):
    levels = [spec.width // 2, spec.width]
    return MatryoshkaBatchTopKSAE(
        spec.d_in, spec.width, spec.k, levels=levels, dead_steps=min(1000, spec.total_steps // 4)
    )
"""
PARTS = [
    {"name": "nested", "what": "nested dictionaries", "off": {"nested": False}},
    {"name": "fine_levels", "what": "levels at 1/32 and 1/8", "off_file": "ablate_fine.py"},
]


def winning(project, parts=PARTS, ablation: str = "") -> None:
    """A sprint that wins over BatchTopK (alpha 0.4 on 2 seeds: a sure call), declaring `parts`."""
    task = project / "TASK.md"
    text = task.read_text().replace("significance: 0.05", "significance: 0.4")
    task.write_text(text.replace("heldout:\n", f"{ablation}heldout:\n", 1))
    action = {
        "title": "switchable nesting",
        "idea": "Matryoshka levels over BatchTopK",
        "parent": "baseline:batchtopk",
        "variant": VARIANT,
        "files": {"ablate_fine.py": COARSE},
        "parts": parts,
    }
    write_script(project, [action])
    commit(project, "winning task", "TASK.md", "script.yaml")


def test_a_new_best_is_ablated_resumably_reported_and_noted(project):
    winning(project)
    killed = autosae("sprint", cwd=project, env={"AUTOSAE_CRASH_AT": "ablating"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    sid = re.search(r"(\S+) \| ablating \|", killed.stdout).group(1)
    assert "| ablating | 2 parts removed one at a time, 2 seeds" in killed.stdout
    resumed = autosae("resume", cwd=project)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "| ablating | nested: reusing the run recorded before the interruption" in resumed.stdout
    assert "fine_levels: reusing" not in resumed.stdout  # it had not run: trained now
    (row,) = ledger(project)
    assert row["new_best"]
    verdict = json.loads((project / "sprints" / sid / "verdict.json").read_text())
    rows = verdict["ablation"]["rows"]
    assert [r["part"] for r in rows] == ["nested", "fine_levels"] and verdict["ablation"]["seeds"] == [0, 1]
    nested = rows[0]
    assert nested["delta"] > 0 and nested["class"] == "load-bearing" and nested["n"] == 2
    md = (project / "sprints" / sid / "report.md").read_text()
    assert "## What carries the gain" in md and "| nested | nested dictionaries | +" in md
    assert "| fine\\_levels | levels at 1/32 and 1/8 |" in md  # agent text escaped
    pdf = text(project / "sprints" / sid / "report.pdf")
    assert "What carries the gain (ablations)" in pdf and "nested dictionaries" in pdf and "load-bearing" in pdf
    notebook = (project / "reports" / "notebook.md").read_text()
    assert f"Ablation: the part nested (nested dictionaries) carries gain in {sid}'s new best" in notebook
    for r in rows:
        if r["class"] == "parasitic":
            assert f"simplify: remove {r['part']}" in notebook


def test_bad_parts_are_refused_in_one_line_and_the_sprint_recorded(project):
    winning(project, parts=[{"name": "Bad Name", "off": {"nested": False}}])
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| ablating | refused: parts.json part 1: name: 1 to 32 of a-z, 0-9 and _; no ablation" in proc.stdout
    (row,) = ledger(project)
    assert row["new_best"] and "Traceback" not in proc.stderr


def test_ablation_off_in_task_md_skips_the_phase(project):
    winning(project, ablation="ablation:\n  auto: false\n")
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| ablating | skipped: ablation.auto is off in TASK.md" in proc.stdout
    sid = SPRINT_ID.search(proc.stdout).group(1)
    assert "ablation" not in json.loads((project / "sprints" / sid / "verdict.json").read_text())


def test_parts_json_is_checked_strictly(tmp_path):
    def parts(raw) -> str:
        (tmp_path / "parts.json").write_text(raw if isinstance(raw, str) else json.dumps(raw))
        return read_parts(tmp_path)[1]

    assert read_parts(tmp_path) == ([], "")  # none declared
    assert "not valid JSON" in parts("[{")
    assert f"at most {MAX_PARTS}" in parts([{"name": f"p{i}", "off": {"a": 1}} for i in range(MAX_PARTS + 1)])
    assert "name: 1 to 32" in parts([{"name": "../x", "off": {"a": 1}}])
    assert "twice" in parts([{"name": "a", "off": {"a": 1}}, {"name": "a", "off": {"b": 1}}])
    assert "exactly one of" in parts([{"name": "a"}])
    assert "expected a number" in parts([{"name": "a", "off": {"a": [1]}}])
    assert "not in the sprint folder" in parts([{"name": "a", "off_file": "nope.py"}])
    assert "a .py file" in parts([{"name": "a", "off_file": "../variant.py"}])
    os.symlink("/etc/passwd", tmp_path / "link.py")
    assert "not a regular file" in parts([{"name": "a", "off_file": "link.py"}])
    (tmp_path / "parts.json").unlink()
    os.symlink(tmp_path / "link.py", tmp_path / "parts.json")
    assert read_parts(tmp_path)[1] == "parts.json is not a regular file"
    (tmp_path / "parts.json").unlink()
    (tmp_path / "off.py").write_text("")
    good = [{"name": "a_1", "what": "x\ny", "off": {"k": False}}, {"name": "b", "off_file": "off.py"}]
    assert parts(good) == "" and read_parts(tmp_path)[0][0] == {"name": "a_1", "what": "x y", "off": {"k": False}}


def test_the_implementers_finish_refuses_parts_the_ablation_would_refuse(tmp_path):
    """The anthropic backend's `finish` reads parts.json while the implementer can still fix it."""
    (tmp_path / "README.md").write_text("# x\n")
    (tmp_path / "variant.py").write_text(VARIANT)
    check = implemented(tmp_path, "sprints/s1")
    assert check({"summary": "no parts declared"})  # parts are optional
    (tmp_path / "parts.json").write_text(json.dumps([{"name": "fine", "off_file": "missing.py"}]))
    with pytest.raises(ToolError, match=r"^sprints/s1/parts.json part 1: off_file: missing.py is not in"):
        check({"summary": "x"})
    (tmp_path / "missing.py").write_text(COARSE)
    assert check({"summary": "fixed"})
