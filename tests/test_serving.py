"""The shipped demo models (hi-moe-sim, mco-e-net-lite-sim) served on windows cut by the aligner."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from app.demo_data import SessionPlan, serves, session_windows
from core.clock import VirtualClock
from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS, Prediction
from core.ring import ring_for
from core.scheduler import Aligner, StreamSource
from core.window import InputData, Presence, Window
from drivers.simulated.offline import render_session
from models.metrics import accuracy, ccc, rmse
from models.registry import (
    HI_MOE_SIM,
    MCO_E_NET_LITE_SIM,
    RETRAIN,
    card_path,
    concat_fusion_sim_inputs,
    hi_moe_sim_inputs,
    mco_e_net_lite_sim_inputs,
    shipped_path,
)
from models.runtime import (
    HiMoERunner,
    MCOENetRunner,
    ModelLoadError,
    load_runner,
    read_metadata,
    save_model,
)

T0 = 7000.0
DEMO = (HI_MOE_SIM, MCO_E_NET_LITE_SIM)


@pytest.fixture(scope="module")
def runners() -> dict[str, object]:
    return {name: load_runner(name, device="cpu") for name in DEMO}


@pytest.fixture(scope="module")
def sources() -> dict[str, StreamSource]:
    """Eight seconds of a simulated session (half-size camera, low light) in rings."""
    session = render_session(9, 8.0, lighting="low_light", frame_size=(130, 173))
    out = {}
    for s in session.streams.values():
        ring = ring_for(s.spec, capacity=len(s.ts) + 16)
        ring.write(s.data, s.ts + T0)
        out[s.spec.name] = StreamSource(s.spec, ring)
    return out


def cut(runner, sources, keep=lambda name: True, t_end: float = T0 + 7.0) -> Window:
    chosen = {k: v for k, v in sources.items() if keep(k)}
    return Aligner([runner.inputs], chosen, VirtualClock(T0)).cut(runner.name, t_end)


@pytest.mark.parametrize("name", DEMO)
def test_shipped_files_say_they_are_simulated(name):
    path = shipped_path(name)
    assert path.is_file() and path.stat().st_size < 15_000_000
    meta = read_metadata(path)
    assert meta["trained_on"] == "simulated data (affectlab virtual participant)"
    assert meta["training_command"].startswith(RETRAIN[name])
    assert "not for real participants" in meta["intended_use"]
    card = card_path(name).read_text()
    assert "simulated data only" in card.lower() and RETRAIN[name] in card
    figures = json.loads(path.with_suffix(".json").read_text())
    assert figures["model"] == name and "test" in figures


def test_hi_moe_serves_an_aligned_window(runners, sources):
    runner = runners[HI_MOE_SIM]
    assert isinstance(runner, HiMoERunner)
    assert runner.inputs == hi_moe_sim_inputs()
    assert runner.outputs == AFFECT_DIMENSIONS  # only the columns it fills
    window = cut(runner, sources)
    assert all(d.presence is Presence.PRESENT for d in window.inputs.values())
    out = runner.infer(runner.prepare(window))
    assert set(out.affect) == set(AFFECT_DIMENSIONS) and not out.expression
    assert all(1.0 <= v <= 9.0 for v in out.affect.values())
    n = len(runner.inputs.inputs)
    assert out.routing["present"] == [1.0] * n
    assert sum(out.routing["modality_attention"]) == pytest.approx(1.0, abs=1e-5)
    assert sum(out.routing["router_weights"]) == pytest.approx(1.0, abs=1e-5)
    for key in runner.inputs.inputs:
        gate = out.routing[f"gate_{key}"]
        assert len(gate) == runner.model.config.n_modality_experts
        assert sum(gate) == pytest.approx(1.0, abs=1e-5)
    row = Prediction("m", 0, window.t_end, affect=out.affect).flat()
    assert set(runner.outputs) <= set(row)


def test_hi_moe_with_only_some_physiology(runners, sources):
    runner = runners[HI_MOE_SIM]
    full = runner.infer(runner.prepare(cut(runner, sources)))
    window = cut(runner, sources, lambda s: s in ("sim-eeg", "sim-eda"))
    assert [window.inputs[k].presence is Presence.PRESENT for k in runner.inputs.inputs] == [
        True, False, False, True, False, False,
    ]  # fmt: skip
    out = runner.infer(runner.prepare(window))
    assert out.routing["present"] == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    attention = out.routing["modality_attention"]
    assert attention[1] == attention[2] == attention[4] == attention[5] == 0.0
    assert attention[0] + attention[3] == pytest.approx(1.0, abs=1e-5)
    assert all(1.0 <= v <= 9.0 for v in out.affect.values())
    assert out.affect != full.affect  # the missing devices were really left out
    # a missing modality's gate falls back to its learned default, the same for every window
    gates = [runner.infer(runner.prepare(cut(runner, sources, lambda s: s == "sim-eeg", t)))
             for t in (T0 + 5.0, T0 + 7.5)]  # fmt: skip
    assert gates[0].routing["gate_ecg"] == pytest.approx(gates[1].routing["gate_ecg"], abs=1e-6)
    # nothing at all: a learned prior, still in range
    none = runner.infer(runner.prepare(cut(runner, sources, lambda s: False)))
    assert none.routing["present"] == [0.0] * 6
    assert all(1.0 <= v <= 9.0 and math.isfinite(v) for v in none.affect.values())


def test_mco_e_net_serves_an_aligned_window(runners, sources):
    runner = runners[MCO_E_NET_LITE_SIM]
    assert isinstance(runner, MCOENetRunner)
    assert runner.inputs == mco_e_net_lite_sim_inputs()
    assert runner.outputs == tuple(f"p_{e}" for e in EXPRESSIONS)
    window = cut(runner, sources)
    assert window.inputs["frames"].data.shape == (4, 100, 100)
    assert window.inputs["events"].data.shape == (4, 2, 100, 100)
    out = runner.infer(runner.prepare(window))
    assert not out.affect and list(out.expression) == list(EXPRESSIONS)
    assert sum(out.expression.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in out.expression.values())
    weights = out.routing["expert_weights"]
    assert len(weights) == runner.model.config.n_experts
    assert sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert sum(w > 0 for w in weights) == runner.model.config.top_k
    assert out.routing["present"] == [1.0, 1.0]
    row = Prediction("m", 0, window.t_end, expression=out.expression).flat()
    assert set(runner.outputs) <= set(row) and row["label"] in EXPRESSIONS


def test_mco_e_net_without_events_or_frames(runners, sources):
    runner = runners[MCO_E_NET_LITE_SIM]
    window = cut(runner, sources, lambda s: "events" not in s)
    assert window.inputs["events"].presence is Presence.MISSING
    prepared = runner.prepare(window)
    assert prepared.events is not None and not prepared.events.any()
    out = runner.infer(prepared)
    assert out.routing["present"] == [1.0, 0.0]
    assert sum(out.expression.values()) == pytest.approx(1.0, abs=1e-5)
    # no frames: nothing for an eye-frame model to look at, so no expression at all
    blind = runner.infer(runner.prepare(cut(runner, sources, lambda s: "frames" not in s)))
    assert blind.expression == {} and blind.routing["present"] == [0.0, 1.0]
    # STALE frames are still frames
    stale = Window(window.model, 1, window.t_end, dict(window.inputs))
    f = window.inputs["frames"]
    stale.inputs["frames"] = InputData("frames", Presence.STALE, f.data, 1.0, f.stream)
    assert runner.infer(runner.prepare(stale)).expression


def test_colour_frames_are_read_in_opencvs_channel_order(runners):
    """A webcam with ``gray = false`` publishes BGR frames: their grey is OpenCV's."""
    import cv2

    runner = runners[MCO_E_NET_LITE_SIM]
    bgr = np.zeros((4, 100, 100, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 90, 130, 200  # skin-like: much red, little blue
    bgr[:, 40:60, 40:60] = (200, 60, 20)  # a blue patch
    window = Window(
        runner.name, 0, 1.0,
        {"frames": InputData("frames", Presence.PRESENT, bgr / np.float32(255), 0.0, "webcam")},
    )  # fmt: skip
    grey = runner.prepare(window).frames[0, :, 0].numpy()
    want = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in bgr]) / 255
    np.testing.assert_allclose(grey, want, atol=2.5 / 255)  # OpenCV rounds to whole levels


def test_wrong_shapes_name_the_input(runners, sources):
    runner = runners[MCO_E_NET_LITE_SIM]
    window = cut(runner, sources)
    bad = Window(window.model, 2, window.t_end, dict(window.inputs))
    bad.inputs["events"] = InputData("events", Presence.PRESENT, np.zeros((4, 1, 100, 100)), 0.0)
    with pytest.raises(ValueError, match="'events'.*\\(4, 2, 100, 100\\)"):
        runner.prepare(bad)


def test_round_trip_and_mismatched_inputs(tmp_path, runners, sources):
    runner = runners[HI_MOE_SIM]
    path = save_model(
        tmp_path / "h.safetensors", runner.model, runner.inputs, {"trained_on": "a test"}
    )
    again = load_runner(str(path), device="cpu")
    window = cut(runner, sources)
    assert again.infer(again.prepare(window)) == runner.infer(runner.prepare(window))
    with pytest.raises(ValueError, match="do not match declared inputs"):
        save_model(tmp_path / "x.safetensors", runner.model, concat_fusion_sim_inputs(), {
            "trained_on": "a test"})  # fmt: skip
    mco = runners[MCO_E_NET_LITE_SIM]
    with pytest.raises(ValueError, match="not what the config needs"):
        save_model(tmp_path / "y.safetensors", mco.model, hi_moe_sim_inputs(), {
            "trained_on": "a test"})  # fmt: skip
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    odd = tmp_path / "odd.safetensors"
    save_file({"w": torch.zeros(1)}, str(odd), metadata=dict(meta, family="late-fusion"))
    with pytest.raises(ModelLoadError, match="family 'late-fusion'.*hi-moe"):
        load_runner(str(odd))


def test_hi_moe_inputs_share_concat_fusions_windows():
    assert serves(concat_fusion_sim_inputs(), hi_moe_sim_inputs())
    assert not serves(concat_fusion_sim_inputs(), mco_e_net_lite_sim_inputs())
    assert serves(mco_e_net_lite_sim_inputs(), mco_e_net_lite_sim_inputs("x", frames_only=True))


def test_hi_moe_beats_a_constant_on_an_unseen_participant(runners):
    """Participant 0 (the demo's default) is a test participant: never trained on or chosen by."""
    runner = runners[HI_MOE_SIM]
    assert 0 not in json.loads(runner.metadata["train_seeds"])
    assert 0 not in json.loads(runner.metadata["validation_seeds"])
    data = session_windows(SessionPlan(0, 2.0, "normal", (130, 173), 128.0), runner.inputs)
    x = {k: torch.from_numpy(v) for k, v in data.x.items()}
    present = {k: torch.from_numpy(data.present[:, i]) for i, k in enumerate(data.keys)}
    with torch.inference_mode():
        pred = runner.model(x, present).regression.numpy()
    arousal = AFFECT_DIMENSIONS.index("arousal")
    assert ccc(data.affect[:, arousal], pred[:, arousal]) > 0.5
    # a constant scores CCC 0; even the session's own mean (an oracle constant) loses on RMSE
    for d in range(4):
        assert ccc(data.affect[:, d], pred[:, d]) > 0.2, AFFECT_DIMENSIONS[d]
    own_mean = np.full(len(data), data.affect[:, arousal].mean())
    assert rmse(data.affect[:, arousal], pred[:, arousal]) < rmse(data.affect[:, arousal], own_mean)


@pytest.mark.parametrize("lighting", ["normal", "low_light"])
def test_mco_e_net_beats_a_constant_on_an_unseen_participant(runners, lighting):
    runner = runners[MCO_E_NET_LITE_SIM]
    assert 0 not in json.loads(runner.metadata["train_seeds"])
    plan = SessionPlan(0, 1.5, lighting, (130, 173), 128.0)
    data = session_windows(plan, runner.inputs, stride=2)
    frames = torch.from_numpy(data.x["frames"])[:, :, None]
    events = torch.from_numpy(data.x["events"].astype(np.float32))
    with torch.inference_mode():
        pred = runner.model(frames, events).logits.argmax(-1).numpy()
    majority = np.bincount(data.expression).max() / len(data)
    assert accuracy(data.expression, pred) > majority + 0.2
