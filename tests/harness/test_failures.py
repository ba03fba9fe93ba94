"""A variant that raises, NaNs, runs out of memory, hangs or reaches for the ground truth is
recorded as failed, with a reason and a log tail, and nothing of it reaches the scorer."""

from __future__ import annotations

import json
import os

import pytest

from autosae.errors import ConstraintBreach, VariantFailed
from autosae.harness.run import RunOptions, run_variant

GOOD = """
from autosae.sae import BatchTopKSAE

def build(spec):
    return BatchTopKSAE(spec.d_in, spec.width, spec.k)
"""


def run_failing(path, profile, out, error=VariantFailed, **opts):
    with pytest.raises(error) as info:
        run_variant(path, profile, out, RunOptions.make(seeds=[0, 1], counted=False, **opts))
    results = json.loads((out / "results.json").read_text())
    return str(info.value), results


def test_a_variant_that_raises_is_recorded_as_failed(quick, write_variant, tmp_path):
    path = write_variant("""
        def build(spec):
            raise ValueError("boom in build")
    """)
    message, results = run_failing(path, quick, tmp_path / "run")
    assert "ValueError: boom in build" in message and "worker.log" in message
    assert results["status"] == "failed" and results["failure_kind"] == "error"
    assert "boom in build" in results["reason"] and "Traceback" in results["log_tail"]
    assert len(results["per_seed"]) == 1  # the second seed never ran
    assert results["summary"] == {}


def test_a_variant_that_crashes_mid_training_is_recorded(quick, write_variant, tmp_path):
    path = write_variant(
        GOOD,
        """
    class Flaky(BatchTopKSAE):
        def training_loss(self, x, step):
            if step.step == 7:
                raise RuntimeError("lost the plot at step 7")
            return super().training_loss(x, step)

    def build(spec):
        return Flaky(spec.d_in, spec.width, spec.k)
    """,
    )
    message, results = run_failing(path, quick, tmp_path / "run")
    assert "lost the plot at step 7" in message
    assert results["per_seed"][0]["kind"] == "error"


def test_a_nan_loss_is_recorded_as_nan(quick, write_variant, tmp_path):
    path = write_variant(
        GOOD,
        """
    class Diverges(BatchTopKSAE):
        def training_loss(self, x, step):
            out = super().training_loss(x, step)
            out.loss = out.loss * float("nan")
            return out

    def build(spec):
        return Diverges(spec.d_in, spec.width, spec.k)
    """,
    )
    message, results = run_failing(path, quick, tmp_path / "run")
    assert results["failure_kind"] == "nan" and "nan" in message.lower()


def test_nan_latents_at_eval_are_caught_by_the_trusted_side(quick, write_variant, tmp_path):
    path = write_variant(
        GOOD,
        """
    class BadEval(BatchTopKSAE):
        def encode(self, x):
            return super().encode(x) * float("nan")

    def build(spec):
        return BadEval(spec.d_in, spec.width, spec.k)
    """,
    )
    message, results = run_failing(path, quick, tmp_path / "run")
    assert results["failure_kind"] == "nan" and "eval samples" in message


def test_running_out_of_memory_is_recorded(quick, write_variant, tmp_path):
    path = write_variant(
        GOOD,
        """
    import torch

    def build(spec):
        hog = torch.empty(2**40)  # 4 TiB
        return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
    )
    message, results = run_failing(path, quick, tmp_path / "run", memory_limit_gb=8)
    assert results["failure_kind"] == "out_of_memory", message


def test_a_hanging_variant_is_killed_at_its_time_limit(quick, write_variant, tmp_path):
    path = write_variant(
        GOOD,
        """
    import subprocess, time

    def build(spec):
        subprocess.Popen(["sh", "-c", "sleep 600; echo " + __file__], start_new_session=True)  # leaves the group
        time.sleep(600)
    """,
    )
    message, results = run_failing(path, quick, tmp_path / "run", time_limit_s=8)
    assert results["failure_kind"] == "timeout" and "time limit" in message
    marker = str(tmp_path).encode()  # the variant's process names its run folder on its command line
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                left += [pid] if marker in f.read() else []
        except OSError:
            pass
    assert not left  # neither the variant's process nor its setsid child outlives the run


@pytest.mark.parametrize("target", ["sae_lens.synthetic", "autosae.bench.metrics", "sae_lens.synthetic.initialization"])
def test_the_variant_cannot_import_the_ground_truth(quick, write_variant, tmp_path, target):
    path = write_variant(f"""
        import importlib
        importlib.import_module("{target}")

        def build(spec):
            raise AssertionError("unreachable")
    """)
    message, results = run_failing(path, quick, tmp_path / "run")
    assert results["failure_kind"] == "blocked_import"
    assert "blocked in the variant's process" in message


def test_a_width_breach_is_rejected_with_its_size(quick, write_variant, tmp_path):
    path = write_variant("""
        from autosae.sae import BatchTopKSAE

        def build(spec):
            return BatchTopKSAE(spec.d_in, spec.width + 8, spec.k)
    """)
    message, results = run_failing(path, quick, tmp_path / "run", error=ConstraintBreach)
    assert results["status"] == "rejected" and results["failure_kind"] == "constraint:width"
    assert "width: the SAE has 136 latents, the profile requires 128 (off by +8)" in message


def test_an_l0_breach_is_rejected_with_its_distance(quick, write_variant, tmp_path):
    path = write_variant("""
        from autosae.sae import BatchTopKSAE

        def build(spec):
            return BatchTopKSAE(spec.d_in, spec.width, 2 * spec.k)
    """)
    message, results = run_failing(path, quick, tmp_path / "run", error=ConstraintBreach)
    assert results["failure_kind"] == "constraint:l0"
    assert "l0: measured 10.000, the profile requires 5 ± 0.25 (off by +5.000)" in message


def test_the_guard_refuses_before_importing_the_parent_package():
    import subprocess
    import sys

    code = (
        "import sys\nfrom autosae.sandboxed import guard\nguard.install()\n"
        "for stmt in ('from sae_lens import synthetic', 'import sae_lens.synthetic.evals',\n"
        "             'import importlib; importlib.import_module(\"autosae.bench.metrics\")'):\n"
        "    try:\n        exec(stmt)\n    except guard.GroundTruthImportError:\n        print('blocked')\n"
        "print('sae_lens' in sys.modules)\nimport json\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["blocked", "blocked", "blocked", "False", "ok"], out.stdout + out.stderr


def test_a_variant_imports_the_python_files_beside_it(quick, write_variant, tmp_path):
    write_variant(
        """
        from autosae.sae import BatchTopKSAE

        def make(spec):
            return BatchTopKSAE(spec.d_in, spec.width, spec.k)
    """,
        name="helpers.py",
    )
    path = write_variant("""
        import helpers

        def build(spec):
            return helpers.make(spec)
    """)
    results = run_variant(path, quick, tmp_path / "run", RunOptions.make(seeds=[0], counted=False))
    assert results["status"] == "ok"
    assert sorted(p.name for p in (tmp_path / "run" / "variant").iterdir()) == ["helpers.py", "variant.py"]
