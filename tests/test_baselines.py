"""The concatenation-fusion baseline, its losses, and a few real training steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.demo_data import PHYSIOLOGY, VISION, WindowSet
from models.baselines import (
    ConcatFusion,
    FusionConfig,
    InputLayout,
    normalise_events,
    normalise_frames,
    normalise_numeric,
)
from models.demo.concat_fusion import TrainConfig, loss_terms, modality_dropout, to_batch
from models.losses import (
    ccc_loss,
    mse_pearson_loss,
    pearson_loss,
    smoothed_cross_entropy,
)
from models.metrics import ccc
from models.registry import concat_fusion_sim_inputs
from models.runtime import layouts_for

LAYOUTS = layouts_for(concat_fusion_sim_inputs())
KEYS = tuple(lay.key for lay in LAYOUTS)


def make_inputs(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for lay in LAYOUTS:
        if lay.kind == "numeric":
            out[lay.key] = torch.randn(batch, *lay.shape, generator=g) * 10.0 + 3.0
        elif lay.kind == "frames":
            out[lay.key] = torch.rand(batch, *lay.shape, generator=g)
        else:
            out[lay.key] = torch.poisson(torch.full((batch, *lay.shape), 0.5), generator=g)
    return out


@pytest.fixture(scope="module")
def model() -> ConcatFusion:
    torch.manual_seed(0)
    return ConcatFusion(FusionConfig(LAYOUTS)).eval()


def test_layouts_of_the_demo_inputs():
    shapes = {lay.key: lay.shape for lay in LAYOUTS}
    assert shapes["eeg"] == (32, 256)
    assert shapes["temp"] == (1, 8)
    assert shapes["frames"] == (4, 48, 64)
    assert shapes["events"] == (4, 2, 48, 64)


@pytest.mark.parametrize("present_keys", [KEYS, ("eeg", "frames"), ()])
def test_forward_shapes_and_ranges(model, present_keys):
    x = make_inputs(5)
    present = torch.tensor([[k in present_keys for k in KEYS]] * 5, dtype=torch.float32)
    with torch.no_grad():
        out = model(x, present)
    assert out.affect.shape == (5, 4)
    assert out.logits.shape == (5, 7)
    assert out.norms.shape == (5, len(KEYS))
    assert torch.all(out.affect >= 1.0) and torch.all(out.affect <= 9.0)
    probs = torch.softmax(out.logits, -1)
    assert torch.allclose(probs.sum(-1), torch.ones(5))
    # a missing input contributes no feature
    for i, k in enumerate(KEYS):
        assert (out.norms[:, i] > 0).all() == (k in present_keys)


def test_missing_inputs_ignore_their_data(model):
    """What sits in a missing input's slot (zeros, noise, None) must not change the output."""
    present = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]] * 3, dtype=torch.float32)
    a, b = make_inputs(3, seed=1), make_inputs(3, seed=2)
    for k in ("eeg", "ecg", "ppg", "eda", "resp", "temp"):
        b[k] = a[k]
    c = dict(a, frames=None, events=None)
    with torch.no_grad():
        oa, ob, oc = model(a, present), model(b, present), model(c, present)
    assert torch.allclose(oa.affect, ob.affect) and torch.allclose(oa.affect, oc.affect)
    assert torch.allclose(oa.logits, ob.logits) and torch.allclose(oa.logits, oc.logits)


def test_extreme_inputs_stay_in_range(model):
    x = {k: v * 1e6 for k, v in make_inputs(2).items()}
    x["eeg"][0, 0, 0] = float("nan")
    with torch.no_grad():
        out = model(x, torch.ones(2, len(KEYS)))
    assert torch.isfinite(out.affect).all() and torch.isfinite(out.logits).all()
    assert torch.all(out.affect >= 1.0) and torch.all(out.affect <= 9.0)


def test_normalisation_is_robust_to_gain():
    x = make_inputs(2)
    ev = x["events"]
    assert torch.allclose(normalise_events(4.0 * ev), normalise_events(ev), atol=2e-3)
    fr = x["frames"] * 0.5
    assert torch.allclose(normalise_frames(fr + 0.2), normalise_frames(fr), atol=1e-5)
    # a gain only rescales the standardised picture (the 0.02 floor keeps noise-only frames calm)
    ratio = normalise_frames(0.5 * fr) / normalise_frames(fr)
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-3)
    shape, stats = normalise_numeric(x["eeg"])
    shape2, stats2 = normalise_numeric(3.0 * x["eeg"])
    assert torch.allclose(shape, shape2, atol=1e-4)
    # log std moves by ln 3, so absolute level information survives in the stats
    assert torch.allclose(
        stats2[:, 32:] - stats[:, 32:], torch.full((2, 32), np.log(3.0)), atol=1e-4
    )


def test_layout_validation():
    with pytest.raises(ValueError, match="kind"):
        InputLayout("x", "audio", (1, 2))
    with pytest.raises(ValueError, match="4-D"):
        InputLayout("events", "events", (4, 48, 64))
    cfg = FusionConfig(LAYOUTS)
    assert FusionConfig.from_dict(cfg.to_dict()) == cfg


def test_losses_against_definitions():
    t = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 1.0], [4.0, 3.0]])
    p = 2.0 * t + 1.0
    # perfect correlation: Pearson loss 0; CCC loss equals 1 - CCC of the metric
    assert float(pearson_loss(p, t)) == pytest.approx(0.0, abs=1e-5)
    want = 1.0 - np.mean([ccc(t[:, j].numpy(), p[:, j].numpy()) for j in range(2)])
    assert float(ccc_loss(p, t)) == pytest.approx(want, abs=1e-5)
    assert float(pearson_loss(-p, t)) == pytest.approx(2.0, abs=1e-5)
    mse = float(((p - t) ** 2).mean())
    assert float(mse_pearson_loss(p, t, scale=4.0)) == pytest.approx(mse / 16.0, rel=1e-5)
    # a weight mask drops samples
    w = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    assert float(mse_pearson_loss(p, t, w, pearson_weight=0.0)) == pytest.approx(
        float(((p - t)[:3] ** 2).mean()), rel=1e-5
    )


def test_smoothed_cross_entropy_matches_torch():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 7, generator=g)
    target = torch.tensor([0, 1, 2, 3, 4, 6])
    for s in (0.0, 0.1):
        want = F.cross_entropy(logits, target, label_smoothing=s)
        assert float(smoothed_cross_entropy(logits, target, s)) == pytest.approx(
            float(want), rel=1e-5
        )
    with pytest.raises(ValueError):
        smoothed_cross_entropy(logits, target, 1.0)


def fixed_windows(n: int = 16) -> WindowSet:
    x = {k: v.numpy() for k, v in make_inputs(n, seed=5).items()}
    x["events"] = x["events"].astype(np.uint16)
    rng = np.random.default_rng(0)
    return WindowSet(
        KEYS,
        x,
        np.ones((n, len(KEYS)), dtype=bool),
        rng.uniform(1.5, 8.5, size=(n, 4)).astype(np.float32),
        rng.integers(0, 7, size=n),
        np.zeros(n, dtype=np.int64),
        np.arange(n, dtype=np.float64),
    )


def test_a_few_training_steps_lower_the_loss():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs: one thread is as fast, and immune to a busy core
    try:
        _train_a_few_steps()
    finally:
        torch.set_num_threads(threads)


def _train_a_few_steps():
    torch.manual_seed(0)
    data = fixed_windows()
    model = ConcatFusion(FusionConfig(LAYOUTS, dropout=0.0))
    x, present, affect, expr = to_batch(data, np.arange(len(data)))
    model.fit_input_stats(x)
    cfg = TrainConfig()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    with torch.no_grad():
        before = float(loss_terms(model, x, present, affect, expr, cfg)[0])
    for _ in range(25):
        loss = loss_terms(model, x, present, affect, expr, cfg)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss_terms(model, x, present, affect, expr, cfg)[0])
    assert after < 0.6 * before, (before, after)


def test_modality_dropout_hides_inputs_and_groups():
    groups = (PHYSIOLOGY, VISION)
    cfg = TrainConfig(input_dropout=0.0, group_dropout=1.0)
    present = torch.ones(4, len(KEYS))
    out = modality_dropout(present, KEYS, cfg, torch.Generator().manual_seed(0), groups)
    assert out.sum() == 0  # both groups always dropped
    # only the inputs of a group go with it
    out = modality_dropout(present, KEYS, cfg, torch.Generator().manual_seed(0), (VISION,))
    assert out.tolist() == [[float(k not in VISION) for k in KEYS]] * 4
    cfg = TrainConfig(input_dropout=0.5, group_dropout=0.0)
    gen = torch.Generator().manual_seed(0)
    out = modality_dropout(torch.ones(2000, len(KEYS)), KEYS, cfg, gen, groups)
    assert 0.45 < float(out.mean()) < 0.55
    # an input that was missing stays missing
    present = torch.zeros(3, len(KEYS))
    cfg = TrainConfig(input_dropout=0.0, group_dropout=0.0)
    assert modality_dropout(present, KEYS, cfg, torch.Generator(), groups).sum() == 0


def test_inputs_of_another_window_length_are_refused(model):
    """A checkpoint trained on 2 s windows fed 4 s ones would encode them without complaint
    and give numbers that mean nothing (evaluate did so for a checkpoint without its JSON)."""
    from models.concat_regressor import ConcatRegressor, ConcatRegressorConfig

    x = make_inputs(2)
    x["eeg"] = torch.randn(2, 32, 512)
    present = torch.ones(2, len(KEYS))
    with pytest.raises(
        ValueError, match=r"modality 'eeg': expected \(B, 32, 256\), got \(2, 32, 512\)"
    ):
        model(x, present)
    regressor = ConcatRegressor(ConcatRegressorConfig(FusionConfig(LAYOUTS, n_affect=4))).eval()
    with pytest.raises(ValueError, match=r"modality 'eeg': expected \(B, 32, 256\)"):
        regressor(x)
