"""A sprint's report: report.md and report.pdf, both rendered from what report.content says
the report contains (report.markdown and report.pdf draw it; neither imports the other)."""

from __future__ import annotations

from pathlib import Path

from autosae.report.content import report_content
from autosae.report.markdown import render_markdown
from autosae.report.pdf import write_pdf


def write_report(
    sprint_dir: Path,
    sprint: dict,
    results: dict | None,
    verdict: dict,
    curves: dict | None = None,
    project_root: Path | None = None,
) -> list[Path]:
    """report.md and report.pdf in sprint_dir. `sprint` is the sprint's record (see
    report.record), with its `conclusion` and `diff`; `curves` as report.record.read_curves.
    `project_root` is the project's main checkout, whose templates/report.md.j2 (if any)
    replaces the package's; never the agent's worktree, which sprint_dir may be in."""
    content = report_content(sprint, results, verdict, curves)
    content["transfer"] = transfer_summary(sprint_dir)
    if content["transfer"]:
        content["conclusion_sections"].append(("On a language model", content["transfer"]["text"]))
    sprint_dir.mkdir(parents=True, exist_ok=True)
    md = sprint_dir / "report.md"
    md.write_text(render_markdown(content, project_root))
    pdf = sprint_dir / "report.pdf"
    write_pdf(pdf, content)
    return [md, pdf]


def transfer_summary(sprint_dir: Path) -> dict | None:
    """The sprint's transfer (`autosae transfer`), from its sealed transfer.json: the verdict
    with its mark, a line per comparison, the cost; None when there is none of ours."""
    from autosae.transfer.record import recorded
    from autosae.transfer.report import cost_line, verdict_lines
    from autosae.transfer.verdict import LABELS, SYMBOLS

    data = recorded(sprint_dir)
    if data is None:
        return None
    s = data["settings"]
    head = (
        f"{SYMBOLS[data['verdict']]} {data['verdict']}: {LABELS[data['verdict_metric']]} against the "
        f"{data['verdict_against']} on {s['model']} ({s['hook']}), L0s {s['l0s']}; details in transfer.md and transfer.pdf."
    )
    lines = verdict_lines(data)
    return {
        "verdict": data["verdict"],
        "mark": SYMBOLS[data["verdict"]],
        "head": head,
        "lines": lines,
        "cost": cost_line(data),
        "text": head + "\n" + "\n".join(f"- {line}" for line in lines) + "\n" + cost_line(data),
    }


def scores_png(sprint_dir: Path, out: Path) -> Path:
    """The report's F1 and MCC figure (report.figures.scores_page) as a PNG at `out`, drawn from
    the sprint folder's records (sprint.json, results.json, verdict.json, curves.json), which
    only autosae writes: for a chat message, where a PDF page is one click too far."""
    from autosae.jsonio import read_json
    from autosae.report.figures import pdf_matplotlib, scores_page

    record, verdict = read_json(sprint_dir / "sprint.json"), read_json(sprint_dir / "verdict.json")
    if not isinstance(record, dict) or not isinstance(verdict, dict):
        raise ValueError("sprint.json or verdict.json is missing")
    results, curves = read_json(sprint_dir / "results.json"), read_json(sprint_dir / "curves.json")
    content = report_content(record, results if isinstance(results, dict) else None, verdict, curves)
    plt, _ = pdf_matplotlib()
    out.parent.mkdir(parents=True, exist_ok=True)

    class OnePng:  # scores_page draws onto a "PDF"; this one keeps its page as a PNG
        def savefig(self, fig) -> None:
            fig.savefig(out, dpi=80, metadata={"Software": None})

    from autosae.report.escape import literal_text

    with literal_text():  # the sprint's title is the agent's: never mathtext
        scores_page(OnePng(), plt, content)
    return out
