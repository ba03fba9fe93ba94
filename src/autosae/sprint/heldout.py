"""The held-out suite: models the agent never sees, on which a new best must hold up before it
is confirmed.

Each project draws its own secret model seeds at init and keeps them in the user cache folder,
outside the project and out of every sandbox's sight (see project_secrets). The suite is, in order:

    heldout-a    the profile's generator with secret seed a
    correlated   secret seed b, feature correlations 3x stronger
    superposed   secret seed c, hidden dimension 3/4 of the profile's (more superposition)
    heldout-d    secret seed d
    shallow      secret seed e, hierarchy one level shallower

TASK.md's heldout.models takes the first N. The sprint's variant and its parent's are trained
on each with heldout.seeds seeds (runs are cached by variant, model and seeds, so a parent
verified before costs nothing) and judged by the same test as on the main model. Nothing
committed names the seeds: records carry the model's name and hash only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.bench.cache import cache_root
from autosae.bench.profiles import Profile
from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.seal import read_verified
from autosae.jsonio import read_json, write_json
from autosae.records import LedgerRow, Verdict, is_ok
from autosae.sprint.ledger import read_ledger, write_ledger
from autosae.sprint.project_secrets import heldout_seeds
from autosae.sprint.verdict import Reference, compute_verdict

if TYPE_CHECKING:
    from autosae.harness.run import RunOptions

SUITE = ("heldout-a", "correlated", "superposed", "heldout-d", "shallow")


@dataclass
class HeldOutModel:
    name: str
    profile: Profile


def suite(profile: Profile, project_key: str, count: int) -> list[HeldOutModel]:
    seeds = heldout_seeds(project_key)
    m = profile.model
    changes = {
        "heldout-a": {"seed": seeds[0]},
        "correlated": {"seed": seeds[1], "correlation_scale": m.correlation_scale * 3},
        "superposed": {"seed": seeds[2], "hidden_dim": max(8, round(m.hidden_dim * 3 / 4))},
        "heldout-d": {"seed": seeds[3]},
        "shallow": {"seed": seeds[4], "max_depth": max(1, m.max_depth - 1)},
    }
    return [
        HeldOutModel(name, dataclasses.replace(profile, model=dataclasses.replace(m, **changes[name])))
        for name in SUITE[:count]
    ]


def run_cached(variant: Path, profile: Profile, seeds: list[int], opts: RunOptions) -> dict:
    """The variant's results on a held-out model, from the cache when an intact run exists.
    `opts` says where to run (device, slots) and where to log; the seeds are `seeds`."""
    from autosae.harness.run import run_variant, sha256_file

    key = json.dumps(
        {
            "variant": sha256_file(variant),
            "model": profile.model_hash(),
            "seeds": seeds,
            "constraints": dataclasses.asdict(profile.constraints),
        },
        sort_keys=True,
    )
    out = cache_root() / "heldout-runs" / hashlib.sha256(key.encode()).hexdigest()[:20]
    done = read_verified(out / "results.json")  # reused only when the harness sealed it
    if done and done.get("status") not in (None, "running") and done.get("variant_sha256") == sha256_file(variant):
        return done
    try:
        return run_variant(variant, profile, out, dataclasses.replace(opts, seeds=seeds, counted=True))
    except (VariantFailed, ConstraintBreach):
        return read_verified(out / "results.json") or {"status": "failed", "reason": "no results were recorded"}


def _stat(results: dict, metric: str) -> dict | None:
    return (results.get("summary") or {}).get(metric)


def verify(
    models: list[HeldOutModel],
    variant: Path,
    parent_variant: Path,
    parent_id: str,
    seeds: list[int],
    objective: str,
    alpha: float,
    opts: RunOptions,
    own_verdict: str = "improved",
) -> dict:
    """Train the sprint's variant and its parent's on every held-out model, judge each pair,
    and say whether the held-out models confirm, agree with or contradict the sprint's own
    verdict on the benchmark's model (`own_verdict`; see judge)."""
    if not parent_variant.is_file():
        raise AutosaeError(f"the parent's variant {parent_variant} is missing: nothing to compare with")
    rows = []
    for model in models:
        opts.log(f"held-out model {model.name}: the sprint's variant, then the parent's ({len(seeds)} seeds)")
        mine = run_cached(variant, model.profile, seeds, opts)
        theirs = run_cached(parent_variant, model.profile, seeds, opts)
        parent = Reference.from_results(parent_id, theirs)
        v = compute_verdict(mine, "held-out", parent, None, {}, objective, alpha)
        if not is_ok(theirs):
            v.update(verdict="failed", reason=f"the parent failed: {theirs.get('reason')}")
        rows.append(
            {
                "name": model.name,
                "model_hash": model.profile.model_hash(),
                "f1": _stat(mine, "f1"),
                "mcc": _stat(mine, "mcc"),
                "parent_f1": _stat(theirs, "f1"),
                "parent_mcc": _stat(theirs, "mcc"),
                "delta_parent": v["delta_parent"],
                "p_value": v["p_value"],
                "verdict": v["verdict"],
                "reason": v["reason"],
            }
        )
    return {"models": rows, "seeds": seeds, **judge(rows, objective, own_verdict)}


OUTCOMES = ("confirmed", "consistent", "contradicted", "not confirmed")
"""What the held-out models say of a sprint. Only a sprint whose own verdict is "improved" can
be confirmed; of any other the held-out models can only agree (consistent) or disagree
(contradicted): they never turn an inconclusive sprint into a confirmed one."""


def _names(names: list[str]) -> str:
    return f"{', '.join(names)} {'says' if len(names) == 1 else 'say'}"


def judge(rows: list[dict], objective: str, own_verdict: str = "improved") -> dict:
    """{"outcome", "confirmed", "mean_delta", "reason"} from the per-model rows of verify().

    - own verdict "improved": confirmed when the mean advantage over the parent across the
      models is positive and no model says worse or failed; contradicted when one says worse
      or the mean advantage is not positive; else (a model failed) not confirmed.
    - own verdict "worse": contradicted when a held-out model says improved, else consistent.
    - "no change" or "inconclusive": contradicted when a held-out model finds a significant
      difference either way, else consistent."""
    name = objective.upper()
    deltas = [r["delta_parent"] for r in rows if r.get("delta_parent") is not None]
    mean = statistics.fmean(deltas) if deltas else None
    worse = [r["name"] for r in rows if r.get("verdict") == "worse"]
    better = [r["name"] for r in rows if r.get("verdict") == "improved"]
    failed = [r["name"] for r in rows if r.get("verdict") == "failed"]
    on_average = f"{name} {mean:+.4f} vs the parent on average" if mean is not None else ""
    if mean is None:
        outcome, reason = "not confirmed", "no held-out model produced scores"
    elif own_verdict == "improved":
        if worse:
            outcome, reason = "contradicted", f"{_names(worse)} worse"
        elif mean <= 0:
            outcome, reason = "contradicted", on_average
        elif failed:
            outcome, reason = "not confirmed", f"{_names(failed)} failed"
        else:
            outcome = "confirmed"
            reason = f"on {len(rows)} held-out models: {on_average}, worse on none"
    else:
        against = better if own_verdict == "worse" else better + worse
        if against:
            outcome = "contradicted"
            reason = f"the sprint is {own_verdict} on the benchmark's model, but {_names(against)} significantly " + (
                "better" if own_verdict == "worse" else "different"
            )
        else:
            outcome = "consistent"
            reason = f"with its own verdict ({own_verdict}): {on_average}, no held-out model says otherwise"
        if failed:
            reason += f"; {_names(failed)} failed"
    return {
        "outcome": outcome,
        "confirmed": outcome == "confirmed",
        "mean_delta": mean,
        "reason": f"{outcome}: {reason}",
    }


def apply_heldout(verdict: dict, out: dict) -> dict:
    """`verdict` with the outcome of verify() recorded: the per-model rows, whether the sprint
    is confirmed and why. A sprint the held-out models do not confirm is not the new best,
    whatever the benchmark's model said (nor, then, the next sprints' parent). Every other key
    of `verdict` is kept as it was."""
    v = Verdict.from_dict(verdict)
    v.record_heldout(out["models"], out["confirmed"], out["reason"], out.get("outcome"))
    return v.to_dict()


def record_heldout(sprint_folder: Path, ledger_path: Path, sprint_id: str, out: dict) -> dict:
    """Record a recorded sprint's held-out outcome (`autosae verify`) in its verdict.json and
    its ledger row, as apply_heldout does for a sprint in flight; returns the new verdict. The
    ledger row keeps every key it had; other rows are written back unchanged."""
    path = sprint_folder / "verdict.json"
    verdict = read_json(path)
    if not isinstance(verdict, dict):
        raise AutosaeError(f"sprint {sprint_id}: {path} is missing or unreadable")
    verdict = apply_heldout(verdict, out)
    rows = read_ledger(ledger_path)
    for i, row in enumerate(rows):
        if row.get("id") == sprint_id:
            new = LedgerRow.from_dict(row)
            new.confirmed = verdict["confirmed"]
            new.held_out_outcome = verdict.get("held_out_outcome")
            if not new.confirmed:
                new.new_best = False
            rows[i] = new.to_dict()
    write_json(path, verdict)
    write_ledger(ledger_path, rows)
    return verdict
