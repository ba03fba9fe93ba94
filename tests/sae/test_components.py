"""The math of each SAE component, on small seeded CPU tensors."""

from __future__ import annotations

import math

import pytest
import torch

from autosae.sae import (
    ISTA,
    LISTA,
    TERM,
    BatchTopKSAE,
    ConstantK,
    LeaveOneOut,
    LinearK,
    MatryoshkaBatchTopKSAE,
    StepInfo,
    batch_topk,
    component,
    tilted_mean,
)


def test_batch_topk_keeps_the_largest_k_per_sample_on_average():
    torch.manual_seed(0)
    pre = torch.randn(8, 32)
    out = batch_topk(pre, k=3)
    kept = out != 0
    assert kept.sum() == 24
    threshold = out[kept].min()
    assert (pre.relu()[~kept] <= threshold).all()
    assert torch.equal(out[kept], pre[kept])


def test_batch_topk_never_keeps_negative_values():
    out = batch_topk(-torch.rand(4, 16), k=2)
    assert (out == 0).all()


def _pair(**kwargs):
    torch.manual_seed(1)
    plain = BatchTopKSAE(16, 48, 4)
    other = BatchTopKSAE(16, 48, 4, **kwargs)
    other.load_state_dict(plain.state_dict())
    # Make the encoder differ from the decoder so that LISTA has something to correct.
    with torch.no_grad():
        for sae in (plain, other):
            sae.W_enc.copy_(torch.randn(16, 48, generator=torch.Generator().manual_seed(2)) * 0.3)
            sae.b_enc.fill_(0.05)
    return plain, other


def test_lista_with_eta_zero_equals_the_batchtopk_encode():
    plain, lista = _pair(encoder=LISTA(iterations=3, eta=0.0))
    x = torch.randn(64, 16)
    assert torch.equal(plain.encode(x), lista.encode(x))


def test_lista_one_step_matches_the_seed_pseudocode():
    plain, lista = _pair(encoder=LISTA(iterations=1, eta=0.3))
    x = torch.randn(64, 16)
    W_enc, b_enc, b_dec = plain.W_enc, plain.b_enc, plain.b_dec
    norms = plain.W_dec.norm(dim=-1)
    W_dec = plain.W_dec / norms[:, None]
    centered = x - b_dec
    pre = (centered @ W_enc + b_enc) * norms
    acts = batch_topk(pre, 4)
    residual = centered - acts @ W_dec
    pre = pre + 0.3 * (residual @ W_enc) * norms
    expected = batch_topk(pre, 4)
    got = lista.encode(x)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.equal(got, plain.encode(x))


def _hand_sae(**kwargs) -> BatchTopKSAE:
    """d_in 2, three latents, K 1: decoder rows (2, 0), (0, 1) and 0.5 * (0.6, 0.8), of norms
    2, 1 and 0.5, and an encoder whose pre-activation is <x, d_i> for the unit row d_i."""
    sae = BatchTopKSAE(2, 3, 1, **kwargs)
    unit = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    norms = torch.tensor([2.0, 1.0, 0.5])
    with torch.no_grad():
        sae.W_dec.copy_(unit * norms[:, None])
        sae.W_enc.copy_((unit / norms[:, None]).T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_ista_one_step_matches_a_hand_computed_step():
    """x = (1, 0) and (0, 2): the encode gives sample B the spurious latent 2 (<x_B, d_2> = 1.6)
    and sample A nothing (batch top-k keeps 2 over the batch); one ISTA step of 0.5 removes it."""
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    plain = _hand_sae()
    assert torch.allclose(plain.encode(x), torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 1.6]]), atol=1e-6)
    # residuals (1, 0) and (0, 2) - 2 (0, 1) - 1.6 (0.6, 0.8) = (-0.96, -1.28); along D.T:
    # (1, 0, 0.6) and (-0.96, -1.28, -1.6); pre + 0.5 * that = (1.5, 0, 0.9) and (-0.48, 1.36, 0.8)
    ista = _hand_sae(encoder=ISTA(iterations=1, eta=0.5))
    latents, pre = ista.encode_with_pre(x, 1)
    assert torch.allclose(pre, torch.tensor([[1.5, 0.0, 0.9], [-0.48, 1.36, 0.8]]), atol=1e-6)
    assert torch.allclose(latents, torch.tensor([[1.5, 0.0, 0.0], [0.0, 1.36, 0.0]]), atol=1e-6)


def test_ista_steps_in_decoder_norm_units():
    """The same SAE with its decoder norms folded into the encoder (unit rows, no rescaling)
    encodes the same: the step uses the unit-norm rows that the latents multiply, not W_dec."""
    plain, rescaled = _pair(encoder=ISTA(iterations=2, eta=0.4))
    folded = BatchTopKSAE(16, 48, 4, encoder=ISTA(iterations=2, eta=0.4), rescale_by_decoder_norm=False)
    norms = rescaled.decoder_norms().detach()
    with torch.no_grad():
        folded.W_dec.copy_(rescaled.W_dec / norms[:, None])
        folded.W_enc.copy_(rescaled.W_enc * norms)
        folded.b_enc.copy_(rescaled.b_enc * norms)
        folded.b_dec.copy_(rescaled.b_dec)
    assert not torch.allclose(norms, torch.ones_like(norms))  # 0.1 at init: units would show
    x = torch.randn(64, 16)
    assert torch.allclose(rescaled.encode(x), folded.encode(x), atol=1e-5)
    assert not torch.equal(rescaled.encode(x), plain.encode(x))


def test_ista_one_step_matches_its_formula_with_the_effective_decoder():
    for rescale in (True, False):
        torch.manual_seed(7)
        sae = BatchTopKSAE(16, 48, 4, encoder=ISTA(iterations=1, eta=0.3), rescale_by_decoder_norm=rescale)
        with torch.no_grad():
            sae.W_enc.copy_(torch.randn(16, 48) * 0.3)
            sae.W_dec.mul_(torch.rand(48, 1) + 0.5)  # uneven row norms
        x = torch.randn(64, 16)
        norms = sae.W_dec.norm(dim=-1)
        D = sae.W_dec / norms[:, None] if rescale else sae.W_dec
        centered = x - sae.b_dec
        pre = centered @ sae.W_enc + sae.b_enc
        pre = pre * norms if rescale else pre
        pre = pre + 0.3 * ((centered - batch_topk(pre, 4) @ D) @ D.T)
        assert torch.allclose(sae.encode(x), batch_topk(pre, 4), atol=1e-6)


@pytest.mark.parametrize("encoder", [ISTA(iterations=3, eta=0.0), ISTA(iterations=0, eta=0.5)])
def test_ista_with_eta_zero_or_no_iterations_is_plain_batchtopk(encoder):
    plain, ista = _pair(encoder=encoder)
    x = torch.randn(64, 16)
    assert torch.equal(plain.encode(x), ista.encode(x))
    a, b = (sae.training_loss(x, StepInfo(0, 10)) for sae in (plain, ista))
    assert torch.equal(a.latents, b.latents) and torch.equal(a.loss, b.loss)
    with pytest.raises(ValueError, match="iterations"):
        ISTA(iterations=-1)


def _errors_without_each(sae: BatchTopKSAE, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Brute force: the squared error of each sample with each latent removed alone, in place."""
    out = torch.full_like(latents, float("nan"))
    for row, col in (latents != 0).nonzero().tolist():
        without = latents[row].clone()
        without[col] = 0
        out[row, col] = (sae.decode(without[None])[0] - x[row]).pow(2).sum()
    return out


@pytest.mark.parametrize("inner", [None, ISTA(iterations=1, eta=0.3), LISTA(iterations=1, eta=0.3)])
def test_leave_one_out_prunes_exactly_the_latents_whose_removal_does_not_raise_the_error(inner):
    """In float64, against the brute force: every active latent of the inner refinement's
    encode is removed alone and the errors compared; those that did not raise it are pruned,
    the others are kept with their value."""
    _, before = _pair(encoder=inner)
    _, loo = _pair(encoder=LeaveOneOut(inner=inner))
    before.double()
    loo.double()
    x = torch.randn(64, 16, dtype=torch.float64)
    with torch.no_grad():
        full = before.encode(x)
        pruned = loo.encode(x)
        error = (before.decode(full) - x).pow(2).sum(dim=-1)
        without = _errors_without_each(before, x, full)
    active = full != 0
    change = without - error[:, None]
    assert change[active].abs().min() > 1e-9  # no tie that rounding could decide
    prune = active & (change <= 0)
    assert 0 < int(prune.sum()) < int(active.sum())  # the example prunes some and keeps some
    assert torch.equal(pruned, torch.where(prune, torch.zeros_like(full), full))
    assert int((pruned != 0).sum()) < 4 * 64  # the L0 the harness counts falls below K


def test_leave_one_out_judges_latents_together_so_pruning_several_can_raise_the_error():
    """Two latents on the same row that overshoot together: each, removed alone, lowers the
    error (1.8 -> 0.9 for a target of 1), so both go, and the error rises from 0.64 to 1."""
    sae = BatchTopKSAE(1, 2, 2, encoder=LeaveOneOut(), rescale_by_decoder_norm=False)
    with torch.no_grad():
        sae.W_dec.fill_(1.0)
        sae.b_dec.zero_()
        sae.W_enc.fill_(0.9)
        sae.b_enc.zero_()
    plain = BatchTopKSAE(1, 2, 2, rescale_by_decoder_norm=False)
    plain.load_state_dict(sae.state_dict())
    x = torch.tensor([[1.0]])
    with torch.no_grad():
        latents = plain.encode(x)
        assert torch.allclose(latents, torch.tensor([[0.9, 0.9]]))
        assert torch.equal(sae.encode(x), torch.zeros(1, 2))
        assert float((sae.decode(latents) - x).pow(2).sum()) == pytest.approx(0.64)
        assert float((sae.decode(sae.encode(x)) - x).pow(2).sum()) == pytest.approx(1.0)


def test_leave_one_out_never_raises_the_error_when_the_pruned_rows_do_not_overlap():
    """What is guaranteed: pruning several latents changes the error by the sum of their own
    changes (each <= 0) plus 2 z_i z_j <d_i, d_j> per pair, so with orthogonal decoder rows the
    error never rises; it falls wherever something was pruned."""
    torch.manual_seed(8)
    sae = BatchTopKSAE(32, 24, 6, encoder=LeaveOneOut())
    plain = BatchTopKSAE(32, 24, 6)
    with torch.no_grad():
        rows = torch.linalg.qr(torch.randn(32, 24))[0].T  # 24 orthonormal rows
        sae.W_dec.copy_(rows * (torch.rand(24, 1) + 0.5))
        sae.W_enc.copy_(torch.randn(32, 24) * 0.5)
        sae.b_enc.fill_(0.1)
    plain.load_state_dict(sae.state_dict())
    x = torch.randn(128, 32)
    with torch.no_grad():
        full, pruned = plain.encode(x), sae.encode(x)
        before = (plain.decode(full) - x).pow(2).sum(dim=-1)
        after = (sae.decode(pruned) - x).pow(2).sum(dim=-1)
    changed = (full != pruned).any(dim=-1)
    assert int(((full != 0) & (pruned == 0)).sum(dim=-1).max()) > 1  # several pruned in one sample
    assert (after <= before + 1e-5).all()
    assert (after[changed] < before[changed]).all()


def test_refined_saes_train_on_the_latents_they_are_scored_on():
    """A few real steps of ISTA and leave-one-out SAEs: finite losses, a gradient on every
    parameter, and (at a constant K) training's latents are eval's, pruning included."""
    torch.manual_seed(9)
    for sae in (
        BatchTopKSAE(16, 64, 4, encoder=LeaveOneOut(inner=ISTA(iterations=1, eta=0.3))),
        MatryoshkaBatchTopKSAE(16, 64, 4, levels=[8, 32], encoder=LeaveOneOut(), detach_inner=True),
        MatryoshkaBatchTopKSAE(16, 64, 4, levels=[8, 32], encoder=ISTA(iterations=2, eta=0.5)),
    ):
        opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
        data = torch.randn(10, 32, 16) * 2
        for step in range(10):
            out = sae.training_loss(data[step], StepInfo(step, 10))
            assert torch.isfinite(out.loss)
            opt.zero_grad()
            out.loss.backward()
            for name, p in sae.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
            opt.step()
        x = data[0]
        with torch.no_grad():
            train = sae.training_loss(x, StepInfo(9, 10)).latents
            assert torch.equal(train, sae.encode(x)) and int((train != 0).sum()) <= 4 * 32


def test_leave_one_out_exports_only_what_the_architecture_computes():
    assert LeaveOneOut().sae_lens_cfg() == {"leave_one_out": True}
    assert LeaveOneOut(inner=ISTA(iterations=2, eta=0.1)).sae_lens_cfg() == {
        "ista_iterations": 2,
        "ista_eta": 0.1,
        "leave_one_out": True,
    }
    from autosae.sae.export import NotExportable

    with pytest.raises(NotExportable, match="twice"):
        LeaveOneOut(inner=LeaveOneOut()).sae_lens_cfg()
    with pytest.raises(NotExportable, match="inner refinement object has no SAELens form"):
        BatchTopKSAE(4, 8, 2, encoder=LeaveOneOut(inner=object())).sae_lens_export()
    cfg, _ = BatchTopKSAE(4, 8, 2, encoder=LeaveOneOut(inner=LISTA(eta=0.2))).sae_lens_export()
    assert (cfg["lista_iterations"], cfg["lista_eta"], cfg["ista_iterations"], cfg["leave_one_out"]) == (
        1,
        0.2,
        0,
        True,
    )


def test_term_tends_to_the_mean_as_tilt_goes_to_zero():
    torch.manual_seed(3)
    losses = torch.rand(256) * 10
    for tilt in (1e-2, 1e-4, 1e-6):
        assert abs(float(tilted_mean(losses, tilt)) - float(losses.mean())) < 10 * tilt * float(losses.var())
    assert float(tilted_mean(losses, 0.0)) == pytest.approx(float(losses.mean()))


def test_term_matches_its_formula_and_upweights_large_losses():
    losses = torch.tensor([1.0, 2.0, 10.0])
    t = 0.5
    expected = math.log(sum(math.exp(t * v) for v in (1.0, 2.0, 10.0)) / 3) / t
    assert float(TERM(tilt=t)(losses)) == pytest.approx(expected, rel=1e-6)
    assert float(TERM(tilt=t)(losses)) > float(losses.mean())
    assert float(TERM(tilt=50.0)(losses)) == pytest.approx(10.0, abs=0.05)  # tends to the max


def _level_grads(detach: bool) -> list[torch.Tensor]:
    """Gradient of each level's loss with respect to the latents, per level."""
    torch.manual_seed(4)
    sae = MatryoshkaBatchTopKSAE(8, 16, 4, levels=[2, 6, 12], detach_inner=detach)
    x = torch.randn(5, 8)
    grads = []
    for level in range(len(sae.levels)):
        latents = torch.rand(5, 16, requires_grad=True)
        recon = sae.level_reconstructions(latents)[level]
        (recon - x).pow(2).sum().backward()
        grads.append(latents.grad.abs().sum(dim=0))
    return grads


def test_detach_stops_inner_level_gradients_to_smaller_levels_only():
    grads = _level_grads(detach=True)
    bounds = [0, 2, 6, 12, 16]
    for level, g in enumerate(grads[:-1]):
        lo, hi = bounds[level], bounds[level + 1]
        assert (g[:lo] == 0).all(), f"level {level} leaks gradient into smaller levels"
        assert (g[lo:hi] > 0).all(), f"level {level} lost the gradient of its own latents"
        assert (g[hi:] == 0).all()
    assert (grads[-1] > 0).all(), "the outermost level must keep every gradient"


def test_without_detach_inner_levels_reach_every_smaller_level():
    grads = _level_grads(detach=False)
    assert (grads[1][:6] > 0).all() and (grads[2][:12] > 0).all()


def test_frequency_sort_puts_the_most_frequent_latents_in_the_first_level():
    torch.manual_seed(5)
    sae = MatryoshkaBatchTopKSAE(8, 16, 4, levels=[4, 16], sort_by_frequency=True)
    with torch.no_grad():
        sae.firing_frequency.copy_(torch.arange(16, dtype=torch.float))  # latent 15 fires most
    latents = torch.zeros(1, 16)
    latents[0, 15] = 1.0  # most frequent: inside the first level once sorted
    first = sae.level_reconstructions(latents)[0]
    assert torch.allclose(first, sae.decode(latents), atol=1e-6)
    latents = torch.zeros(1, 16)
    latents[0, 0] = 1.0  # least frequent: outside the first level
    assert torch.allclose(sae.level_reconstructions(latents)[0], sae.b_dec.expand(1, -1))


def test_frequency_estimate_tracks_firing_in_training():
    torch.manual_seed(6)
    sae = MatryoshkaBatchTopKSAE(8, 16, 2, levels=[4], sort_by_frequency=True)
    out = sae.training_loss(torch.randn(32, 8), StepInfo(0, 10))
    assert sae.firing_frequency.sum() > 0
    fired = (out.latents != 0).any(dim=0)
    assert ((sae.firing_frequency > 0) == fired).all()


def test_schedules_hit_their_end_points():
    linear = LinearK(start=60, end=25, fraction=0.5)
    assert linear(0.0) == 60
    assert linear(0.25) == pytest.approx(42.5)
    assert linear(0.5) == 25
    assert linear(1.0) == 25
    assert LinearK(start=60, end=25)(1.0) == 25
    assert ConstantK(25)(0.0) == ConstantK(25)(1.0) == 25
    with pytest.raises(ValueError):
        LinearK(start=60, end=25, fraction=0.0)


def test_the_k_schedule_drives_training_and_eval_uses_the_target():
    sae = BatchTopKSAE(8, 32, 2, k_schedule=LinearK(start=6, end=2))
    x = torch.randn(16, 8)
    first = sae.training_loss(x, StepInfo(0, 11))
    assert sae.current_k == 6 and (first.latents != 0).sum() == 6 * 16
    sae.training_loss(x, StepInfo(10, 11))
    assert sae.current_k == 2
    assert (sae.encode(x) != 0).sum() == 2 * 16


def test_registry_builds_components_by_name():
    assert component("lista", eta=0.1) == LISTA(eta=0.1)
    assert component("ista", eta=0.2) == ISTA(eta=0.2)
    assert component("leave_one_out", inner=component("ista")) == LeaveOneOut(inner=ISTA())
    assert isinstance(component("batchtopk", d_in=4, d_sae=8, k=2), BatchTopKSAE)
    with pytest.raises(ValueError, match="unknown SAE component"):
        component("nope")


def _load(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"ref_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_variants_build_and_take_a_training_step():
    from autosae.sandboxed.spec import VariantSpec
    from autosae.variants import reference_variants

    spec = VariantSpec(
        d_in=16, width=64, k=4, batch_size=32, total_steps=100, lr=1e-3, seed=0, device="cpu", profile="test"
    )
    for path in reference_variants().values():
        sae = _load(path).build(spec)
        out = sae.training_loss(torch.randn(32, 16), StepInfo(0, 100))
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in sae.parameters())
        assert sae.decoder_directions().shape == (64, 16)


def test_components_compose_into_the_seed_recipe():
    from autosae.sandboxed.spec import VariantSpec
    from autosae.variants import reference_variants

    spec = VariantSpec(
        d_in=16, width=64, k=4, batch_size=32, total_steps=100, lr=1e-3, seed=0, device="cpu", profile="test"
    )
    built = _load(reference_variants()["lista_matryoshka"]).build(spec)
    assert isinstance(built, MatryoshkaBatchTopKSAE)
    assert isinstance(built.encoder, LISTA) and isinstance(built.reducer, TERM)
    assert built.detach_inner and built.sort_by_frequency
    assert built.current_k == pytest.approx(2.4 * 4)  # the decreasing K starts high


def test_the_host_side_dead_bound_changes_nothing():
    """Skipping the GPU query while no latent can be dead trains exactly as asking every step,
    through the stretch before the first dead latents and after them."""

    def train(ask_every_step: bool) -> tuple[list[float], BatchTopKSAE]:
        torch.manual_seed(0)
        sae = BatchTopKSAE(16, 64, 2, dead_steps=5)
        opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
        losses = []
        for step in range(40):
            if ask_every_step:
                sae.dead_bound = None
            x = torch.randn(32, 16)
            out = sae.training_loss(x, StepInfo(step=step, total_steps=40))
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(float(out.loss.detach()))
        return losses, sae

    gated, sae = train(False)
    asked, reference = train(True)
    assert gated == asked
    assert torch.equal(sae.W_dec, reference.W_dec) and torch.equal(sae.steps_since_fired, reference.steps_since_fired)
    assert int((reference.steps_since_fired > 5).sum()) > 0  # dead latents did appear
    sae.load_state_dict(reference.state_dict())
    assert sae.dead_bound is None  # loaded counters: the bound is unknown again


@pytest.mark.parametrize("cls", [BatchTopKSAE, MatryoshkaBatchTopKSAE])
def test_the_dead_latent_window_scales_with_a_short_run(cls):
    """A variant that leaves dead_steps out must still run the dead-latent loss on a short run
    (SAELens's fixed 1000 steps would never be reached in 40)."""
    torch.manual_seed(0)
    extra = {"levels": [16, 64]} if cls is MatryoshkaBatchTopKSAE else {}
    sae = cls(16, 64, 2, **extra)
    assert sae.dead_steps is None
    with pytest.raises(RuntimeError, match="scales with the run"):
        sae.dead_mask()  # asked before training: a clear error, never a silent window
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    aux = []
    for step in range(40):
        out = sae.training_loss(torch.randn(32, 16), StepInfo(step=step, total_steps=40))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        aux.append(float(out.metrics["aux"]))
    assert sae.dead_steps == 10  # a quarter of the run
    assert any(a > 0 for a in aux)  # the aux loss did switch on
    long = cls(16, 64, 2, **extra)
    long.training_loss(torch.randn(32, 16), StepInfo(step=0, total_steps=200_000))
    assert long.dead_steps == 1000  # SAELens's window on a long run
    with pytest.raises(ValueError, match="dead_steps"):
        cls(16, 64, 2, dead_steps=-1, **extra)
    assert cls(16, 64, 2, dead_steps=0, **extra).dead_steps == 0  # what a reference variant passes on a 3-step run
