"""Where built models live, and whether a cache entry is whole, without importing torch.

The CLI, the ledger and the replayed harness ask for cache paths on every command; keeping
them here (and not in build.py, which needs torch and sae_lens) spares each of those commands
the 1.5 s of importing torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from platformdirs import user_cache_dir

from autosae.bench.profiles import Profile

MANIFEST = "manifest.json"


def cache_root() -> Path:
    """$AUTOSAE_CACHE, else the user cache dir (e.g. ~/.cache/autosae)."""
    return Path(os.environ.get("AUTOSAE_CACHE") or user_cache_dir("autosae"))


def entry_dir(profile: Profile) -> Path:
    return cache_root() / "models" / f"{profile.name}-{profile.model_hash()}"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(entry: Path) -> str | None:
    """None when the entry is complete and intact, else why it is not."""
    manifest = entry / MANIFEST
    if not manifest.is_file():
        return "no manifest"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return "unreadable manifest"
    for name, digest in files.items():
        path = entry / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256_of(path) != digest:
            return f"{name} does not match its checksum"
    return None
