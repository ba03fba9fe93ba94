"""The SAELens format of autosae's SAEs: what a saved `sae/` folder holds and computes.

SAELens has no inference SAE that encodes as autosae's do: its BatchTopK SAEs are saved as
JumpReLU SAEs with a learned threshold, which keeps a different set of latents than batch
top-k on the same batch, and nothing in it refines an encode (LISTA, ISTA, leave-one-out). So
every SAE built from autosae.sae is saved under one architecture of our own,
`autosae_batchtopk`, that SAELens loads once `autosae.saelens` has registered it, and whose
encode is the component library's, operation for operation (unfolded weights, rescaled by the
decoder norms at run time; the ISTA step and the pruning are the very functions of
autosae.sae.ops), so a loaded SAE gives the harness's latents exactly, not merely close.

This module is plain torch: the variant's process uses it to check its own export before
sending it, the trusted side to validate what it receives, `autosae.saelens` to compute.
"""

from __future__ import annotations

import math

import torch

from autosae.sae.ops import batch_topk, ista_steps, prune_leave_one_out

ARCHITECTURE = "autosae_batchtopk"
"""Our architecture's name in SAELens's registry and in cfg.json."""

SAELENS_ARCHITECTURES = ("jumprelu", "topk", "standard")
"""SAELens's own architectures that a variant may export to (validated by shape only)."""

BASE_FIELDS = {
    "d_in": int,
    "d_sae": int,
    "dtype": str,
    "device": str,
    "apply_b_dec_to_input": bool,
    "normalize_activations": str,
    "reshape_activations": str,
}
"""Fields every SAELens cfg.json needs (SAEConfig's), with their JSON types."""

ARCHITECTURE_FIELDS = {
    ARCHITECTURE: {"k": float, "rescale_acts_by_decoder_norm": bool, "lista_iterations": int, "lista_eta": float},
    "jumprelu": {},
    "topk": {"k": int, "rescale_acts_by_decoder_norm": bool},
    "standard": {},
}
"""Each accepted architecture's own fields (all required here, though SAELens has defaults)."""

OPTIONAL_FIELDS = {
    ARCHITECTURE: {"ista_iterations": (int, 0), "ista_eta": (float, 0.0), "leave_one_out": (bool, False)},
}
"""Fields added after the first exports, by architecture, with their JSON types and the value an
export without them means (the refinement off): older cfg.json files validate and load as before."""

REFINEMENT_OFF = {"lista_iterations": 0, "lista_eta": 0.0} | {
    name: default for name, (_, default) in OPTIONAL_FIELDS[ARCHITECTURE].items()
}
"""`autosae_batchtopk`'s refinement fields for the plain BatchTopK encode."""

NOT_SAELENS = "NOT_SAELENS.json"
"""Written in `sae/` instead of cfg.json when a SAE has no SAELens form, with the reason."""
METADATA_KEYS = ("trained_with", "variant_class")
"""The metadata an export may carry (short strings): SAELens's loader sets every metadata key
as an attribute and parses some (sae_lens_version), so a variant's own keys could break the
loading of its SAE in a trusted process."""


class NotExportable(Exception):
    """This SAE (or what it exported) has no faithful SAELens form; the message says why."""


def tensor_shapes(architecture: str, d_in: int, d_sae: int) -> dict[str, tuple[int, ...]]:
    """The weights an architecture's sae_weights.safetensors holds, by name and shape."""
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if architecture in (ARCHITECTURE, "jumprelu"):
        shapes["threshold"] = (d_sae,)
    return shapes


def validate(cfg: object, weights: dict[str, torch.Tensor], d_in: int, d_sae: int) -> dict:
    """A clean copy of an exported cfg (its known fields only) once cfg and weights are found
    to load in SAELens as the SAE the harness trained; NotExportable with the reason otherwise.
    The trusted side calls this on what the variant's process sent."""
    if not isinstance(cfg, dict):
        raise NotExportable("the exported cfg is not a JSON object")
    architecture = cfg.get("architecture")
    if not isinstance(architecture, str) or architecture not in ARCHITECTURE_FIELDS:
        known = ", ".join(ARCHITECTURE_FIELDS)
        raise NotExportable(f"architecture {architecture!r} is not one autosae can check; known: {known}")
    clean: dict = {"architecture": architecture}
    optional = OPTIONAL_FIELDS.get(architecture, {})
    defaults = {name: default for name, (_, default) in optional.items()}
    fields = {
        **BASE_FIELDS,
        **ARCHITECTURE_FIELDS[architecture],
        **{name: kind for name, (kind, _) in optional.items()},
    }
    for name, kind in fields.items():
        value = cfg.get(name, defaults.get(name))
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok or (kind is float and not math.isfinite(value)):
            raise NotExportable(f"cfg field {name} must be a {kind.__name__}, got {value!r}")
        clean[name] = value
    expected = {"d_in": d_in, "d_sae": d_sae, "dtype": "float32", "normalize_activations": "none"}
    expected["reshape_activations"] = "none"
    for name, value in expected.items():
        if clean[name] != value:
            raise NotExportable(f"cfg field {name} is {clean[name]!r}, the run's SAE has {value!r}")
    if architecture == ARCHITECTURE and (
        clean["k"] <= 0 or not 0 <= clean["lista_iterations"] <= 64 or not 0 <= clean["ista_iterations"] <= 64
    ):
        raise NotExportable(
            f"k must be positive and lista_iterations and ista_iterations in 0..64, got {clean['k']}, "
            f"{clean['lista_iterations']}, {clean['ista_iterations']}"
        )
    metadata = cfg.get("metadata", {})
    if isinstance(metadata, dict):  # known keys only: SAELens sets each as an attribute, and parses some
        clean["metadata"] = {
            k: v[:200] for k, v in metadata.items() if k in METADATA_KEYS and isinstance(v, str) and v.isprintable()
        }
    shapes = tensor_shapes(architecture, d_in, d_sae)
    if set(weights) != set(shapes):
        raise NotExportable(f"the weights are {sorted(weights)}, {architecture} needs {sorted(shapes)}")
    for name, shape in shapes.items():
        t = weights[name]
        if tuple(t.shape) != shape or t.dtype != torch.float32:
            raise NotExportable(f"{name} is {t.dtype} {tuple(t.shape)}, {architecture} needs float32 {shape}")
        if not torch.isfinite(t).all():
            raise NotExportable(f"{name} holds NaN or inf")
    return clean


def decoder(W_dec: torch.Tensor, rescale: bool) -> torch.Tensor:
    """Decoder rows as used to reconstruct: BatchTopKSAE.effective_decoder."""
    return W_dec / W_dec.norm(dim=-1)[:, None] if rescale else W_dec


def encode(
    x_centered: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    W_dec: torch.Tensor,
    *,
    k: float,
    rescale: bool,
    lista_iterations: int,
    lista_eta: float,
    ista_iterations: int = 0,
    ista_eta: float = 0.0,
    leave_one_out: bool = False,
) -> torch.Tensor:
    """`autosae_batchtopk`'s latents for input already centred on b_dec: BatchTopKSAE.encode
    with its optional refinement, the same operations in the same order: the LISTA steps, the
    ISTA steps, then the leave-one-out pruning. The library's encoders use one of LISTA and
    ISTA (autosae.sae.LeaveOneOut wraps either), so that order is theirs."""
    norms = W_dec.norm(dim=-1) if rescale else None
    pre = x_centered @ W_enc + b_enc
    if norms is not None:
        pre = pre * norms
    latents = batch_topk(pre, k)
    dec = decoder(W_dec, rescale)
    for _ in range(lista_iterations):
        residual = x_centered - latents @ dec
        step = residual @ W_enc
        if norms is not None:
            step = step * norms
        pre = pre + lista_eta * step
        latents = batch_topk(pre, k)
    latents, pre = ista_steps(x_centered, pre, latents, dec, k, ista_iterations, ista_eta)
    if leave_one_out:
        latents = prune_leave_one_out(x_centered, latents, dec)
    return latents


def check_matches(sae: torch.nn.Module, cfg: dict, weights: dict[str, torch.Tensor], x: torch.Tensor) -> None:
    """NotExportable unless the exported SAE encodes and decodes `x` as the module does (to
    1e-6 of the largest value): catches a subclass whose encode the export does not describe.
    Only our own architecture is computed here; SAELens's are validated by shape alone."""
    if cfg.get("architecture") != ARCHITECTURE:
        return
    w = {name: t.to(x.device) for name, t in weights.items()}
    rescale = bool(cfg["rescale_acts_by_decoder_norm"])
    with torch.no_grad():
        theirs = encode(
            x - w["b_dec"],
            w["W_enc"],
            w["b_enc"],
            w["W_dec"],
            k=float(cfg["k"]),
            rescale=rescale,
            lista_iterations=int(cfg["lista_iterations"]),
            lista_eta=float(cfg["lista_eta"]),
            ista_iterations=int(cfg.get("ista_iterations", REFINEMENT_OFF["ista_iterations"])),
            ista_eta=float(cfg.get("ista_eta", REFINEMENT_OFF["ista_eta"])),
            leave_one_out=bool(cfg.get("leave_one_out", REFINEMENT_OFF["leave_one_out"])),
        )
        ours = sae.encode(x)
        ours = ours.to_dense() if ours.is_sparse else ours
        recon_ours = sae.decode(ours)
        recon_theirs = ours @ decoder(w["W_dec"], rescale) + w["b_dec"]
    for what, a, b in (("encode", ours, theirs), ("decode", recon_ours, recon_theirs)):
        if a.shape != b.shape:
            raise NotExportable(
                f"the exported SAE's {what} gives shape {tuple(b.shape)}, the module's {tuple(a.shape)}"
            )
        diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
        scale = max(1.0, float(a.float().abs().max()) if a.numel() else 0.0)
        if not diff <= 1e-6 * scale:
            raise NotExportable(f"the exported SAE's {what} differs from the module's by {diff:.3g}")
