"""Our trainer against SAELens's SyntheticSAERunner, side by side in one run.

Both train the same BatchTopK SAE on the same cached synthetic model, device, batch size,
lr and sample count, then score it on the same number of eval samples. Printed as
greppable `key: value` lines, with the ratios last:

    python benchmarks/train_throughput.py --profile tiny --samples 300000
    python benchmarks/train_throughput.py --profile synth-16k --device cuda --samples 20000000

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


def ours(profile, device: str, out: Path) -> dict:
    out.mkdir(parents=True)
    variant = out / "variant.py"
    variant.write_text(SAELENS_BATCHTOPK)
    results = run_variant(variant, profile, out / "run",
                          RunOptions(seeds=[0], device=device, counted=False, log=lambda _: None))
    row = results["per_seed"][0]
    return {"train_samples_per_s": row["samples_per_s"], "wall_s": row["wall_s"],
            "startup_s": row["startup_s"], "f1": row["f1"], "mcc": row["mcc"],
            **row["worker_memory"]}


def saelens(profile, device: str) -> dict:
    from sae_lens import BatchTopKTrainingSAEConfig, LoggingConfig
    from sae_lens.synthetic import SyntheticSAERunner, SyntheticSAERunnerConfig, eval_sae_on_synthetic_data

    c = profile.constraints
    cfg = SyntheticSAERunnerConfig(
        synthetic_model=str(entry_dir(profile)),
        sae=BatchTopKTrainingSAEConfig(d_in=profile.model.hidden_dim, d_sae=c.width, k=c.k,
                                       device=device),
        training_samples=c.training_samples, batch_size=c.batch_size, lr=c.lr, device=device,
        eval_samples=c.eval_samples, output_path=None, logger=LoggingConfig(log_to_wandb=False))
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
    eval_sae_on_synthetic_data(result.sae, runner.synthetic_model.feature_dict,
                               runner.synthetic_model.activation_generator,
                               num_samples=c.eval_samples, batch_size=c.batch_size)
    eval_s = time.monotonic() - eval_started
    out = {"train_samples_per_s": round(c.training_samples / max(wall - eval_s, 1e-9)),
           "wall_s": round(wall, 2), "f1": result.final_eval.classification.f1_score,
           "mcc": result.final_eval.mcc}
    if device.startswith("cuda"):
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--samples", type=int, default=300_000, help="training samples for each trainer")
    parser.add_argument("--eval-samples", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = resolve_device(args.device)
    base = get_profile(args.profile)
    constraints = dataclasses.replace(
        base.constraints, training_samples=args.samples,
        eval_samples=args.eval_samples or base.constraints.eval_samples)
    profiles = {"pool": dataclasses.replace(base, constraints=constraints)} if base.data == "pool" else {}
    profiles["stream"] = dataclasses.replace(base, constraints=constraints, data="stream")
    for p in profiles.values():
        build(p, device=device, log=lambda line: print(line, file=sys.stderr))

    emit("device", torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)")
    emit("profile", base.name)
    emit("training_samples", args.samples)
    emit("batch_size", constraints.batch_size)
    emit("eval_samples", constraints.eval_samples)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, p in profiles.items():
            rows[f"ours_{name}"] = ours(p, device, Path(tmp) / name)
    rows["saelens"] = saelens(profiles["stream"], device)
    for name, row in rows.items():
        for key, value in row.items():
            emit(f"{name}_{key}", value)
    ref = rows["saelens"]
    for name in [n for n in rows if n.startswith("ours_")]:
        emit(f"ratio_train_throughput_{name}_vs_saelens", rows[name]["train_samples_per_s"] / ref["train_samples_per_s"])
        emit(f"ratio_wall_speedup_{name}_vs_saelens", ref["wall_s"] / rows[name]["wall_s"])


if __name__ == "__main__":
    main()
