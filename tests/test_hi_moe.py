"""Hi-MoE: shapes per preset, masking of missing modalities, gates and routers, NT-Xent, loss, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from models.contrastive import cross_modal_nt_xent, nt_xent
from models.hi_moe import (
    HiMoE,
    HiMoEConfig,
    ModalitySpec,
    binarise,
    hi_moe_loss,
    load_hi_moe,
    sample_missing,
    save_hi_moe,
)
from models.hi_moe_config import FUSIONS


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny ops on a busy 2-core box: OpenMP barriers across threads cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = {"d_model": 32, "heads": 4, "expert_hidden": 48, "conv_width": 16, "n_steps": 6}
PRESETS = {
    "deap": lambda **kw: HiMoEConfig.deap(**kw),
    "deap-face": lambda **kw: HiMoEConfig.deap(with_face=True, **kw),
    "dreamer": lambda **kw: HiMoEConfig.dreamer(**kw),
    "simulated": lambda **kw: HiMoEConfig.simulated(**kw),
    "simulated-face": lambda **kw: HiMoEConfig.simulated(with_face=True, **kw),
}


def batch(cfg: HiMoEConfig, b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m in cfg.modalities:
        x = torch.randn(b, *m.input_shape, generator=g)
        out[m.name] = x.abs() if m.kind == "frames" else x
    return out


def random_present(cfg: HiMoEConfig, b: int, seed: int) -> dict[str, torch.Tensor]:
    """Per-sample patterns that include all present, all missing and exactly one present."""
    g = torch.Generator().manual_seed(seed)
    m = len(cfg.modalities)
    pat = torch.rand(b, m, generator=g) < 0.5
    pat[0] = True
    pat[1] = False
    pat[2] = False
    pat[2, int(torch.randint(m, (1,), generator=g))] = True
    return {name: pat[:, i].clone() for i, name in enumerate(cfg.names)}


def model_for(cfg: HiMoEConfig, seed: int = 0) -> HiMoE:
    torch.manual_seed(seed)
    return HiMoE(cfg)


def assert_outputs_equal(a, b) -> None:
    assert torch.equal(a.regression, b.regression)
    assert torch.equal(a.binary_logits, b.binary_logits)
    assert torch.equal(a.gate_weights, b.gate_weights)
    assert torch.equal(a.router_weights, b.router_weights)
    assert torch.equal(a.modality_attention, b.modality_attention)
    for name in a.embeddings:
        assert torch.equal(a.embeddings[name], b.embeddings[name])


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_shapes(preset: str) -> None:
    cfg = PRESETS[preset](**SMALL)
    model = model_for(cfg).eval()
    b = 3
    with torch.no_grad():
        out = model(batch(cfg, b))
    m, d = len(cfg.modalities), len(cfg.outputs)
    assert out.regression.shape == (b, d)
    assert out.binary_logits is not None and out.binary_logits.shape == (b, d)
    assert out.gate_weights.shape == (b, m, cfg.n_modality_experts)
    assert out.router_weights.shape == (b, cfg.n_emotion_experts)
    assert out.modality_attention.shape == (b, m)
    assert set(out.embeddings) == set(cfg.names)
    assert all(e.shape == (b, cfg.d_model) for e in out.embeddings.values())
    low, high = cfg.output_range
    assert bool(((out.regression > low) & (out.regression < high)).all())


def test_preset_facts() -> None:
    deap = HiMoEConfig.deap()
    assert deap.names == ("eeg", "eog", "emg", "gsr", "resp", "ppg", "temp")
    assert [m.channels for m in deap.modalities] == [32, 2, 2, 1, 1, 1, 1]
    assert all(m.rate == 128.0 and m.samples == 512 for m in deap.modalities)
    dreamer = HiMoEConfig.dreamer()
    assert [(m.channels, m.samples) for m in dreamer.modalities] == [(14, 512), (2, 1024)]
    assert dreamer.outputs == ("valence", "arousal", "dominance")
    assert dreamer.output_range == (1.0, 5.0)
    sim = HiMoEConfig.simulated(with_face=True)
    inputs = sim.model_inputs("hi-moe-sim").inputs
    assert {k: getattr(v, "rate", None) for k, v in inputs.items()} == {
        "eeg": 64.0, "ecg": 64.0, "ppg": 32.0, "eda": 8.0, "resp": 8.0, "temp": 2.0, "face": None,
    }  # fmt: skip
    assert inputs["face"].size == (48, 64) and inputs["face"].count == 4
    assert all(v.window_s == 4.0 for k, v in inputs.items() if k != "face")


def test_config_accepts_plain_dict_and_rejects_bad_values() -> None:
    cfg = HiMoEConfig({"eeg": (4, 64), "ecg": (1, 64)}, **SMALL)
    assert cfg.modalities[0] == ModalitySpec("eeg", 4, 64)
    assert HiMoEConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="router"):
        HiMoEConfig.simulated(router="top-k")
    with pytest.raises(ValueError, match="fusion"):
        HiMoEConfig.simulated(fusion="sum")
    with pytest.raises(ValueError, match="unique"):
        HiMoEConfig((ModalitySpec("eeg", 1, 8), ModalitySpec("eeg", 2, 8)))
    model = HiMoE(cfg)
    with pytest.raises(ValueError, match="expected"):
        model({"eeg": torch.zeros(2, 4, 65)})
    with pytest.raises(ValueError, match="unknown"):
        model({"emg": torch.zeros(2, 1, 64)})


# --------------------------------------------------------------------------- missing modalities
@pytest.mark.parametrize("router", ["attention", "diff-attention"])
def test_random_missing_patterns_give_finite_outputs_and_gradients(router: str) -> None:
    cfg = HiMoEConfig.simulated(with_face=True, router=router, **SMALL)
    model = model_for(cfg).train()
    b = 8
    present = random_present(cfg, b, seed=1)
    out = model(batch(cfg, b), present)
    for t in (out.regression, out.binary_logits, out.gate_weights, out.router_weights):
        assert bool(torch.isfinite(t).all())
    targets = torch.rand(b, len(cfg.outputs)) * 8 + 1
    loss, parts = model.loss(out, targets)
    assert bool(torch.isfinite(loss)) and float(parts["ntxent"].detach()) > 0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_all_missing_gives_the_learned_prior_without_nan(fusion: str) -> None:
    cfg = HiMoEConfig.deap(fusion=fusion, **SMALL)
    model = model_for(cfg).eval()
    b = 4
    nothing = {n: torch.zeros(b, dtype=torch.bool) for n in cfg.names}
    x = batch(cfg, b)
    with torch.no_grad():
        out = model(x, nothing)
        empty = model({}, nothing)
    assert bool(torch.isfinite(out.regression).all())
    # every sample is the same prediction, whatever sat in the inputs
    assert torch.allclose(out.regression, out.regression[:1].expand_as(out.regression))
    assert torch.equal(out.regression, empty.regression)
    # with nothing present, fusion attends over the default embeddings: all weights > 0
    assert bool((out.modality_attention > 0).all())


@pytest.mark.parametrize(
    ("router", "fusion"),
    [
        ("attention", "attention-pool"),
        ("diff-attention", "attention-pool"),
        ("attention", "attention-concat"),
    ],
)
def test_missing_modality_values_do_not_affect_anything(router: str, fusion: str) -> None:
    cfg = HiMoEConfig.simulated(with_face=True, router=router, fusion=fusion, **SMALL)
    model = model_for(cfg).eval()
    b = 6
    present = random_present(cfg, b, seed=2)
    x = batch(cfg, b, seed=3)
    y = {}
    g = torch.Generator().manual_seed(9)
    for name, t in x.items():
        keep = present[name].view(b, *([1] * (t.dim() - 1)))
        junk = torch.randn(t.shape, generator=g) * 1e4
        junk.view(-1)[::7] = float("nan")
        y[name] = torch.where(keep, t, junk)
    with torch.no_grad():
        a, c = model(x, present), model(y, present)
    assert_outputs_equal(a, c)
    # and the same change applied to present slots does change the outputs (the test can fail)
    with torch.no_grad():
        d = model({n: t + 1.0 for n, t in x.items()}, present)
    assert not torch.equal(a.regression[0], d.regression[0])


def test_missing_modality_values_do_not_affect_gradients() -> None:
    cfg = HiMoEConfig.dreamer(**SMALL)
    b = 5
    present = {"eeg": torch.tensor([1, 1, 0, 1, 0], dtype=torch.bool),
               "ecg": torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool)}  # fmt: skip
    x = batch(cfg, b, seed=4)
    junk = {n: t * 100.0 + 7.0 for n, t in x.items()}
    junk["eeg"][:, 0, ::3] = float("nan")  # NaN must not leak into gradients (0 * NaN = NaN)
    y = {n: torch.where(present[n][:, None, None], t, junk[n]) for n, t in x.items()}
    targets = torch.rand(b, 3) * 4 + 1
    grads = []
    for inp in (x, y):
        model = model_for(cfg, seed=5).eval()
        loss, _ = model.loss(model(inp, present), targets)
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1])
    assert all(torch.equal(g0, g1) for g0, g1 in zip(*grads, strict=True))


# --------------------------------------------------------------------------- gates, fusion, router
def test_gate_weights_sum_to_one_and_fall_back_to_the_bias() -> None:
    cfg = HiMoEConfig.deap(**SMALL)
    model = model_for(cfg).eval()
    with torch.no_grad():
        model.modality_bank.gate_b.normal_(0.0, 2.0)  # make the default weights far from uniform
    b = 6
    present = random_present(cfg, b, seed=6)
    with torch.no_grad():
        out = model(batch(cfg, b), present)
    gates = out.gate_weights
    assert torch.allclose(gates.sum(-1), torch.ones(b, len(cfg.names)), atol=1e-6)
    default = torch.softmax(model.modality_bank.gate_b, dim=-1)  # (M, K)
    assert torch.allclose(gates[1], default, atol=1e-6)  # sample 1: nothing present
    for i, name in enumerate(cfg.names):
        for s in range(b):
            missing = not bool(present[name][s])
            assert torch.allclose(gates[s, i], default[i], atol=1e-6) == missing


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusion_attention_sums_to_one_and_ignores_missing(fusion: str) -> None:
    cfg = HiMoEConfig.simulated(fusion=fusion, **SMALL)
    model = model_for(cfg).eval()
    b = 6
    present = random_present(cfg, b, seed=7)
    with torch.no_grad():
        out = model(batch(cfg, b), present)
    attn = out.modality_attention
    assert torch.allclose(attn.sum(-1), torch.ones(b), atol=1e-6)
    pmat = torch.stack([present[n] for n in cfg.names], 1)
    has_any = pmat.any(1)
    assert bool((attn[has_any][~pmat[has_any]] == 0).all())
    assert bool((attn[has_any][pmat[has_any]] > 0).all())


@pytest.mark.parametrize("fusion", FUSIONS)
def test_a_missing_modalitys_bank_output_does_not_reach_the_fused_answer(fusion: str) -> None:
    """With masking on, a missing modality's expert-bank output (its learned default,
    eq. 2-3 with x = 0) must not steer the fusion query either: otherwise the answer
    for a window without ECG depends on what the ECG experts say about nothing."""
    cfg = HiMoEConfig.simulated(fusion=fusion, **SMALL)
    model = model_for(cfg).eval()
    b = 6
    present = random_present(cfg, b, seed=8)
    i = cfg.names.index("ecg")
    present["ecg"][:] = torch.tensor([True, False, False, True, False, True])
    present["eeg"][:] = True  # every sample has something present: masking applies
    x = batch(cfg, b, seed=9)
    with torch.no_grad():
        a = model(x, present)
        model.modality_bank.b2[i] += torch.randn(
            cfg.d_model, generator=torch.Generator().manual_seed(1)
        )
        c = model(x, present)
    gone = ~present["ecg"]
    for t in ("regression", "binary_logits", "router_weights", "modality_attention"):
        assert torch.equal(getattr(a, t)[gone], getattr(c, t)[gone]), t
    assert not torch.allclose(a.regression[~gone], c.regression[~gone])  # the change is felt


def test_concat_fusion_by_hand_with_two_of_three_present() -> None:
    """``attention-concat`` scales each attended token by its weight times the number
    attended, so equal weights leave the tokens as they are (model card, Fusion):
    without that factor a window missing one modality would have its tokens shrunk
    to 1/2 instead of 1/3, a scale the projection never learned to undo."""
    from models.hi_moe import AttentionFusion

    torch.manual_seed(0)
    m, d = 3, 8
    fusion = AttentionFusion(m, d, heads=2, dropout=0.0, mask_missing=True, concat=True).eval()
    with torch.no_grad():
        fusion.k.weight.zero_()
        fusion.k.bias.zero_()  # every key 0: equal attention over what is present
    z = torch.randn(2, 1, m, d)
    present = torch.tensor([[True, True, True], [True, False, True]])
    with torch.no_grad():
        fused, attn = fusion(z, present)
    u = F.layer_norm(z, (d,)) + fusion.embed  # (B, S, M, d)
    for s, keep in enumerate(present):
        ctx = u[s, 0, keep].mean(0)
        slots = torch.where(keep[:, None], u[s, 0], 0.0).reshape(m * d)  # weight x count = 1
        want = F.layer_norm(ctx + fusion.proj(slots), (d,))
        assert torch.allclose(fused[s, 0], want, atol=1e-5), s
        assert torch.allclose(attn[s, 0], keep.float() / keep.sum(), atol=1e-6)


def test_missing_modalities_have_zero_embeddings_with_a_projection() -> None:
    """A missing modality's embedding is the zero vector of eq. 2 even behind a
    ``proj_dim`` projection, whose bias would otherwise pose as a feature of
    data that never arrived (NT-Xent and anything inspecting features read these)."""
    cfg = HiMoEConfig.dreamer(proj_dim=8, **SMALL)
    model = model_for(cfg).eval()
    present = {"eeg": torch.tensor([True, False, True, False])}
    with torch.no_grad():
        out = model({"eeg": batch(cfg, 4)["eeg"]}, present)  # ECG missing for the whole batch
    assert out.embeddings["eeg"].shape == (4, 8)
    assert bool((out.embeddings["eeg"][~present["eeg"]] == 0).all())
    assert bool((out.embeddings["eeg"][present["eeg"]] != 0).any())
    assert bool((out.embeddings["ecg"] == 0).all())


def test_attention_router_weights_are_a_distribution() -> None:
    cfg = HiMoEConfig.simulated(**SMALL)
    model = model_for(cfg).eval()
    with torch.no_grad():
        out = model(batch(cfg, 5))
    r = out.router_weights
    assert torch.allclose(r.sum(-1), torch.ones(5), atol=1e-6)
    assert bool((r >= 0).all())
    assert float(r.std(0).sum()) > 0  # input-dependent, not constant


def test_diff_attention_router() -> None:
    cfg = HiMoEConfig.simulated(router="diff-attention", **SMALL)
    model = model_for(cfg).train()
    bank = model.emotion_bank
    lam = float(bank.diff_lambda().detach())
    assert 0.0 < lam < cfg.diff_lambda_max
    out = model(batch(cfg, 6))
    r = out.router_weights
    assert torch.allclose(r.sum(-1), torch.ones(6), atol=1e-5)
    # it really is a difference of two maps: recompute from the bank's parts
    z = torch.randn(2, 3, cfg.d_model)
    _, beta = bank.eval()(z)
    hid = torch.nn.functional.gelu(torch.einsum("bsd,ldh->bslh", z, bank.w1) + bank.b1)
    f = torch.einsum("bslh,lhd->bsld", hid, bank.w2) + bank.b2
    q = bank.q(z).view(2, 3, 2, cfg.heads, cfg.router_dim)
    k = bank.k(f).view(2, 3, cfg.n_emotion_experts, 2, cfg.heads, cfg.router_dim)
    maps = []
    for j in range(2):
        s = torch.einsum("bshr,bslhr->bshl", q[:, :, j], k[:, :, :, j]) / cfg.router_dim**0.5
        maps.append(torch.softmax(s, -1))
    lam_t = bank.diff_lambda()
    expected = ((maps[0] - lam_t * maps[1]) / (1 - lam_t)).mean(2)
    assert torch.allclose(beta, expected, atol=1e-6)
    # lambda is learned: the loss reaches its parameters
    loss, _ = model.loss(out, torch.rand(6, 4) * 8 + 1)
    loss.backward()
    assert bank.lambda_q1.grad is not None and float(bank.lambda_q1.grad.abs().sum()) > 0


# --------------------------------------------------------------------------- NT-Xent
def reference_nt_xent(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Eq. 1 and 7 written out: l2-normalise, Z = [Z_a; Z_b], S = Z Z^T / tau, loop over rows."""
    z = np.concatenate([a, b]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        pos = i + n if i < n else i - n
        num = np.exp(z[i] @ z[pos] / tau)
        den = sum(np.exp(z[i] @ z[j] / tau) for j in range(n2) if j != i)
        total += -np.log(num / den)
    return total / n2


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.5), (7, 16, 0.1), (16, 8, 1.0)])
def test_nt_xent_matches_the_formula(n: int, d: int, tau: float) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    got = nt_xent(torch.tensor(a), torch.tensor(b), tau)
    assert float(got) == pytest.approx(reference_nt_xent(a, b, tau), rel=1e-5)
    # symmetric in the two modalities
    assert float(nt_xent(torch.tensor(b), torch.tensor(a), tau)) == pytest.approx(
        float(got), rel=1e-6
    )


def test_nt_xent_mask_drops_windows_from_positives_and_negatives() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(9, 5)), rng.normal(size=(9, 5))
    mask = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1], dtype=bool)
    got = nt_xent(torch.tensor(a), torch.tensor(b), 0.2, torch.tensor(mask))
    assert float(got) == pytest.approx(reference_nt_xent(a[mask], b[mask], 0.2), rel=1e-5)
    # aligned views give a lower loss than shuffled ones
    aligned = nt_xent(torch.tensor(a), torch.tensor(a + 0.01 * b), 0.2)
    assert float(aligned) < float(got)


def test_nt_xent_with_no_or_one_valid_pair_is_zero_and_differentiable() -> None:
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3, requires_grad=True)
    for keep in ([0, 0, 0, 0], [0, 1, 0, 0]):
        loss = nt_xent(a, b, 0.1, torch.tensor(keep, dtype=torch.bool))
        assert float(loss.detach()) == 0.0
        loss.backward()
        assert bool(torch.isfinite(a.grad).all())


def test_cross_modal_nt_xent_averages_pairs_with_signal() -> None:
    g = torch.Generator().manual_seed(1)
    emb = {n: torch.randn(6, 4, generator=g) for n in ("eeg", "ecg", "eda")}
    present = {
        "eeg": torch.tensor([1, 1, 1, 1, 1, 1], dtype=torch.bool),
        "ecg": torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool),
        "eda": torch.tensor([0, 1, 0, 0, 0, 0], dtype=torch.bool),  # <2 windows with anyone
    }
    got = cross_modal_nt_xent(emb, present, 0.3)
    expected = nt_xent(emb["ecg"], emb["eeg"], 0.3, present["ecg"] & present["eeg"])
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    none = {n: torch.zeros(6, dtype=torch.bool) for n in emb}
    assert float(cross_modal_nt_xent(emb, none, 0.3)) == 0.0


# --------------------------------------------------------------------------- loss
def test_loss_decreases_on_a_fixed_batch() -> None:
    cfg = HiMoEConfig.dreamer(dropout=0.0, **SMALL)
    model = model_for(cfg, seed=3).train()
    b = 8
    x = batch(cfg, b, seed=11)
    present = random_present(cfg, b, seed=12)
    present["eeg"][1] = True  # sample 1 keeps a modality, so every sample carries a signal
    targets = torch.rand(b, 3, generator=torch.Generator().manual_seed(13)) * 4 + 1
    model.fit_input_stats(x, present)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, _ = model.loss(model(x, present), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_label_mask_excludes_masked_dimensions() -> None:
    cfg = HiMoEConfig.simulated(**SMALL)
    model = model_for(cfg).eval()
    b = 6
    out = model(batch(cfg, b))
    targets = torch.rand(b, 4) * 8 + 1
    mask = torch.ones(b, 4, dtype=torch.bool)
    mask[:, 3] = False  # liking unlabeled everywhere
    mask[2, 0] = False
    with_nan = targets.clone()
    with_nan[~mask] = float("nan")
    loss_nan, parts = hi_moe_loss(out, with_nan, mask, lambda_ntxent=0.1)
    other = targets.clone()
    other[~mask] = 100.0
    loss_other, _ = hi_moe_loss(out, other, mask, lambda_ntxent=0.1)
    assert bool(torch.isfinite(loss_nan)) and loss_nan.item() == pytest.approx(loss_other.item())
    # the mask changes the loss (it is not ignored) ...
    loss_all, _ = hi_moe_loss(out, other, None, lambda_ntxent=0.1)
    assert loss_all.item() > loss_nan.item()
    # ... and the masked dimension's heads get no gradient; the others do
    loss_nan.backward()
    assert model.binary_heads is not None
    masked = (model.regression_heads[3][-1].weight.grad, model.binary_heads[3].weight.grad)
    labelled = (model.regression_heads[0][-1].weight.grad, model.binary_heads[0].weight.grad)
    assert all(float(g.abs().sum()) == 0.0 for g in masked)
    assert all(float(g.abs().sum()) > 0.0 for g in labelled)
    # NaN targets without a mask are dropped as well
    loss_implicit, _ = hi_moe_loss(out, with_nan, None, lambda_ntxent=0.1)
    assert loss_implicit.item() == pytest.approx(loss_nan.item())
    assert set(parts) == {"mse", "bce", "emo", "ntxent"}


def test_loss_parts_follow_eq8() -> None:
    cfg = HiMoEConfig.simulated(**SMALL)
    model = model_for(cfg).eval()
    with torch.no_grad():
        out = model(batch(cfg, 5))
    targets = torch.rand(5, 4) * 8 + 1
    total, parts = hi_moe_loss(out, targets, lambda_ntxent=0.37, temperature=0.2)
    assert total.item() == pytest.approx((parts["emo"] + 0.37 * parts["ntxent"]).item(), rel=1e-6)
    mse = (((out.regression - targets) / 4.0) ** 2).mean()
    assert parts["mse"].item() == pytest.approx(mse.item(), rel=1e-5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        out.binary_logits, binarise(targets, (1.0, 9.0))
    )
    assert float(parts["bce"]) == pytest.approx(float(bce), rel=1e-5)
    ntx = cross_modal_nt_xent(out.embeddings, out.present, 0.2)
    assert float(parts["ntxent"]) == pytest.approx(float(ntx), rel=1e-6)


def test_pearson_term_is_one_minus_r_over_labelled_entries() -> None:
    """The optional concat-fusion-style term: 1 - Pearson r per dimension (scipy), masked."""
    from scipy.stats import pearsonr

    cfg = HiMoEConfig.simulated(pearson_weight=0.5, **SMALL)
    model = model_for(cfg).eval()
    with torch.no_grad():
        out = model(batch(cfg, 9))
    g = torch.Generator().manual_seed(4)
    targets = torch.rand(9, 4, generator=g) * 8 + 1
    mask = torch.ones(9, 4, dtype=torch.bool)
    mask[:3, 1] = False  # dimension 1 has only six labels
    total, parts = model.loss(out, targets, mask)
    pred = out.regression.double().numpy()
    y = targets.double().numpy()
    rs = [
        pearsonr(pred[3:, 1] if d == 1 else pred[:, d], y[3:, 1] if d == 1 else y[:, d])[0]
        for d in range(4)
    ]
    # (the loss adds eps = 1e-6 to each variance: an untrained model's spread is small)
    assert float(parts["pearson"]) == pytest.approx(1.0 - float(np.mean(rs)), abs=1e-3)
    assert float(parts["emo"]) == pytest.approx(
        float(parts["mse"] + parts["bce"] + 0.5 * parts["pearson"]), rel=1e-6
    )
    _, paper = hi_moe_loss(out, targets, mask)  # the paper's L_emo has no such term
    assert "pearson" not in paper
    assert float(total - paper["emo"] - 0.1 * paper["ntxent"]) == pytest.approx(
        0.5 * float(parts["pearson"]), abs=1e-5
    )
    with pytest.raises(ValueError, match="pearson_weight"):
        HiMoEConfig.simulated(pearson_weight=-1.0)


# --------------------------------------------------------------------------- missing-rate sampling
def test_sample_missing() -> None:
    g = torch.Generator().manual_seed(0)
    b = 4000
    present = {n: torch.ones(b, dtype=torch.bool) for n in ("a", "b", "c", "d")}
    present["d"][: b // 2] = False
    same = sample_missing(present, 0.0, g)
    assert all(torch.equal(same[n], present[n]) for n in present)
    dropped = sample_missing(present, 0.3, g, keep_one=False)
    kept = sum(int(dropped[n].sum()) for n in present) / sum(int(present[n].sum()) for n in present)
    assert kept == pytest.approx(0.7, abs=0.02)
    for n in present:  # never resurrects a modality that was not there
        assert not bool((dropped[n] & ~present[n]).any())
    one = sample_missing(present, 1.0, g)
    counts = torch.stack([one[n] for n in present], 1).sum(1)
    assert bool((counts == 1).all())
    assert not bool((one["d"] & ~present["d"]).any())


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("fusion", FUSIONS)
def test_safetensors_state_dict_and_json_config_round_trip(tmp_path, fusion: str) -> None:
    cfg = HiMoEConfig.simulated(with_face=True, router="diff-attention", fusion=fusion, **SMALL)
    model = model_for(cfg, seed=8)
    x = batch(cfg, 4, seed=5)
    model.fit_input_stats({n: t * 3.0 + 2.0 for n, t in x.items()})  # buffers must travel too
    model.eval()
    present = random_present(cfg, 4, seed=3)
    with torch.no_grad():
        before = model(x, present)

    # plain: state dict with safetensors, config as JSON
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "w.safetensors"
    )
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    rebuilt = HiMoE(HiMoEConfig.from_dict(json.loads((tmp_path / "config.json").read_text())))
    rebuilt.load_state_dict(load_file(tmp_path / "w.safetensors"))
    with torch.no_grad():
        assert_outputs_equal(before, rebuilt.eval()(x, present))

    # helpers: config travels in the metadata
    save_hi_moe(model, tmp_path / "m.safetensors")
    with torch.no_grad():
        assert_outputs_equal(before, load_hi_moe(tmp_path / "m.safetensors")(x, present))


def test_modality_aux_heads_train_each_present_modality_alone() -> None:
    """``modality_aux_weight`` > 0: each present modality predicts by itself; the loss adds
    mu times their MSE, missing modalities add nothing, and weight 0 is the paper's model."""
    assert model_for(HiMoEConfig.simulated(**SMALL)).modality_heads is None
    cfg = HiMoEConfig.simulated(modality_aux_weight=0.5, **SMALL)
    model = model_for(cfg).eval()
    b = 6
    x = batch(cfg, b)
    present = random_present(cfg, b, seed=4)
    present["temp"][:] = False  # one modality missing in every sample
    out = model(x, present)
    assert out.modality_regression is not None
    assert out.modality_regression.shape == (b, len(cfg.modalities), 4)
    assert bool(((out.modality_regression > 1.0) & (out.modality_regression < 9.0)).all())
    targets = torch.rand(b, 4, generator=torch.Generator().manual_seed(5)) * 8 + 1
    total, parts = model.loss(out, targets)
    pm = torch.stack([present[n] for n in cfg.names], 1)
    err = ((out.modality_regression - targets[:, None]) / 4.0) ** 2
    expected_aux = err[pm].mean()
    assert parts["aux"].item() == pytest.approx(expected_aux.item(), rel=1e-5)
    base = parts["emo"] + cfg.lambda_ntxent * parts["ntxent"]
    assert total.item() == pytest.approx((base + 0.5 * parts["aux"]).item(), rel=1e-6)
    # a missing modality's head gets no gradient from the aux term; a present one does
    model.zero_grad()
    parts["aux"].backward()
    seen = [n for n in cfg.names if bool(present[n].any())]
    grad = model.modality_heads["temp"].weight.grad
    assert grad is None or float(grad.abs().sum()) == 0.0
    assert seen and all(float(model.modality_heads[n].weight.grad.abs().sum()) > 0 for n in seen)
    # the heads only add a loss term: the fused answer is the same function of the inputs
    plain = model_for(HiMoEConfig.simulated(**SMALL)).eval()
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("modality_heads.")}
    )
    assert torch.equal(plain(x, present).regression, out.regression)
