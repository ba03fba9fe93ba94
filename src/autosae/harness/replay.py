"""The test suite's stand-in for the harness: results of real runs, recorded once and replayed.

Most tests exercise what happens around a run (the engine's phases, the loop, the records,
the reports, the CLI), not the training itself, which the harness's own tests cover. Training
for real in each of them made the suite take twelve minutes; replaying a recorded run takes
milliseconds. In the spirit of mini-swe-agent's deterministic model, every recording is the
output of a real run of the same variant on the same benchmark, nothing made up.

It is selected only by the orchestrator's environment: AUTOSAE_REPLAY=<folder of recordings>
(the tests set it to tests/replay). An agent's shell and a variant's process never see autosae's
environment, nor can they set it, so a replay can never stand in for a run outside the tests.

`run` answers a run_variant call with the recording for exactly this run: the variant's Python
files, the benchmark's model, constraints, data and eval samples, the seeds, whether counted,
the device, the time and resource limits. It writes into the run folder what a real run leaves
that autosae reads afterwards (results.json sealed with this cache's key, each seed's
train_log.jsonl and worker.log, the staged variant; not the SAE's weights, which only the
harness's own tests read) and returns or raises as the real run did. Replayed results carry
"replayed": true, so a replay is never mistaken for a real run; nothing else differs.

On a miss it runs the real harness, records it (one line on stderr says so) and leaves a new
file in the folder to commit: a changed variant or test never fails, it costs one real run.
The key leaves out what does not decide the outcome (the run folder, the sandbox's
availability on this machine) and names this cache's secret seeds by their role (the secret
eval samples, held-out model i), since each test session draws new ones. It does not cover
autosae's own code: after a change to the component library or the harness that changes what
a run produces, delete the recordings (or bump FORMAT) and run the tests once to record anew.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autosae.errors import AutosaeError, ConstraintBreach, VariantFailed
from autosae.harness.options import sha256_file, staged_files

if TYPE_CHECKING:
    from collections.abc import Callable

    from autosae.bench.profiles import Profile

ENV = "AUTOSAE_REPLAY"
FORMAT = 1
"""Part of every key: bump it to make every recording a miss (and so record them all anew)."""
FOLDER, FOLDER_ABS = "${RUN_FOLDER}", "${RUN_FOLDER_RESOLVED}"
"""Stand for the run folder (as the caller named it, and resolved) in a recording: a replay
writes into another folder."""
SEED_FILES = ("train_log.jsonl", "worker.log")
"""What a run leaves in each seed's folder that autosae reads after the run."""
MAX_LOG_CHARS = 64_000
"""The most of a worker.log kept in a recording (its end; the harness reads a tail too)."""
ERRORS = {cls.__name__: cls for cls in (VariantFailed, ConstraintBreach)}

_recording: contextvars.ContextVar[bool] = contextvars.ContextVar("autosae_replay_recording", default=False)


def active() -> bool:
    """Whether run_variant should be answered here (not while we run the real harness to record)."""
    return bool(os.environ.get(ENV)) and not _recording.get()


def run(real: Callable[..., dict], variant: Path, profile: Profile, out: Path, opts) -> dict:
    """run_variant(variant, profile, out, opts), from the recording or, on a miss, for real
    (`real` is run_variant itself) and recorded."""
    if opts.where.pool is not None or (opts.where.launcher is not None and opts.where.launcher.kind != "local"):
        return _real(real, variant, profile, out, opts)  # device slots and jobs: their own tests, for real
    variant = Path(variant).resolve()
    device = _device(opts.where.device)
    if not variant.is_file() or device is None:
        return _real(real, variant, profile, out, opts)  # the harness's own one-line error
    from autosae.sandbox import resolve

    sandboxed = (
        opts.settings.sandboxed if opts.settings.sandboxed is not None else resolve(opts.settings.sandbox, opts.log)
    )
    key = run_key(variant, profile, opts, device)
    path = Path(os.environ[ENV]) / f"{digest(key)}.json"
    try:
        recording = json.loads(path.read_text())
    except FileNotFoundError:
        print(
            f"autosae replay: no recording of {variant.name} on {profile.name}; training it and recording {path}",
            file=sys.stderr,
            flush=True,
        )
        return record(real, variant, profile, out, opts, key, path)
    return replay(recording, variant, out, opts, sandboxed)


def _real(real, *args) -> dict:
    token = _recording.set(True)
    try:
        return real(*args)
    finally:
        _recording.reset(token)


def _device(device: str | None) -> str | None:
    """The device the run would use (as harness.run.resolve_device decides), None where that
    raises: the real run then says why."""
    from autosae.harness.devices import cuda_available

    device = device or ("cuda" if cuda_available() else "cpu")
    if device == "cpu" or (device.startswith("cuda") and cuda_available()):
        return device
    return None


def sources(variant: Path) -> dict[str, str]:
    """sha256 of each file the harness stages with the variant (harness.options.staged_files), by name."""
    return {name: sha256_file(path) for name, path in staged_files(variant).items()}


def secret_roles() -> tuple[int | None, dict[int, str]]:
    """This cache's secret eval seed, and its held-out model seeds by role (see
    sprint.project_secrets): read from the files, since each test session draws new ones."""
    from autosae.bench.cache import cache_root

    folder, eval_seed, heldout = cache_root() / "secrets", None, {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if path.name == "eval.json" and isinstance(data, dict):
            eval_seed = data.get("eval_seed")
        elif isinstance(data, dict):
            heldout.update({s: f"secret held-out seed {i}" for i, s in enumerate(data.get("heldout_seeds") or [])})
    return eval_seed, heldout


def run_key(variant: Path, profile: Profile, opts, device: str) -> dict[str, Any]:
    """Everything that decides what the run produces."""
    secret_eval, heldout = secret_roles()
    model = dataclasses.asdict(profile.model)
    model["seed"] = heldout.get(model["seed"], model["seed"])
    key = {
        "format": FORMAT,
        "variant": variant.name,
        "sources": sources(variant),
        "profile": profile.name,
        "model": model,
        "data": profile.data,
        "pool_samples": profile.pool_samples,
        "constraints": dataclasses.asdict(profile.constraints),
        "eval_seed": "secret" if profile.eval_seed == secret_eval else profile.eval_seed,
        "seeds": list(opts.seeds),
        "counted": opts.counted,
        "device": device,
        "time_limit_s": opts.settings.time_limit_s or profile.time_limit_s,
        "limits": [
            opts.settings.memory_limit_gb,
            opts.settings.disk_limit_gb,
            opts.settings.max_processes,
            opts.settings.cpu_threads,
        ],
        "matmul_precision": opts.settings.matmul_precision,
    }
    if opts.settings.variant_options:  # absent when empty: the recordings of counted runs keep their keys
        key["variant_options"] = [list(p) for p in opts.settings.variant_options]
    return key


def digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _swap(value, old: list[str], new: str):
    """`value` with every string's occurrences of the `old` texts replaced by `new`."""
    if isinstance(value, str):
        for text in old:
            value = value.replace(text, new)
        return value
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, old, new) for v in value]
    return value


def record(real, variant: Path, profile: Profile, out: Path, opts, key: dict, path: Path) -> dict:
    """Run the real harness and save what it returned or raised, and what it left to read."""
    from autosae.harness.seal import read_verified

    error = None
    try:
        results = _real(real, variant, profile, out, opts)
    except (VariantFailed, ConstraintBreach) as exc:
        error = {"type": type(exc).__name__, "message": str(exc)}
        results = read_verified(out / "results.json")
        if results is None:
            raise
    files = {}
    for seed_dir in sorted(out.glob("seed_*")):
        for name in SEED_FILES:
            try:
                text = (seed_dir / name).read_text(errors="replace")
            except OSError:
                continue
            files[f"{seed_dir.name}/{name}"] = text[-MAX_LOG_CHARS:] if name == "worker.log" else text
    results = {k: v for k, v in results.items() if k != "seal"}
    saved = _swap({"key": key, "results": results, "error": error, "files": files}, [str(out.resolve())], FOLDER_ABS)
    if len(str(out)) > 3:  # a relative run folder (`autosae train`'s runs/...)
        saved = _swap(saved, [str(out)], FOLDER)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(saved, indent=1, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)
    if error is not None:
        raise ERRORS[error["type"]](error["message"])
    return results


def replay(recording: dict, variant: Path, out: Path, opts, sandboxed: bool) -> dict:
    """Leave in `out` what the recorded run left there, and return or raise as it did."""
    from autosae.harness.seal import write_sealed

    recording = _swap(_swap(recording, [FOLDER_ABS], str(out.resolve())), [FOLDER], str(out))
    out.mkdir(parents=True, exist_ok=True)
    staged = out / "variant"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    for name in recording["key"]["sources"]:
        shutil.copyfile(variant.parent / name, staged / name)
    for old in out.glob("seed_*"):
        shutil.rmtree(old, ignore_errors=True)
    for rel, text in recording["files"].items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    results = recording["results"]
    results["sandbox"] = {"mode": opts.settings.sandbox, "enabled": sandboxed}
    for row in results.get("per_seed") or []:
        if "sandboxed" in row:
            row["sandboxed"] = bool(sandboxed)
    results["replayed"] = True
    write_sealed(out / "results.json", results)
    error = recording.get("error")
    if error is not None:
        if error.get("type") not in ERRORS:
            raise AutosaeError(f"replay recording for {variant.name}: unknown error type {error.get('type')!r}")
        raise ERRORS[error["type"]](error["message"])
    return results
