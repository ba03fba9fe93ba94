"""Reports: a sprint's report.md and report.pdf, and the project's leaderboard."""

from autosae.report.format import fmt_delta, fmt_num, fmt_pm
from autosae.report.leaderboard import leaderboard_rows, render_leaderboard, write_leaderboard
from autosae.report.sprint import write_report

__all__ = [
    "fmt_delta",
    "fmt_num",
    "fmt_pm",
    "leaderboard_rows",
    "render_leaderboard",
    "write_leaderboard",
    "write_report",
]
