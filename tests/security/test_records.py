"""Red team: only records the harness can prove it wrote are reused, the project's secrets are
made before any agent runs, and a sprint folder cannot smuggle a link to a secret."""

from __future__ import annotations

import json
import os
import stat

import git
import pytest

from autosae.harness.baselines import cached
from autosae.harness.run import RunOptions
from autosae.harness.seal import read_verified, seal, verified, write_sealed
from autosae.report.record import folder_files
from autosae.sprint.engine import refuse_links
from autosae.sprint.heldout import run_cached
from autosae.sprint.project_secrets import eval_seed, secrets_path
from autosae.variants import reference_variants
from tests.conftest import run_cli

FORGED = {"status": "ok", "summary": {"f1": {"mean": 0.99, "std": 0.0, "n": 1}}, "per_seed": []}


def test_a_sealed_record_is_trusted_and_any_change_breaks_the_seal(tmp_path):
    path = tmp_path / "results.json"
    write_sealed(path, {"status": "ok", "f1": 0.5, "nested": {"a": [1, 2.5]}})
    assert read_verified(path)["f1"] == 0.5
    data = json.loads(path.read_text())
    data["f1"] = 0.99  # an edit by anyone without the key
    path.write_text(json.dumps(data))
    assert read_verified(path) is None
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(FORGED | {"seal": "0" * 64}))
    assert read_verified(forged) is None and not verified(FORGED)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    assert read_verified(link) is None  # never through a link
    assert verified(seal({"x": 1}))


def test_a_forged_baseline_in_the_cache_is_not_used(tmp_path):
    variant = reference_variants()["batchtopk"]
    from autosae.harness.run import sha256_file

    (tmp_path / "results.json").write_text(json.dumps(FORGED | {"variant_sha256": sha256_file(variant)}))
    assert cached(tmp_path, variant) is None
    write_sealed(tmp_path / "results.json", FORGED | {"variant_sha256": sha256_file(variant)})
    assert cached(tmp_path, variant)["summary"]["f1"]["mean"] == 0.99  # only the harness's own seal counts


@pytest.mark.real_harness
def test_a_forged_held_out_result_is_trained_again_not_reused(quick, tmp_path):
    import dataclasses
    import hashlib

    from autosae.bench.cache import cache_root
    from autosae.harness.run import sha256_file

    variant = reference_variants()["batchtopk"]
    key = json.dumps(
        {
            "variant": sha256_file(variant),
            "model": quick.model_hash(),
            "seeds": [0],
            "constraints": dataclasses.asdict(quick.constraints),
        },
        sort_keys=True,
    )
    out = cache_root() / "heldout-runs" / hashlib.sha256(key.encode()).hexdigest()[:20]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(FORGED | {"variant_sha256": sha256_file(variant)}))
    results = run_cached(variant, quick, [0], RunOptions.make(seeds=[0], sandbox="required"))
    assert results["status"] == "ok" and results["summary"]["f1"]["mean"] < 0.9
    sealed = json.loads((out / "results.json").read_text())
    assert verified(sealed)
    assert run_cached(variant, quick, [0], RunOptions.make(seeds=[0])) == sealed  # its own record is reused as it is


def test_links_and_special_files_are_removed_from_a_sprint_folder(tmp_path):
    folder = tmp_path / "sprints" / "s1"
    folder.mkdir(parents=True)
    (folder / "variant.py").write_text("x = 1\n")
    secret = tmp_path / "netrc"
    secret.write_text("machine example login me password hunter2\n")
    (folder / "notes.txt").symlink_to(secret)
    (folder / "more").symlink_to(tmp_path)
    os.mkfifo(folder / "pipe")
    assert refuse_links(folder) == ["more", "notes.txt", "pipe"]
    assert sorted(p.name for p in folder.iterdir()) == ["variant.py"]
    assert secret.read_text().startswith("machine")  # the target itself is untouched
    (folder / "late.txt").symlink_to(secret)
    assert "hunter2" not in json.dumps(folder_files(folder, ()))  # the reader never follows one either


def test_init_draws_the_secrets_outside_the_project(tmp_path):
    proc = run_cli("init", str(tmp_path / "p"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    key = git.Repo(tmp_path / "p").git.rev_list("--max-parents=0", "HEAD")
    path = secrets_path(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((path.parent / "eval.json").stat().st_mode) == 0o600
    assert len(json.loads(path.read_text())["heldout_seeds"]) == 5
    seed = eval_seed()
    assert seed != 1234  # the public eval seed is not what projects are scored on
    assert str(seed) not in "".join(
        p.read_text() for p in (tmp_path / "p").rglob("*") if p.is_file() and ".git" not in p.parts
    )
