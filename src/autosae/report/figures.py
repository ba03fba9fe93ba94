"""The matplotlib pages of report.pdf that plot data: the scores against the parent, the
best, the baselines and the probe ceiling; the training curves; the variant's own metrics.
A page whose data is missing says so instead of being left out."""

from __future__ import annotations

from autosae.report.escape import clean, pdf_line

PAGE = (11.69, 8.27)  # A4 landscape, inches
BAR_COLORS = {"sprint": "#0969da", "parent": "#6e7781", "best": "#bf8700", "baseline": "#8c959f"}
SCORES_MARGINS = {"left": 0.07, "right": 0.985, "bottom": 0.14, "top": 0.9, "wspace": 0.2}
GRID_MARGINS = {"left": 0.07, "right": 0.985, "bottom": 0.08, "top": 0.9, "wspace": 0.2, "hspace": 0.35}
SMALL_GRID_MARGINS = {"left": 0.05, "right": 0.985, "bottom": 0.07, "top": 0.9, "wspace": 0.25, "hspace": 0.45}
"""Fixed page layouts: tight_layout measured every label of every page again, a third of the
time a report took to render (0.3 s a sprint)."""
LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH", "kern")
"""OpenType layout tables: how a text shaper substitutes and positions glyphs. A PDF places
each glyph itself (matplotlib shaped the text from the font file), so no viewer reads them."""


def pdf_matplotlib():
    """(pyplot, PdfPages) on the Agg backend, with lean font subsets (lean_font_subsets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    lean_font_subsets()
    return plt, PdfPages


def lean_font_subsets() -> None:
    """Leave the layout tables out of the fonts embedded in our PDFs.

    matplotlib embeds each TrueType font (pdf.fonttype 42) as a subset made by fontTools, which
    decompiles and prunes DejaVu's layout tables for every font of every PDF: 0.15 s a font,
    over a second a sprint, almost half of the time a loop spends writing reports. The subset
    then carries tables no PDF viewer reads. matplotlib has no setting for this, so the options
    class it asks fontTools for drops them; the glyphs, their widths and the text that pdftotext
    extracts are unchanged (tests/report/test_report.py compares both)."""
    global _lean_installed
    if _lean_installed:
        return
    from fontTools import subset

    class LeanOptions(subset.Options):
        drops_layout_tables = True

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.drop_tables = [*self.drop_tables, *LAYOUT_TABLES]
            self.layout_features = []

    subset.Options = LeanOptions
    _lean_installed = True


_lean_installed = False


def plain(text: str) -> str:
    """Markdown's bold and code marks dropped, control characters as spaces: the PDF shows the words alone."""
    return clean(text).replace("**", "").replace("`", "")


def plain_ticks(axis) -> None:
    """Log-scale tick labels as plain numbers: matplotlib writes them as mathtext
    (`$\\mathdefault{10^{3}}$`), which the report shows verbatim (report.pdf turns mathtext off,
    so that agent-written `$...$` is never parsed)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def samples_ticks(axis) -> None:
    """A samples axis in k and M, at most six ticks: 200000 written out beside 175000 runs
    the labels together."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    def short(v: float, _=None) -> str:
        if abs(v) >= 1e6:
            return f"{v / 1e6:g}M"
        return f"{v / 1e3:g}k" if abs(v) >= 1e3 else f"{v:g}"

    axis.set_major_locator(MaxNLocator(6))
    axis.set_major_formatter(FuncFormatter(short))


def save(pdf, plt, fig) -> None:
    pdf.savefig(fig)
    plt.close(fig)


def notice_page(pdf, plt, title: str, message: str) -> None:
    """A page with its title and one grey sentence in the middle: what a figure would show is missing."""
    fig = plt.figure(figsize=PAGE)
    fig.text(0.04, 0.96, title, fontsize=14, weight="bold", va="top")
    fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, color="#57606a")
    save(pdf, plt, fig)


def scores_page(pdf, plt, content: dict) -> None:
    """F1 and MCC bars (mean ± std, every seed's point) of this sprint, its parent, the best
    so far and the baselines, against the probe ceiling."""
    rows, sprint = content["comparison"], content["s"]
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
                plain(r["label"])
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
        f"{pdf_line(sprint.get('title'), 120)}: scores against the parent, the best, the baselines and the probe ceiling",
        fontsize=11,
    )
    fig.subplots_adjust(**SCORES_MARGINS)
    save(pdf, plt, fig)


def curves_page(pdf, plt, curves: dict) -> None:
    if not curves:
        notice_page(
            pdf,
            plt,
            "Training curves, every seed",
            "No training curves were recorded for this sprint:\nno seed logged a training step.",
        )
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
            plain_ticks(ax.yaxis)
        samples_ticks(ax.xaxis)
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
    fig.subplots_adjust(**GRID_MARGINS)
    save(pdf, plt, fig)


def variant_page(pdf, plt, curves: dict, variant_metrics: list[dict]) -> None:
    """One small panel per metric the variant logged itself (curves.json's "variant"), every
    seed; a page that says so when it logged none."""
    from autosae.report.record import VARIANT_KEY, finite_number, metric_name

    title = "The variant's own logged metrics (TrainOutput.metrics), every seed"
    names = [m["name"] for m in variant_metrics]
    if not names:
        notice_page(pdf, plt, title, "The variant logged no metrics of its own.")
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
        samples_ticks(ax.xaxis)
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
    fig.subplots_adjust(**SMALL_GRID_MARGINS)
    save(pdf, plt, fig)


def quick_curves_page(pdf, plt, tables: list[dict]) -> None:
    """The latest quick run's thinned training curves (loss, L0, dead latents), one line per
    arm (report.evidence: labels are the agent's, drawn as plain text). Nothing is drawn when
    no quick run recorded curves."""
    from autosae.report.escape import pdf_line

    call = next((t for t in reversed(tables) if t.get("curves")), None)
    if call is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=PAGE)
    for ax, (key, label) in zip(axes, (("loss", "training loss"), ("l0", "L0"), ("dead", "dead latents"))):
        for arm, c in call["curves"].items():
            pairs = [
                (x, y) for x, y in zip(c.get("samples") or [], c.get(key) or []) if x is not None and y is not None
            ]
            if pairs:
                ax.plot(*zip(*pairs), label=pdf_line(arm, 30), linewidth=1.2)
        samples_ticks(ax.xaxis)
        ax.set_xlabel("training samples")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"Quick run {call['n']} (uncounted), training curves per arm", fontsize=12)
    fig.subplots_adjust(**GRID_MARGINS)
    save(pdf, plt, fig)
