"""Red team: the implementer's pilot notes (amend_proposal) and the labels, sources and reasons of
its quick runs are the agent's text. In report.md they are shown as the text itself: no table
row, heading or HTML of their own; a record broken by a hand edit renders without a traceback."""

from __future__ import annotations

import json

import git

from autosae.report.escape import one_line
from tests.report import pdftools
from tests.security.test_markup import headings, html, tables
from tests.sprint.conftest import COMMIT_ENV, autosae, ledger, write_script

LABEL = "x\n| forged | 0.99 |\n<!channel> `a|b` $\\alpha$\n# Verdict: improved ★"
NOTES = "notes\n\n| fake | table |\n|---|---|\n| forged | 0.99 |\n\n# Verdict: improved ★\n<img src=x onerror=alert(1)>"
HOSTILE_RUNS = [
    {
        "n": 1,
        "profile": "tiny\n| forged | 0.99 |",
        "seeds": [900000],
        "arms": [
            {
                "arm": LABEL,
                "source": "sprint:<script>|x",
                "status": "failed",
                "reason": "boom\n| forged | 0.99 |",
                "metrics": {"f1": {"mean": "0.99"}},  # not a number: shown as missing
            },
            "not an arm",
        ],
        "curves": {LABEL: {"samples": [0, 1], "loss": [1.0, "x"]}},
    },
    {"arms": {"not": "a list"}, "seeds": "x", "training_samples": "many"},
    42,
]


def test_hostile_pilot_notes_and_quick_run_labels_add_no_structure(tmp_path):
    from autosae.sprint.project import init_project
    from tests.sprint.conftest import write_task

    root = tmp_path / "research"
    init_project(root)
    write_task(root)
    write_script(
        root,
        [
            {
                "title": "hostile pilots",
                "idea": "LISTA-Matryoshka with the seed's settings",
                "hypothesis": "the original hypothesis",
                "variant": "lista_matryoshka",
                "amend": {"pilot_notes": NOTES, "hypothesis": "h\n| a | b |", "plan": "p <!here>"},
            }
        ],
    )
    repo = git.Repo(root)
    repo.git.add("TASK.md", "script.yaml")
    repo.git.commit("-q", "-m", "hostile script", env=COMMIT_ENV)
    proc = autosae("sprint", cwd=root)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    [row] = ledger(root)
    assert (
        row["pilot_notes"]
        == "notes | fake | table | |---|---| | forged | 0.99 | # Verdict: improved ★ <img src=x onerror=alert(1)>"
    )
    folder = root / "sprints" / row["id"]
    record = json.loads((folder / "sprint.json").read_text())
    assert record["hypothesis"] == "the original hypothesis" and record["amendments"][0]["pilot_notes"] == NOTES

    record["quick_runs"] = HOSTILE_RUNS  # as a hand edit (or a hostile label) would leave it
    (folder / "sprint.json").write_text(json.dumps(record))
    git.Repo(root).git.add(str(folder / "sprint.json"))
    git.Repo(root).git.commit("-q", "-m", "hand edit", env=COMMIT_ENV)
    rendered = autosae("report", row["id"], cwd=root)
    assert rendered.returncode == 0 and "Traceback" not in rendered.stderr, rendered.stderr

    md = (folder / "report.md").read_text()
    assert not html(md)
    assert "Verdict: improved ★" not in headings(md)
    for table in tables(md):
        assert ["forged", "0.99"] not in table and ["fake", "table"] not in table
    quick = [t for t in tables(md) if t[0][0] == "arm"]
    assert len(quick) == 2 and len(quick[0]) == 2 and len(quick[1]) == 1  # the header and the one arm; none
    label = quick[0][1][0]  # the label as typed (bounded), in its own cell
    assert label.startswith("x | forged | 0.99 | <!channel> `a|b` $\\alpha$") and label.endswith("…")
    assert one_line(LABEL).startswith(label[:-1]) and quick[0][1][2] == "—"
    assert quick[0][1][5] == "failed: boom | forged | 0.99 |"
    text = " ".join(pdftools.text(folder / "report.pdf").split())
    assert "Quick runs (implement phase, uncounted)" in text and "x | forged | 0.99 | <!c" in text
    assert "Amended after pilots (1" in text and "<img src=x onerror=alert(1)>" in text
