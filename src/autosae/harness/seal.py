"""Only the harness's own results count: every results.json it writes is sealed with an HMAC.

The key lives in the user's cache folder ($AUTOSAE_CACHE/keys/results.key, mode 0600), which
no sandbox can see. A stored result is reused (a resumed sprint's training, a held-out run,
a cached baseline) only when its seal checks out; a results.json that an agent's shell or a
variant wrote, or edited, has none that does, and the run is trained again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from autosae.jsonio import write_json

FIELD = "seal"


def key_path() -> Path:
    from autosae.bench.cache import cache_root

    return cache_root() / "keys" / "results.key"


def write_private(path: Path, data: bytes, replace: bool = False) -> bytes:
    """Create `path` with `data`, readable by this user only (0600, in a 0700 folder), and
    return what the file holds: the first writer wins a race, so two processes never end up
    with two different secrets (unless `replace`, for a file found unusable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        if replace:
            os.replace(tmp, path)
    tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _key() -> bytes:
    path = key_path()
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
        broken = True
    except FileNotFoundError:
        broken = False
    return write_private(path, secrets.token_bytes(32), replace=broken)


def _digest(data: dict) -> str:
    body = json.dumps(
        {k: v for k, v in data.items() if k != FIELD}, sort_keys=True, default=float, separators=(",", ":")
    )
    return hmac.new(_key(), body.encode(), hashlib.sha256).hexdigest()


def seal(data: dict) -> dict:
    return {**data, FIELD: _digest(data)}


def verified(data: dict | None) -> bool:
    """Whether `data` is a record the harness sealed, unchanged since."""
    if not isinstance(data, dict) or not isinstance(data.get(FIELD), str):
        return False
    return hmac.compare_digest(data[FIELD], _digest(data))


def write_sealed(path: Path, data: dict) -> dict:
    """Write `data` as `path` (atomically and durably: a resumed sprint reuses it), sealed;
    returns what was written."""
    sealed = seal(json.loads(json.dumps(data, default=float)))  # sealed as it reads back
    write_json(path, sealed, durable=True)
    return sealed


def read_verified(path: Path) -> dict | None:
    """The sealed record at `path`, or None when it is missing, unreadable, a link, or not ours."""
    try:
        if path.is_symlink():
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if verified(data) else None
