"""report.pdf: matplotlib's PdfPages, no LaTeX and no browser.

    a scored sprint:  title · F1 and MCC bars · training curves · the variant's own metrics ·
                      metrics table · conclusions
    a failed sprint:  title · failure (reason, seeds, log tail) · training curves · the
                      variant's own metrics · conclusions
    either, with quick runs recorded: their tables and the latest one's curves before the conclusions
    a new best that was ablated: "what carries the gain", its parts' table, after the metrics

Text is embedded as TrueType (pdf.fonttype 42), so that pdftotext and search find the numbers.
A page whose data is missing says so instead of being left out, so every report has the same
shape; long text continues on further pages. What the pages say comes from report.content;
the pages that plot data are drawn by report.figures.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from autosae.report.escape import literal_text, pdf_line
from autosae.report.figures import (
    PAGE,
    curves_page,
    pdf_matplotlib,
    plain,
    quick_curves_page,
    save,
    scores_page,
    variant_page,
)
from autosae.report.format import MISSING, fmt_delta, fmt_num, fmt_p, fmt_pm

VERDICT_COLORS = {
    "improved": "#1a7f37",
    "worse": "#b42318",
    "no change": "#6e7781",
    "inconclusive": "#9a6700",
    "failed": "#b42318",
}
LINES_PER_PAGE = 46
WRAP = 125


def _wrap(text: str, width: int = WRAP) -> list[str]:
    lines = []
    for raw in (text or "").splitlines() or [""]:
        indent = len(raw) - len(raw.lstrip(" -*"))
        lines += textwrap.wrap(raw, width, subsequent_indent=" " * indent) or [""]
    return lines


def text_pages(pdf, plt, heading: str, sections: list[tuple[str, str]], mono: bool = False) -> None:
    """Headed sections of wrapped text, continued on as many pages as they need."""
    lines: list[tuple[str, str]] = []
    for title, body in sections:
        lines.append(("h", title))
        lines += [("t", line) for line in _wrap(plain(body), WRAP if not mono else 150)]
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
        save(pdf, plt, fig)


def _title_page(pdf, plt, content: dict) -> None:
    """The title, the verdict, the banner, the key numbers and the warnings."""
    sprint, verdict = content["s"], content["v"]
    fig = plt.figure(figsize=PAGE)
    fig.text(
        0.05,
        0.93,
        "\n".join(textwrap.wrap(pdf_line(sprint.get("title") or sprint.get("id") or "sprint"), 60)),
        fontsize=22,
        weight="bold",
        va="top",
    )
    fig.text(
        0.05,
        0.80,
        f"sprint {sprint.get('id')}   ·   parent {pdf_line(sprint.get('parent') or MISSING, 80)}\n"
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
    fig.text(0.05, 0.62, "\n".join(textwrap.wrap(plain(content["banner"]), 110)), fontsize=11, va="top")
    y = 0.50
    for label, value in content["key_numbers"]:
        fig.text(0.05, y, label, fontsize=11.5, color="#57606a")
        fig.text(0.29, y, value, fontsize=11.5 if len(value) < 26 else 10, weight="bold")
        y -= 0.042
    notes = content["warnings"]
    if notes:
        text = "\n".join(line for w in notes for line in textwrap.wrap("! " + plain(w), 64))
        fig.text(0.58, 0.50, "Warnings\n" + text, fontsize=9.5, va="top", color="#b42318")
    save(pdf, plt, fig)


def _metrics_page(pdf, plt, content: dict) -> None:
    per_seed, summary, results = content["per_seed"], content["summary"], content["r"]
    header = ["metric", "mean ± std"] + [f"seed {p.get('seed')}" for p in per_seed]
    cells = [
        [label, fmt_pm(summary.get(key), digits)] + [fmt_num(p.get(key), digits) for p in per_seed]
        for label, key, digits in content["metrics"]
    ]
    cells.append(["train seconds", MISSING] + [fmt_num(p.get("train_s"), 1) for p in per_seed])
    cells.append(["status", results.get("status") or MISSING] + [p.get("status") or MISSING for p in per_seed])
    fig = plt.figure(figsize=PAGE)
    fig.text(
        0.04, 0.95, "Metrics (SynthSAEBench scorer, computed by the harness)", fontsize=14, weight="bold", va="top"
    )
    _table(fig.add_axes([0.04, 0.15, 0.92, 0.72]), cells, header, 10, 1.8, cellLoc="center")
    save(pdf, plt, fig)


def _table(ax, cells: list[list[str]], header: list[str], size: float, height: float, **options) -> None:
    """A page's table, its header row bold on grey, on axes of its own."""
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="upper left", **options)
    table.auto_set_font_size(False)
    table.set_fontsize(size)
    table.scale(1, height)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#eaeef2")


def _ablation_page(pdf, plt, content: dict) -> None:
    """What carries the gain: each declared part trained removed (report.content.ablation_rows)."""
    ablation, name = content["ablation"], content["obj_name"]
    fig = plt.figure(figsize=PAGE)
    fig.text(0.04, 0.95, "What carries the gain (ablations)", fontsize=14, weight="bold", va="top")
    about = (
        f"Each part the implementer declared, trained removed (counted runs; {plain(ablation['note'])}). "
        f"Δ is the full variant's {name} minus the ablated one's; load-bearing: removing it significantly "
        f"hurts; parasitic: removing it significantly helps (Welch t-test, alpha {content['v'].get('alpha', MISSING)})."
    )
    fig.text(0.04, 0.89, "\n".join(textwrap.wrap(about, 165)), fontsize=9.5, va="top")
    rows = ablation["rows"]
    if rows:
        cells = [
            [pdf_line(r["part"], 32), "\n".join(textwrap.wrap(pdf_line(r["what"], 200), 60)) or MISSING]
            + [fmt_delta(r["delta"], 4), fmt_p(r["p"]), pdf_line(r["class"], 20)]
            for r in rows
        ]
        header = ["part", "what", f"Δ {name} (full − ablated)", "p", "class"]
        widths = [0.16, 0.46, 0.16, 0.09, 0.13]
        _table(fig.add_axes([0.04, 0.15, 0.92, 0.66]), cells, header, 9.5, 2.4, cellLoc="left", colWidths=widths)
    save(pdf, plt, fig)


def write_pdf(path: Path, content: dict) -> None:
    """report.pdf at `path`, from report.content.report_content."""
    import matplotlib

    plt, PdfPages = pdf_matplotlib()

    curves = content["curves"]
    # literal_text: agent- and variant-written text ($...$ in an idea, a log tail) is shown as
    # it is, never parsed as mathtext (an unknown symbol there would raise and stop the report
    # from ever being written)
    with (
        matplotlib.rc_context({"pdf.fonttype": 42, "font.size": 9}),
        literal_text(),
        PdfPages(path, metadata={"Title": pdf_line(content["s"].get("title")), "CreationDate": None}) as pdf,
    ):
        _title_page(pdf, plt, content)
        if content["ok"]:
            scores_page(pdf, plt, content)
            curves_page(pdf, plt, curves)
            variant_page(pdf, plt, curves, content["variant_metrics"])
            _metrics_page(pdf, plt, content)
            if content.get("ablation"):
                _ablation_page(pdf, plt, content)
        else:
            text_pages(pdf, plt, "Failure", content["failure_sections"], mono=True)
            curves_page(pdf, plt, curves)
            variant_page(pdf, plt, curves, content["variant_metrics"])
        if content.get("quick_runs"):
            from autosae.report.evidence import quick_runs_plain

            sections = [
                ("Not the verdict", content["quick_note"]),
                ("One table per call", quick_runs_plain(content["quick_runs"])),
            ]
            text_pages(pdf, plt, "Quick runs (implement phase, uncounted)", sections, mono=True)
            quick_curves_page(pdf, plt, content["quick_runs"])
        text_pages(pdf, plt, "Idea, change and conclusions", content["conclusion_sections"])
