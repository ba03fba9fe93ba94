"""One run_experiment call against one counted run, side by side in one run: is a quick run
that decides (several arms on several quick seeds, at the profile's full budget) about as
long as the counted run it stands in for?

    python benchmarks/quick_vs_counted.py                  # tiny on CPU: 3 seeds, 2 arms
    python benchmarks/quick_vs_counted.py --device cuda --profile synth-16k --samples 20000000

Each round, in turn:
- counted: the parent's counted run on `--seeds` seeds (what `autosae train` does);
- quick, parent trained: one run_experiment call with the variant and the parent as arms on
  `--seeds` quick seeds (the parent's arm under a fresh key, so it trains: a sprint's first call);
- quick, parent cached: the same call again (every later call of a sprint).

The variant is `--variant` (default batchtopk), the parent `--parent` (default matryoshka).
Greppable `key: value` lines; `ratio_*` is the quick call's wall time over the counted run's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from autosae.bench.build import build
from autosae.bench.profiles import get_profile
from autosae.harness.experiment import experimenter
from autosae.harness.run import RunOptions, resolve_device, run_variant
from autosae.variants import reference_variants


def emit(key: str, value) -> None:
    print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--variant", default="batchtopk")
    parser.add_argument("--parent", default="matryoshka")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=None, help="training samples (default: the profile's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sandbox", default="auto", choices=("auto", "required", "off"))
    args = parser.parse_args()

    device = resolve_device(args.device)
    overrides = [f"training_samples={args.samples}"] if args.samples else []
    profile = get_profile(args.profile, None, overrides)
    build(profile, device=device)
    refs = reference_variants()
    walls: dict[str, list[float]] = {"counted": [], "quick_trained": [], "quick_cached": []}

    def options(**kw) -> RunOptions:
        return RunOptions.make(device=device, counted=False, sandbox=args.sandbox, log=lambda line: None).replace(**kw)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for r in range(args.rounds):
            began = time.monotonic()
            counted = run_variant(
                refs[args.parent],
                profile,
                root / f"counted-{r}",
                RunOptions.make(
                    seeds=list(range(args.seeds)), device=device, sandbox=args.sandbox, log=lambda line: None
                ),
            )
            walls["counted"].append(time.monotonic() - began)
            assert counted["status"] == "ok", counted.get("reason")
            worktree = root / f"worktree-{r}"
            worktree.mkdir()
            experiment = experimenter(
                profile.name,
                None,
                overrides,
                f"baseline:{args.parent}",
                refs[args.parent],
                root / f"quick-{r}",
                options,
                worktree=worktree,
            )
            fresh = {"arm": "parent", "options": {"benchmark_key": uuid.uuid4().hex[:12]}, "label": "parent"}
            for key in ("quick_trained", "quick_cached"):
                began = time.monotonic()
                out = experiment(refs[args.variant], seeds=args.seeds, arms=["variant", fresh])
                walls[key].append(time.monotonic() - began)
                assert out["status"] == "ok", out
                emit(f"round_{r}_{key}_table", "\n" + out["table"])
    emit("profile", profile.name)
    emit("training_samples", profile.constraints.training_samples)
    emit("seeds", args.seeds)
    emit("arms", 2)
    for key, values in walls.items():
        emit(f"wall_s_{key}", statistics.fmean(values))
    emit(
        "ratio_quick_trained_over_counted",
        statistics.fmean(walls["quick_trained"]) / statistics.fmean(walls["counted"]),
    )
    emit(
        "ratio_quick_cached_over_counted", statistics.fmean(walls["quick_cached"]) / statistics.fmean(walls["counted"])
    )


if __name__ == "__main__":
    main()
