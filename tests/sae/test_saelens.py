"""Every SAE the component library builds loads in SAELens and encodes as the harness did.

Each SAE trains a few steps on random data (so that thresholds, firing frequencies and
decoder norms are no longer at their init), is exported and written by the harness's own
writer, then loaded with `SAE.load_from_disk` in a fresh interpreter that only imported
autosae.saelens; its latents and reconstructions are compared with the module's on the
same batches. A real harness run of a LISTA variant is checked in tests/harness/test_train.py.
A cfg.json written before the ISTA and leave-one-out fields existed loads with them off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from autosae.harness.seed import write_sae_folder
from autosae.sae import (
    ISTA,
    LISTA,
    TERM,
    BatchTopKSAE,
    LeaveOneOut,
    LinearK,
    MatryoshkaBatchTopKSAE,
    StepInfo,
    export,
)
from autosae.sandboxed.spec import VariantSpec
from autosae.sandboxed.worker import load_variant, save_state
from autosae.variants import reference_variants

D_IN, WIDTH, K, BATCH, STEPS = 16, 64, 4.0, 128, 30
SPEC = VariantSpec(
    d_in=D_IN, width=WIDTH, k=K, batch_size=BATCH, total_steps=STEPS, lr=1e-2, seed=0, device="cpu", profile="test"
)
COMBOS = {
    "lista_3_steps_unrescaled": lambda: BatchTopKSAE(
        D_IN, WIDTH, K, encoder=LISTA(iterations=3, eta=0.2), rescale_by_decoder_norm=False
    ),
    "matryoshka_lista_by_index": lambda: MatryoshkaBatchTopKSAE(
        D_IN, WIDTH, K, levels=[8, 32], encoder=LISTA(iterations=1, eta=0.5), reducer=TERM(tilt=1e-2)
    ),
    "batchtopk_linear_k": lambda: BatchTopKSAE(D_IN, WIDTH, K, k_schedule=LinearK(start=3 * K, end=K)),
    "matryoshka_ista_by_frequency": lambda: MatryoshkaBatchTopKSAE(
        D_IN, WIDTH, K, levels=[8, 32], encoder=ISTA(iterations=1, eta=0.5), sort_by_frequency=True
    ),
    "leave_one_out": lambda: BatchTopKSAE(D_IN, WIDTH, 2 * K, encoder=LeaveOneOut()),
    "leave_one_out_ista_unrescaled": lambda: BatchTopKSAE(
        D_IN, WIDTH, 2 * K, encoder=LeaveOneOut(inner=ISTA(iterations=2, eta=0.3)), rescale_by_decoder_norm=False
    ),
    "matryoshka_leave_one_out_lista": lambda: MatryoshkaBatchTopKSAE(
        D_IN, WIDTH, 2 * K, levels=[8, 32], encoder=LeaveOneOut(inner=LISTA(iterations=1, eta=0.3))
    ),
}
OLD_EXPORTS = {"old_lista_export": "matryoshka_lista_by_index", "old_batchtopk_export": "batchtopk"}
"""Copies of these SAEs' folders with the fields added since removed from cfg.json, as written before."""


def trained(sae: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(1)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    data = torch.randn(STEPS, BATCH, D_IN) * 2 + 0.5
    for step in range(STEPS):
        out = sae.training_loss(data[step], StepInfo(step, STEPS))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return sae.eval()


def saes() -> dict[str, torch.nn.Module]:
    built = {}
    for name, path in reference_variants().items():
        torch.manual_seed(0)
        built[name] = load_variant(str(path)).build(SPEC)
    for name, make in COMBOS.items():
        torch.manual_seed(0)
        built[name] = make()
    return {name: trained(sae) for name, sae in built.items()}


def write_as_the_harness_does(sae: torch.nn.Module, folder, sample: torch.Tensor):
    """The variant's side (save_state, with its self-check) then the trusted side's writer,
    with the tensors read back from the files as the harness reads them."""
    work = folder / "work"
    work.mkdir(parents=True)
    cfg, why_not = save_state(sae, work, sample)
    weights = load_file(work / "sae_weights.safetensors") if cfg is not None else None
    cfg = json.loads(json.dumps(cfg))  # as it crosses the protocol
    write_sae_folder(folder / "sae", cfg, weights, why_not, sae.decoder_directions().detach(), D_IN, WIDTH)
    return folder / "sae"


LOAD_AND_ENCODE = textwrap.dedent("""
    import json, sys, torch
    from safetensors.torch import load_file, save_file
    import autosae.saelens  # registers autosae's architecture; nothing else of autosae is needed
    from sae_lens import SAE
    batches = load_file(sys.argv[1])["x"]
    out, refused = {}, {}
    for folder in sys.argv[2:]:
        try:
            sae = SAE.load_from_disk(folder)
        except Exception as exc:
            refused[folder] = type(exc).__name__
            continue
        with torch.no_grad():
            z = torch.stack([sae.encode(x) for x in batches])
            out[f"{folder}:latents"] = z
            out[f"{folder}:recon"] = torch.stack([sae.decode(b) for b in z])
            if not (sae.cfg.lista_iterations or sae.cfg.ista_iterations or sae.cfg.leave_one_out):
                out[f"{folder}:jumprelu"] = sae.to_jumprelu().decode(z[0])
    save_file(out, sys.argv[1] + ".out")
    print(json.dumps(refused))
""")


class ShiftedEncode(BatchTopKSAE):
    """A variant's subclass whose encode the inherited export does not describe."""

    def encode(self, x):
        return super().encode(x + 1.0)


class NoExport(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.W_dec = torch.nn.Parameter(torch.randn(WIDTH, D_IN))

    def decoder_directions(self):
        return self.W_dec


UNEXPORTABLE = {
    "shifted_encode": (lambda: ShiftedEncode(D_IN, WIDTH, K), "the exported SAE's encode differs from the module's"),
    "unknown_encoder": (
        lambda: BatchTopKSAE(D_IN, WIDTH, K, encoder=object()),
        "its encoder object has no SAELens form",
    ),
    "leave_one_out_twice": (
        lambda: BatchTopKSAE(D_IN, WIDTH, K, encoder=LeaveOneOut(inner=LeaveOneOut())),
        "leave-one-out applied twice has no SAELens form",
    ),
    "no_export": (NoExport, "NoExport has no sae_lens_export()"),
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Every folder written, then loaded in one fresh interpreter (SAELens's import takes
    seconds): {name: (folder, the module, its latents on the batches)}, the loaded SAEs'
    outputs, and {folder: the exception} for those SAELens refused."""
    tmp = tmp_path_factory.mktemp("saelens")
    torch.manual_seed(2)
    batches = torch.randn(3, BATCH, D_IN) * 2 + 0.5  # batch top-k: the same batches on both sides
    written = {}
    for name, sae in saes().items():
        folder = write_as_the_harness_does(sae, tmp / name, batches[0])
        with torch.no_grad():
            written[name] = (folder, sae, torch.stack([sae.encode(x) for x in batches]))
    for name, original in OLD_EXPORTS.items():
        folder, sae, latents = written[original]
        shutil.copytree(folder, tmp / name / "sae")
        cfg = json.loads((folder / "cfg.json").read_text())
        for field in export.OPTIONAL_FIELDS[export.ARCHITECTURE]:
            del cfg[field]
        (tmp / name / "sae" / "cfg.json").write_text(json.dumps(cfg))
        written[name] = (tmp / name / "sae", sae, latents)
    for name, (make, _) in UNEXPORTABLE.items():
        torch.manual_seed(0)
        sae = make()
        written[name] = (write_as_the_harness_does(sae, tmp / name, batches[0]), sae, None)
    save_file({"x": batches}, tmp / "x.safetensors")
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_ENCODE, str(tmp / "x.safetensors"), *(str(f) for f, _, _ in written.values())],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return written, load_file(tmp / "x.safetensors.out"), json.loads(proc.stdout.splitlines()[-1])


def without_pruning(sae: BatchTopKSAE, x: torch.Tensor) -> torch.Tensor:
    """The latents of a leave-one-out SAE's inner refinement alone."""
    encoder, sae.encoder = sae.encoder, sae.encoder.inner
    try:
        with torch.no_grad():
            return sae.encode(x)
    finally:
        sae.encoder = encoder


@pytest.mark.parametrize("name", [*reference_variants(), *COMBOS, *OLD_EXPORTS])
def test_each_sae_loads_in_sae_lens_and_encodes_as_the_harness_did(loaded, name):
    written, got, refused = loaded
    folder, sae, latents = written[name]
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == export.ARCHITECTURE and cfg["dtype"] == "float32"
    assert not (folder / export.NOT_SAELENS).exists() and str(folder) not in refused
    assert (latents != 0).sum() > 0
    assert (got[f"{folder}:latents"] - latents).abs().max() <= 1e-6
    with torch.no_grad():
        recon = torch.stack([sae.decode(z) for z in latents])
    assert (got[f"{folder}:recon"] - recon).abs().max() <= 1e-6
    if f"{folder}:jumprelu" in got:  # SAELens's own form decodes the same latents the same way
        assert (got[f"{folder}:jumprelu"] - recon[0]).abs().max() <= 1e-5
    if name in OLD_EXPORTS:
        assert "leave_one_out" not in cfg
    elif isinstance(sae.encoder, LeaveOneOut):  # the pruning pruned, so the export computed it
        torch.manual_seed(2)
        x = torch.randn(BATCH, D_IN) * 2 + 0.5
        with torch.no_grad():
            assert cfg["leave_one_out"] and (without_pruning(sae, x) != 0).sum() > (sae.encode(x) != 0).sum()


@pytest.mark.parametrize("name", UNEXPORTABLE)
def test_a_sae_with_no_faithful_export_leaves_no_folder_that_looks_loadable(loaded, name):
    written, _, refused = loaded
    folder = written[name][0]
    assert sorted(p.name for p in folder.iterdir()) == ["NOT_SAELENS.json", "decoder.safetensors"]
    assert UNEXPORTABLE[name][1] in json.loads((folder / export.NOT_SAELENS).read_text())["reason"]
    assert refused[str(folder)] == "FileNotFoundError"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda cfg, w: cfg.pop("dtype"), "cfg field dtype must be a str"),
        (lambda cfg, w: cfg.update(architecture="autosae-variant"), "architecture 'autosae-variant' is not one"),
        (lambda cfg, w: cfg.update(d_sae=WIDTH + 1), "cfg field d_sae is 65, the run's SAE has 64"),
        (lambda cfg, w: w.update(W_enc=w["W_enc"][:, :-1]), "W_enc is torch.float32 (16, 63)"),
        (lambda cfg, w: w.update(b_enc=w["b_enc"].double()), "b_enc is torch.float64"),
        (lambda cfg, w: w.pop("threshold"), "needs ['W_dec', 'W_enc', 'b_dec', 'b_enc', 'threshold']"),
        (lambda cfg, w: w["W_dec"].fill_(float("nan")), "W_dec holds NaN or inf"),
        (lambda cfg, w: cfg.update(ista_iterations=65), "lista_iterations and ista_iterations in 0..64"),
        (lambda cfg, w: cfg.update(leave_one_out=1), "cfg field leave_one_out must be a bool"),
        (lambda cfg, w: cfg.update(ista_eta=float("inf")), "cfg field ista_eta must be a float"),
    ],
)
def test_the_trusted_side_refuses_an_export_that_would_not_load_as_the_trained_sae(tmp_path, change, reason):
    cfg, weights = BatchTopKSAE(D_IN, WIDTH, K).sae_lens_export()
    change(cfg, weights)
    write_sae_folder(tmp_path / "sae", cfg, weights, "", torch.randn(WIDTH, D_IN), D_IN, WIDTH)
    assert not (tmp_path / "sae" / "cfg.json").exists()
    note = json.loads((tmp_path / "sae" / export.NOT_SAELENS).read_text())
    assert note["reason"].startswith("its export was refused: ") and reason in note["reason"]


def test_an_export_from_before_the_ista_and_leave_one_out_fields_validates_with_them_off():
    cfg, weights = BatchTopKSAE(D_IN, WIDTH, K, encoder=LISTA(iterations=2, eta=0.1)).sae_lens_export()
    clean = export.validate(cfg, weights, D_IN, WIDTH)
    old = {name: value for name, value in cfg.items() if name not in export.OPTIONAL_FIELDS[export.ARCHITECTURE]}
    assert export.validate(old, weights, D_IN, WIDTH) == clean
    assert (clean["ista_iterations"], clean["ista_eta"], clean["leave_one_out"]) == (0, 0.0, False)
    assert (clean["lista_iterations"], clean["lista_eta"]) == (2, 0.1)


@pytest.mark.parametrize("encoder", [ISTA(iterations=2, eta=0.3), LeaveOneOut(inner=ISTA(iterations=1, eta=0.3))])
def test_folding_the_decoder_norms_keeps_a_refined_encode(tmp_path, encoder):
    """SAELens's fold_W_dec_norm (unit-norm rows, the norms moved into the encoder) is exact for
    the ISTA step and the pruning: both read only the unit-norm decoder."""
    from sae_lens import SAE

    import autosae.saelens  # noqa: F401

    torch.manual_seed(0)
    sae = trained(BatchTopKSAE(D_IN, WIDTH, 2 * K, encoder=encoder))
    cfg, weights = sae.sae_lens_export()
    write_sae_folder(tmp_path / "sae", cfg, weights, "", sae.decoder_directions().detach(), D_IN, WIDTH)
    loaded = SAE.load_from_disk(str(tmp_path / "sae"))
    x = torch.randn(BATCH, D_IN) * 2 + 0.5
    with torch.no_grad():
        before = loaded.encode(x)
        loaded.fold_W_dec_norm()
        after = loaded.encode(x)
    assert not loaded.cfg.rescale_acts_by_decoder_norm
    assert torch.equal(before != 0, after != 0) and (before - after).abs().max() <= 1e-5


def test_an_exports_own_metadata_never_reaches_the_loader(tmp_path):
    """SAELens sets every metadata key as an attribute and parses some: a variant's keys could
    make its SAE fail to load in our process (or set what it should not). Known keys only."""
    from sae_lens import SAE

    import autosae.saelens  # noqa: F401

    cfg, weights = BatchTopKSAE(D_IN, WIDTH, K).sae_lens_export()
    cfg["metadata"].update({"sae_lens_version": "not a version", "__class__": "x", "hook_name": "blocks.0.x"})
    write_sae_folder(tmp_path / "sae", cfg, weights, "", torch.randn(WIDTH, D_IN), D_IN, WIDTH)
    written = json.loads((tmp_path / "sae" / "cfg.json").read_text())["metadata"]
    assert set(written) <= set(export.METADATA_KEYS) and written["trained_with"] == "autosae"
    SAE.load_from_disk(str(tmp_path / "sae"))  # loads: nothing of the variant's own is parsed
