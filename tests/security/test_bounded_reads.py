"""Red team: sparse files. `truncate -s 450M big.py` costs the agent no disk (the disk bound
counts blocks), yet reads as 450 MB: the host's view tool, str_replace and the report's diff
against the parent read only a bounded prefix of it, say what they cut, and stay small in time
and memory. A named pipe in place of a file does not block them."""

from __future__ import annotations

import os
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from autosae.agents.prompts import diff
from autosae.agents.sandbox import VIEW_BYTES, Files, ToolError
from autosae.report.record import DIFF_FILE_BYTES, folder_files, variant_diff

SPARSE = "450M"
MEMORY_BOUND = 16 << 20
"""Far above what a bounded read needs (a prefix of 256 KiB, decoded and split), far below 450 MB."""


def sparse(path: Path, text: str = "") -> Path:
    """`text`, then a hole up to 450 MB: as the agent's bash makes it."""
    path.write_text(text)
    subprocess.run(["truncate", "-s", SPARSE, str(path)], check=True)
    assert path.stat().st_size == 450 << 20 and path.stat().st_blocks * 512 < 8 << 20  # no disk used
    return path


def bounded(call):
    """call()'s result (or the ToolError it raised), checked to take little memory and time."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        result = call()
    except ToolError as exc:
        result = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed = time.monotonic() - start
    assert peak < MEMORY_BOUND, f"{peak:,} bytes allocated"
    assert elapsed < 5, f"{elapsed:.1f} s"
    return result


@pytest.fixture
def worktree(tmp_path) -> Path:
    root = tmp_path / "worktree"
    (root / "sprints" / "s1").mkdir(parents=True)
    return root


def test_viewing_a_sparse_file_reads_a_bounded_prefix(worktree):
    sparse(worktree / "big.py")
    lines = "".join(f"x_{i} = {i}  # some text to fill the prefix\n" for i in range(20_000))
    assert len(lines) > VIEW_BYTES
    sparse(worktree / "long.py", lines)
    files = Files(worktree)

    holes = bounded(lambda: files.call({"command": "view", "path": "big.py"}))
    assert isinstance(holes, ToolError) and "binary file of 471,859,200 bytes" in str(holes)
    shown = bounded(lambda: files.call({"command": "view", "path": "long.py"}))
    assert shown.startswith("     1\tx_0 = 0") and "of 471,859,200 bytes are shown]" in shown
    tail = bounded(lambda: files.call({"command": "view", "path": "long.py", "view_range": [5000, -1]}))
    assert "  5000\tx_4999 = 4999" in tail and "x_19999" not in tail  # past the prefix: not read
    beyond = bounded(lambda: files.call({"command": "view", "path": "long.py", "view_range": [19000, 19010]}))
    assert isinstance(beyond, ToolError) and "reads only the first 262,144" in str(beyond)
    edit = bounded(lambda: files.call({"command": "str_replace", "path": "big.py", "old_str": "a", "new_str": "b"}))
    assert isinstance(edit, ToolError) and "too large for str_replace" in str(edit)
    assert (worktree / "big.py").stat().st_blocks * 512 < 8 << 20  # not written back filled in


def test_a_folder_of_many_files_is_listed_in_bounded_size(worktree):
    folder = worktree / "sprints" / "s1"
    for i in range(1500):
        (folder / f"f{i:04}.py").touch()
    listing = Files(worktree).view("sprints/s1")
    assert len(listing.splitlines()) == 1001 and "500 more entries not listed" in listing


def test_the_report_diff_reads_a_bounded_prefix_of_each_file(worktree):
    folder = worktree / "sprints" / "s1"
    sparse(folder / "variant.py")
    sparse(folder / "helper.py", "def helper():\n    return 1\n" * 20_000)
    sparse(folder / "notes.txt", "a" + "é" * (DIFF_FILE_BYTES // 2))  # the cut splits a character
    (folder / "README.md").write_text("# notes\n")

    files = bounded(lambda: folder_files(folder, ("README.md",)))
    assert files["variant.py"] == "<binary file, 471,859,200 bytes>\n"
    assert files["helper.py"].endswith(
        f"[autosae read only the first {DIFF_FILE_BYTES:,} of this file's 471,859,200 bytes]\n"
    )
    assert "�" not in files["notes.txt"] and "read only the first" in files["notes.txt"]
    record = bounded(lambda: variant_diff("baseline:matryoshka", {"variant.py": "x = 1\n"}, files))
    assert record["truncated"] and len(record["text"]) <= 64_000
    assert {r["path"] for r in record["files"]} == {"variant.py", "helper.py", "notes.txt"}


def test_the_conclude_prompt_diff_reads_a_bounded_prefix(worktree):
    mine = sparse(worktree / "sprints" / "s1" / "variant.py", "import torch\n" * 30_000)
    parent = worktree / "parent.py"
    parent.write_text("import torch\n")
    text = bounded(lambda: diff(parent, mine))
    assert len(text) < 70_000 and "+import torch" in text


def test_a_named_pipe_blocks_no_reader(worktree):
    folder = worktree / "sprints" / "s1"
    os.mkfifo(folder / "variant.py")
    files = Files(worktree)
    start = time.monotonic()
    with pytest.raises(ToolError, match="no such file"):
        files.view("sprints/s1/variant.py")
    assert folder_files(folder, ()) == {} and diff(None, folder / "variant.py") == "(no difference)"
    assert time.monotonic() - start < 5


def test_a_named_pipe_blocks_no_writer(worktree):
    """The agent makes its variant.py a named pipe, then asks the file tool to create or edit
    it: our process must not wait for a reader that never comes."""
    folder = worktree / "sprints" / "s1"
    os.mkfifo(folder / "variant.py")
    files = Files(worktree)
    start = time.monotonic()
    with pytest.raises(ToolError):
        files.create("sprints/s1/variant.py", "def build(spec): ...\n")
    with pytest.raises(ToolError):
        files.str_replace("sprints/s1/variant.py", "a", "b")
    assert time.monotonic() - start < 5


def test_finish_reads_a_bounded_prefix_of_the_variant(worktree):
    """The implement phase's finish check compiles variant.py: a sparse one of 450 MB is refused
    by its size, read no further than the bound."""
    from autosae.agents.claude_tools import implemented

    folder = worktree / "sprints" / "s1"
    (folder / "README.md").write_text("# notes\n")
    with open(folder / "variant.py", "wb") as f:
        f.truncate(450 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ToolError, match="at most"):
            implemented(folder, "sprints/s1")({})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
