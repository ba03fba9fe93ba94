"""The command line itself: help, listings and start-up cost."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.conftest import run_cli


def test_help_lists_every_command_quickly():
    started = time.monotonic()
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert time.monotonic() - started < 5  # sae_lens (~7 s to import) stays out of start-up
    for command in ("train", "baselines", "bench", "variants"):
        assert command in proc.stdout


def test_help_does_not_import_torch_or_sae_lens():
    code = "import sys; from autosae.cli import app; print('torch' in sys.modules, 'sae_lens' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "False False"


def test_variants_lists_the_reference_variants():
    proc = run_cli("variants")
    assert proc.returncode == 0
    for name in ("batchtopk", "matryoshka", "lista_matryoshka"):
        assert name in proc.stdout


def test_an_unknown_option_is_a_usage_error_without_traceback():
    proc = run_cli("train", "batchtopk", "--bogus")
    assert proc.returncode == 2 and "No such option" in proc.stderr
    assert "Traceback" not in proc.stderr
