"""A sprint's report: report.md (jinja2) and report.pdf (matplotlib), from the harness's
results, the engine's verdict and the agent's conclusion. Failed runs get a report too."""

from __future__ import annotations

import json
from pathlib import Path

from autosae.report.format import environment, fmt_delta, fmt_p, fmt_pm

METRICS = [("F1", "f1", 4), ("MCC", "mcc", 4), ("precision", "precision", 4), ("recall", "recall", 4),
           ("L0", "l0", 2), ("dead latents", "dead_latents", 1), ("explained variance", "explained_variance", 4)]


def _banner(results: dict, verdict: dict) -> str:
    obj = verdict.get("objective", "f1")
    stat = (results.get("summary") or {}).get(obj)
    if not stat:
        return verdict.get("reason") or "the run produced no scores"
    parent = verdict.get("parent") or {}
    text = f"{obj.upper()} {fmt_pm(stat)}"
    if parent.get("mean") is not None:
        text += (f" vs parent {fmt_pm(parent)} ({fmt_delta(verdict.get('delta_parent'))}, "
                 f"p = {fmt_p(verdict.get('p_value'))}, n = {stat.get('n')})")
    return text


def _comparison(results: dict, verdict: dict) -> list[dict]:
    obj = verdict.get("objective", "f1")
    summary = results.get("summary") or {}
    mine = (summary.get(obj) or {}).get("mean")
    rows = [{"label": "this sprint", "f1": summary.get("f1"), "mcc": summary.get("mcc"), "delta": None}]

    def add(label: str, stats: dict | None, obj_stat: dict | None) -> None:
        theirs = (obj_stat or {}).get("mean")
        delta = None if mine is None or theirs is None else mine - theirs
        rows.append({"label": label, "f1": (stats or {}).get("f1"), "mcc": (stats or {}).get("mcc"), "delta": delta})

    for key, label in (("parent", "parent"), ("best", "best before")):
        ref = verdict.get(key)
        if ref:
            stat = {"mean": ref.get("mean"), "std": ref.get("std")}
            add(f"{label} (`{ref.get('id')}`)", {"f1": ref.get("f1"), "mcc": ref.get("mcc"), obj: stat}, stat)
    for name, stats in (verdict.get("baselines") or {}).items():
        add(f"baseline {name}", stats, (stats or {}).get(obj))
    return rows


def render_markdown(sprint: dict, results: dict, verdict: dict, conclusion: str) -> str:
    ok = results.get("status") == "ok" and bool(results.get("summary"))
    c = results.get("constraints") or {}
    constraints = ", ".join(f"{k} {v}" for k, v in c.items()) or "—"
    return environment().get_template("report.md.j2").render(
        s=sprint, v=verdict, r=results, ok=ok, summary=results.get("summary") or {},
        per_seed=[p for p in results.get("per_seed", []) if p.get("status") == "ok"],
        n=len(sprint.get("seeds") or []), metrics=METRICS, comparison=_comparison(results, verdict) if ok else [],
        banner=_banner(results, verdict), conclusion=conclusion.strip() or "—", constraints=constraints,
        obj_name=verdict.get("objective", "f1").upper())


def _scores_page(pdf, plt, sprint: dict, results: dict, verdict: dict) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    parent = verdict.get("parent") or {}
    obj = verdict.get("objective", "f1")
    for ax, metric in zip(axes, ("f1", "mcc")):
        mine = [p[metric] for p in results.get("per_seed", []) if p.get("status") == "ok" and metric in p]
        ax.scatter([1] * len(mine), mine, color="tab:blue", zorder=3, label="this sprint (per seed)")
        if metric == obj and parent.get("values"):
            ax.scatter([0] * len(parent["values"]), parent["values"], color="tab:gray", zorder=3,
                       label=f"parent {parent.get('id')}")
        colors = {"batchtopk": "tab:red", "matryoshka": "tab:green"}
        for name, stats in (verdict.get("baselines") or {}).items():
            mean = ((stats or {}).get(metric) or {}).get("mean")
            if mean is not None:
                ax.axhline(mean, color=colors.get(name, "tab:purple"), linestyle="--", label=f"{name} (mean)")
        ax.set_xticks([0, 1], ["parent", "sprint"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_title(metric.upper())
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{sprint.get('title')} — verdict: {verdict.get('verdict')}", fontsize=11)
    fig.tight_layout()
    pdf.savefig(fig)
    plt.close(fig)


def _text_page(pdf, plt, sprint: dict, results: dict, verdict: dict) -> None:
    fig = plt.figure(figsize=(11, 4.5))
    lines = [sprint.get("title", ""), f"verdict: {verdict.get('verdict')}", "",
             f"reason: {results.get('reason') or verdict.get('reason')}", ""]
    lines += (results.get("log_tail") or "").splitlines()[-15:]
    fig.text(0.03, 0.95, "\n".join(line[:150] for line in lines), va="top", family="monospace", fontsize=7)
    pdf.savefig(fig)
    plt.close(fig)


def _curves_page(pdf, plt, run_dir: Path) -> bool:
    logs = sorted(run_dir.glob("seed_*/train_log.jsonl"))
    if not logs:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    for log in logs:
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if not entries:
            continue
        x = [e["samples"] for e in entries]
        seed = log.parent.name.removeprefix("seed_")
        axes[0].plot(x, [e["loss"] for e in entries], label=f"seed {seed}")
        axes[1].plot(x, [e["l0"] for e in entries], label=f"L0 seed {seed}")
        if "k" in entries[0]:
            axes[1].plot(x, [e.get("k") for e in entries], linestyle=":", label=f"K seed {seed}")
        axes[2].plot(x, [e["dead"] for e in entries], label=f"seed {seed}")
    for ax, title in zip(axes, ("training loss", "L0 (and K)", "dead latents")):
        ax.set_title(title)
        ax.set_xlabel("samples")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    pdf.savefig(fig)
    plt.close(fig)
    return True


def write_report(sprint_dir: Path, sprint: dict, results: dict, verdict: dict, conclusion: str,
                 run_dir: Path | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    sprint_dir.mkdir(parents=True, exist_ok=True)
    md = sprint_dir / "report.md"
    md.write_text(render_markdown(sprint, results, verdict, conclusion))
    pdf_path = sprint_dir / "report.pdf"
    with PdfPages(pdf_path, metadata={"Title": sprint.get("title", ""), "CreationDate": None}) as pdf:
        if results.get("status") == "ok" and results.get("summary"):
            _scores_page(pdf, plt, sprint, results, verdict)
        else:
            _text_page(pdf, plt, sprint, results, verdict)
        if run_dir is not None:
            _curves_page(pdf, plt, run_dir)
    return [md, pdf_path]
