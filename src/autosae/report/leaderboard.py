"""reports/leaderboard.md and reports/progress.png, rebuilt from the ledger at every sprint."""

from __future__ import annotations

from pathlib import Path

from autosae.report.format import environment
from autosae.sprint.ledger import token_totals


def _mean(row: dict, objective: str) -> float | None:
    return (row.get(objective) or {}).get("mean")


def leaderboard_rows(ledger: list[dict], objective: str = "f1") -> list[dict]:
    """Best first by the objective's mean; sprints without scores (failed) last."""
    scored = [r for r in ledger if _mean(r, objective) is not None]
    unscored = [r for r in ledger if _mean(r, objective) is None]
    return sorted(scored, key=lambda r: -_mean(r, objective)) + unscored


def render_leaderboard(ledger: list[dict], baselines: dict | None, objective: str = "f1") -> str:
    ranked = [dict(r, rank=i, baseline=False) for i, r in enumerate(leaderboard_rows(ledger, objective), 1)]
    for name, stats in (baselines or {}).items():
        mean = ((stats or {}).get(objective) or {}).get("mean")
        if mean is None:
            continue
        row = {"title": name, "f1": stats.get("f1"), "mcc": stats.get("mcc"), "baseline": True}
        at = next((i for i, r in enumerate(ranked) if (_mean(r, objective) or float("-inf")) < mean), len(ranked))
        ranked.insert(at, row)
    totals = {"sprints": len(ledger), "improved": sum(r.get("verdict") == "improved" for r in ledger),
              "failed": sum(r.get("verdict") == "failed" for r in ledger),
              "noop": sum(bool(r.get("noop")) for r in ledger),
              "cost": sum(r.get("cost_usd") or 0.0 for r in ledger),
              "tokens": token_totals(ledger)}
    profile = ledger[-1].get("profile", "?") if ledger else "?"
    return environment().get_template("leaderboard.md.j2").render(
        ranked=ranked if ledger else [], chronological=ledger, totals=totals, profile=profile,
        objective=objective, obj_name=objective.upper())


def _progress_plot(path: Path, ledger: list[dict], baselines: dict | None, objective: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    xs = list(range(1, len(ledger) + 1))
    best, best_line, failed = None, [], []
    for x, row in zip(xs, ledger):
        mean = _mean(row, objective)
        if mean is None:
            failed.append(x)
        else:
            std = (row.get(objective) or {}).get("std") or 0.0
            ax.errorbar([x], [mean], yerr=[std], fmt="o", color="tab:orange" if row.get("new_best") else "tab:blue",
                        capsize=3)
        if row.get("new_best"):
            best = mean
        best_line.append(best)
    if any(b is not None for b in best_line):
        ax.step(xs, [b if b is not None else float("nan") for b in best_line], where="post", color="tab:orange",
                label="best so far")
    for name, stats in (baselines or {}).items():
        mean = ((stats or {}).get(objective) or {}).get("mean")
        if mean is not None:
            ax.axhline(mean, linestyle="--", color="tab:green" if name == "matryoshka" else "tab:gray", label=name)
    if failed:  # no score: marked along the bottom edge, so they do not stretch the axis
        ax.scatter(failed, [0.02] * len(failed), marker="x", color="tab:red", transform=ax.get_xaxis_transform(),
                   label="failed")
    ax.set_xlabel("sprint")
    ax.set_ylabel(objective.upper())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def write_leaderboard(reports_dir: Path, ledger: list[dict], baselines: dict | None,
                      objective: str = "f1") -> list[Path]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    md, png = reports_dir / "leaderboard.md", reports_dir / "progress.png"
    md.write_text(render_leaderboard(ledger, baselines, objective))
    _progress_plot(png, ledger, baselines, objective)
    return [md, png]
