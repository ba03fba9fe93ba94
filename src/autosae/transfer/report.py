"""transfer.md and transfer.pdf: the verdicts, the cost line, a Pareto plot per metric against
L0 (the variant, its parent and the baseline, per-seed points and mean ± std error bars), and
every run's numbers."""

from __future__ import annotations

from pathlib import Path

from autosae.jsonio import write_text
from autosae.report.escape import md_cell, pdf_line
from autosae.report.format import fmt_num
from autosae.transfer import verdict as stats
from autosae.transfer.settings import METRICS

COLORS = {"variant": "#0969da", "parent": "#6e7781", "baseline": "#bf8700"}
PLOTTED = (*METRICS, "dead_latents")


def verdict_lines(data: dict) -> list[str]:
    """One sentence per comparison and metric."""
    lines = []
    for other, by_metric in data["comparisons"].items():
        for metric, c in by_metric.items():
            label = stats.LABELS[metric]
            if c.get("why"):
                lines.append(f"{label} vs {other}: **{c['verdict']}** ({c['why']})")
                continue
            if c["n"] == 0:
                lines.append(f"{label} vs {other}: {c['verdict']} (no pair of runs finished)")
                continue
            text = f"{label} vs {other}: **{c['verdict']}** (mean difference {c['mean_diff']:+.4g}"
            text += f" over {c['n']} (L0, seed) pairs"
            text += f", p = {c['p_value']:.3g})" if c["p_value"] is not None else ", no test with one pair)"
            if c["verdict"] == stats.INCONCLUSIVE:
                text += (
                    f"; deciding it needs about {c['seeds_needed']} seeds per L0 (80% power)"
                    if c["seeds_needed"]
                    else "; no difference to size a budget on"
                )
            if c.get("variant_failed"):
                text += f"; {c['variant_failed']} run(s) of the variant failed or were rejected (see Runs)"
            lines.append(text)
    return lines


def cost_line(data: dict) -> str:
    c = data["cost"]
    unit = c["unit"]
    each = c["per_sae"] * 3600
    each_text = f"{each:.3g} s" if each < 60 else f"{each / 60:.3g} min" if each < 3600 else f"{each / 3600:.3g} h"
    line = f"{c['spent']:.3g} {unit} spent on {c['runs']} SAEs ({each_text} each)"
    step = f"{c['next_seeds']} seeds per L0" + (
        " (capped; the effect may be too small to matter)" if c["capped"] else ""
    )
    return line + f"; the next step up, {step}: {c['next_runs']} more SAEs, about {c['next']:.3g} {unit}."


def markdown(data: dict) -> str:
    s = data["settings"]
    head = "the parent is the baseline" if data["parent_is_baseline"] else f"parent {data['parent']}"
    mark = stats.SYMBOLS[data["verdict"]]
    out = [
        f"# Transfer of sprint {md_cell(data['sprint'])}: {md_cell(data['title'])}",
        "",
        f"**Verdict {mark} {data['verdict']}**: {stats.LABELS[data['verdict_metric']]} of the variant against "
        f"its {data['verdict_against']} on {s['model']} ({s['hook']}), across {len(s['l0s'])} L0s x "
        f"{len({r['seed'] for r in data['runs']})} seeds ({head}).",
        "",
        "## Verdicts",
        f"Paired by L0 and seed; two-sided one-sample t-test of the differences at alpha = {data['alpha']:g}.",
        "",
        *[f"- {line}" for line in verdict_lines(data)],
        "",
        "## Cost",
        cost_line(data),
        "",
        "## Setting",
        f"model {s['model']}, hook {s['hook']}, dataset {s['dataset']}, context {s['context_size']}, "
        f"{s['tokens']:,} training tokens per SAE, width {s['width']}, batch {s['batch_size']} tokens, "
        f"lr {s['lr']:g}, L0s {s['l0s']}, evaluation on {s['eval_batches'] * s['eval_batch_prompts']} held-out "
        f"prompts (SAELens's evaluation), device {data['device']}.",
        "",
        "## Runs",
        "| SAE | target L0 | seed | L0 | CE loss recovered | explained variance | MSE | dead | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(data["runs"], key=lambda r: (r["kind"], r["l0_target"], r["seed"])):
        if r.get("status") == "ok":
            out.append(
                f"| {r['kind']} | {r['l0_target']} | {r['seed']} | {fmt_num(r['l0'], 2)} | "
                f"{fmt_num(r['ce_loss_score'], 4)} | {fmt_num(r['explained_variance'], 4)} | {fmt_num(r['mse'], 4)} | "
                f"{r['dead_latents']} | ok |"
            )
        else:
            out.append(
                f"| {r['kind']} | {r['l0_target']} | {r['seed']} | - | - | - | - | - | "
                f"{md_cell(r.get('status'))}: {md_cell(r.get('reason', ''), 120)} |"
            )
    return "\n".join(out) + "\n"


def write_pdf(path: Path, data: dict) -> None:
    import matplotlib

    from autosae.report.figures import PAGE, pdf_matplotlib, save
    from autosae.report.pdf import text_pages

    plt, PdfPages = pdf_matplotlib()
    with (
        matplotlib.rc_context({"pdf.fonttype": 42, "font.size": 9, "text.parse_math": False}),
        PdfPages(path, metadata={"Title": f"Transfer of {data['sprint']}", "CreationDate": None}) as pdf,
    ):
        fig = plt.figure(figsize=PAGE)
        mark = stats.SYMBOLS[data["verdict"]]
        fig.text(0.04, 0.96, f"Transfer of sprint {data['sprint']}", fontsize=14, weight="bold", va="top")
        fig.text(0.04, 0.915, pdf_line(data["title"], 150), fontsize=10, va="top")
        fig.text(
            0.04,
            0.88,
            f"Verdict {mark} {data['verdict']} ({stats.LABELS[data['verdict_metric']]} vs {data['verdict_against']})",
            fontsize=11,
            va="top",
        )
        fig.subplots_adjust(left=0.06, right=0.985, bottom=0.14, top=0.8, wspace=0.28)
        for i, metric in enumerate(PLOTTED):
            ax = fig.add_subplot(1, len(PLOTTED), i + 1)
            for kind, points in stats.per_l0(data["runs"], metric).items():
                color = COLORS.get(kind, "#000000")
                for p in points:
                    ax.scatter(p["l0s"], p["values"], s=12, color=color, alpha=0.45)
                ax.errorbar(
                    [p["l0"] for p in points],
                    [p["mean"] for p in points],
                    yerr=[p["std"] for p in points],
                    color=color,
                    marker="o",
                    capsize=3,
                    label=kind,
                )
            ax.set_xlabel("L0 (measured)")
            ax.set_title(stats.LABELS[metric])
            ax.grid(alpha=0.3)
            if i == 0:
                ax.legend(loc="best")
        fig.text(0.04, 0.03, cost_line(data), fontsize=9, va="bottom")
        save(pdf, plt, fig)
        sections = [("Verdicts", "\n".join(f"- {line}" for line in verdict_lines(data))), ("Cost", cost_line(data))]
        text_pages(pdf, plt, "Verdicts and cost", sections)


def write_reports(folder: Path, data: dict) -> None:
    write_text(folder / "transfer.md", markdown(data))
    write_pdf(folder / "transfer.pdf", data)
