"""Quick (uncounted) runs never see a counted run's eval samples or seeds, and bring the parent
beside them from a sealed cache: the real harness on a shortened tiny, the real CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch

from autosae.config import parse_task
from autosae.errors import AutosaeError
from autosae.harness.quick import beside, logged_metrics, parent_dir
from autosae.harness.run import RunOptions, run_variant
from autosae.harness.seed import eval_batches
from autosae.harness.validation import QUICK_SEED_BASE, VALIDATION_EVAL_SEED
from autosae.sprint.project_secrets import with_secret_eval
from autosae.variants import reference_variants
from tests.conftest import run_cli

SPY = """
import hashlib

import torch

from autosae.sae import BatchTopKSAE


class Spy(BatchTopKSAE):
    '''BatchTopK that prints, to its worker.log, a hash of every row it is asked to encode in
    evaluation: the eval samples that actually reached the variant's process.'''

    def encode(self, x):
        if not self.training:
            rows = x.detach().float().cpu().contiguous()
            print("EVAL " + " ".join(hashlib.sha256(r.numpy().tobytes()).hexdigest()[:16] for r in rows))
        return super().encode(x)


def build(spec):
    print(f"SEED {spec.seed}")
    torch.manual_seed(spec.seed)
    return Spy(spec.d_in, spec.width, spec.k)
"""


def fed(run_dir, seed: int) -> tuple[set[str], list[int]]:
    """(hashes of the eval rows the variant encoded, the seeds it was built with) from its log."""
    log = (run_dir / f"seed_{seed}" / "worker.log").read_text()
    rows = {h for line in log.splitlines() if line.startswith("EVAL ") for h in line.split()[1:]}
    return rows, [int(line.split()[1]) for line in log.splitlines() if line.startswith("SEED ")]


def row_hash(row: torch.Tensor) -> str:
    return hashlib.sha256(row.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def empty_row(profile, model) -> str:
    """The one row every sample set shares: a sample in which no feature fires (the bias alone)."""
    return row_hash(model.feature_dict(torch.zeros(1, profile.model.num_features))[0])


def hashes(profile, model) -> set[str]:
    """The eval rows the harness draws for `profile`, but the empty one."""
    return {row_hash(r) for _, hidden in eval_batches(profile, model) for r in hidden} - {empty_row(profile, model)}


def test_a_quick_run_never_sees_the_counted_eval_samples_nor_its_seeds(quick, tiny, write_variant, tmp_path):
    """The caller hands the uncounted run the very profile of the counted run, secret eval seed
    included (as the engine's run_experiment once did): the harness still moves it onto the
    validation samples and the quick seeds."""
    _, model, _ = tiny
    spy = write_variant(SPY)
    counted = with_secret_eval(quick)
    run_variant(spy, counted, tmp_path / "counted", RunOptions.make(seeds=[0], log=lambda _: None))
    results = run_variant(
        spy, counted, tmp_path / "quick", RunOptions.make(seeds=[0], counted=False, log=lambda _: None)
    )

    test_set = hashes(counted, model)
    validation = hashes(dataclasses.replace(quick, eval_seed=VALIDATION_EVAL_SEED), model)
    test_rows, test_seeds = fed(tmp_path / "counted", 0)
    quick_rows, quick_seeds = fed(tmp_path / "quick", QUICK_SEED_BASE)
    assert len(test_set) > quick.constraints.eval_samples // 2
    assert not (test_rows & quick_rows) - {empty_row(quick, model)}  # no counted eval sample reached the quick run
    assert test_rows >= test_set and quick_rows >= validation  # what the spy saw is what the harness drew
    assert not quick_rows & hashes(quick, model)  # nor a public one (seed 1234)
    assert test_seeds == [0] and quick_seeds == [QUICK_SEED_BASE]

    assert results["quick"] == {
        "eval_set": "validation",
        "eval_seed": VALIDATION_EVAL_SEED,
        "requested_seeds": [0],
        "seeds": [QUICK_SEED_BASE],
        "note": results["quick"]["note"],
    }
    assert results["seeds"] == [QUICK_SEED_BASE] and results["per_seed"][0]["seed"] == QUICK_SEED_BASE
    recorded = (tmp_path / "counted" / "results.json").read_text()
    assert "quick" not in json.loads(recorded) and str(counted.eval_seed) not in recorded  # the secret stays secret


def test_counted_runs_and_task_md_refuse_the_quick_seeds(quick, tmp_path):
    with pytest.raises(AutosaeError, match="reserved"):
        run_variant(
            reference_variants()["batchtopk"], quick, tmp_path / "run", RunOptions.make(seeds=[QUICK_SEED_BASE])
        )
    assert not (tmp_path / "run").exists()
    with pytest.raises(AutosaeError, match="quick .uncounted. runs take seeds 0 to 999"):
        run_variant(
            reference_variants()["batchtopk"], quick, tmp_path / "run", RunOptions.make(seeds=[5000], counted=False)
        )
    for front, where in (
        (f"seeds: [0, {QUICK_SEED_BASE + 3}]", "line 2: seeds"),
        (f"seeds: {QUICK_SEED_BASE + 1}", "line 2: seeds"),
        (f"heldout:\n  seeds: {QUICK_SEED_BASE + 1}", "line 3: heldout.seeds"),
    ):
        with pytest.raises(AutosaeError) as info:
            parse_task(f"---\n{front}\n---\nbody\n")
        message = str(info.value)
        assert where in message and "reserved" in message and "\n" not in message, message


@pytest.fixture(scope="module")
def quick_with_parent(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "run"
    proc = run_cli(
        "train",
        "lista_matryoshka",
        "--seeds",
        "1",
        "--uncounted",
        "--samples",
        "20480",
        "--set",
        "eval_samples=4096",
        "--parent",
        "matryoshka",
        "--out",
        str(out),
    )
    return proc, out


def test_train_uncounted_with_a_parent_prints_both_the_log_and_the_difference(quick_with_parent):
    proc, out = quick_with_parent
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert lines["counted"] == "no" and lines["eval_set"].startswith("validation")
    assert lines["train_seeds"] == str(QUICK_SEED_BASE)
    assert lines["parent"] == "matryoshka" and lines["parent_status"] == "ok" and lines["parent_cached"] == "no"
    for key in ("f1", "mcc", "precision", "recall", "dead_latents"):
        assert float(lines[f"delta_{key}"]) == pytest.approx(
            float(lines[key]) - float(lines[f"parent_{key}"]), abs=1e-4
        )
    assert lines["log_loss"].startswith(f"seed={QUICK_SEED_BASE} first=") and " last=" in lines["log_loss"]
    assert "first=" in lines["variant_mse"]  # LISTA-Matryoshka's own TrainOutput.metrics
    parent = json.loads(open(lines["parent_results"]).read())
    assert parent["quick"]["eval_seed"] == VALIDATION_EVAL_SEED and parent["seeds"] == [QUICK_SEED_BASE]
    assert parent["constraints"] == json.loads((out / "results.json").read_text())["constraints"]


def test_the_parent_beside_comes_from_the_cache_only_when_its_seal_holds(quick_with_parent, quick):
    proc, _ = quick_with_parent
    assert proc.returncode == 0, proc.stderr
    profile = dataclasses.replace(quick, constraints=dataclasses.replace(quick.constraints, training_samples=20480))
    parent, opts = reference_variants()["matryoshka"], RunOptions.make(seeds=[0], log=lambda _: None)
    side = beside(parent, "matryoshka", profile, opts, True)  # what the CLI run above trained
    assert side["status"] == "ok" and side["cached"] and side["run_folder"] == str(parent_dir(parent, profile, [0]))
    path = parent_dir(parent, profile, [0]) / "results.json"
    forged = json.loads(path.read_text())
    forged["summary"]["f1"]["mean"] = 0.99  # an agent's edit: the seal no longer holds
    path.write_text(json.dumps(forged))
    again = beside(parent, "matryoshka", profile, opts, True)
    assert not again["cached"] and again["metrics"]["f1"] == side["metrics"]["f1"]  # trained again, same numbers
    assert beside(parent, "matryoshka", profile, opts, False) == {
        "variant": "matryoshka",
        "status": "not trained",
        "reason": "not asked for",
    }


def test_the_variants_own_logged_metrics_are_bounded_display_data(tmp_path):
    seed = tmp_path / "seed_900000"
    seed.mkdir()
    entries = [
        {
            "step": i,
            "samples": 1024 * i,
            "loss": 10.0 - i,
            "l0": 5.0,
            "dead": i,
            "variant/aux": i / 2,
            "variant/" + "x" * 200: 1.0,
            "variant/bad name;rm": 2.0,
            **{f"variant/m{j:03d}": float(j) for j in range(40)},
        }
        for i in range(1, 4)
    ]
    (seed / "train_log.jsonl").write_text("\n".join(json.dumps(e) for e in entries) + "\n{torn")
    out = logged_metrics(seed)
    assert out["harness"]["loss"] == {"first": 9.0, "last": 7.0, "min": 7.0, "max": 9.0, "points": 3}
    assert out["variant"]["aux"]["last"] == 1.5
    assert len(out["variant"]) == 24 and all(len(n) <= 48 and " " not in n for n in out["variant"])
    assert out["variant_left_out"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--parent", "matryoshka"], "--parent trains a comparison beside a quick run: it needs --uncounted"),
        (["--uncounted", "--parent", "no_such_parent"], "neither a file nor a reference variant"),
        (["--uncounted", "--seeds", "1001"], "quick (uncounted) runs take seeds 0 to 999"),
    ],
)
def test_bad_quick_run_options_are_one_line(args, message, tmp_path):
    proc = run_cli("train", "batchtopk", *args, "--out", str(tmp_path / "run"))
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "results.json").exists()
