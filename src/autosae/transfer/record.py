"""A sprint's transfer as the reports read it: its sealed transfer.json, and the mark it puts in
the leaderboard's LLM column. No torch and no reporting code, so that the reports may import it."""

from __future__ import annotations

from pathlib import Path

from autosae.bench.cache import sha256_of
from autosae.harness.seal import read_verified
from autosae.transfer.verdict import SYMBOLS


def recorded(folder: Path) -> dict | None:
    """A sprint's transfer.json, when it is ours (sealed), unchanged, and of this sprint and its
    variant: a sealed record copied from another sprint's folder (an agent may write its own
    sprint's folder) is not this sprint's."""
    data = read_verified(folder / "transfer.json")
    variant = folder / "variant.py"
    if data is None or data.get("sprint") != folder.name or not variant.is_file():
        return None
    return data if data.get("variant_sha256") == sha256_of(variant) else None


def leaderboard_mark(folder: Path) -> str:
    """The leaderboard's LLM column: ✓ holds, ✗ does not hold, ? inconclusive, - not run."""
    data = recorded(folder)
    return SYMBOLS.get(data.get("verdict"), "-") if data else "-"
