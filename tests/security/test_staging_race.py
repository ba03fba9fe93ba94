"""Red team: a run's variant is copied out of a folder that an agent's processes may still be
changing (a Claude Code session asks for quick runs while it works). A process of the agent's
flips a file beside the variant between a Python file and a link to a root-only secret, and a
folder on the way between a folder and a link, while the harness stages the variant again and
again: no staged copy may ever hold the secret."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from autosae.errors import AutosaeError
from autosae.harness.local import stage_variant

SECRET = "ROOT-ONLY-SECRET-0xfeed"


def flipping(stop: threading.Event, path: Path, target: Path, body: str) -> None:
    """Replace `path` by a link to `target` and back, as fast as it can, until `stop`."""
    spare = path.with_name(path.name + ".tmp")
    while not stop.is_set():
        spare.unlink(missing_ok=True)
        spare.symlink_to(target)
        os.replace(spare, path)
        spare.write_text(body)
        os.replace(spare, path)


def test_a_file_flipped_to_a_link_while_staging_is_never_copied(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    folder = tmp_path / "worktree" / "sprints" / "s1"
    folder.mkdir(parents=True)
    (folder / "variant.py").write_text("import helper\n")
    (folder / "helper.py").write_text("X = 1\n")
    stop = threading.Event()
    flipper = threading.Thread(target=flipping, args=(stop, folder / "helper.py", secret, "X = 1\n"), daemon=True)
    flipper.start()
    copied = 0
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            staged = stage_variant(folder / "variant.py", tmp_path / "run" / "variant")
            helper = staged.with_name("helper.py")
            if helper.exists():
                copied += 1
                assert SECRET not in helper.read_text()
    finally:
        stop.set()
        flipper.join()
    assert copied > 0  # the honest file was staged whenever it was there


def test_a_folder_on_the_way_made_a_link_refuses_the_run(tmp_path):
    """A component of the variant's path swapped for a link after the path was resolved: the
    harness refuses with one line instead of reading where the link points."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "variant.py").write_text("def build(spec): ...\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "variant.py").write_text(SECRET)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    from autosae.harness.local import folder_fd

    with pytest.raises(AutosaeError, match="without following a link"):
        folder_fd(link)
    os.close(folder_fd(tmp_path / "real"))
