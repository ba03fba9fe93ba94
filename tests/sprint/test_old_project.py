"""A project made by the previous release (commit 31de5a1, before issue 16's refactor) resumes
and re-renders under this one: the state, ledger, sprint folders and reports are compatible.

tests/data/project-0.1.0.tar.gz was made with that release's code: `autosae init --profile tiny
--backend recipe`, `autosae loop --max-sprints 2` (two recorded sprints), then a third
`autosae sprint` killed with SIGKILL as it entered training (AUTOSAE_CRASH_AT=training), so its
state, worktree and branch are mid-sprint. The project was made under /tmp/oldproj; it is
unpacked elsewhere here, as a researcher who moves a project folder would.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import git

from tests.sprint.conftest import autosae, head_ledger

ARCHIVE = Path(__file__).parents[1] / "data" / "project-0.1.0.tar.gz"
RECORDED = ["2026-11-25--21-34-35-decreasing-k-from-2-4x-the-target", "2026-11-25--21-41-23-detached-inner-levels"]
CRASHED = "2026-11-25--21-48-10-frequency-sorted-matryoshka-levels"


def unpack(tmp_path: Path) -> Path:
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "oldproj"


def test_an_old_project_resumes_and_re_renders(tmp_path):
    root = unpack(tmp_path)
    before = {sid: json.loads((root / "sprints" / sid / "verdict.json").read_text()) for sid in RECORDED}

    status = autosae("status", "--project", str(root), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert CRASHED in status.stdout  # the unfinished sprint is seen as such

    resumed = autosae("resume", "--project", str(root), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = head_ledger(root)
    assert [r["id"] for r in rows] == [*RECORDED, CRASHED]
    assert rows[-1]["verdict"] not in ("failed", None), rows[-1]
    assert (root / "sprints" / CRASHED / "report.pdf").is_file()

    rendered = autosae("report", "--all", "--project", str(root), cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    for sid in [*RECORDED, CRASHED]:
        report = (root / "sprints" / sid / "report.md").read_text()
        assert sid in report and "F1" in report
        assert (root / "sprints" / sid / "report.pdf").read_bytes().startswith(b"%PDF")
    # re-rendering reads the old records as they are: no verdict changes
    for sid, verdict in before.items():
        assert json.loads((root / "sprints" / sid / "verdict.json").read_text()) == verdict
    assert not git.Repo(root).is_dirty(untracked_files=False)
