"""The cost of the OS sandbox, side by side in one run: every measurement is taken with and
without bubblewrap, interleaved, and printed with the ratio last.

    python benchmarks/sandbox_overhead.py                      # tiny on CPU, 3 seeds
    python benchmarks/sandbox_overhead.py --device cuda --profile synth-16k --samples 20000000

- start-up: the wall time to start a process that does nothing (`python -c pass`), and one that
  imports torch (what every variant's process does first), `--starts` times each;
- training: the same counted run of a reference variant (`--variant`, default batchtopk) with
  `--sandbox required` and `--sandbox off`, alternating, `--rounds` times each: the training
  samples/s of every seed (the time between the first and the last training chunk, which
  excludes the process start) and the run's wall time.

Greppable `key: value` lines; `ratio_*` is sandboxed / bare (1.00 = no cost; for samples/s
below 1 is slower).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from autosae.bench.build import build
from autosae.bench.profiles import get_profile
from autosae.harness.run import RunOptions, resolve_device, run_variant
from autosae.sandbox import Limits, Policy, availability, spawn
from autosae.variants import reference_variants


def emit(key: str, value) -> None:
    print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}", flush=True)


def start_time(code: str, enabled: bool, starts: int) -> float:
    """Median wall time of `python -c code` from spawn to exit, sandboxed or bare."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        policy = Policy(cwd=Path(tmp), env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}, writable=[Path(tmp)])
        for _ in range(starts):
            began = time.perf_counter()
            with spawn([sys.executable, "-I", "-c", code], policy, Limits(), enabled) as box:
                box.wait(timeout=300)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--variant", default="batchtopk")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=None, help="training samples (default: the profile's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()

    ok, why = availability()
    emit("bwrap", why)
    if not ok:
        sys.exit("the sandbox is not available here: nothing to compare")
    for name, code in (("python", "pass"), ("torch", "import torch")):
        sandboxed, bare = start_time(code, True, args.starts), start_time(code, False, args.starts)
        emit(f"startup_{name}_sandboxed_s", sandboxed)
        emit(f"startup_{name}_bare_s", bare)
        emit(f"startup_{name}_extra_s", sandboxed - bare)

    device = resolve_device(args.device)
    profile = get_profile(args.profile)
    build(profile, device=device)
    if args.samples:
        profile = dataclasses.replace(
            profile, constraints=dataclasses.replace(profile.constraints, training_samples=args.samples)
        )
    variant = reference_variants()[args.variant]
    rates: dict[str, list[float]] = {"required": [], "off": []}
    walls: dict[str, list[float]] = {"required": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in ("required", "off") if r % 2 == 0 else ("off", "required"):
                out = Path(tmp) / f"{mode}-{r}"
                results = run_variant(
                    variant,
                    profile,
                    out,
                    RunOptions.make(
                        seeds=list(range(args.seeds)), device=device, counted=False, sandbox=mode, log=lambda line: None
                    ),
                )
                assert results["sandbox"]["enabled"] == (mode == "required")
                rates[mode] += [s["samples_per_s"] for s in results["per_seed"]]
                walls[mode].append(results["wall_s"])
    for mode in ("required", "off"):
        emit(f"train_samples_per_s_{'sandboxed' if mode == 'required' else 'bare'}", statistics.fmean(rates[mode]))
        emit(f"run_wall_s_{'sandboxed' if mode == 'required' else 'bare'}", statistics.fmean(walls[mode]))
    emit("seeds_measured", len(rates["off"]))
    emit("ratio_train_samples_per_s", statistics.fmean(rates["required"]) / statistics.fmean(rates["off"]))
    emit("ratio_run_wall", statistics.fmean(walls["required"]) / statistics.fmean(walls["off"]))


if __name__ == "__main__":
    main()
