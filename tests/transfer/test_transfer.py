"""`autosae transfer` end to end on a random tiny transformer built from a config (no download)
and a token dataset the test writes: the sprint's variant (LISTA-Matryoshka) and the
Matryoshka baseline trained in their sandboxes on the model's activations, evaluated by
SAELens, judged, reported, committed and shown in the leaderboard; then resumed."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import git
import pytest

from autosae.harness.seal import read_verified
from autosae.transfer.record import recorded
from tests.sprint.conftest import SPRINT_ID, autosae, commit, one_line_error

MODEL = {
    "n_layers": 1,
    "d_model": 16,
    "n_ctx": 16,
    "d_head": 4,
    "n_heads": 4,
    "d_mlp": 32,
    "d_vocab": 60,
    "act_fn": "gelu",
    "normalization_type": "LN",
    "seed": 7,
}
"""A HookedTransformerConfig: its seed draws the same random weights in every process."""
SETTINGS = {
    "hook": "blocks.0.hook_resid_post",
    "context_size": 16,
    "tokens": 16384,
    "lr": 0.01,
    "width": 32,
    "l0s": [2, 4],
    "seeds": 1,
    "batch_size": 128,
    "eval_batches": 2,
    "eval_batch_prompts": 8,
    "prepend_bos": False,
}


def write_lm(folder: Path) -> tuple[Path, Path]:
    """The model's config, and 300 token rows of a random Markov chain (each token has three
    successors). The model's seed draws its weights but three: large token embeddings, no
    position embeddings, and an unembedding fitted to the chain's bigrams (least squares
    through the final LayerNorm), so that the model predicts the data better than chance and
    zero-ablating its residual stream costs loss, as on a real LM."""
    import datasets
    import torch
    from safetensors.torch import save_file

    model = folder / "tiny-lm"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(MODEL))
    rng = random.Random(0)
    vocab, d = MODEL["d_vocab"], MODEL["d_model"]
    successors = {t: rng.sample(range(vocab), 3) for t in range(vocab)}
    bigram = torch.full((vocab, vocab), math.log(1e-3))
    for t, nxt in successors.items():
        bigram[t, nxt] = math.log(1 / 3)
    embed = torch.randn(vocab, d, generator=torch.Generator().manual_seed(0))
    normed = (embed - embed.mean(1, keepdim=True)) / embed.std(1, unbiased=False, keepdim=True)
    unembed = torch.linalg.lstsq(normed, bigram).solution
    weights = {"embed.W_E": embed, "pos_embed.W_pos": torch.zeros(MODEL["n_ctx"], d), "unembed.W_U": unembed}
    save_file({k: v.contiguous() for k, v in weights.items()}, model / "model.safetensors")
    rows = []
    for _ in range(300):
        row = [rng.randrange(MODEL["d_vocab"])]
        while len(row) < MODEL["n_ctx"]:
            row.append(rng.choice(successors[row[-1]]))
        rows.append(row)
    tokens = folder / "tokens"
    datasets.Dataset.from_dict({"input_ids": rows}).save_to_disk(str(tokens))
    return model, tokens


def set_transfer(root: Path, model: Path, tokens: Path, **changes) -> None:
    task = root / "TASK.md"
    front = json.dumps({"model": str(model), "dataset": str(tokens), **SETTINGS, **changes})
    head, sep, body = task.read_text().partition("\n---\n")  # the end of the front matter
    task.write_text(f"{head}\ntransfer: {front}{sep}{body}")
    commit(root, "transfer settings", "TASK.md")


def test_transfer_trains_judges_records_and_resumes(project, tmp_path):
    proc = autosae("sprint", cwd=project)
    assert proc.returncode == 0, proc.stderr
    sid = SPRINT_ID.search(proc.stdout).group(1)
    model, tokens = write_lm(tmp_path / "lm")
    set_transfer(project, model, tokens)

    proc = autosae("transfer", sid[-6:], cwd=project)
    assert proc.returncode == 0, proc.stderr
    folder = project / "sprints" / sid
    data = read_verified(folder / "transfer.json")
    assert data is not None and data["sprint"] == sid
    assert data["kinds"] == ["variant", "baseline"] and data["parent_is_baseline"]  # LISTA's parent: the baseline
    runs = data["runs"]
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs), runs
    for r in runs:
        assert 0 < r["l0"] <= r["l0_target"] + 1e-6  # a TopK SAE at its k
        assert r["ce_loss_with_ablation"] > r["ce_loss_without_sae"]  # zero-ablating the stream hurts the LM
        assert r["explained_variance"] > 0.3 and -1 < r["ce_loss_score"] <= 1.2
    c = data["comparisons"]["baseline"]["ce_loss_score"]
    assert c["n"] == 2 and data["verdict"] in ("holds", "does not hold", "inconclusive at this budget")
    assert data["cost"]["unit"] == "CPU-hours" and data["cost"]["spent"] > 0
    md = (folder / "transfer.md").read_text()
    assert "## Verdicts" in md and "CE loss recovered vs baseline" in md and "## Cost" in md
    assert (folder / "transfer.pdf").read_bytes().startswith(b"%PDF")
    # committed, and shown in the sprint's report and the leaderboard
    head = git.Repo(project).head.commit
    assert {f"sprints/{sid}/transfer.json", f"sprints/{sid}/transfer.pdf"} <= {e.path for e in head.tree.traverse()}
    assert "## On a language model" in (folder / "report.md").read_text()
    board = (project / "reports" / "leaderboard.md").read_text()
    assert "| LLM |" in board
    mark = {"holds": "✓", "does not hold": "✗"}.get(data["verdict"], "?")
    assert f"| {mark} | $" in board
    assert f" {mark} " in autosae("leaderboard", cwd=project).stdout
    # a sealed transfer.json copied into another sprint's folder is not that sprint's
    other = project / "sprints" / "another-sprint"
    other.mkdir()
    shutil.copy(folder / "variant.py", other / "variant.py")
    shutil.copy(folder / "transfer.json", other / "transfer.json")
    assert recorded(folder) is not None and recorded(other) is None
    # every run's SAE loads in SAELens and encodes as the sandboxed variant did: the
    # recorded explained variance is SAELens's, computed again here on the loaded SAE
    check_with_saelens(project, sid, data, model, tokens)
    # resume: a sealed run is reused, a forged one trained again; and beside it, on a second
    # slot, a variant that buys reconstruction with more active latents than its L0 is rejected
    resumed(project, sid, data, tmp_path / "cheat" / "variant.py")


def check_with_saelens(project: Path, sid: str, data: dict, model_dir: Path, tokens: Path) -> None:
    """The variant's SAE loads in SAELens, and its recorded L0 and explained variance are what
    that SAE gives on the evaluation prompts, computed here by hand."""
    import torch
    from sae_lens import SAE

    import autosae.saelens  # noqa: F401  (registers our architecture)
    from autosae.transfer import lm
    from autosae.transfer.runs import settings_key
    from autosae.transfer.settings import TransferSettings

    settings = TransferSettings.model_validate(data["settings"])
    model = lm.load_model(settings, "cpu", project)
    _, eval_rows = lm.load_tokens(settings, project, settings.eval_batches * settings.eval_batch_prompts)
    prompts = lm.eval_prompts(model, eval_rows, settings, MODEL["d_model"], "cpu")
    run = next(r for r in data["runs"] if r["kind"] == "variant")
    runs = project / ".autosae" / "runs" / "transfer" / sid / settings_key(settings)
    sae = SAE.load_from_disk(str(runs / f"variant-l0_{run['l0_target']}-seed_{run['seed']}" / "sae"))
    xs, latents, recons = [], [], []
    with torch.no_grad():
        for batch in prompts:  # a batch at a time, as SAELens's evaluation encodes (BatchTopK's k is per batch)
            x = lm.hook_activations(model, batch, settings.hook)
            latent = sae.encode(x)
            xs.append(x.double())
            latents.append(latent)
            recons.append(sae.decode(latent).double())
    x, latents, recon = torch.cat(xs), torch.cat(latents), torch.cat(recons)
    variance = (x - x.mean(0)).pow(2).sum(1).mean()
    assert 1 - (x - recon).pow(2).sum(1).mean() / variance == pytest.approx(run["explained_variance"], abs=1e-4)
    assert (latents != 0).sum(1).float().mean() == pytest.approx(run["l0"], abs=1e-6)


def resumed(project: Path, sid: str, data: dict, cheat: Path) -> None:
    from autosae.config import load_task
    from autosae.sprint.project import Project
    from autosae.transfer.core import run_options_for, sae_files
    from autosae.transfer.runs import Job, run_all, settings_key
    from autosae.transfer.settings import TransferSettings

    settings = TransferSettings.model_validate(data["settings"])
    p = Project(project)
    files = sae_files(p, {"id": sid, "parent": data["parent"]})
    cheat.parent.mkdir()
    cheat.write_text(CHEAT)
    jobs = [Job(kind, path, l0, 0) for l0 in settings.l0s for kind, path in files] + [Job("cheat", cheat, 2, 0)]
    folder = project / ".autosae" / "runs" / "transfer" / sid
    forged = folder / settings_key(settings) / jobs[0].name / "result.json"
    record = json.loads(forged.read_text())
    forged.write_text(json.dumps({**record, "ce_loss_score": 0.999}))  # the seal no longer checks out
    lines: list[str] = []
    seed_settings = run_options_for(load_task(p.task_path).config, p, None, lines.append).settings
    runs = run_all(jobs, folder, settings, ["cpu", "cpu"], project, seed_settings, lines.append)  # two slots
    assert sum("reused" in line for line in lines) == 3, lines
    trained = sorted((line for line in lines if "training on cpu" in line), key=lambda line: line[-7:])
    assert trained == [
        f"transfer: {jobs[0].name}: training on cpu (1 of 5)",
        f"transfer: {jobs[4].name}: training on cpu (5 of 5)",
    ]
    assert runs[0]["ce_loss_score"] != 0.999 and read_verified(forged) is not None
    assert [r["status"] for r in runs] == ["ok"] * 4 + ["rejected"]
    assert runs[4]["failure_kind"] == "constraint:k" and "keeps k = 8" in runs[4]["reason"], runs[4]
    assert "requires 2" in runs[4]["reason"]


CHEAT = """
from autosae.sae import BatchTopKSAE


def build(spec):
    return BatchTopKSAE(spec.d_in, spec.width, spec.k * 4)  # four times the latents it was given
"""


def test_transfer_refuses_bad_input_in_one_line(project, tmp_path):
    proc = autosae("transfer", "no-such-sprint", cwd=project)
    assert proc.returncode != 0 and "no sprint matches" in one_line_error(proc)
    proc = autosae("transfer", "x", "--l0s", "16,abc", cwd=project)
    assert proc.returncode != 0 and "--l0s" in one_line_error(proc)
