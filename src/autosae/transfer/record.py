"""A sprint's transfer as the reports read it: its sealed transfer.json, and the mark it puts in
the leaderboard's LLM column. No torch and no reporting code, so that the reports may import it."""

from __future__ import annotations

from pathlib import Path

from autosae.harness.seal import read_verified
from autosae.transfer.verdict import SYMBOLS


def recorded(folder: Path) -> dict | None:
    """A sprint's transfer.json, when it is ours (sealed) and unchanged."""
    return read_verified(folder / "transfer.json")


def leaderboard_mark(folder: Path) -> str:
    """The leaderboard's LLM column: ✓ holds, ✗ does not hold, ? inconclusive, - not run."""
    data = recorded(folder)
    return SYMBOLS.get(data.get("verdict"), "-") if data else "-"
