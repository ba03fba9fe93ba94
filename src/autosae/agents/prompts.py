"""What the LLM backends (anthropic, claude_code) tell the model: prompts rendered from the
templates in templates/agent/ by autosae.templating (a project's own templates/agent/ first),
and the shape of their answers."""

from __future__ import annotations

import difflib
import importlib.util
import json
from pathlib import Path

from autosae.agents.base import AgentContext, Conclusion, Proposal
from autosae.parents import baseline_parents
from autosae.sprint.coverage import spans

DEFAULT_TURNS = {"propose": 15, "implement": 60, "conclude": 15, "review": 15}
REVIEW_ITEMS = 3
"""The most untested axes and blind spots the stuck ladder's review asks for and writes: with
the argument against, 7 notebook lines, within the notebook's 8 per writer (sprint.notebook)."""


def render(name: str, project_root: Path | None = None, **values) -> str:
    """templates/agent/`name`, the project's own copy where its main checkout has one
    (`project_root`: AgentContext.project_root, never the agent's worktree)."""
    from autosae.templating import render as render_template

    return render_template(f"agent/{name}", project_root, **{"library": library_paths(), **values})


def library_paths() -> dict[str, str]:
    """Where the component library and the reference variants are (the agents read them):
    found, not imported, since importing them starts torch."""
    return {name: str(Path(importlib.util.find_spec(f"autosae.{name}").origin).parent) for name in ("sae", "variants")}


def turn_limits(max_turns: dict | int | None) -> dict[str, int]:
    """Most model calls per phase: TASK.md's agent.max_turns (a dict, or an int for all)."""
    turns = (
        max_turns if isinstance(max_turns, dict) else ({p: int(max_turns) for p in DEFAULT_TURNS} if max_turns else {})
    )
    return {**DEFAULT_TURNS, **{k: int(v) for k, v in turns.items()}}


def library_mounts() -> dict[str, Path]:
    """The library as the `view` tool shows it, read-only: autosae/sae/ and autosae/variants/."""
    return {f"autosae/{name}": Path(path) for name, path in library_paths().items()}


def system_prompt(ctx: AgentContext) -> str:
    """The system prompt of every phase: the role, the contract and benchmark card, TASK.md's body."""
    return render("system.md.j2", ctx.project_root, ctx=ctx)


def propose_prompt(ctx: AgentContext, idea: str | None) -> str:
    return render(
        "propose.md.j2",
        ctx.project_root,
        ctx=ctx,
        number=ctx.sprint_number + 1,
        baselines=ctx.baselines,
        best=ctx.best,
        past=[p for p in ctx.past if p.id == "(refused)"] if ctx.explore else ctx.past,
        comments=[] if ctx.explore else ctx.comments,
        idea=idea,
        explore=ctx.explore,
        backend=ctx.backend,
        power=ctx.power,
        baseline_parents=baseline_parents(),
    )


def review_prompt(ctx: AgentContext, reason: str) -> str:
    """The stuck ladder's step-back review: the ledger, the notebook, the power block, and the
    three things to answer (autosae.sprint.ladder)."""
    return render(
        "review.md.j2",
        ctx.project_root,
        ctx=ctx,
        reason=reason,
        baselines=ctx.baselines,
        best=ctx.best,
        past=ctx.past,
        backend=ctx.backend,
        power=ctx.power,
        items=REVIEW_ITEMS,
    )


def implement_prompt(proposal: Proposal, sprint_dir: Path, ctx: AgentContext) -> tuple[Path, str, str]:
    """(the worktree, the sprint folder relative to it, the prompt). The prompt inlines the
    parent's variant, which the sprint starts from."""
    worktree = Path(ctx.worktree or sprint_dir.parent.parent)
    folder = sprint_dir.relative_to(worktree).as_posix()
    parent = parent_variant(ctx.project_root, proposal.parent)
    root = Path(ctx.project_root) if ctx.project_root else None
    prompt = render(
        "implement.md.j2",
        ctx.project_root,
        ctx=ctx,
        backend=ctx.backend,
        folder=folder,
        title=proposal.title,
        idea=proposal.idea,
        hypothesis=proposal.hypothesis,
        plan=proposal.plan,
        parent=proposal.parent or "baseline:matryoshka",
        parent_variant=parent.relative_to(root).as_posix() if parent and root and root in parent.parents else None,
        parent_source=source(parent).strip(),
        width=ctx.width,
        k=ctx.k,
    )
    return worktree, folder, prompt


def conclude_prompt(proposal: Proposal, results: dict, verdict: dict, ctx: AgentContext) -> tuple[Path, str]:
    """(the worktree, the prompt)."""
    worktree = Path(ctx.worktree or ".")
    mine = worktree / "sprints" / (ctx.sprint_id or "?") / "variant.py"
    from autosae.report.evidence import QUICK_NOTE, amendments_text, quick_runs_text
    from autosae.report.format import MISSING, fmt_floor
    from autosae.sprint.notebook import MAX_ENTRIES

    prompt = render(
        "conclude.md.j2",
        ctx.project_root,
        ctx=ctx,
        backend=ctx.backend,
        sprint_id=ctx.sprint_id or "?",
        title=proposal.title,
        hypothesis=proposal.hypothesis,
        parent=proposal.parent or "-",
        results=json.dumps(honest_stds(results_digest(results)), indent=1, default=float),
        verdict=json.dumps(honest_stds(verdict), indent=1, default=float),
        noop=verdict.get("noop_reason"),
        never_ran=spans((verdict.get("coverage") or {}).get("never_ran") or []),
        diff=diff(parent_variant(ctx.project_root, proposal.parent), mine),
        beside=metrics_beside(results.get("summary") or {}, ctx.parent_metrics, proposal.parent or "-"),
        floor=fmt_floor(verdict.get("noise_floor"), verdict.get("noise_floor_note")).replace(MISSING, "-"),
        curves=curves_text(ctx.curves),
        ablation=ablation_text(verdict),
        parent_curves=curves_text(ctx.parent_curves),
        amended=amendments_text(ctx.amendments),
        quick_runs=quick_runs_text(ctx.quick_runs) if ctx.quick_runs else "",
        quick_note=QUICK_NOTE,
        notebook_max=MAX_ENTRIES,
    )
    return worktree, prompt


def honest_stds(data):
    """`data` with every std measured on fewer than 2 seeds ({mean, std, n} with n < 2) given
    as "not measurable (n = 1)" instead of the 0.0 the records hold."""
    from autosae.report.format import measured, not_measurable

    if isinstance(data, list):
        return [honest_stds(v) for v in data]
    if not isinstance(data, dict):
        return data
    out = {k: honest_stds(v) for k, v in data.items()}
    if "std" in out and "n" in out and not measured(out):
        out["std"] = not_measurable(out["n"])
    return out


def metrics_beside(mine: dict, parent: dict | None, parent_id: str) -> str:
    """Every metric the harness recorded, this sprint's beside the parent's, one a line."""
    from autosae.harness.run import METRICS
    from autosae.report.format import fmt_stat

    if not parent:
        return f"(no metrics are recorded for the parent {parent_id})"
    names = [m for m in METRICS if m in mine or m in parent]
    names += sorted(m for m in {*mine, *parent} - set(names))
    lines = [f"metric | this sprint | parent {parent_id}"]
    lines += [f"{m} | {fmt_stat(mine.get(m), missing='-')} | {fmt_stat(parent.get(m), missing='-')}" for m in names]
    return "\n".join(lines)


def ablation_text(verdict: dict) -> str:
    """The ablation phase's table (autosae.sprint.ablation) as lines, "" where none ran: each
    declared part, the objective with it minus without it, Welch p, and its class."""
    from autosae.report.content import ablation_rows
    from autosae.report.format import fmt_delta, fmt_p

    table, ablation = ablation_rows(verdict), verdict.get("ablation")
    if table is None:
        return ""
    if not isinstance(ablation, dict):
        return f"(no ablation: {table['note']})"
    lines = [f"part | what | {str(ablation.get('objective') or 'f1').upper()} with it minus without | p | class"]
    for r in table["rows"]:
        what = " ".join(str(r["what"]).split())[:200]
        kind = "-" if r["class"] == "—" else r["class"]
        lines.append(f"{r['part']} | {what} | {fmt_delta(r['delta'], 4)} | {fmt_p(r['p'])} | {kind}")
    return "\n".join(lines)


def curves_text(curves: dict | None) -> str:
    """The compact curves (report.record.compact_curves) as one line per seed and quantity;
    the variant's own metrics are prefixed `variant.`."""
    if not curves:
        return "(no training curves were recorded)"

    def row(label: str, values: list) -> str:
        return f"  {label}: " + ", ".join("-" if v is None else f"{v:.4g}" for v in values)

    lines = []
    for seed, c in curves.items():
        lines.append(f"seed {seed}:")
        lines.append(row("training samples", c.get("samples") or []))
        lines += [
            row(label, c.get(key) or []) for key, label in (("loss", "loss"), ("l0", "L0"), ("dead", "dead latents"))
        ]
        lines += [row(f"variant.{name}", values) for name, values in (c.get("variant") or {}).items()]
    return "\n".join(lines)


def conclusion_markdown(out: dict) -> Conclusion:
    """The conclude phase's answer (checks, alternatives, conclusion, next_steps) as Markdown."""

    def items(value) -> list[str]:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    lines = [
        str(out["conclusion"]).strip(),
        "",
        f"**Did the change run?** {str(out['checks']).strip()}",
        "",
        "**Other explanations considered**",
        *[f"- {a}" for a in items(out["alternatives"])],
        "",
        "**Next steps**",
        *[f"- {s}" for s in items(out["next_steps"])],
    ]
    return Conclusion("\n".join(lines), notebook=out.get("notebook") or [])


def parent_variant(project_root: Path | None, parent: str | None) -> Path | None:
    """The parent's variant.py: a reference variant, or a recorded sprint's as the project's
    main checkout has it (never the agent's worktree, where the agent may have put a link to
    any file of the host in its place)."""
    from autosae.variants import reference_variants

    if parent and parent.startswith("baseline:"):
        return reference_variants().get(parent.removeprefix("baseline:"))
    recorded = Path(project_root) / "sprints" / parent / "variant.py" if parent and project_root else None
    if recorded is not None and recorded.is_file() and not recorded.is_symlink():
        return recorded
    return reference_variants().get("matryoshka")


DIFF_CHARS = 64_000
"""The most of the conclude prompt's diff (the agent's variant.py may be of any size)."""


def source(path: Path | None) -> str:
    """A variant's source for a prompt: a bounded prefix (autosae.bounded), "" where there is none."""
    from autosae.bounded import text_prefix

    try:
        return text_prefix(path) if path and path.is_file() else ""
    except OSError:
        return ""


def diff(parent: Path | None, mine: Path | None) -> str:
    a, b = source(parent).splitlines(), source(mine).splitlines()
    text = "\n".join(difflib.unified_diff(a, b, "parent/variant.py", "variant.py", lineterm=""))
    if len(text) > DIFF_CHARS:
        text = text[:DIFF_CHARS] + f"\n[... the diff is cut at {DIFF_CHARS:,} characters]"
    return text or "(no difference)"


def results_digest(results: dict) -> dict:
    keep = (
        "f1",
        "mcc",
        "precision",
        "recall",
        "l0",
        "dead_latents",
        "explained_variance",
        "status",
        "seed",
        "train_wall_s",
    )
    return {
        "status": results.get("status"),
        "summary": results.get("summary"),
        "per_seed": [{k: v for k, v in r.items() if k in keep} for r in results.get("per_seed", [])],
    }
