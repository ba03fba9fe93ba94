"""Our trainer against SAELens's SyntheticSAERunner, side by side in one run.

Both train the same BatchTopK SAE on the same cached synthetic model, device, batch size,
lr and sample count, then score it on the same number of eval samples. Printed as
greppable `key: value` lines, with the ratios last:

    python benchmarks/train_throughput.py --profile tiny --samples 300000
    python benchmarks/train_throughput.py --profile synth-16k --device cuda --samples 20000000
    python benchmarks/train_throughput.py --profile synth-16k --device cuda --full --seeds 3 \
        --variants batchtopk,matryoshka --matmul-precision high      # issue 8's counted-run goal

`--full` trains the profile's own sample count (200M on synth-16k): the wall time of a whole
counted run, eval included. With `--seeds N` both sides train N seeds and the metric lines
are means; `delta_f1_*` / `delta_mcc_*` are |ours - SAELens| of those means. Peak memory:
`*_peak_gpu_mb` on CUDA (ours: the variant's process and, separately, the trusted producer);
on CPU memory is not compared (SAELens trains inside this process, beside everything else).

Both sides train SAELens's BatchTopK defaults. "ours (pool)" is what the profile runs; "ours (stream)" draws fresh samples every
batch exactly as the runner does, so its ratio isolates the harness itself (process split,
shared buffers, overlap of generation with training). `ours_*_startup_s` is the part of
our wall time spent starting the variant's process: the price of keeping the ground truth
out of its reach.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

from autosae.bench.build import build, entry_dir
from autosae.bench.profiles import get_profile
from autosae.harness.run import RunOptions, resolve_device, run_variant


def emit(key: str, value) -> None:
    print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}", flush=True)


# SAELens's BatchTopKTrainingSAE defaults exactly (the reference variant shortens the
# dead-latent window on short runs; here both trainers must train the same SAE).
SAELENS_BATCHTOPK = """
from autosae.sae import BatchTopKSAE

def build(spec):
    return BatchTopKSAE(spec.d_in, spec.width, spec.k, dead_steps=1000)
"""


# SAELens's MatryoshkaBatchTopKTrainingSAE defaults, with the levels our baseline uses
# (the same levels are given to SAELens below).
SAELENS_MATRYOSHKA = """
from autosae.sae import MatryoshkaBatchTopKSAE

def build(spec):
    return MatryoshkaBatchTopKSAE(spec.d_in, spec.width, spec.k, levels=levels(spec.width), dead_steps=1000)

def levels(width):
    return [width // 32, width // 8, width // 2, width]
"""


def matryoshka_levels(width: int) -> list[int]:
    return [width // 32, width // 8, width // 2, width]


VARIANTS = {"batchtopk": SAELENS_BATCHTOPK, "matryoshka": SAELENS_MATRYOSHKA}


def mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return sum(values) / len(values) if values else float("nan")


def ours(profile, device: str, out: Path, variant_name: str, seeds: int, precision: str) -> dict:
    out.mkdir(parents=True)
    variant = out / "variant.py"
    variant.write_text(VARIANTS[variant_name])
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    results = run_variant(
        variant,
        profile,
        out / "run",
        RunOptions.make(
            seeds=list(range(seeds)), device=device, counted=False, matmul_precision=precision, log=lambda _: None
        ),
    )
    rows = results["per_seed"]
    row = {
        "train_samples_per_s": round(mean(rows, "samples_per_s")),
        "wall_s": round(mean(rows, "wall_s"), 2),
        "startup_s": round(mean(rows, "startup_s"), 2),
        "f1": mean(rows, "f1"),
        "mcc": mean(rows, "mcc"),
    }
    if "peak_gpu_mb" in rows[0]["worker_memory"]:
        row["peak_gpu_mb"] = max(r["worker_memory"]["peak_gpu_mb"] for r in rows)
    if device.startswith("cuda"):
        row["producer_peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row


def saelens(profile, device: str, variant_name: str, seeds: int, precision: str) -> dict:
    rows = [saelens_seed(profile, device, variant_name, seed, precision) for seed in range(seeds)]
    out = {k: round(mean(rows, k), 2) if k == "wall_s" else mean(rows, k) for k in ("wall_s", "f1", "mcc")}
    out["train_samples_per_s"] = round(mean(rows, "train_samples_per_s"))
    if "peak_gpu_mb" in rows[0]:
        out["peak_gpu_mb"] = max(r["peak_gpu_mb"] for r in rows)
    return out


def saelens_seed(profile, device: str, variant_name: str, seed: int, precision: str) -> dict:
    from sae_lens import BatchTopKTrainingSAEConfig, LoggingConfig, MatryoshkaBatchTopKTrainingSAEConfig
    from sae_lens.synthetic import SyntheticSAERunner, SyntheticSAERunnerConfig, eval_sae_on_synthetic_data

    c = profile.constraints
    torch.manual_seed(seed)
    torch.set_float32_matmul_precision(precision)
    sae_cls = BatchTopKTrainingSAEConfig if variant_name == "batchtopk" else MatryoshkaBatchTopKTrainingSAEConfig
    cfg = SyntheticSAERunnerConfig(
        synthetic_model=str(entry_dir(profile)),
        sae=sae_cls(
            d_in=profile.model.hidden_dim,
            d_sae=c.width,
            k=c.k,
            device=device,
            **({"matryoshka_widths": matryoshka_levels(c.width)} if variant_name == "matryoshka" else {}),
        ),
        training_samples=c.training_samples,
        batch_size=c.batch_size,
        lr=c.lr,
        device=device,
        eval_samples=c.eval_samples,
        output_path=None,
        logger=LoggingConfig(log_to_wandb=False),
    )
    runner = SyntheticSAERunner(cfg)  # model loading is outside the timed part, as for ours
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.monotonic()
    result = runner.run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.monotonic() - started
    eval_started = time.monotonic()  # a second eval of the same size, to split train from eval
    eval_sae_on_synthetic_data(
        result.sae,
        runner.synthetic_model.feature_dict,
        runner.synthetic_model.activation_generator,
        num_samples=c.eval_samples,
        batch_size=c.batch_size,
    )
    eval_s = time.monotonic() - eval_started
    out = {
        "train_samples_per_s": round(c.training_samples / max(wall - eval_s, 1e-9)),
        "wall_s": round(wall, 2),
        "f1": result.final_eval.classification.f1_score,
        "mcc": result.final_eval.mcc,
    }
    if device.startswith("cuda"):
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    torch.set_float32_matmul_precision("highest")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--samples", type=int, default=300_000, help="training samples for each trainer")
    parser.add_argument("--eval-samples", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--full", action="store_true", help="the profile's own training samples (a whole counted run)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds for each side (metric lines are means)")
    parser.add_argument("--variants", default="batchtopk", help="comma-separated: batchtopk, matryoshka")
    parser.add_argument(
        "--matmul-precision",
        default="highest",
        choices=("highest", "high", "medium"),
        help="float32 matmul precision of both trainers (high: TF32 on GPUs)",
    )
    parser.add_argument("--no-stream", action="store_true", help="skip 'ours (stream)' when the profile has a pool")
    args = parser.parse_args()

    device = resolve_device(args.device)
    base = get_profile(args.profile)
    if args.full:
        args.samples = base.constraints.training_samples
    constraints = dataclasses.replace(
        base.constraints, training_samples=args.samples, eval_samples=args.eval_samples or base.constraints.eval_samples
    )
    profiles = {"pool": dataclasses.replace(base, constraints=constraints)} if base.data == "pool" else {}
    stream = dataclasses.replace(base, constraints=constraints, data="stream")
    if not (args.no_stream and profiles):
        profiles["stream"] = stream
    for p in profiles.values():
        build(p, device=device, log=lambda line: print(line, file=sys.stderr))

    emit(
        "device",
        torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)",
    )
    emit("profile", base.name)
    emit("training_samples", args.samples)
    emit("batch_size", constraints.batch_size)
    emit("eval_samples", constraints.eval_samples)
    emit("seeds", args.seeds)
    emit("matmul_precision", args.matmul_precision)
    for variant in args.variants.split(","):
        rows = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, p in profiles.items():
                rows[f"ours_{name}"] = ours(p, device, Path(tmp) / name, variant, args.seeds, args.matmul_precision)
        rows["saelens"] = saelens(stream, device, variant, args.seeds, args.matmul_precision)
        tag = "" if variant == "batchtopk" and args.variants == "batchtopk" else f"{variant}_"
        for name, row in rows.items():
            for key, value in row.items():
                emit(f"{tag}{name}_{key}", value)
        ref = rows["saelens"]
        for name in [n for n in rows if n.startswith("ours_")]:
            emit(f"{tag}delta_f1_{name}_vs_saelens", abs(rows[name]["f1"] - ref["f1"]))
            emit(f"{tag}delta_mcc_{name}_vs_saelens", abs(rows[name]["mcc"] - ref["mcc"]))
            emit(
                f"{tag}ratio_train_throughput_{name}_vs_saelens",
                rows[name]["train_samples_per_s"] / ref["train_samples_per_s"],
            )
            emit(f"{tag}ratio_wall_speedup_{name}_vs_saelens", ref["wall_s"] / rows[name]["wall_s"])


if __name__ == "__main__":
    main()
