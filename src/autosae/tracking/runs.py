"""What a recorded sprint becomes in an experiment tracker: one run per seed and one for the
sprint, built from the sprint's folder on the main branch and the ledger alone (never from the
agent's worktree), so that any recorded sprint can be logged again the same way.

Pure: nothing here imports a tracker. The child process (autosae.tracking.__main__) hands the
result to wandb as it is.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from autosae.errors import AutosaeError
from autosae.jsonio import read_json
from autosae.records import LEGACY_REPORTED, REPORTED, reported_by_variant
from autosae.report.record import CURVE_KEYS, VARIANT_KEY
from autosae.sprint.ledger import best_row, read_ledger

RUN_FIELDS = ("profile", "model_hash", "model_seed", "counted", "variant_sha256", "device", "versions")
"""What results.json says of the run that every seed's config carries too."""
SPRINT_FIELDS = ("title", "idea", "hypothesis", "parent", "backend", "objective", "seeds", "origin")
"""What sprint.json says of the sprint that the sprint run's config carries."""
VERDICT_FIELDS = (
    "verdict",
    "reason",
    "delta_parent",
    "p_value",
    "new_best",
    "confirmed",
    "held_out_outcome",
    "noop",
    "explore",
)
"""What the ledger row says of the verdict that the sprint run's summary carries."""


def run_id(project_id: str, sprint_id: str, part: str) -> str:
    """The same W&B run id every time a sprint is logged (the project's root commit, the
    sprint and the part), so that logging again resumes the run rather than adding one."""
    return hashlib.sha256(f"{project_id}/{sprint_id}/{part}".encode()).hexdigest()[:16]


def artifact_name(kind: str, sprint_id: str) -> str:
    """W&B artifact names take letters, digits, `-`, `_` and `.` only."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{kind}-{sprint_id}")


def scalars(record: dict | None) -> dict:
    """The finite numbers, strings and booleans of a record (no lists such as probe sketches,
    no failed seed's log tail: the report has it). What the variant's process reported about
    itself comes under `reported_by_variant/<name>`, never as a figure of the harness's, in
    records from before that part existed too."""
    out = {}
    reported = reported_by_variant(record)
    memory = reported.pop("memory", None)
    labelled = {f"{REPORTED}/{k}": v for k, v in {**reported, **(memory if isinstance(memory, dict) else {})}.items()}
    own = {k: v for k, v in (record or {}).items() if k not in LEGACY_REPORTED and k != REPORTED}
    for key, value in {**own, **labelled}.items():
        if key == "log_tail" or (isinstance(value, float) and not math.isfinite(value)):
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


def history(curves: dict) -> list[dict]:
    """One seed's curves (curves.json) as tracker history rows, one per logged point: the
    harness's curves by their names, the variant's own under `variant/<name>`; a point's
    missing values are left out, never logged as zero."""
    rows = []
    for i in range(len(curves.get("samples") or [])):
        row = {k: curves[k][i] for k in CURVE_KEYS if i < len(curves.get(k) or []) and curves[k][i] is not None}
        for name, values in (curves.get(VARIANT_KEY) or {}).items():
            if i < len(values) and values[i] is not None:
                row[f"{VARIANT_KEY}/{name}"] = values[i]
        rows.append(row)
    return rows


def best_so_far(rows: list[dict], row: dict, verdict: dict) -> dict:
    """The loop's best in this sprint's setting once it was recorded (the ledger up to its
    row): the latest new best, else the Matryoshka baseline every sprint starts from."""
    upto = rows[: rows.index(row) + 1] if row in rows else rows
    best = best_row(upto, row.get("setting", ""))
    if best is not None:
        return {"best_so_far": best["id"], **_mean_of(best, "best_{}_so_far")}
    base = (verdict.get("baselines") or {}).get("matryoshka")
    return {"best_so_far": "baseline:matryoshka", **_mean_of(base, "best_{}_so_far")} if base else {}


def _mean_of(record: dict | None, name: str) -> dict:
    out = {}
    for metric in ("f1", "mcc"):
        value = (record or {}).get(metric)
        if isinstance(value, dict) and value.get("mean") is not None:
            out[name.format(metric)] = value["mean"]
    return out


def sprint_runs(root: Path, project_id: str, sprint_id: str) -> dict:
    """{"seeds": [run, ...], "sprint": run} for the recorded sprint `sprint_id`, each run a
    dict of id, name, group, job_type, config, history, summary and artifacts ({name, type,
    files}). Links: each seed's config names the sprint run's id; the sprint run's lists the
    seed runs (the child adds their URLs once they exist)."""
    folder = root / "sprints" / sprint_id
    if not (folder / "DONE").is_file():
        raise AutosaeError(f"sprint {sprint_id} is not recorded in {folder}")
    results = read_json(folder / "results.json") or {}
    curves = read_json(folder / "curves.json") or {}
    verdict = read_json(folder / "verdict.json") or {}
    record = read_json(folder / "sprint.json") or {}
    rows = read_ledger(root / "reports" / "ledger.jsonl")
    row = next((r for r in rows if r.get("id") == sprint_id), {"id": sprint_id, **verdict})
    sprint_run = run_id(project_id, sprint_id, "sprint")
    common = {
        "sprint": sprint_id,
        "variant_config": record.get("config"),
        "constraints": results.get("constraints"),
        "setting": row.get("setting"),
        **{k: results.get(k) for k in RUN_FIELDS},
    }
    per_seed = {str(s.get("seed")): s for s in results.get("per_seed") or [] if isinstance(s, dict)}
    code = {"name": artifact_name("variant", sprint_id), "type": "code", "files": _existing(folder, "variant.py")}
    seeds = []
    for seed in sorted(set(curves) | set(per_seed), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)):
        seeds.append(
            {
                "id": run_id(project_id, sprint_id, f"seed {seed}"),
                "name": f"{sprint_id}/seed {seed}",
                "group": sprint_id,
                "job_type": "seed",
                "config": common | {"seed": int(seed) if seed.isdigit() else seed, "sprint_run": sprint_run},
                "history": history(curves.get(seed) or {}),
                "summary": scalars(per_seed.get(seed)),
                "artifacts": [code] if code["files"] else [],
            }
        )
    summary = {k: row.get(k) for k in VERDICT_FIELDS if k in row}
    for metric in ("f1", "mcc"):
        value = row.get(metric) or {}
        summary |= {metric: value.get("mean"), f"{metric}_std": value.get("std")} if isinstance(value, dict) else {}
    summary |= best_so_far(rows, row, verdict) | {"cost_usd": row.get("cost_usd")}
    report = {"name": artifact_name("report", sprint_id), "type": "report"}
    report["files"] = _existing(folder, "report.pdf", "report.md")
    sprint = {
        "id": sprint_run,
        "name": sprint_id,
        "group": sprint_id,
        "job_type": "sprint",
        "config": common
        | {k: record.get(k) for k in SPRINT_FIELDS}
        | {"seed_runs": [{"seed": s["config"]["seed"], "id": s["id"]} for s in seeds]},
        "history": [],
        "summary": summary,
        "artifacts": [report] if report["files"] else [],
    }
    return {"seeds": seeds, "sprint": sprint}


def _existing(folder: Path, *names: str) -> list[str]:
    """The named files of the folder that are there (a link is never followed out of it)."""
    return [str(folder / n) for n in names if (folder / n).is_file() and not (folder / n).is_symlink()]
