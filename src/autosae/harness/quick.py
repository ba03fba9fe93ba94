"""Quick (uncounted) runs that cannot see the test set, with the parent trained beside them.

An agent tunes on whatever its quick runs return, so a quick run must never train on a counted
run's seeds nor be scored on a counted run's eval samples: were it so, an uncounted seed-0 run
would reproduce the counted F1 exactly, and the agent would be tuning on the test set. The rule
is enforced in one place, `run_variant` (for every run with `RunOptions.counted` False), so no
caller can forget it; the rule itself is autosae.harness.validation:

- training seeds: a quick seed s (0 <= s < QUICK_SEED_SPAN) trains as QUICK_SEED_BASE + s.
  Counted seeds stay below QUICK_SEED_BASE (TASK.md's `seeds` and `heldout.seeds` are
  validated, and `run_variant` refuses a counted run on a reserved seed); stream profiles draw
  training samples under torch seed 10_000 + seed, which stays below every eval seed too.
- eval samples: drawn under VALIDATION_EVAL_SEED, a public "validation" seed that is neither
  the profile's public eval seed (1234) nor any secret one (project_secrets draws those from
  [1e6, 1e6 + 1e9)), nor any training seed. The agent may see validation samples; it never
  sees the counted ones.

Beside a quick run, the parent's variant can be trained at the same budget, seed and
validation set, so that the quick number has a comparison. Those runs are cached by the
parent's hash, the model, the constraints, the seeds and the eval seed, and reused only when
the harness's seal (autosae.harness.seal) checks out.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.validation import EVAL_SET, VALIDATION_EVAL_SEED, quick_seed
from autosae.records import is_ok

if TYPE_CHECKING:
    from autosae.bench.profiles import Constraints, Profile
    from autosae.harness.run import RunOptions

PARENT_AUTO_SAMPLES = 10_000_000
"""The parent is trained beside a quick run by default when the run has at most this many
training samples (all of `tiny`; on synth-16k only short runs), or when its run is cached."""
LOG_FIELDS = ("loss", "l0", "dead", "k")
"""What the harness itself logs in train_log.jsonl (besides step and samples)."""
MAX_LOGGED, MAX_NAME, MAX_SERIES, MAX_LOG_BYTES = 24, 48, 256, 16 << 20
"""Bounds on the variant's own logged metrics as shown to an agent: names shown, name length,
names read, bytes read."""
NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
COMPARED = ("f1", "mcc", "precision", "recall", "l0", "dead_latents", "explained_variance")


FULL_BUDGET_SAMPLES = 10_000_000
"""TASK.md `quick.full_budget_samples`'s default: quick runs on a profile of at most this many
training samples train its full budget by default (all of `tiny`)."""


def full_budget(c: Constraints, threshold: int = FULL_BUDGET_SAMPLES) -> bool:
    """Whether a quick run trains the profile's whole budget by default (it is cheap)."""
    return c.training_samples <= threshold


def default_samples(c: Constraints, threshold: int = FULL_BUDGET_SAMPLES) -> int:
    """A quick run's training samples when none are asked for: the profile's own where that is
    cheap (`full_budget`), else a tenth of them, at least ten batches."""
    if full_budget(c, threshold):
        return c.training_samples
    return max(c.batch_size * 10, c.training_samples // 10)


def clamp_samples(samples: int | None, c: Constraints, threshold: int = FULL_BUDGET_SAMPLES) -> int:
    """Asked-for training samples bounded to [one batch, the profile's]."""
    value = default_samples(c, threshold) if samples is None else int(samples)
    return min(max(value, c.batch_size), c.training_samples)


# -- the parent beside -----------------------------------------------------------------------


def parent_dir(parent: Path, profile: Profile, seeds: list[int], options: dict | None = None) -> Path:
    """Where the parent's quick run on this model, data, budget, seeds and validation set is
    cached (and with this version of autosae: a library default that changes changes the run);
    `options`: the knobs passed to its build() (an arm of run_experiment), part of the key
    only when there are some, so that a plain parent's cache stays where it was."""
    from autosae import __version__
    from autosae.bench.cache import cache_root
    from autosae.harness.run import sha256_file

    key = json.dumps(
        {
            "variant": sha256_file(parent),
            "model": profile.model_hash(),
            "constraints": dataclasses.asdict(profile.constraints),
            "data": profile.data,
            "pool_samples": profile.pool_samples,
            "autosae": __version__,
            "seeds": [quick_seed(s) for s in seeds],
            "eval_seed": VALIDATION_EVAL_SEED,
        }
        | ({"options": options} if options else {}),
        sort_keys=True,
    )
    return cache_root() / "quick-parents" / hashlib.sha256(key.encode()).hexdigest()[:20]


def cached_parent(parent: Path, profile: Profile, seeds: list[int], options: dict | None = None) -> dict | None:
    """The parent's sealed quick run, when there is one for exactly this setting."""
    from autosae.harness.run import sha256_file
    from autosae.harness.seal import read_verified

    done = read_verified(parent_dir(parent, profile, seeds, options) / "results.json")
    if (
        done
        and is_ok(done)
        and done.get("variant_sha256") == sha256_file(parent)
        and (done.get("quick") or {}).get("eval_seed") == VALIDATION_EVAL_SEED
        and done.get("seeds") == [quick_seed(s) for s in seeds]
        and (done.get("variant_options") or {}) == (options or {})
    ):
        return done
    return None


def parent_wanted(asked: bool | None, parent: Path | None, profile: Profile, seeds: list[int]) -> bool:
    """Whether to train the parent beside: as asked, else when cheap (PARENT_AUTO_SAMPLES) or cached."""
    if parent is None or asked is False:
        return False
    if asked:
        return True
    return (
        profile.constraints.training_samples <= PARENT_AUTO_SAMPLES or cached_parent(parent, profile, seeds) is not None
    )


def run_parent(parent: Path, profile: Profile, opts: RunOptions) -> tuple[dict, Path, bool]:
    """(results, run folder, whether it came from the cache) of the parent's variant trained
    like the quick run beside it. Parallel sprints asking for the same parent train it once."""
    from autosae.harness.run import run_variant
    from autosae.harness.seal import read_verified

    if not parent.is_file():
        raise AutosaeError(f"the parent's variant {parent} is missing: nothing to compare with")
    out = parent_dir(parent, profile, opts.seeds)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = cached_parent(parent, profile, opts.seeds)
        if done is not None:
            return done, out, True
        try:
            results = run_variant(parent, profile, out, dataclasses.replace(opts, counted=False))
        except (VariantFailed, ConstraintBreach) as exc:
            results = read_verified(out / "results.json") or {"status": "failed"}
            results = {**results, "reason": str(exc)}
        return results, out, False


# -- what an agent is shown ------------------------------------------------------------------


def means(results: dict | None) -> dict[str, float]:
    """{metric: mean over seeds} of a results.json's summary."""
    summary = (results or {}).get("summary") or {}
    return {m: v["mean"] for m, v in summary.items() if isinstance(v, dict) and isinstance(v.get("mean"), (int, float))}


def _number(value) -> float | str | None:
    """A logged value as shown: 6 significant digits, "nan"/"inf" as text; None if not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return float(f"{x:.6g}") if math.isfinite(x) else str(x)


def logged_metrics(seed_dir: Path) -> dict:
    """A summary of a seed's train_log.jsonl: first, last, min and max of what the harness logs
    (loss, l0, dead latents, K) and, apart, of what the variant logged itself (its
    TrainOutput.metrics). The variant's names and numbers are untrusted display data: names
    are bounded in count, length and alphabet, values are numbers, and reading stops at
    MAX_LOG_BYTES."""
    series: dict[str, list] = {}
    dropped = False
    try:  # the harness wrote it; a link in its place is never followed
        fd = os.open(seed_dir / "train_log.jsonl", os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, errors="replace") as f:
            text = f.read(MAX_LOG_BYTES)
    except OSError:
        return {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        for name, value in entry.items():
            if name in ("step", "samples") or not isinstance(name, str):
                continue
            number = _number(value)
            if number is None:
                continue
            if name not in series and len(series) >= MAX_SERIES:
                dropped = True
                continue
            series.setdefault(name, []).append(number)

    def stats(values: list) -> dict:
        finite = [v for v in values if isinstance(v, float)]
        return {
            "first": values[0],
            "last": values[-1],
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "points": len(values),
        }

    from autosae.sandboxed.protocol import VARIANT_METRIC_PREFIX

    own = {n.removeprefix(VARIANT_METRIC_PREFIX): n for n in sorted(series) if n not in LOG_FIELDS}
    shown = [n for n in own if len(n) <= MAX_NAME and NAME.match(n)][:MAX_LOGGED]
    out = {
        "harness": {n: stats(series[n]) for n in LOG_FIELDS if n in series},
        "variant": {n: stats(series[own[n]]) for n in shown},
    }
    if dropped or len(shown) < len(own):
        out["variant_left_out"] = "more metrics than shown, or names that are too long or use odd characters"
    return out


def quick_report(results: dict, out: Path, parent: dict | None = None) -> dict:
    """What a quick run returns to whoever asked for it (the `run_experiment` tool, `autosae
    train --uncounted`): the run folder, the harness's metrics, the variant's own logged
    metrics per seed, and beside it the parent's metrics and the difference."""
    quick = results.get("quick") or {}
    report = {
        "status": results.get("status"),
        "run_folder": str(out),
        "profile": results.get("profile"),
        "training_samples": (results.get("constraints") or {}).get("training_samples"),
        "eval_set": f"{quick.get('eval_set', EVAL_SET)} (public eval seed {quick.get('eval_seed')}; "
        f"disjoint from the counted runs' eval samples)",
        "train_seeds": quick.get("seeds", results.get("seeds")),
        "wall_s": results.get("wall_s"),
        "sandboxed": "yes" if (results.get("sandbox") or {}).get("enabled") else "NO",
        "metrics": means(results),
        "logged": {
            str(r["seed"]): logged_metrics(out / f"seed_{r['seed']}") for r in results.get("per_seed", []) if is_ok(r)
        },
    }
    if not is_ok(results):
        report["reason"] = results.get("reason")
        report["log_tail"] = (results.get("log_tail") or "")[-3000:]
    if parent is not None:
        report["parent"] = parent
        theirs, ours = parent.get("metrics") or {}, report["metrics"]
        report["delta_vs_parent"] = {
            m: float(f"{ours[m] - theirs[m]:.6g}") for m in COMPARED if m in ours and m in theirs
        }
    return report


def parent_report(name: str, results: dict, out: Path, cached: bool) -> dict:
    """The parent's side of a quick report."""
    row = {
        "variant": name,
        "status": results.get("status"),
        "run_folder": str(out),
        "cached": cached,
        "metrics": means(results),
    }
    if not is_ok(results):
        row["reason"] = results.get("reason")
    return row


def beside(parent: Path | None, name: str, profile: Profile, opts: RunOptions, asked: bool | None) -> dict | None:
    """The parent's side of a quick report: trained (or taken from the cache) when wanted,
    else a line saying why not; None when there is no parent to compare with."""
    if parent is None:
        return None
    if not parent_wanted(asked, parent, profile, opts.seeds):
        why = (
            "not asked for"
            if asked is False
            else f"{profile.constraints.training_samples:,} training samples is more than the "
            f"{PARENT_AUTO_SAMPLES:,} up to which it is trained by default; ask for it"
        )
        return {"variant": name, "status": "not trained", "reason": why}
    log = opts.log
    results, out, cached = run_parent(parent, profile, opts.replace(log=lambda line: log(f"parent {name}: {line}")))
    return parent_report(name, results, out, cached)


def run_quick(
    variant: Path,
    profile: Profile,
    out: Path,
    opts: RunOptions,
    parent: Path | None = None,
    parent_name: str = "",
    with_parent: bool | None = None,
) -> dict:
    """Train `variant` uncounted (validation samples, quick seeds) and, when wanted, its parent
    beside it; returns the quick report, a failed run's reason and log tail included."""
    from autosae.harness.run import run_variant
    from autosae.harness.seal import read_verified

    opts = dataclasses.replace(opts, counted=False)
    try:
        results = run_variant(variant, profile, out, opts)
    except (VariantFailed, ConstraintBreach) as exc:
        results = {**(read_verified(out / "results.json") or {"status": "failed"}), "reason": str(exc)}
    side = None
    if is_ok(results):
        side = beside(parent, parent_name, profile, opts, with_parent)
    elif parent is not None:
        side = {"variant": parent_name, "status": "not trained", "reason": "the variant's run failed"}
    return quick_report(results, out, side)
