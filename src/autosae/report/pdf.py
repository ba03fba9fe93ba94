"""report.pdf: matplotlib's PdfPages, no LaTeX and no browser.

    a scored sprint:  title · F1 and MCC bars · training curves · the variant's own metrics ·
                      metrics table · conclusions
    a failed sprint:  title · failure (reason, seeds, log tail) · training curves · the
                      variant's own metrics · conclusions

Text is embedded as TrueType (pdf.fonttype 42), so that pdftotext and search find the numbers.
A page whose data is missing says so instead of being left out, so every report has the same
shape; long text continues on further pages.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from autosae.report.format import MISSING, fmt_delta, fmt_num, fmt_p, fmt_pm
from autosae.report.sprint import (
    METRICS,
    banner,
    baseline_noise,
    comparison,
    sprint_noise,
    succeeded,
    wall_time,
    warnings,
)

PAGE = (11.69, 8.27)  # A4 landscape, inches
VERDICT_COLORS = {
    "improved": "#1a7f37",
    "worse": "#b42318",
    "no change": "#6e7781",
    "inconclusive": "#9a6700",
    "failed": "#b42318",
}
BAR_COLORS = {"sprint": "#0969da", "parent": "#6e7781", "best": "#bf8700", "baseline": "#8c959f"}
LINES_PER_PAGE = 46
WRAP = 125


def _plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def _wrap(text: str, width: int = WRAP) -> list[str]:
    lines = []
    for raw in (text or "").splitlines() or [""]:
        indent = len(raw) - len(raw.lstrip(" -*"))
        lines += textwrap.wrap(raw, width, subsequent_indent=" " * indent) or [""]
    return lines


def _text_pages(pdf, plt, heading: str, sections: list[tuple[str, str]], mono: bool = False) -> None:
    """Headed sections of wrapped text, continued on as many pages as they need."""
    lines: list[tuple[str, str]] = []
    for title, body in sections:
        lines.append(("h", title))
        lines += [("t", line) for line in _wrap(_plain(body), WRAP if not mono else 150)]
        lines.append(("t", ""))
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    for n, chunk in enumerate(pages, 1):
        fig = plt.figure(figsize=PAGE)
        fig.text(
            0.04,
            0.96,
            heading + (f" (page {n} of {len(pages)})" if len(pages) > 1 else ""),
            fontsize=14,
            weight="bold",
            va="top",
        )
        y = 0.91
        for kind, line in chunk:
            fig.text(
                0.04,
                y,
                line,
                va="top",
                fontsize=10 if kind == "h" else 8.5,
                weight="bold" if kind == "h" else "normal",
                family="monospace" if mono and kind == "t" else None,
            )
            y -= 0.0185
        _save(pdf, plt, fig)


def _save(pdf, plt, fig) -> None:
    pdf.savefig(fig)
    plt.close(fig)


def _title_page(pdf, plt, sprint: dict, results: dict, verdict: dict) -> None:
    fig = plt.figure(figsize=PAGE)
    fig.text(
        0.05,
        0.93,
        "\n".join(textwrap.wrap(sprint.get("title") or sprint.get("id") or "sprint", 60)),
        fontsize=22,
        weight="bold",
        va="top",
    )
    fig.text(
        0.05,
        0.80,
        f"sprint {sprint.get('id')}   ·   parent {sprint.get('parent') or MISSING}\n"
        f"agent {sprint.get('backend') or MISSING}   ·   profile {sprint.get('profile') or MISSING}",
        fontsize=10,
        color="#57606a",
        va="center",
        linespacing=1.6,
    )
    name = verdict.get("verdict") or "unknown"
    fig.text(
        0.05,
        0.70,
        f"Verdict: {name}" + ("  (new best)" if verdict.get("new_best") else ""),
        fontsize=20,
        weight="bold",
        color="white",
        va="center",
        bbox={"boxstyle": "round,pad=0.5", "facecolor": VERDICT_COLORS.get(name, "#57606a"), "edgecolor": "none"},
    )
    fig.text(0.05, 0.62, "\n".join(textwrap.wrap(_plain(banner(results, verdict)), 110)), fontsize=11, va="top")
    summary = results.get("summary") or {}
    n = (summary.get("f1") or {}).get("n")
    rows = [
        ("F1", fmt_pm(summary.get("f1"), 4)),
        ("MCC", fmt_pm(summary.get("mcc"), 4)),
        (f"Δ {verdict.get('objective', 'f1').upper()} vs parent", fmt_delta(verdict.get("delta_parent"), 4)),
        ("p (Welch t-test)", fmt_p(verdict.get("p_value"))),
        ("noise floor, this sprint", sprint_noise(results, verdict)),
        ("noise floor, the profile", baseline_noise(verdict.get("baselines")).get(verdict.get("objective", "f1"))),
        ("seeds scored", f"{n if n is not None else 0} of {len(sprint.get('seeds') or [])}"),
        ("held-out models", {True: "confirmed", False: "not confirmed"}.get(verdict.get("confirmed"), "not verified")),
        ("OS sandbox", {True: "yes", False: "NO"}.get(sprint.get("sandboxed"), "not recorded")),
        ("agent cost", MISSING if sprint.get("cost_usd") is None else f"${sprint['cost_usd']:.2f}"),
        ("sprint wall time", f"{fmt_num(wall_time(sprint), 0)} s"),
    ]
    y = 0.50
    for label, value in rows:
        fig.text(0.05, y, label, fontsize=11.5, color="#57606a")
        fig.text(0.29, y, value, fontsize=11.5 if len(value) < 26 else 10, weight="bold")
        y -= 0.042
    notes = warnings(sprint, results, verdict)
    if notes:
        text = "\n".join(line for w in notes for line in textwrap.wrap("! " + _plain(w), 64))
        fig.text(0.58, 0.50, "Warnings\n" + text, fontsize=9.5, va="top", color="#b42318")
    _save(pdf, plt, fig)


def _scores_page(pdf, plt, sprint: dict, results: dict, verdict: dict) -> None:
    rows = comparison(sprint, results, verdict)
    fig, axes = plt.subplots(1, 2, figsize=PAGE)
    for ax, metric in zip(axes, ("f1", "mcc")):
        bars = [r for r in rows if r["kind"] != "ceiling" and (r.get(metric) or {}).get("mean") is not None]
        xs = range(len(bars))
        means = [r[metric]["mean"] for r in bars]
        stds = [r[metric].get("std") or 0.0 for r in bars]
        ax.bar(
            xs,
            means,
            yerr=stds,
            capsize=6,
            color=[BAR_COLORS[r["kind"]] for r in bars],
            alpha=0.85,
            error_kw={"elinewidth": 1.5},
        )
        for x, r in zip(xs, bars):
            points = (r.get("per_seed") or {}).get(metric) or []
            offsets = [(i - (len(points) - 1) / 2) * 0.08 for i in range(len(points))]
            ax.scatter(
                [x + o for o in offsets], points, s=18, color="black", zorder=3, label="per seed" if x == 0 else None
            )
        ceiling = next(((r.get(metric) or {}).get("mean") for r in rows if r["kind"] == "ceiling"), None)
        if ceiling is not None:
            ax.axhline(ceiling, color="#8250df", linestyle="--", label=f"probe ceiling {ceiling:.2f}")
        else:
            ax.text(
                0.99,
                0.99,
                "probe ceiling: not measured",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
                color="#8250df",
            )
        ax.set_xticks(
            list(xs),
            [
                _plain(r["label"])
                .replace(" (the best so far)", "\n(best so far)")
                .replace(" (the parent)", "\n(the parent)")
                .replace(" ", "\n", 1)
                + f"\n{r[metric]['mean']:.4f}"
                for r in bars
            ],
            fontsize=8,
        )
        top = max([m + s for m, s in zip(means, stds)] + [ceiling or 0.0])
        low = min([m - s for m, s in zip(means, stds)] + [top])
        ax.set_ylim(max(0.0, low - 0.15 * (top - low + 0.05)), min(1.02, top + 0.12 * (top - low + 0.05)))
        ax.set_ylabel(f"{metric.upper()} (mean ± std over seeds)")
        ax.set_title(metric.upper())
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"{sprint.get('title')}: scores against the parent, the best, the baselines and the probe ceiling", fontsize=11
    )
    fig.tight_layout()
    _save(pdf, plt, fig)


def _curves_page(pdf, plt, curves: dict) -> None:
    if not curves:
        fig = plt.figure(figsize=PAGE)
        fig.text(0.04, 0.96, "Training curves, every seed", fontsize=14, weight="bold", va="top")
        fig.text(
            0.5,
            0.5,
            "No training curves were recorded for this sprint:\nno seed logged a training step.",
            ha="center",
            va="center",
            fontsize=14,
            color="#57606a",
        )
        _save(pdf, plt, fig)
        return
    scheduled = any(len({k for k in c.get("k") or [] if k is not None}) > 1 for c in curves.values())
    panels = [
        ("loss", "training loss", True),
        ("l0", "L0 (active latents per sample)", False),
        ("dead", "dead latents", False),
    ] + ([("k", "K (scheduled)", False)] if scheduled else [])
    fig, axes = plt.subplots(2, 2, figsize=PAGE)
    axes = axes.ravel()
    for ax, (key, label, log) in zip(axes, panels):
        for seed, c in curves.items():
            pairs = [
                (x, y) for x, y in zip(c.get("samples") or [], c.get(key) or []) if x is not None and y is not None
            ]
            if pairs:
                ax.plot(*zip(*pairs), label=f"seed {seed}", linewidth=1.2)
        if log and ax.lines and all(y > 0 for line in ax.lines for y in line.get_ydata()):
            ax.set_yscale("log")
        ax.set_xlabel("training samples")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="#57606a")
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Training curves, every seed", fontsize=12)
    fig.tight_layout()
    _save(pdf, plt, fig)


def _variant_page(pdf, plt, curves: dict) -> None:
    """One small panel per metric the variant logged itself (curves.json's "variant"), every
    seed; a page that says so when it logged none."""
    from autosae.report.record import VARIANT_KEY, finite_number, metric_name
    from autosae.report.sprint import variant_metrics

    title = "The variant's own logged metrics (TrainOutput.metrics), every seed"
    names = [m["name"] for m in variant_metrics(curves)]
    if not names:
        fig = plt.figure(figsize=PAGE)
        fig.text(0.04, 0.96, title, fontsize=14, weight="bold", va="top")
        fig.text(
            0.5,
            0.5,
            "The variant logged no metrics of its own.",
            ha="center",
            va="center",
            fontsize=14,
            color="#57606a",
        )
        _save(pdf, plt, fig)
        return
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=PAGE, squeeze=False)
    flat = axes.ravel()
    for ax, name in zip(flat, names):
        for seed, c in curves.items():
            series = {metric_name(str(k)): v for k, v in ((c or {}).get(VARIANT_KEY) or {}).items()}.get(name) or []
            pairs = [(x, finite_number(y)) for x, y in zip(c.get("samples") or [], series)]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            if pairs:
                ax.plot(*zip(*pairs), label=f"seed {seed}", linewidth=1.1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training samples", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.lines and len(curves) > 1:
            ax.legend(fontsize=6)
        elif not ax.lines:
            ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center", va="center", color="#57606a")
    for ax in flat[len(names) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    _save(pdf, plt, fig)


def _metrics_page(pdf, plt, results: dict) -> None:
    per_seed = results.get("per_seed") or []
    summary = results.get("summary") or {}
    header = ["metric", "mean ± std"] + [f"seed {p.get('seed')}" for p in per_seed]
    cells = [
        [label, fmt_pm(summary.get(key), digits)] + [fmt_num(p.get(key), digits) for p in per_seed]
        for label, key, digits in METRICS
    ]
    cells.append(["train seconds", MISSING] + [fmt_num(p.get("train_s"), 1) for p in per_seed])
    cells.append(["status", results.get("status") or MISSING] + [p.get("status") or MISSING for p in per_seed])
    fig = plt.figure(figsize=PAGE)
    fig.text(
        0.04, 0.95, "Metrics (SynthSAEBench scorer, computed by the harness)", fontsize=14, weight="bold", va="top"
    )
    ax = fig.add_axes([0.04, 0.15, 0.92, 0.72])
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="upper left", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1, 1.8)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#eaeef2")
    _save(pdf, plt, fig)


def _failure_sections(results: dict, verdict: dict) -> list[tuple[str, str]]:
    seeds = (
        "\n".join(
            f"seed {p.get('seed')}: {p.get('status')}"
            + (f" ({p.get('kind')}): {p.get('reason')}" if p.get("status") != "ok" else "")
            for p in results.get("per_seed") or []
        )
        or "no seed ran"
    )
    kind = f" (kind: {results['failure_kind']})" if results.get("failure_kind") else ""
    return [
        ("Why it failed", f"{results.get('reason') or verdict.get('reason') or 'unknown'}{kind}"),
        ("Seeds", seeds),
        ("The tail of the variant's log", results.get("log_tail") or "No log was recorded."),
    ]


def _conclusion_sections(sprint: dict) -> list[tuple[str, str]]:
    diff = sprint.get("diff")
    if diff is None:
        change = "no diff was recorded"
    elif not diff.get("files"):
        change = f"no file differs from {diff.get('parent')}"
    else:
        change = f"against {diff.get('parent')}: +{diff.get('added')} -{diff.get('removed')} lines\n" + "\n".join(
            f"- {f['path']} ({f['status']}, +{f['added']} -{f['removed']})" for f in diff["files"]
        )
    return [
        ("Idea", sprint.get("idea") or MISSING),
        ("Hypothesis", sprint.get("hypothesis") or MISSING),
        *_literature_sections(sprint),
        ("The change", change),
        ("Conclusions and next steps (agent)", sprint.get("conclusion") or MISSING),
    ]


def _literature_sections(sprint: dict) -> list[tuple[str, str]]:
    """Where the idea comes from (the agent's words) and the sources autosae recorded from the
    web tools' results; none for a sprint that records neither (offline agents). Source text
    comes from the web: one bounded line each, `$` escaped so that matplotlib never reads it
    as mathtext."""
    from autosae.agents.literature import clean_sources, plain_line

    sources = clean_sources(sprint.get("sources") or [])
    if not sprint.get("origin") and not sources:
        return []
    listed = "\n".join(f"- {plain_line(s)}" for s in sources) or "None: no web page was fetched or cited."
    return [
        ("Where the idea comes from (agent)", str(sprint.get("origin") or MISSING)),
        ("Sources (recorded by autosae from the web tools' results)", listed),
    ]


def write_pdf(path: Path, sprint: dict, results: dict, verdict: dict, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    # text.parse_math off: agent- and variant-written text ($...$ in an idea, a log tail) is
    # shown as it is, never parsed as mathtext (an unknown symbol there would raise and stop
    # the report from ever being written)
    with (
        matplotlib.rc_context({"pdf.fonttype": 42, "font.size": 9, "text.parse_math": False}),
        PdfPages(path, metadata={"Title": sprint.get("title") or "", "CreationDate": None}) as pdf,
    ):
        _title_page(pdf, plt, sprint, results, verdict)
        if succeeded(results):
            _scores_page(pdf, plt, sprint, results, verdict)
            _curves_page(pdf, plt, curves)
            _variant_page(pdf, plt, curves)
            _metrics_page(pdf, plt, results)
        else:
            _text_pages(pdf, plt, "Failure", _failure_sections(results, verdict), mono=True)
            _curves_page(pdf, plt, curves)
            _variant_page(pdf, plt, curves)
        _text_pages(pdf, plt, "Idea, change and conclusions", _conclusion_sections(sprint))
