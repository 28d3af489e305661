"""MCO-E Net: sizes against REFERENCE 1, shapes, routing, gradients, ablation, learning, files."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.prediction import EXPRESSIONS
from core.window import EventInput, EventRepresentation, FrameInput
from models.mco_e_net import (
    MCOENet,
    MCOENetConfig,
    MCOMamba,
    load_mco_e_net,
    parameter_counts,
    save_mco_e_net,
)
from models.resnet import ResNet18, resnet18_parameters

H = W = 100
T = 4


def _inputs(cfg: MCOENetConfig, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(b, T, cfg.frame_channels, H, W, generator=g)
    rate = torch.full((b, T, cfg.event_channels, H, W), 0.3)
    events = torch.poisson(rate, generator=g)
    return frames, events


@pytest.fixture(scope="module")
def lite() -> MCOENet:
    torch.manual_seed(0)
    return MCOENet(MCOENetConfig.lite())


# --------------------------------------------------------------------------- sizes
def test_resnet18_matches_torchvision_size() -> None:
    # torchvision's resnet18() has 11,689,512 parameters; the closed form must agree with
    # the module for other shapes too.
    assert sum(p.numel() for p in ResNet18().parameters()) == 11_689_512
    for args in [(2, 64, 1000), (1, 16, 256), (2, 32, 0)]:
        m = ResNet18(*args)
        assert sum(p.numel() for p in m.parameters()) == resnet18_parameters(*args)


def test_paper_parameter_count_matches_reference() -> None:
    """REFERENCE 1: about 155 M in all; ResNet18 x4 = 46.8 M; HCE-MoE 106 M; deep expert 42 M.

    The figures are given to three significant digits, so each must hold to half a
    unit of its last digit. The released event stems read 3-channel JPEGs; with
    ``event_input="intensity"`` the backbones are exactly four torchvision ResNet-18.
    """
    with torch.device("meta"):
        released_inputs = MCOENet(MCOENetConfig.paper(event_channels=3, event_input="intensity"))
        ours = MCOENet(MCOENetConfig.paper())
    for model in (released_inputs, ours):
        counts = parameter_counts(model)
        assert abs(counts["total"] - 155e6) <= 0.5e6
        moe = sum(v for k, v in counts.items() if k.startswith("moe."))
        assert abs(moe - 106e6) <= 0.5e6
        assert abs(counts["moe.expert_2"] - 42e6) <= 0.5e6  # deep experts are 2, 5
        assert abs(counts["moe.expert_5"] - 42e6) <= 0.5e6
    counts = parameter_counts(released_inputs)
    backbones = counts["frame_backbones"] + counts["event_backbones"]
    assert backbones == 4 * 11_689_512
    assert abs(backbones - 46.8e6) <= 0.05e6
    # Layer by layer from the released code (mamba_fusion.py, MCOMamba.py), minus the modules
    # it builds but never calls (MCOE.output, Mamba.norm_*, in_proj_extra, fusion_gate).
    mamba = 2 * 4 * 16 + 4 * (8 * 4 + 8) + 4 * 8 * 33 + 4 * 66 * 16 + 4 * (8 + 8)
    mamba += 4 * 8 * 16 + 4 * 8 + 2 * 8 * 4
    mcib = 2 * (4 * 4 + 4) + (3 * 4 * 4 + 3 * 4) + (4 * 4 + 4)
    fusion = 2000 * 1024 + 1024
    conv = (1024 * 512 * 3 + 512) + (512 * 7 + 7)
    mha = 4 * 1024 * 1024 + 4 * 1024
    attention = mha + 2 * 1024 + 1024 * 7 + 7
    deep = 5 * (1024 * 4096 + 4096 + 4096 * 1024 + 1024) + 1024 * 7 + 7 + 1
    router = mha + 2 * 1024 + 1024 * 512 + 512 + 512 * 8 + 8
    moe = 3 * conv + 3 * attention + 2 * deep + router
    assert counts["mco"] == mamba
    assert counts["mcib"] == mcib
    assert counts["fusion_proj"] == fusion
    assert counts["total"] == 4 * 11_689_512 + mamba + mcib + fusion + moe


def test_lite_is_much_smaller_and_frames_only_drops_the_event_branch() -> None:
    with torch.device("meta"):
        paper = parameter_counts(MCOENet(MCOENetConfig.paper()))["total"]
        lite = parameter_counts(MCOENet(MCOENetConfig.lite()))
        fo = parameter_counts(MCOENet(MCOENetConfig.lite(frames_only=True)))
    assert lite["total"] < paper / 20
    assert "event_backbones" not in fo
    assert fo["frame_backbones"] == lite["frame_backbones"]
    assert fo["total"] < lite["total"]


# --------------------------------------------------------------------------- forward
def _check_routing(routing: torch.Tensor, probs: torch.Tensor, k: int) -> None:
    assert torch.all((routing > 0).sum(1) == k)
    torch.testing.assert_close(routing.sum(1), torch.ones(routing.shape[0]), atol=1e-6, rtol=0)
    # the chosen experts are the router's k most probable ones
    chosen = routing > 0
    top = torch.zeros_like(chosen).scatter(1, probs.topk(k, 1).indices, True)
    assert torch.equal(chosen, top)
    torch.testing.assert_close(probs.sum(1), torch.ones(probs.shape[0]))


def test_lite_output_shapes_and_routing(lite: MCOENet) -> None:
    cfg = lite.config
    frames, events = _inputs(cfg, 3)
    lite.eval()
    with torch.no_grad():
        out = lite(frames, events)
    assert out.logits.shape == (3, len(EXPRESSIONS))
    assert out.routing.shape == (3, cfg.n_experts) == out.router_probs.shape
    assert torch.isfinite(out.logits).all()
    _check_routing(out.routing, out.router_probs, cfg.top_k)
    assert lite.classes == EXPRESSIONS
    # a sample's output does not depend on the batch around it (eval mode, routing per sample)
    with torch.no_grad():
        one = lite(frames[1:2], events[1:2])
    torch.testing.assert_close(one.logits, out.logits[1:2], atol=1e-4, rtol=1e-4)


def test_grayscale_and_uint8_frames_are_accepted(lite: MCOENet) -> None:
    frames, events = _inputs(lite.config, 2)
    as_u8 = (frames * 255).round().to(torch.uint8)
    lite.eval()
    with torch.no_grad():
        a = lite(as_u8, events).logits
        b = lite(as_u8.float() / 255, events).logits
    torch.testing.assert_close(a, b)


def test_paper_forward_at_batch_1() -> None:
    torch.manual_seed(1)
    cfg = MCOENetConfig.paper()
    model = MCOENet(cfg).eval()
    frames = torch.rand(1, T, 1, H, W)  # grey, replicated to the 3-channel stems
    events = torch.poisson(torch.full((1, T, 2, H, W), 0.3))
    with torch.no_grad():
        out = model(frames, events)
    assert out.logits.shape == (1, 7)
    assert out.routing.shape == (1, 8)
    assert torch.isfinite(out.logits).all()
    _check_routing(out.routing, out.router_probs, 2)


def test_wrong_input_shapes_are_refused_with_the_shape(lite: MCOENet) -> None:
    frames, events = _inputs(lite.config, 1)
    with pytest.raises(ValueError, match=r"frames must be .*got \(1, 4, 1, 64, 64\)"):
        lite(frames[..., :64, :64], events)
    with pytest.raises(ValueError, match="events must be"):
        lite(frames, events[:, :, :1])
    with pytest.raises(ValueError, match="needs events"):
        lite(frames, None)


# --------------------------------------------------------------------------- MCO-Mamba
def _reference_mco(mco: MCOMamba, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """REFERENCE 1 step 3 written out with a sequential recurrence, in float64."""
    cfg = mco.cfg
    r, n, L = cfg.dt_rank, cfg.d_state, x["rgb"].shape[1]
    ys: dict[tuple[int, str], torch.Tensor] = {}
    for k, direction in enumerate(mco.directions):
        qs, us, zs = {}, {}, {}
        for m, v in x.items():
            xz = mco.in_proj[m](v).transpose(1, 2)
            if k == 1:
                xz = xz.flip(-1)
            xin, zs[m] = xz.chunk(2, 1)
            br = direction.branches[m]
            us[m] = F.silu(br.conv1d(xin)[..., :L])
            qs[m] = br.x_proj(us[m].transpose(1, 2))
        joint = torch.cat([qs["rgb"], qs.get("evt", qs["rgb"])], -1)
        for m in x:
            br = direction.branches[m]
            dt, b, c = qs[m].split([r, n, n], -1)
            b = b + direction.joint_B(joint)
            c = c + direction.joint_C(joint)
            bias = br.dt_proj.bias if br.dt_proj.bias is not None else None
            if bias is None:
                bias = mco.directions[0].branches[m].dt_proj.bias
            delta = F.softplus(F.linear(dt, br.dt_proj.weight) + bias)  # (B, L, d_inner)
            a = -torch.exp(br.A_log)
            h = torch.zeros(b.shape[0], cfg.d_inner, n, dtype=torch.float64)
            out = []
            for t in range(L):
                u_t = us[m][:, :, t]
                h = torch.exp(delta[:, t, :, None] * a) * h
                h = h + delta[:, t, :, None] * b[:, t, None, :] * u_t[..., None]
                out.append((h * c[:, t, None, :]).sum(-1) + br.D * u_t)
            y = torch.stack(out, -1) * F.silu(zs[m])
            ys[(k, m)] = y
    return {m: mco.out_proj[m](((ys[(0, m)] + ys[(1, m)].flip(-1)) / 2).transpose(1, 2)) for m in x}


@pytest.mark.parametrize("frames_only", [False, True])
@pytest.mark.parametrize("share_bias", [False, True])
def test_mco_mamba_matches_a_sequential_reference(frames_only: bool, share_bias: bool) -> None:
    torch.manual_seed(2)
    cfg = MCOENetConfig.lite(
        backbone_outputs=38, frames_only=frames_only, share_backward_dt_bias=share_bias
    )
    mco = MCOMamba(cfg).double()
    with torch.no_grad():  # make the joint path matter
        for d in mco.directions:
            d.joint_B.weight.mul_(5)
            d.joint_C.weight.mul_(5)
    mods = ("rgb",) if frames_only else ("rgb", "evt")
    x = {m: torch.randn(2, cfg.seq_len, cfg.d_model, dtype=torch.float64) for m in mods}
    got = mco(x["rgb"], x.get("evt"))
    want = _reference_mco(mco, x)
    assert set(got) == set(mods)
    for m in mods:
        torch.testing.assert_close(got[m], want[m], atol=1e-9, rtol=1e-7)
    if share_bias:
        assert mco.directions[1].branches["rgb"].dt_proj.bias is None


# --------------------------------------------------------------------------- training
def test_gradients_reach_every_parameter_of_lite() -> None:
    """Every parameter, the joint B/C projections included, gets a nonzero gradient.

    Experts only run when chosen, so the router's last bias is pushed to choose
    each pair of experts in turn and the gradients are accumulated.
    """
    torch.manual_seed(3)
    cfg = MCOENetConfig.lite()
    model = MCOENet(cfg).train()
    frames, events = _inputs(cfg, 4)
    target = torch.tensor([0, 3, 5, 6])
    last = model.moe.router.mlp[-1]
    base = last.bias.detach().clone()
    for start in range(0, cfg.n_experts, cfg.top_k):
        with torch.no_grad():
            last.bias.copy_(base)
            last.bias[start : start + cfg.top_k] += 10.0
        out = model(frames, events)
        assert set(out.routing.nonzero()[:, 1].tolist()) == set(range(start, start + cfg.top_k))
        F.cross_entropy(out.logits, target).backward()
    dead = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
    ]
    assert dead == []
    for d in model.mco.directions:
        assert d.joint_B.weight.grad.abs().sum() > 0
        assert d.joint_C.weight.grad.abs().sum() > 0
        for br in d.branches.values():
            assert br.D.grad.abs().sum() > 0 and br.dt_proj.bias.grad.abs().sum() > 0


def test_frames_only_ignores_events() -> None:
    torch.manual_seed(4)
    cfg = MCOENetConfig.lite(frames_only=True)
    model = MCOENet(cfg).eval()
    frames, events = _inputs(MCOENetConfig.lite(), 2)
    with torch.no_grad():
        a = model(frames, None).logits
        b = model(frames, events).logits
        c = model(frames, events * 7 + 3).logits
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not any("event" in name for name, _ in model.named_parameters())
    assert cfg.model_inputs("fo").inputs.keys() == {"frames"}


def test_events_change_the_output_of_the_full_model(lite: MCOENet) -> None:
    frames, events = _inputs(lite.config, 2)
    lite.eval()
    with torch.no_grad():
        a = lite(frames, events).logits
        b = lite(frames, torch.zeros_like(events)).logits
    assert not torch.allclose(a, b)


def test_lite_learns_a_separable_toy_task() -> None:
    """Class 0: bright frames, few events; class 3: dark frames, many events."""
    torch.manual_seed(5)
    cfg = MCOENetConfig.lite()
    model = MCOENet(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(6)
    losses = []
    for _ in range(12):
        y = torch.randint(0, 2, (8,), generator=g) * 3
        level = torch.where(y == 0, 0.8, 0.2)[:, None, None, None, None]
        frames = (level + 0.1 * torch.rand(8, T, 1, H, W, generator=g)).clamp(0, 1)
        rate = torch.where(y == 0, 0.05, 2.0)[:, None, None, None, None].expand(8, T, 2, H, W)
        events = torch.poisson(rate.contiguous(), generator=g)
        loss = F.cross_entropy(model(frames, events).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, final = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert final < 0.5 * first, losses
    assert first > 0.5 * math.log(7)


# --------------------------------------------------------------------------- files and config
def test_safetensors_round_trip_reproduces_outputs(lite: MCOENet, tmp_path) -> None:
    frames, events = _inputs(lite.config, 2)
    lite.eval()
    path = tmp_path / "mco.safetensors"
    save_mco_e_net(lite, path, metadata={"trained_on": "nothing (test)"})
    loaded = load_mco_e_net(path)
    assert loaded.config == lite.config
    assert not loaded.training
    with torch.no_grad():
        want = lite(frames, events)
        got = loaded(frames, events)
    assert torch.equal(got.logits, want.logits)
    assert torch.equal(got.routing, want.routing)


def test_load_refuses_other_files(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not an MCO-E Net file"):
        load_mco_e_net(path)


def test_config_json_round_trip_validation_and_inputs() -> None:
    for cfg in (MCOENetConfig.paper(), MCOENetConfig.lite(frames_only=True)):
        assert MCOENetConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="top_k"):
        MCOENetConfig.lite(top_k=9)
    with pytest.raises(ValueError, match="unknown"):
        MCOENetConfig.from_json('{"bogus": 1}')
    spec = MCOENetConfig.lite().model_inputs("mco-e-net-lite")
    frames, events = spec.inputs["frames"], spec.inputs["events"]
    assert isinstance(frames, FrameInput) and isinstance(events, EventInput)
    assert frames.count == events.count == 4 and frames.size == events.size == (100, 100)
    assert events.representation == EventRepresentation.COUNT
    assert events.slice_s == pytest.approx(1 / 30)
    assert frames.window_s == pytest.approx(16 / 30)
