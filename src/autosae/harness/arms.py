"""Quick runs that decide: several arms (the variant, its parent, reference variants, past
sprints, files of the worktree, each with knob values for build()) times several quick seeds,
run at once, returned as a table of mean ± std per arm and paired deltas against the parent.

Every argument comes from the agent and is untrusted: counts, lengths and types are bounded
here, a failed arm is a row that says why (never an exception out of the tool), and the
copies of each run that the agent may read are written into its worktree through folder
descriptors that never follow a link (see `copy_runs`).

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
import shutil
import stat
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.quick import COMPARED, parent_dir
from autosae.harness.validation import QUICK_SEED_SPAN, quick_seed
from autosae.records import is_ok

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
                    known = ", ".join(f"baseline:{n}" for n in reference_variants())
                    raise AutosaeError(f"unknown reference variant (known: {known})")
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


# -- statistics ------------------------------------------------------------------------------


def stats(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def paired(a: list[float], b: list[float]) -> dict:
    """The paired difference a - b (same quick seeds): mean, std, pairs and the two-sided p of
    the paired t-test (None with fewer than 2 pairs)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired: two lists of the same, non-zero length")
    d = [x - y for x, y in zip(a, b, strict=True)]
    out = stats(d)
    n, mean, sd = len(d), out["mean"], out["std"]
    if n < 2:
        p = None
    elif sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        from scipy.special import stdtr  # as sprint.verdict.welch_p: cheaper to import than scipy.stats

        p = float(2 * stdtr(n - 1, -abs(mean / (sd / math.sqrt(n)))))
        p = p if math.isfinite(p) else None
    return {**out, "p": p}


def rounded(x):
    return float(f"{x:.6g}") if isinstance(x, float) and math.isfinite(x) else x


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


# -- what comes back -------------------------------------------------------------------------


def read_log(seed_dir: Path) -> list[dict]:
    """The harness's fields of a seed's train_log.jsonl (bounded, no link followed)."""
    try:
        fd = os.open(seed_dir / "train_log.jsonl", os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, errors="replace") as f:
            lines = f.read(COPY_BYTES).splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("samples"), int):
            row = {"samples": entry["samples"]}
            for name in CURVE_FIELDS:
                v = entry.get(name)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    row[name] = float(v)
            rows.append(row)
    return rows


def seed_dir(job: Job) -> Path | None:
    if job.folder is None:
        return None
    return job.folder / f"seed_{quick_seed(job.seed)}"


def curve(jobs: list[Job]) -> dict | None:
    """The arm's training curve, the mean over its seeds at the samples all of them logged,
    thinned to CURVE_POINTS (the last included)."""
    logs = [read_log(d) for j in jobs if is_ok(j.results or {}) and (d := seed_dir(j))]
    logs = [{r["samples"]: r for r in log} for log in logs if log]
    if not logs:
        return None
    common = sorted(set.intersection(*(set(log) for log in logs)))
    if not common:
        return None
    step = max(1, math.ceil(len(common) / CURVE_POINTS))
    picked = common[::step][: CURVE_POINTS - 1] if len(common) > CURVE_POINTS else common
    if picked[-1] != common[-1]:
        picked = [*picked, common[-1]]
    out: dict[str, list] = {"samples": picked}
    for name in CURVE_FIELDS:
        values = []
        for s in picked:
            got = [log[s][name] for log in logs if name in log[s]]
            values.append(rounded(statistics.fmean(got)) if got else None)
        out[name] = values
    return out


def seed_metrics(job: Job) -> dict | None:
    results = job.results or {}
    if not is_ok(results):
        return None
    rows = [r for r in results.get("per_seed") or [] if is_ok(r)]
    return rows[0] if rows else None


def arm_rows(arms: list[Arm], jobs: list[Job], seeds: list[int]) -> list[dict]:
    """The table's rows in the schema of SprintState.quick_runs."""
    by_arm = {id(a): [j for j in jobs if j.arm is a] for a in arms}
    parent = next((a for a in arms if a.source == "parent" and a.error is None), None)
    rows = []
    for arm in arms:
        row: dict = {"arm": arm.label, "source": arm.source, "options": arm.options}
        mine = by_arm[id(arm)]
        failed = [j for j in mine if not is_ok(j.results or {})]
        if arm.error is not None:
            row.update(status="failed", reason=arm.error)
        elif failed:
            j = failed[0]
            row.update(status="failed", reason=text(f"seed {j.seed}: {(j.results or {}).get('reason')}", 1000))
        else:
            row["status"] = "ok"
        values = {j.seed: seed_metrics(j) for j in mine}
        row["metrics"] = {
            m: {k: rounded(v) for k, v in stats(vals).items()}
            for m in COMPARED
            if (vals := [float(r[m]) for r in values.values() if r and isinstance(r.get(m), (int, float))])
        }
        if parent is not None and arm is not parent:
            theirs = {j.seed: seed_metrics(j) for j in by_arm[id(parent)]}
            deltas = {}
            for m in COMPARED:
                pairs = [
                    (values[s][m], theirs[s][m]) for s in seeds if values.get(s) and theirs.get(s) and m in values[s]
                ]
                if pairs:
                    d = paired([float(a) for a, _ in pairs], [float(b) for _, b in pairs])
                    deltas[m] = {k: rounded(v) for k, v in d.items()}
            row["delta_vs_parent"] = deltas
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The table as Markdown: f1, mcc, l0 and dead latents, mean ± std (n), and Δ f1 vs the parent."""
    shown = ("f1", "mcc", "l0", "dead_latents", "explained_variance")

    def cell(s: dict | None) -> str:
        return f"{s['mean']:.4g} ± {s['std']:.2g} ({s['n']})" if s else "—"

    def delta(d: dict | None) -> str:
        if not d:
            return "—"
        p = "n/a" if d.get("p") is None else f"{d['p']:.2g}"
        return f"{d['mean']:+.4g} ± {d['std']:.2g} (n={d['n']}, p={p})"

    head = "| arm | status | " + " | ".join(shown) + " | Δf1 vs parent | Δmcc vs parent |"
    lines = [head, "|" + "---|" * (len(shown) + 4)]
    for r in rows:
        label = r["arm"].replace("|", "/")
        ds = r.get("delta_vs_parent")
        lines.append(
            f"| {label} | {r['status']} | "
            + " | ".join(cell(r["metrics"].get(m)) for m in shown)
            + f" | {delta((ds or {}).get('f1')) if ds is not None else 'parent' if r['source'] == 'parent' else '—'}"
            + f" | {delta((ds or {}).get('mcc')) if ds is not None else '—'} |"
        )
    return "\n".join(lines)


def record(n: int, profile: Profile, seeds: list[int], wall_s: float, rows: list[dict], curves: dict) -> dict:
    """One call as SprintState.quick_runs holds it."""
    return {
        "n": n,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile.name,
        "training_samples": profile.constraints.training_samples,
        "seeds": list(seeds),
        "wall_s": round(wall_s, 2),
        "arms": rows,
        "curves": curves,
    }


# -- the copies the agent reads --------------------------------------------------------------


def _open_dir(parent: int, name: str, fresh: bool = False) -> int:
    """The folder `name` under the folder descriptor `parent`, made when missing; a link, a
    file or (with `fresh`) an old folder in its place is removed first. Never follows a link."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    for _ in range(5):
        try:
            if fresh:
                raise FileExistsError
            return os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            pass
        except (FileExistsError, NotADirectoryError, OSError):  # a link (ELOOP), a file, or to renew
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=parent)  # fd-based: never leaves the folder
                else:
                    os.unlink(name, dir_fd=parent)
        fresh = False
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            continue  # someone raced us: look again
        try:
            return os.open(name, flags, dir_fd=parent)
        except OSError:
            continue
    raise OSError(f"could not make the folder {name}")


def _copy_file(src: Path, folder: int, name: str) -> None:
    """Our own run file (no link followed, at most COPY_BYTES) into `folder`, a new file."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    with open(fd, "rb") as f:
        data = f.read(COPY_BYTES)
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
    with open(out, "wb") as f:
        f.write(data)


_copy_lock = threading.Lock()


def copy_runs(worktree: Path, n: int, jobs: list[Job]) -> str:
    """Each run's results.json and train_log.jsonl copied to <worktree>/.quick/<n>/<arm>/seed_<s>/;
    the worktree-relative folder. The worktree is the agent's: every folder is opened by
    descriptor without following links, so a link it left in the way is removed, not followed."""
    name = f"{n:03d}"
    fds: list[int] = []
    with _copy_lock:
        try:
            root = os.open(worktree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            fds.append(root)
            quick = _open_dir(root, QUICK_DIR)
            fds.append(quick)
            call = _open_dir(quick, name, fresh=True)
            fds.append(call)
            arm_dirs: dict[int, int] = {}
            for j in jobs:
                if j.folder is None:
                    continue
                if id(j.arm) not in arm_dirs:
                    index = len(arm_dirs)
                    arm_dirs[id(j.arm)] = _open_dir(call, f"{index:02d}-{slug(j.arm.label)}")
                    fds.append(arm_dirs[id(j.arm)])
                seed = _open_dir(arm_dirs[id(j.arm)], f"seed_{j.seed}")
                fds.append(seed)
                _copy_file(j.folder / "results.json", seed, "results.json")
                if (d := seed_dir(j)) is not None:
                    _copy_file(d / "train_log.jsonl", seed, "train_log.jsonl")
        finally:
            for fd in fds:
                os.close(fd)
    return f"{QUICK_DIR}/{name}"


__all__ = [
    "MAX_ARMS",
    "MAX_SEEDS",
    "Arm",
    "arm_rows",
    "check_options",
    "check_seeds",
    "copy_runs",
    "curve",
    "markdown",
    "paired",
    "record",
    "resolve_arms",
    "run_arms",
]
