"""Does a profile rank the reference recipes as SynthSAEBench-16k does? One scaling, measured:
each recipe as a counted run on `--seeds` seeds, side by side in one run, against the order
published or reported on synth-16k (BatchTopK 0.73 < Matryoshka 0.88 < the seed's
LISTA-Matryoshka recipe 0.97 < ...; see docs/proxy.md).

    python benchmarks/proxy_ranking.py --profile tiny                     # the smoke profile
    python benchmarks/proxy_ranking.py --profile tiny --set num_features=2048 --set hidden_dim=128 \\
        --set width=512 --set k=10 --set training_samples=1000000 ...     # a candidate scaling
    python benchmarks/proxy_ranking.py --profile proxy --device cuda      # unchanged on a GPU

`--variants` names the recipes in their synth-16k order, lowest first (reference variant names
or variant.py paths). Prints per recipe `recipe_<name>: F1 m ± s, MCC m ± s, wall W s`, then
`spearman_rho_f1` (measured means against the synth-16k order), `step_<a>_<b>_noise_units`
(each adjacent step's F1 difference over the pooled seed std: > 2 is a clear separation),
`wall_s_per_counted_run` (the mean, model build excluded) and `order_ok`. With `--json F`
each recipe's numbers are appended to F as they finish, so a long search keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from autosae.bench.build import build
from autosae.bench.profiles import get_profile
from autosae.harness.run import RunOptions, resolve_device, run_variant
from autosae.variants import reference_variants

ORDER = ("batchtopk", "matryoshka", "lista_matryoshka")
"""Recipes whose synth-16k order is published or reported, lowest F1 first."""


def emit(key: str, value) -> None:
    print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}", flush=True)


def spearman(expected: list[float], measured: list[float]) -> float:
    """Spearman's rho of two sequences without ties in `expected` (ties in `measured` averaged)."""
    from scipy.stats import spearmanr

    return float(spearmanr(expected, measured).statistic)


def summary(results: dict, metric: str) -> tuple[float, float, int]:
    stat = (results.get("summary") or {}).get(metric) or {}
    return float(stat.get("mean", math.nan)), float(stat.get("std", math.nan)), int(stat.get("n", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="key=value, as `autosae train`")
    parser.add_argument("--variants", default=",".join(ORDER), help="recipes, lowest synth-16k F1 first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sandbox", default="auto", choices=("auto", "required", "off"))
    parser.add_argument("--json", type=Path, default=None, help="append each recipe's numbers here")
    parser.add_argument("--out", type=Path, default=None, help="keep the run folders here (default: a temp folder)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    profile = get_profile(args.profile, None, args.overrides)
    began = time.monotonic()
    build(profile, device=device)
    emit("model_build_s", time.monotonic() - began)
    refs = reference_variants()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for name in names:
            path = refs[name] if name in refs else Path(name)
            label = path.parent.name if path.stem == "variant" else path.stem  # sprints/<id>/variant.py: <id>
            began = time.monotonic()
            results = run_variant(
                path,
                profile,
                root / label,
                RunOptions.make(seeds=list(range(args.seeds)), device=device, sandbox=args.sandbox, log=lambda _: None),
            )
            wall = time.monotonic() - began
            f1, f1_std, n = summary(results, "f1")
            mcc, mcc_std, _ = summary(results, "mcc")
            row = {"recipe": label, "f1": f1, "f1_std": f1_std, "mcc": mcc, "mcc_std": mcc_std}
            row.update(n=n, wall_s=wall, status=results.get("status"), profile=profile.name, overrides=args.overrides)
            rows.append(row)
            emit(
                f"recipe_{row['recipe']}",
                f"F1 {f1:.4f} ± {f1_std:.4f}, MCC {mcc:.4f} ± {mcc_std:.4f}, wall {wall:.0f} s",
            )
            if args.json:
                with args.json.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    emit("profile", profile.name)
    emit("training_samples", profile.constraints.training_samples)
    emit("seeds", args.seeds)
    if len(rows) >= 2:
        emit("spearman_rho_f1", spearman(list(range(len(rows))), [r["f1"] for r in rows]))
        emit("spearman_rho_mcc", spearman(list(range(len(rows))), [r["mcc"] for r in rows]))
        for a, b in zip(rows, rows[1:]):
            pooled = math.sqrt((a["f1_std"] ** 2 + b["f1_std"] ** 2) / 2) or math.nan
            emit(f"step_{a['recipe']}_{b['recipe']}_noise_units", (b["f1"] - a["f1"]) / pooled)
        emit("order_ok", all(b["f1"] > a["f1"] for a, b in zip(rows, rows[1:])))
    emit("wall_s_per_counted_run", statistics.fmean(r["wall_s"] for r in rows))


if __name__ == "__main__":
    main()
