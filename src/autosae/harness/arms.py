"""Quick runs that decide: several arms (the variant, its parent, reference variants, past
sprints, files of the worktree, each with knob values for build()) times several quick seeds,
run at once, returned as a table of mean ± std per arm and paired deltas against the parent.

Every argument comes from the agent and is untrusted: counts, lengths and types are bounded
here, a failed arm is a row that says why (never an exception out of the tool), and the
copies of each run that the agent may read are written into its worktree by
autosae.harness.quick_copies; the table comes from autosae.harness.quick_table.

Arms other than the sprint's own variant or a worktree file (parent, baselines, past
sprints) are cached per (variant hash, options, setting, seed) in the quick-parents cache,
sealed, so that asking again costs nothing.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.quick import parent_dir
from autosae.harness.validation import QUICK_SEED_SPAN

if TYPE_CHECKING:
    from autosae.bench.profiles import Profile
    from autosae.harness.run import RunOptions

MAX_ARMS, MAX_SEEDS, MAX_OPTIONS, MAX_TEXT, CURVE_POINTS = 8, 8, 16, 200, 12
"""Bounds on one call: arms, seeds per arm, knobs per arm, characters of a label, source or
string knob value, points of a returned curve."""
COPY_BYTES = 4 << 20
"""The most of one run file copied into the worktree."""
CURVE_FIELDS = ("loss", "l0", "dead")
KNOB = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
SPRINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
QUICK_DIR = ".quick"
"""Where the copies of a call's runs go in the worktree (never committed: only the sprint's
folder is)."""


@dataclass
class Arm:
    label: str
    source: str
    """"variant", "parent", "baseline:<name>", "sprint:<id>" or a worktree path."""
    variant: Path | None = None
    options: dict = field(default_factory=dict)
    cached: bool = False
    """Trained once per (variant hash, options, setting, seed) in the shared cache."""
    error: str | None = None


def text(value, limit: int = MAX_TEXT) -> str:
    """Untrusted text as shown: printable, one line, bounded."""
    return "".join(c if c.isprintable() else "?" for c in str(value))[:limit]


def check_options(value, where: str) -> dict:
    """An arm's knobs: {name: JSON scalar}, bounded; AutosaeError with what is wrong."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AutosaeError(f"{where}.options: expected an object of knob: value")
    if len(value) > MAX_OPTIONS:
        raise AutosaeError(f"{where}.options: at most {MAX_OPTIONS} knobs")
    out = {}
    for name, v in value.items():
        if not isinstance(name, str) or not KNOB.match(name):
            raise AutosaeError(f"{where}.options: knob names are identifiers of at most 48 characters")
        if isinstance(v, float) and not math.isfinite(v):
            raise AutosaeError(f"{where}.options.{name}: not a finite number")
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53:
            raise AutosaeError(f"{where}.options.{name}: out of range")
        if isinstance(v, str) and len(v) > MAX_TEXT:
            raise AutosaeError(f"{where}.options.{name}: longer than {MAX_TEXT} characters")
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise AutosaeError(f"{where}.options.{name}: expected a number, string, true, false or null")
        out[name] = v
    return out


def check_seeds(seeds, seed) -> list[int]:
    """`seeds` quick seeds from `seed` on (seed, seed+1, ...), bounded."""
    for key, value in (("seeds", seeds), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise AutosaeError(f"{key}: expected an integer")
    if not 1 <= seeds <= MAX_SEEDS:
        raise AutosaeError(f"seeds: 1 to {MAX_SEEDS}")
    if not 0 <= seed or seed + seeds > QUICK_SEED_SPAN:
        raise AutosaeError(f"seed: quick seeds are 0 to {QUICK_SEED_SPAN - 1}")
    return list(range(seed, seed + seeds))


def sprint_variant(project_root: Path | None, sprint: str) -> Path:
    """A past sprint's variant.py on the project's main checkout: no link on the way."""
    if project_root is None:
        raise AutosaeError("past sprints are not known here")
    if not SPRINT_ID.match(sprint) or ".." in sprint:
        raise AutosaeError(f"sprint:{text(sprint, 80)}: not a sprint id")
    path = project_root / "sprints" / sprint / "variant.py"
    for p in (path.parent.parent, path.parent, path):
        if p.is_symlink():
            raise AutosaeError(f"sprint:{sprint}: a link on the way to its variant.py")
    if not path.is_file():
        raise AutosaeError(f"sprint:{sprint}: no such sprint with a variant.py on the main branch")
    return path


def resolve_arms(
    raw,
    variant: Path,
    resolve_path: Callable[[str], Path],
    project_root: Path | None,
) -> list[Arm]:
    """The arms the agent asked for (None: the variant and its parent). Structure errors raise
    AutosaeError; an arm whose variant is not found is a row with its error."""
    from autosae.parents import baseline_parents
    from autosae.variants import reference_variants

    if raw is None:
        raw = ["variant", "parent"]
    if not isinstance(raw, list) or not raw:
        raise AutosaeError('arms: expected a non-empty list such as ["variant", "parent"]')
    if len(raw) > MAX_ARMS:
        raise AutosaeError(f"arms: at most {MAX_ARMS}")
    arms, labels = [], set()
    for i, item in enumerate(raw):
        where = f"arms[{i}]"
        if isinstance(item, str):
            item = {"arm": item}
        if not isinstance(item, dict) or not isinstance(item.get("arm"), str):
            raise AutosaeError(f'{where}: expected a string or {{"arm": ..., "options": {{...}}, "label": ...}}')
        unknown = sorted(set(item) - {"arm", "options", "label"})
        if unknown:
            raise AutosaeError(f"{where}: unknown key {text(unknown[0], 40)!r} (arm, options, label)")
        source = item["arm"].strip()
        if not source or len(source) > MAX_TEXT:
            raise AutosaeError(f"{where}.arm: 1 to {MAX_TEXT} characters")
        options = check_options(item.get("options"), where)
        label = item.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise AutosaeError(f"{where}.label: expected a non-empty string")
        if label is None:
            label = source + ("" if not options else " " + json.dumps(options, separators=(",", ":")))
        label = text(label.strip(), 80)
        if label in labels:
            label = text(f"{label[:74]} #{i}", 80)
        labels.add(label)
        arm = Arm(label=label, source=text(source), options=options)
        try:
            if source == "variant":
                arm.variant = variant
            elif source == "parent":
                arm.cached = True  # the experimenter fills in the parent's variant
            elif source.startswith("baseline:"):
                ref = reference_variants().get(source.removeprefix("baseline:"))
                if ref is None:
                    raise AutosaeError(f"unknown reference variant (known: {', '.join(baseline_parents())})")
                arm.variant, arm.cached = ref, True
            elif source.startswith("sprint:"):
                arm.variant, arm.cached = sprint_variant(project_root, source.removeprefix("sprint:")), True
            else:
                path = resolve_path(source)
                if not path.is_file():
                    raise AutosaeError("no such file in the worktree")
                arm.variant = path
        except AutosaeError as exc:
            arm.error = text(str(exc), 400)
        except Exception as exc:  # the worktree's confinement refused it (a link out, .git, ...)
            arm.error = text(str(exc), 400) or type(exc).__name__
        arms.append(arm)
    return arms


# -- running ---------------------------------------------------------------------------------


@dataclass
class Job:
    arm: Arm
    seed: int
    results: dict | None = None
    folder: Path | None = None
    cached: bool = False


def run_job(job: Job, profile: Profile, out: Path, opts: RunOptions, deadline: float) -> None:
    """One arm on one quick seed: from the cache or trained; a failure is recorded, never raised."""
    from autosae.harness.run import run_variant
    from autosae.harness.seal import read_verified

    arm, left = job.arm, deadline - time.monotonic()
    if left < 5:
        job.results = {"status": "failed", "reason": "the call's time limit was reached before this run started"}
        return
    limit = min(opts.settings.time_limit_s or profile.time_limit_s, left)
    run_opts = opts.replace(
        seeds=[job.seed], counted=False, time_limit_s=limit, variant_options=tuple(sorted(arm.options.items()))
    )
    log = opts.log
    run_opts = run_opts.replace(log=lambda line: log(f"{arm.label} seed {job.seed}: {line}"))
    try:
        if arm.cached:
            folder = parent_dir(arm.variant, profile, [job.seed], arm.options)
            folder.parent.mkdir(parents=True, exist_ok=True)
            with open(folder.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                done = cached_arm(arm, profile, job.seed)
                job.folder = folder
                if done is not None:
                    job.results, job.cached = done, True
                    return
                job.results = train(arm.variant, profile, folder, run_opts, read_verified, run_variant)
            return
        job.folder = out / "runs" / f"{slug(arm.label)}-{id(arm) % 10_000:04d}" / f"seed_{job.seed}"
        job.results = train(arm.variant, profile, job.folder, run_opts, read_verified, run_variant)
    except AutosaeError as exc:
        job.results = {"status": "failed", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one arm's breakage is that arm's row
        job.results = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}


def train(variant, profile, folder, opts, read_verified, run_variant) -> dict:
    try:
        return run_variant(variant, profile, folder, opts)
    except (VariantFailed, ConstraintBreach) as exc:
        return {**(read_verified(folder / "results.json") or {"status": "failed"}), "reason": str(exc)}


def cached_arm(arm: Arm, profile: Profile, seed: int) -> dict | None:
    """The arm's sealed quick run on this seed, when there is one for exactly this setting."""
    from autosae.harness.quick import cached_parent

    done = cached_parent(arm.variant, profile, [seed], arm.options)
    if done is not None and (done.get("variant_options") or {}) == arm.options:
        return done
    return None


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")[:40] or "arm"


def workers_for(opts: RunOptions, jobs: int) -> tuple[int, int | None]:
    """(jobs at once, CPU threads per variant): the pool's live slots; on one device two at
    once (a quick seed leaves a core idle while the harness feeds and scores it), the cores
    shared among them on CPU."""
    pool = opts.where.pool
    if pool is not None:
        return max(1, min(jobs, len(pool.alive))), None
    cores = os.cpu_count() or 2
    at_once = max(1, min(jobs, max(2, cores // 4)))
    device = opts.where.device or "cpu"
    threads = max(1, (cores - 1) // at_once) if device == "cpu" else None
    return at_once, opts.settings.cpu_threads or threads


def run_arms(arms: list[Arm], seeds: list[int], profile: Profile, out: Path, opts: RunOptions, limit_s: float):
    """Every arm on every seed, at once on the slots (or two at a time on one device); the jobs."""
    jobs = [Job(a, s) for a in arms if a.error is None for s in seeds]
    at_once, threads = workers_for(opts, len(jobs))
    if threads is not None:
        opts = opts.replace(cpu_threads=threads)
    deadline = time.monotonic() + limit_s
    torch_threads = _torch_threads()
    try:
        with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="quick-arm") as ex:
            for f in [ex.submit(run_job, j, profile, out, opts, deadline) for j in jobs]:
                f.result()
    finally:
        _torch_threads(torch_threads)  # the harness sets it per run; runs at once race on it
    return jobs


def _torch_threads(value: int | None = None) -> int | None:
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if value is not None:
        torch.set_num_threads(value)
    return torch.get_num_threads()
