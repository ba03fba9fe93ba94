"""Evidence carried forward from one phase to the next and into the record: the implement
phase's quick runs (run_experiment, SprintState.quick_runs), the implementer's pilot notes
(amend_proposal, SprintState.amendments) and a concluded sprint's lessons (its conclusion's
first sentence, its first next step, its held-out status) for the next proposer.

Everything in a quick run that the agent chose (arm labels, sources, options, failure reasons)
and every pilot note is untrusted text, and a record read back from git or a hand-edited state
may hold anything: the functions here accept any shape, keep only what they understand, bound
every string and count, and never raise. Renderers escape what they show (report.escape)."""

from __future__ import annotations

import math
import re
from typing import Any

MAX_CALLS = 30
"""The most quick-run calls a sprint's record keeps (the latest ones; the rest are counted)."""
MAX_ARMS = 8
"""The most arms shown per call."""
LABEL_CHARS, SOURCE_CHARS, REASON_CHARS = 60, 120, 300
CURVE_POINTS = 40
"""Points per arm and curve that the record keeps of a quick run's training curves."""
MAX_CURVES = 8
CURVE_KEYS = ("samples", "loss", "l0", "dead")
METRICS = ("f1", "mcc", "precision", "recall", "l0", "dead_latents", "explained_variance")
SHOWN = ("f1", "mcc")
MAX_AMENDMENTS = 5
"""The most pilot-note amendments one sprint may record (amend_proposal refuses more)."""
NOTE_CHARS = 2000
"""The most characters of each field of an amendment."""
CONCLUSION_CHARS, NEXT_STEP_CHARS, PILOT_CHARS = 400, 240, 600
"""What the propose prompt's past table shows of a sprint's lessons, at most: whole sentences
from the start of the conclusion and the next step; of the pilot notes, their start and their
end (where a later pilot's reversal and the change made usually are)."""


def _text(value: Any, limit: int) -> str:
    from autosae.report.escape import clean

    text = clean(value if isinstance(value, str) else "" if value is None else str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _stat(value: Any, with_p: bool = False) -> dict | None:
    """{mean, std, n[, p]} from a recorded stat (a bare number is a mean); None when unusable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {"mean": value}
    if not isinstance(value, dict) or _num(value.get("mean")) is None:
        return None
    out = {"mean": _num(value.get("mean")), "std": _num(value.get("std")), "n": _int(value.get("n"))}
    if with_p:
        out["p"] = _num(value.get("p"))
    return out


def _series(values: Any) -> list[float | None]:
    if not isinstance(values, list):
        return []
    values = values[:100_000]
    stride = max(1, -(-len(values) // CURVE_POINTS))
    kept = values[::stride]
    if values and len(values) > 1 and (len(values) - 1) % stride:
        kept.append(values[-1])
    return [_num(v) for v in kept]


def clean_quick_runs(raw: Any) -> list[dict]:
    """The quick runs as the record keeps them: the latest MAX_CALLS calls, each with at most
    MAX_ARMS arms and MAX_CURVES thinned curves, every string bounded; a call that is not an
    object is left out. The first entry's `dropped` counts calls left out."""
    calls = [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
    dropped, calls = max(0, len(calls) - MAX_CALLS), calls[-MAX_CALLS:]
    out = []
    for i, call in enumerate(calls):
        arms = [a for a in call.get("arms") or [] if isinstance(a, dict)] if isinstance(call.get("arms"), list) else []
        entry = {
            "n": _int(call.get("n")) if _int(call.get("n")) is not None else dropped + i + 1,
            "at": _text(call.get("at"), 40),
            "profile": _text(call.get("profile"), 40),
            "training_samples": _int(call.get("training_samples")),
            "seeds": [
                s for s in map(_int, call.get("seeds") if isinstance(call.get("seeds"), list) else []) if s is not None
            ][:16],
            "wall_s": _num(call.get("wall_s")),
            "arms": [clean_arm(a) for a in arms[:MAX_ARMS]],
            "arms_dropped": max(0, len(arms) - MAX_ARMS),
        }
        curves = call.get("curves") if isinstance(call.get("curves"), dict) else {}
        entry["curves"] = {
            _text(label, LABEL_CHARS) or "?": {k: _series(c.get(k)) for k in CURVE_KEYS}
            for label, c in list(curves.items())[:MAX_CURVES]
            if isinstance(c, dict)
        }
        out.append(entry)
    if out and dropped:
        out[0]["dropped"] = dropped
    return out


def clean_arm(arm: dict) -> dict:
    metrics = arm.get("metrics") if isinstance(arm.get("metrics"), dict) else {}
    delta = arm.get("delta_vs_parent") if isinstance(arm.get("delta_vs_parent"), dict) else {}
    status = arm.get("status") if arm.get("status") in ("ok", "failed") else "unknown"
    out = {
        "arm": _text(arm.get("arm"), LABEL_CHARS) or "?",
        "source": _text(arm.get("source"), SOURCE_CHARS),
        "status": status,
        "metrics": {m: s for m in METRICS if (s := _stat(metrics.get(m))) is not None},
        "delta_vs_parent": {m: s for m in METRICS if (s := _stat(delta.get(m), with_p=True)) is not None},
    }
    if arm.get("reason"):
        out["reason"] = _text(arm.get("reason"), REASON_CHARS)
    options = arm.get("options")
    if isinstance(options, dict) and options:
        out["options"] = _text(", ".join(f"{k}={v}" for k, v in list(options.items())[:12]), SOURCE_CHARS)
    elif isinstance(options, str) and options.strip():  # as the record keeps them (cleaned once already)
        out["options"] = _text(options, SOURCE_CHARS)
    return out


def _pm(stat: dict | None, digits: int = 4) -> str:
    from autosae.report.format import fmt_pm

    if not stat:
        return "—"
    text = fmt_pm(stat, digits)
    return text if stat.get("n") is None else f"{text} (n = {stat['n']})"


def _delta(stat: dict | None) -> str:
    from autosae.report.format import fmt_delta, fmt_p

    if not stat:
        return "—"
    text = fmt_delta(stat["mean"], 4)
    if stat.get("std") is not None and (stat.get("n") or 0) >= 2:
        text += f" ± {stat['std']:.4f}"
    if stat.get("n") is not None:
        text += f" (n = {stat['n']})"
    return text + (f", p = {fmt_p(stat['p'])}" if stat.get("p") is not None else "")


def quick_tables(raw: Any) -> list[dict]:
    """One table per quick-run call, its rows ready to show (untrusted strings still to escape
    by the renderer): {n, head, rows: [{arm, source, f1, mcc, delta, status}], more}."""
    tables = []
    for call in clean_quick_runs(raw):
        seeds = ", ".join(map(str, call["seeds"])) or "—"
        samples = "—" if call["training_samples"] is None else f"{call['training_samples']:,}"
        wall = "" if call["wall_s"] is None else f", {call['wall_s']:.0f} s"
        rows = [
            {
                "arm": a["arm"],
                "source": a["source"] + (f" ({a['options']})" if a.get("options") else ""),
                "f1": _pm(a["metrics"].get("f1")),
                "mcc": _pm(a["metrics"].get("mcc")),
                "delta": _delta(a["delta_vs_parent"].get("f1")),
                "status": a["status"] + (f": {a['reason']}" if a.get("reason") else ""),
            }
            for a in call["arms"]
        ]
        tables.append(
            {
                "n": call["n"],
                "head": f"call {call['n']}: profile {call['profile'] or '—'}, {samples} training samples, "
                f"quick seeds {seeds}{wall}",
                "rows": rows,
                "more": call["arms_dropped"],
                "curves": call["curves"],
            }
        )
    return tables


QUICK_NOTE = (
    "Uncounted: the implement phase's quick runs (run_experiment) train on quick seeds and are scored on "
    "validation samples that no counted run uses, at the budget each call states; they are not the verdict, which "
    "comes from the counted run alone."
)


def quick_runs_text(raw: Any) -> str:
    """The quick runs for a prompt: one block per call, one line per arm; every agent string on
    one bounded line."""
    from autosae.report.escape import one_line

    tables = quick_tables(raw)
    if not tables:
        return "(no quick runs were recorded)"
    lines = []
    for t in tables:
        lines.append(t["head"] + ":")
        lines.append("  arm | source | F1 mean ± std (n) | MCC | Δ F1 vs parent, p | status")
        lines += [
            "  " + " | ".join(one_line(r[k], 200) for k in ("arm", "source", "f1", "mcc", "delta", "status"))
            for r in t["rows"]
        ]
        if t["more"]:
            lines.append(f"  ({t['more']} more arms not shown)")
    return "\n".join(lines).replace("—", "-")


def quick_runs_plain(tables: list[dict]) -> str:
    """quick_tables' tables as fixed-width text (the PDF's page)."""
    from autosae.report.escape import one_line

    out = []
    for t in tables:
        out.append(t["head"])
        rows = [("arm", "F1 mean ± std (n)", "MCC", "Δ F1 vs parent, p", "status")]
        rows += [(one_line(r["arm"], 24), r["f1"], r["mcc"], r["delta"], one_line(r["status"], 40)) for r in t["rows"]]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        out += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
        out += [f"  source of {one_line(r['arm'], 24)}: {one_line(r['source'], 100)}" for r in t["rows"] if r["source"]]
        out.append("")
    return "\n".join(out)


def clean_amendments(raw: Any) -> list[dict]:
    """The pilot-note amendments as recorded: at most MAX_AMENDMENTS, each field bounded."""
    items = [a for a in raw if isinstance(a, dict)] if isinstance(raw, list) else []
    out = []
    for a in items[:MAX_AMENDMENTS]:
        entry = {"at": _text(a.get("at"), 40), "pilot_notes": _text(a.get("pilot_notes"), NOTE_CHARS)}
        for key in ("hypothesis", "plan"):
            if isinstance(a.get(key), str) and a[key].strip():
                entry[key] = _text(a[key], NOTE_CHARS)
        if entry["pilot_notes"]:
            out.append(entry)
    return out


def amendment_of(args: dict) -> dict:
    """amend_proposal's arguments checked: ValueError with what is wrong, one line."""
    notes = args.get("pilot_notes")
    if not isinstance(notes, str) or not notes.strip():
        raise ValueError("pilot_notes: expected a non-empty string (what the pilot runs showed, what changed)")
    entry = {"pilot_notes": notes.strip()}
    for key in ("hypothesis", "plan"):
        value = args.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string (the revised {key}) or nothing")
        entry[key] = value.strip()
    for key, value in entry.items():
        if len(value) > NOTE_CHARS:
            raise ValueError(f"{key}: {len(value):,} characters; at most {NOTE_CHARS:,}")
    return entry


def amendments_text(raw: Any) -> str:
    """The amendments for a prompt, after the original hypothesis."""
    lines = []
    for i, a in enumerate(clean_amendments(raw), 1):
        lines.append(f"Amended after pilots ({i}, {a['at'] or 'time not recorded'}): {a['pilot_notes']}")
        if a.get("hypothesis"):
            lines.append(f"  revised hypothesis: {a['hypothesis']}")
        if a.get("plan"):
            lines.append(f"  revised plan: {a['plan']}")
    return "\n".join(lines)


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z*])", " ".join((text or "").split()))


def first_sentence(text: str, limit: int) -> str:
    """The text's first whole sentences that fit in `limit` characters (the first one cut with
    "…" when it alone is longer): a first sentence such as "Inconclusive." is not the lesson."""
    out = ""
    for sentence in _sentences(text):
        joined = f"{out} {sentence}".strip()
        if len(joined) > limit:
            break
        out = joined
    if out:
        return out
    first = _sentences(text)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def ends(text: str, limit: int) -> str:
    """The text whole when it fits in `limit` characters, else its first and last whole
    sentences, half the limit each, joined by " … "."""
    flat = " ".join((text or "").split())
    if len(flat) <= limit:
        return flat
    half = limit // 2 - 2
    head, tail = first_sentence(flat, half), ""
    for sentence in reversed(_sentences(flat)):
        joined = f"{sentence} {tail}".strip()
        if len(joined) > half:
            break
        tail = joined
    return f"{head} … {tail}" if tail else head


_NEXT = re.compile(r"^\W*next( steps?)?\b", re.I)


def conclusion_parts(text: Any) -> tuple[str, str]:
    """(the conclusion's first sentence, its first next step), bounded; "" where there is none.
    Reads the LLM backends' layout (a paragraph, then **Next steps** and a list) and the recipe's
    (**Result.** ..., **Next.** ...)."""
    if not isinstance(text, str) or not text.strip():
        return "", ""
    lines = text.replace("\r", "\n").split("\n")
    summary, step, in_next = "", "", False
    for line in lines:
        bare = line.strip()
        if not bare:
            continue
        if _NEXT.match(bare.strip("*_ ")):
            in_next = True
            rest = re.sub(r"^\W*next( steps?)?\W*", "", bare, flags=re.I).strip(" *:")
            if rest and not step:
                step = rest
            continue
        if in_next and not step and bare[:1] in "-*0123456789":
            step = re.sub(r"^([-*]|\d+[.)])\s*", "", bare)
        if not summary and not bare.startswith(("**Did the change", "**Other", "- ", "```")):
            summary = re.sub(r"^\*\*(What changed|Result)\.\*\*\s*", "", bare)
    if text.lstrip().startswith("**What changed.**"):  # the recipe's: the result is the lesson
        found = re.search(r"\*\*Result\.\*\*\s*(.+)", text)
        summary = found.group(1) if found else summary
    return first_sentence(summary, CONCLUSION_CHARS), first_sentence(step, NEXT_STEP_CHARS)


def held_out_status(row: dict | None) -> str:
    """What the held-out models said of a sprint (a verdict or a ledger row): its recorded
    outcome ("confirmed", "consistent", "contradicted", "not confirmed"; bounded, a hand-edited
    row may hold any text), else, for a record from before outcomes, "confirmed" / "not
    confirmed" from `confirmed`, else "not verified"."""
    row = row or {}
    outcome = row.get("held_out_outcome")
    if isinstance(outcome, str) and outcome.strip():
        return _text(outcome, 40)
    return {True: "confirmed", False: "not confirmed"}.get(row.get("confirmed"), "not verified")


def pilot_summary(raw: Any) -> str:
    """The latest amendment's pilot notes, one bounded line ("" when none)."""
    found = clean_amendments(raw)
    return ends(found[-1]["pilot_notes"], PILOT_CHARS) if found else ""


def quick_summary(raw: Any) -> str:
    """The latest quick run in one line: each arm's F1 and Δ F1 vs the parent (for a lane's
    sprint in flight)."""
    from autosae.report.escape import one_line

    tables = [t for t in quick_tables(raw) if t["rows"]]
    if not tables:
        return ""
    t = tables[-1]
    arms = "; ".join(f"{one_line(r['arm'], 30)} F1 {r['f1']}, Δ {r['delta']}" for r in t["rows"][:4])
    return _text(f"quick run {t['n']}: {arms}", 300).replace("—", "-")
