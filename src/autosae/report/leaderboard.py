"""reports/leaderboard.md, progress.png and progress.pdf, rebuilt from the ledger at every sprint."""

from __future__ import annotations

from pathlib import Path

from autosae.report.content import baseline_noise, probe_ceiling
from autosae.report.digest import night_rows, night_start, render_digest
from autosae.report.escape import literal_text, pdf_line
from autosae.report.figures import pdf_matplotlib
from autosae.report.format import fmt_delta, fmt_p, fmt_pm, measured
from autosae.report.lineage import lineage_figure, lineage_layout
from autosae.sprint.ledger import best_row, token_totals
from autosae.templating import render


def _mean(row: dict, objective: str) -> float | None:
    return (row.get(objective) or {}).get("mean")


def leaderboard_rows(ledger: list[dict], objective: str = "f1") -> list[dict]:
    """Best first by the objective's mean; sprints without scores (failed) last."""
    scored = [r for r in ledger if _mean(r, objective) is not None]
    unscored = [r for r in ledger if _mean(r, objective) is None]
    return sorted(scored, key=lambda r: -_mean(r, objective)) + unscored


def render_leaderboard(
    ledger: list[dict], baselines: dict | None, objective: str = "f1", project_root: Path | None = None
) -> str:
    """leaderboard.md's text, from the project's own templates/leaderboard.md.j2 where its main
    checkout (`project_root`) has one."""
    ranked = [dict(r, rank=i, baseline=False) for i, r in enumerate(leaderboard_rows(ledger, objective), 1)]
    if project_root is not None:  # LLM: the sprint's transfer verdict (`autosae transfer`), - where none ran
        from autosae.transfer.record import leaderboard_mark

        for r in ranked:
            r["llm"] = leaderboard_mark(project_root / "sprints" / r["id"])
    for name, stats in (baselines or {}).items():
        mean = ((stats or {}).get(objective) or {}).get("mean")
        if mean is None:
            continue
        row = {"title": name, "f1": stats.get("f1"), "mcc": stats.get("mcc"), "baseline": True}
        at = next((i for i, r in enumerate(ranked) if (_mean(r, objective) or float("-inf")) < mean), len(ranked))
        ranked.insert(at, row)
    totals = {
        "sprints": len(ledger),
        "improved": sum(r.get("verdict") == "improved" for r in ledger),
        "failed": sum(r.get("verdict") == "failed" for r in ledger),
        "noop": sum(bool(r.get("noop")) for r in ledger),
        "cost": sum(r.get("cost_usd") or 0.0 for r in ledger),
        "tokens": token_totals(ledger),
    }
    profile = ledger[-1].get("profile", "?") if ledger else "?"
    return render(
        "leaderboard.md.j2",
        project_root,
        ranked=ranked if ledger else [],
        chronological=ledger,
        totals=totals,
        profile=profile,
        objective=objective,
        obj_name=objective.upper(),
        noise=baseline_noise(baselines),
    )


def _progress_figure(plt, ledger: list[dict], baselines: dict | None, objective: str, ceiling: dict):
    """F1 and MCC of every sprint (mean ± std over seeds), with the best-so-far line: the
    scores of the latest new best (judged on the objective) after each sprint, starting from
    the Matryoshka baseline, which is the first sprints' parent."""
    fig, axes = plt.subplots(1, 2, figsize=(11.69, 4.8))
    xs = list(range(1, len(ledger) + 1))
    for ax, metric in zip(axes, ("f1", "mcc")):
        start = (((baselines or {}).get("matryoshka") or {}).get(metric) or {}).get("mean")
        best, best_line, failed = start, [], []
        for x, row in zip(xs, ledger):
            mean = _mean(row, metric)
            if mean is None:
                failed.append(x)
            else:
                std = (row.get(metric) or {}).get("std") or 0.0
                ax.errorbar(
                    [x],
                    [mean],
                    yerr=[std],
                    fmt="o",
                    capsize=3,
                    color="tab:orange" if row.get("new_best") else "tab:blue",
                    label=None,
                )
            if row.get("new_best") and mean is not None:
                best = mean
            best_line.append(best)
        if any(b is not None for b in best_line):
            ax.step(
                [0.5, *xs, len(xs) + 0.5],
                [
                    start if start is not None else float("nan"),
                    *best_line,
                    best_line[-1] if best_line[-1] is not None else float("nan"),
                ],
                where="post",
                color="tab:orange",
                linewidth=2,
                label=f"best so far (by {objective.upper()})",
            )
        for name, stats in (baselines or {}).items():
            mean = ((stats or {}).get(metric) or {}).get("mean")
            if mean is not None:
                ax.axhline(
                    mean,
                    linestyle="--",
                    color="tab:green" if name == "matryoshka" else "tab:gray",
                    label=f"{name} baseline",
                )
        if ceiling.get(metric) is not None:
            ax.axhline(ceiling[metric], linestyle=":", color="tab:purple", label="probe ceiling")
        if failed:  # no score: marked along the bottom edge, so they do not stretch the axis
            ax.scatter(
                failed,
                [0.02] * len(failed),
                marker="x",
                color="tab:red",
                transform=ax.get_xaxis_transform(),
                label="failed sprint",
            )
        ax.scatter([], [], color="tab:blue", label="sprint (mean ± std)")
        ax.set_xlabel("sprint number")
        ax.set_ylabel(metric.upper())
        ax.set_title(f"{metric.upper()} over the sprints")
        if xs:
            ax.set_xlim(0.5, len(xs) + 0.5)
            ax.set_xticks(xs if len(xs) <= 25 else xs[:: max(1, len(xs) // 20)])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.12, top=0.91, wspace=0.18)  # fixed: see figures.GRID_MARGINS
    return fig


def _cell_pm(stat: dict | None) -> str:
    """fmt_pm for a narrow table cell: a single seed's mean as `0.7800 (n = 1)`, no std."""
    if stat and stat.get("mean") is not None and not measured(stat):
        return f"{stat['mean']:.4f} (n = {stat.get('n')})"
    return fmt_pm(stat, 4)


def _table_pages(pdf, plt, ledger: list[dict], per_page: int = 28) -> None:
    header = ["#", "sprint", "idea", "verdict", "F1", "MCC", "Δ parent", "p", "cost"]
    rows = [
        [
            str(i),
            pdf_line(r["id"], 20),
            pdf_line(r.get("title") or "", 48),
            pdf_line(r.get("verdict") or "—")
            + (" (no-op)" if r.get("noop") else "")
            + (" *" if r.get("new_best") else ""),
            _cell_pm(r.get("f1")),
            _cell_pm(r.get("mcc")),
            fmt_delta(r.get("delta_parent"), 4),
            fmt_p(r.get("p_value")),
            f"${r.get('cost_usd') or 0:.2f}",
        ]
        for i, r in enumerate(ledger, 1)
    ]
    chunks = [rows[i : i + per_page] for i in range(0, len(rows), per_page)] or [[]]
    for n, chunk in enumerate(chunks, 1):
        fig = plt.figure(figsize=(11.69, 8.27))
        fig.text(
            0.03,
            0.96,
            f"All sprints, in order ({n} of {len(chunks)}); * marks a new best",
            fontsize=13,
            weight="bold",
            va="top",
        )
        ax = fig.add_axes([0.03, 0.05, 0.94, 0.86])
        ax.axis("off")
        if chunk:
            table = ax.table(
                cellText=chunk,
                colLabels=header,
                loc="upper left",
                cellLoc="left",
                colWidths=[0.03, 0.15, 0.31, 0.12, 0.1, 0.1, 0.07, 0.06, 0.06],
            )
            table.auto_set_font_size(False)
            table.set_fontsize(7.5)
            table.scale(1, 1.35)
        else:
            ax.text(0.0, 0.95, "No sprints yet.", fontsize=12)
        pdf.savefig(fig)
        plt.close(fig)


def write_leaderboard(
    reports_dir: Path, ledger: list[dict], baselines: dict | None, objective: str = "f1", since=None
) -> list[Path]:
    """leaderboard.md, progress.png (the picture it shows), the morning digest (digest.md and
    its lineage.png) and progress.pdf (that picture, the night's lineage tree and a table of
    every sprint with its verdict). `reports_dir` is the project's reports/ folder in its main
    checkout (the only place the leaderboard is written), so the project's own templates/ are
    beside it. `since` (a datetime) starts the digest's night; by default it is the
    report.digest.NIGHT_HOURS before the latest sprint finished."""
    import matplotlib

    plt, PdfPages = pdf_matplotlib()

    reports_dir.mkdir(parents=True, exist_ok=True)
    md, png, pdf_path = reports_dir / "leaderboard.md", reports_dir / "progress.png", reports_dir / "progress.pdf"
    digest, tree = reports_dir / "digest.md", reports_dir / "lineage.png"
    root = reports_dir.parent
    md.write_text(render_leaderboard(ledger, baselines, objective, root))
    digest.write_text(render_digest(root, ledger, objective, since))
    night = night_rows(ledger, night_start(ledger, since))
    best = best_row(ledger, ledger[-1].get("setting")) if ledger else None
    ceiling = probe_ceiling(ledger[-1].get("profile") if ledger else None)
    with matplotlib.rc_context({"pdf.fonttype": 42}), literal_text():  # titles are the agent's: never mathtext
        fig = _progress_figure(plt, ledger, baselines, objective, ceiling)
        fig.savefig(png, dpi=100, metadata={"Software": None})
        with PdfPages(pdf_path, metadata={"Title": "autosae progress", "CreationDate": None}) as pdf:
            fig.suptitle(
                f"autosae: the night's progress on {ledger[-1].get('profile') if ledger else '—'} "
                f"({len(ledger)} sprints)",
                fontsize=12,
            )
            fig.subplots_adjust(top=0.84)  # room for the title
            pdf.savefig(fig)
            plt.close(fig)
            layout = lineage_layout(ledger, {r["id"] for r in night if r.get("id")})
            fig = lineage_figure(
                plt,
                layout,
                objective,
                best["id"] if best else None,
                title=f"The night's lineage: {len(night)} of {len(ledger)} sprints, each after its parent",
                baselines=baselines,
            )
            fig.savefig(tree, dpi=100, metadata={"Software": None})
            pdf.savefig(fig)
            plt.close(fig)
            _table_pages(pdf, plt, ledger)
    return [md, png, digest, tree, pdf_path]
