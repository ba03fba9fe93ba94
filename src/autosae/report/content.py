"""What a sprint's report says, whichever file shows it: the sections, tables, numbers,
warnings and verdict text, built from the sprint's record, results, verdict and curves.
report.markdown renders it as report.md and report.pdf as report.pdf; neither imports the
other. Anything missing is shown as missing ("—"), never as a zero."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from autosae.records import is_ok, ok_seeds
from autosae.report.escape import md_code
from autosae.report.evidence import held_out_status
from autosae.report.format import (
    MISSING,
    fmt_delta,
    fmt_floor,
    fmt_num,
    fmt_p,
    fmt_pm,
    measured,
    not_measurable,
)

METRICS = [
    ("F1", "f1", 4),
    ("MCC", "mcc", 4),
    ("precision", "precision", 4),
    ("recall", "recall", 4),
    ("L0", "l0", 2),
    ("dead latents", "dead_latents", 1),
    ("explained variance", "explained_variance", 4),
]


def probe_ceiling(profile_name: str | None) -> dict[str, float | None]:
    """The logistic-probe ceiling recorded for a profile (SynthSAEBench-16k: F1 0.97, from the
    write-up behind autosae); None where nobody has measured it."""
    from autosae.bench.profiles import PROFILES

    notes = getattr(PROFILES.get(profile_name or ""), "notes", {}) or {}
    return {"f1": notes.get("probe_ceiling_f1"), "mcc": notes.get("probe_ceiling_mcc")}


def baseline_noise(baselines: dict | None) -> dict[str, str]:
    """The profile's noise floor as reports print it: the larger seed-to-seed std of the two
    baselines, per metric (measured when the baselines were trained, and cached with them);
    "not measurable (n = 1)" where they ran on fewer than 2 seeds."""
    out = {}
    for metric in ("f1", "mcc"):
        stats = [(b or {}).get(metric) or {} for b in (baselines or {}).values()]
        stats = [s for s in stats if s.get("std") is not None]
        short = [s["n"] for s in stats if not measured(s)]
        if short:
            out[metric] = not_measurable(min(short))
        else:
            out[metric] = fmt_num(max(s["std"] for s in stats), 4) if stats else MISSING
    return out


def sprint_noise(results: dict, verdict: dict) -> str:
    """This sprint's noise floor as reports print it: a number, or "not measurable (n = 1)"
    when a side has fewer than 2 seeds (for verdicts recorded before noise_floor_note, from
    the seed counts on both sides)."""
    note = verdict.get("noise_floor_note")
    if note is None and verdict.get("noise_floor") is not None:
        from autosae.sprint.verdict import floor_note

        mine = ((results.get("summary") or {}).get(verdict.get("objective", "f1")) or {}).get("n")
        theirs = len((verdict.get("parent") or {}).get("values") or [])
        note = floor_note(mine, theirs) if mine and theirs else None
    return fmt_floor(verdict.get("noise_floor"), note)


def variant_metrics(curves: dict | None) -> list[dict]:
    """The variant's own logged metrics (curves.json's "variant", see report.record), one row
    per name: its first and last value per seed. Names are cleaned again here: curves.json
    is read back from git, where anyone may have edited it."""
    from autosae.report.record import MAX_VARIANT_METRICS, VARIANT_KEY, finite_number, metric_name

    rows: dict[str, dict] = {}
    for seed, c in (curves or {}).items():
        for raw, values in ((c or {}).get(VARIANT_KEY) or {}).items():
            name = metric_name(str(raw))
            if name not in rows and len(rows) >= MAX_VARIANT_METRICS:
                continue
            found = [v for v in map(finite_number, values if isinstance(values, list) else []) if v is not None]
            rows.setdefault(name, {"name": name, "seeds": {}})["seeds"][str(seed)] = (
                (found[0], found[-1]) if found else None
            )
    return list(rows.values())


def fmt_first_last(pair: tuple[float, float] | None) -> str:
    return MISSING if pair is None else f"{pair[0]:.4g} → {pair[1]:.4g}"


def _stat(value) -> dict | None:
    return None if value is None else {"mean": value, "std": None}


def comparison(sprint: dict, results: dict, verdict: dict) -> list[dict]:
    """Rows to compare this sprint with: parent, best before, baselines, probe ceiling. Each
    has f1/mcc stats (mean, std), per-seed values where known, and this sprint's objective
    minus the row's."""
    obj = verdict.get("objective", "f1")
    summary = results.get("summary") or {}
    mine = (summary.get(obj) or {}).get("mean")
    ok = ok_seeds(results)
    rows = [
        {
            "label": "this sprint",
            "kind": "sprint",
            "f1": summary.get("f1"),
            "mcc": summary.get("mcc"),
            "per_seed": {m: [p[m] for p in ok if m in p] for m in ("f1", "mcc")},
            "delta": None,
        }
    ]

    def add(label: str, kind: str, stats: dict) -> None:
        theirs = (stats.get(obj) or {}).get("mean")
        rows.append(
            {
                "label": label,
                "kind": kind,
                "f1": stats.get("f1"),
                "mcc": stats.get("mcc"),
                "per_seed": stats.get("per_seed") or {},
                "delta": None if mine is None or theirs is None else mine - theirs,
            }
        )

    parent, best = verdict.get("parent") or {}, verdict.get("best")
    baselines = verdict.get("baselines") or {}
    parent_is_baseline = (parent.get("id") or "").startswith("baseline:") and parent["id"][9:] in baselines
    if parent and not parent_is_baseline:
        same = best and best.get("id") == parent.get("id")
        add(
            f"parent {md_code(parent.get('id'))}" + (" (the best so far)" if same else ""),
            "parent",
            dict(parent, per_seed=parent.get("per_seed") or {obj: parent.get("values") or []}),
        )
    if best and best.get("id") != parent.get("id"):
        add(f"best before {md_code(best.get('id'))}", "best", dict(best, per_seed=best.get("per_seed") or {}))
    for name, stats in baselines.items():
        is_parent = parent.get("id") == f"baseline:{name}"
        add(
            f"baseline {name}" + (" (the parent)" if is_parent else ""),
            "parent" if is_parent else "baseline",
            stats or {},
        )
    ceiling = probe_ceiling(sprint.get("profile"))
    label = (
        "probe ceiling"
        if any(v is not None for v in ceiling.values())
        else f"probe ceiling (not measured for {md_code(sprint.get('profile'))})"
    )
    add(label, "ceiling", {m: _stat(v) for m, v in ceiling.items()})
    return rows


def warnings(sprint: dict, results: dict, verdict: dict) -> list[str]:
    """What a reader must not miss: a no-op, a breach, failed seeds, a run that does not count."""
    out = []
    if sprint.get("sandboxed") is False or (results.get("sandbox") or {}).get("enabled") is False:
        out.append(
            "**Ran without the OS sandbox** (TASK.md `sandbox: off`, or `auto` where bubblewrap could not "
            "run): the agent's commands and the variant could reach this machine's files, processes and "
            "network, so nothing but the harness's own checks stands behind these numbers."
        )
    if results.get("replayed"):
        out.append(
            "**Replayed, not trained:** AUTOSAE_REPLAY was set, so these numbers are a recording of an "
            "earlier run of the same variant (the test suite's harness stand-in), not a new training run."
        )
    cov = verdict.get("coverage") or {}
    if verdict.get("noop"):
        why = (
            "The variant's process forged the evidence that its change ran"
            if cov.get("forged") and "forged" in (verdict.get("noop_reason") or "")
            else "Whatever this sprint changed did not change the trained SAE"
        )
        out.append(f"**No-op suspected:** {verdict.get('noop_reason')}. {why}, so it is not a finding.")
    if cov.get("never_ran") and not verdict.get("noop"):
        from autosae.sprint.coverage import spans

        out.append(
            f"**Changed lines that never ran:** {len(cov['never_ran'])} of the {cov['changed']} lines the "
            f"sprint added or changed in variant.py (lines {spans(cov['never_ran'])}) did not run in the "
            f"traced training steps or scoring, as the variant's process reports its lines: part of the "
            f"change may be dead code."
        )
    if results.get("status") == "rejected":
        out.append(f"**Constraint breach:** {results.get('reason')}. The harness rejected the run.")
    for p in results.get("per_seed", []):
        if p.get("status") not in (None, "ok"):
            out.append(f"**Seed {p.get('seed')} {p.get('status')}** ({p.get('kind') or 'unknown'}): {p.get('reason')}")
    planned, scored = sprint.get("seeds") or [], ok_seeds(results)
    if is_ok(results) and planned and len(scored) < len(planned):
        out.append(f"**Only {len(scored)} of {len(planned)} seeds scored**: the statistics rest on fewer seeds.")
    if results.get("counted") is False:
        out.append(
            "**Not a benchmark result:** this run used changed constraints or data, so it is compared only "
            "with runs under the same ones."
        )
    status = held_out_status(verdict)
    if status == "contradicted" or (verdict.get("confirmed") is False and verdict.get("verdict") == "improved"):
        out.append(
            f"**{'Contradicted' if status == 'contradicted' else 'Not confirmed'} on held-out models:** "
            f"{verdict.get('held_out_reason')}"
            + (
                "; so it is not the new best, whatever it scored on the benchmark's model."
                if verdict.get("verdict") == "improved"
                else "."
            )
        )
    main = verdict.get("delta_parent")
    for h in verdict.get("held_out") or []:
        delta = h.get("delta_parent")
        opposite = main is not None and delta is not None and (delta > 0) != (main > 0)
        if h.get("verdict") in ("worse", "failed") or opposite:
            out.append(
                f"**Held-out model {h.get('name') or h.get('model_seed')} disagrees:** {h.get('verdict')} "
                f"there ({fmt_delta(h.get('delta_parent'), 4)} vs the parent)."
            )
    if sprint.get("stop"):
        out.append(f"**The loop stopped after this sprint:** {sprint['stop']}.")
    return out


def banner(results: dict, verdict: dict) -> str:
    """The one line under the verdict: the objective's score against the parent's, or why there is none."""
    obj = verdict.get("objective", "f1")
    stat = (results.get("summary") or {}).get(obj)
    if not stat:
        return verdict.get("reason") or results.get("reason") or "the run produced no scores"
    parent = verdict.get("parent") or {}
    if parent.get("n") is None and parent.get("values"):  # recorded before the verdict kept n
        parent = dict(parent, n=len(parent["values"]))
    text = f"{obj.upper()} {fmt_pm(stat)}"
    if parent.get("mean") is not None:
        text += (
            f" vs parent {fmt_pm(parent)} ({fmt_delta(verdict.get('delta_parent'))}, "
            f"p = {fmt_p(verdict.get('p_value'))}, n = {stat.get('n')})"
        )
    return text


def wall_time(sprint: dict) -> float | None:
    """Seconds from the sprint's start to its end, when both are recorded."""
    try:
        start, end = (datetime.fromisoformat(sprint[k].replace("Z", "+00:00")) for k in ("started", "finished"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def succeeded(results: dict) -> bool:
    return is_ok(results) and bool(results.get("summary"))


def origin_line(sprint: dict) -> str:
    """Where the agent says the idea comes from: its own words, so one line with Markdown and
    HTML escaped (it sits above the Sources section autosae records, and must not imitate it)."""
    from autosae.agents.literature import escape_markdown

    return escape_markdown(sprint.get("origin") or "", 600)


def source_links(sprint: dict) -> list[str]:
    """The sprint's recorded sources as Markdown links, escaped: their titles and URLs come
    from the web (see autosae.agents.literature)."""
    from autosae.agents.literature import clean_sources, markdown_link

    return [markdown_link(s) for s in clean_sources(sprint.get("sources") or [])]


def failure_sections(results: dict, verdict: dict) -> list[tuple[str, str]]:
    """(heading, text) of a failed sprint: why, each seed, the tail of the variant's log."""
    seeds = (
        "\n".join(
            f"seed {p.get('seed')}: {p.get('status')}"
            + (f" ({p.get('kind')}): {p.get('reason')}" if not is_ok(p) else "")
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


def conclusion_sections(sprint: dict) -> list[tuple[str, str]]:
    """(heading, text) of the idea, its origin and sources, the change and the conclusions."""
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
        ("Hypothesis (as proposed)", sprint.get("hypothesis") or MISSING),
        *amendment_sections(sprint),
        *literature_sections(sprint),
        ("The change", change),
        ("Conclusions and next steps (agent)", sprint.get("conclusion") or MISSING),
    ]


def amendment_sections(sprint: dict) -> list[tuple[str, str]]:
    """The implementer's pilot notes (amend_proposal), each after the original proposal."""
    from autosae.report.evidence import clean_amendments

    out = []
    for i, a in enumerate(clean_amendments(sprint.get("amendments")), 1):
        text = a["pilot_notes"]
        text += f"\nRevised hypothesis: {a['hypothesis']}" if a.get("hypothesis") else ""
        text += f"\nRevised plan: {a['plan']}" if a.get("plan") else ""
        out.append((f"Amended after pilots ({i}, {a['at'] or 'time not recorded'}; agent)", text))
    return out


REPORT_DIFF_CHARS = 20_000
"""The most of the diff that report.md shows: it comes before nothing that matters (the
conclusions come first), and the whole variant is in the sprint folder."""


def literature_sections(sprint: dict) -> list[tuple[str, str]]:
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


def key_numbers(sprint: dict, results: dict, verdict: dict) -> list[tuple[str, str]]:
    """The numbers a reader looks for first (the PDF's title page), as (label, value)."""
    summary = results.get("summary") or {}
    n = (summary.get("f1") or {}).get("n")
    objective = verdict.get("objective", "f1")
    return [
        ("F1", fmt_pm(summary.get("f1"), 4)),
        ("MCC", fmt_pm(summary.get("mcc"), 4)),
        (f"Δ {objective.upper()} vs parent", fmt_delta(verdict.get("delta_parent"), 4)),
        ("p (Welch t-test)", fmt_p(verdict.get("p_value"))),
        ("noise floor, this sprint", sprint_noise(results, verdict)),
        ("noise floor, the profile", baseline_noise(verdict.get("baselines")).get(objective)),
        ("seeds scored", f"{n if n is not None else 0} of {len(sprint.get('seeds') or [])}"),
        ("held-out models", held_out_status(verdict)),
        ("OS sandbox", {True: "yes", False: "NO"}.get(sprint.get("sandboxed"), "not recorded")),
        ("agent cost", MISSING if sprint.get("cost_usd") is None else f"${sprint['cost_usd']:.2f}"),
        ("sprint wall time", f"{fmt_num(wall_time(sprint), 0)} s"),
    ]


def report_content(sprint: dict, results: dict | None, verdict: dict, curves: dict | None = None) -> dict[str, Any]:
    """Everything a report shows, by name: these are also the variables report.md.j2 (and a
    project's own copy of it) is rendered with. `sprint` is the sprint's record (see
    report.record), with its `conclusion` and `diff`; `curves` as report.record.read_curves."""
    from autosae.report.evidence import QUICK_NOTE, clean_amendments, quick_tables

    results = results or {"status": "failed", "reason": verdict.get("reason")}
    curves = curves or {}
    diff = sprint.get("diff") if isinstance(sprint.get("diff"), dict) else None
    if diff and isinstance(diff.get("text"), str) and len(diff["text"]) > REPORT_DIFF_CHARS:
        diff = dict(diff, text=diff["text"][:REPORT_DIFF_CHARS], truncated=True)
    constraints = results.get("constraints") or {}
    return {
        "s": sprint,
        "v": verdict,
        "r": results,
        "curves": curves,
        "ok": succeeded(results),
        "summary": results.get("summary") or {},
        "per_seed": results.get("per_seed") or [],
        "n": len(sprint.get("seeds") or []),
        "metrics": METRICS,
        "comparison": comparison(sprint, results, verdict),
        "warnings": warnings(sprint, results, verdict),
        "banner": banner(results, verdict),
        "key_numbers": key_numbers(sprint, results, verdict),
        "conclusion": (sprint.get("conclusion") or "").strip() or "—",
        "constraints": ", ".join(f"{k} {v}" for k, v in constraints.items()) or "—",
        "diff": diff,
        "quick_runs": quick_tables(sprint.get("quick_runs")),
        "quick_note": QUICK_NOTE,
        "amendments": clean_amendments(sprint.get("amendments")),
        "obj_name": verdict.get("objective", "f1").upper(),
        "held_out": verdict.get("held_out") or [],
        "ablation": ablation_rows(verdict),
        "transfer": None,  # the sprint's transfer to a language model: report.sprint reads it from its folder
        "wall_s": wall_time(sprint),
        "tokens": sprint.get("tokens") or {},
        "sources": source_links(sprint),
        "origin": origin_line(sprint),
        "noise": baseline_noise(verdict.get("baselines")),
        "floor": sprint_noise(results, verdict),
        "variant_metrics": variant_metrics(curves),
        "seed_names": list(curves),
        "first_last": fmt_first_last,
        "variant_dropped": max(
            [
                c["variant_dropped"]
                for c in curves.values()
                if isinstance(c, dict) and isinstance(c.get("variant_dropped"), int)
            ]
            or [0]
        ),
        "failure_sections": failure_sections(results, verdict),
        "conclusion_sections": conclusion_sections(sprint),
    }


def ablation_rows(verdict: dict) -> dict | None:
    """The "what carries the gain" table from the verdict's ablation (autosae.sprint.ablation):
    {note, rows: [{part, what, delta, p, class}]}; None where none was run or refused."""
    ablation, note = verdict.get("ablation"), verdict.get("ablation_note")
    if not isinstance(ablation, dict):
        return {"note": str(note), "rows": []} if note else None
    rows = [r for r in ablation.get("rows") or [] if isinstance(r, dict)][:8]
    seeds = ablation.get("seeds") if isinstance(ablation.get("seeds"), list) else []
    samples = ablation.get("samples")
    return {
        "note": f"{len(seeds)} seeds, {samples:,} training samples per run"
        if isinstance(samples, int)
        else f"{len(seeds)} seeds",
        "rows": [
            {
                "part": r.get("part"),
                "what": r.get("what") or "",
                "delta": r.get("delta") if isinstance(r.get("delta"), (int, float)) else None,
                "p": r.get("p") if isinstance(r.get("p"), (int, float)) else None,
                "class": r.get("class") or "—",
            }
            for r in rows
        ],
    }
