"""An LLM agent's conversation, one JSON line per message, appended (and fsynced) as it happens.

The file lives outside the agent's worktree (`.autosae/agent/<sprint>/<phase>.jsonl`), so a
conversation cut by SIGKILL is continued from it. Every line passes through `redact` first:
no credential is ever written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from autosae.redaction import redact, secret_values


class Transcript:
    def __init__(self, path: Path):
        self.path = path
        self.secrets = secret_values()

    def append(self, record: dict, sync: bool = True) -> int:
        """Write one line (with `sync`, to the disk before returning); returns its size in bytes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (redact(json.dumps(record, default=str), self.secrets) + "\n").encode()
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        return len(line)

    def records(self) -> list[dict]:
        """Every complete line written so far (a line torn by a kill is dropped)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def merge_transcripts(folder: Path, phases: tuple[str, ...], out: Path) -> bool:
    """Concatenate the phases' transcripts into one file (for the sprint's record)."""
    parts = [folder / f"{phase}.jsonl" for phase in phases if (folder / f"{phase}.jsonl").is_file()]
    if not parts:
        return False
    out.write_text("".join(p.read_text() for p in parts))
    return True
