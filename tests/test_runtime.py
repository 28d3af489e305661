"""Loading model files and serving windows cut by the real aligner."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from app.train_demo import SessionPlan, session_windows, stack_windows
from core.clock import VirtualClock
from core.prediction import EXPRESSIONS, Prediction
from core.ring import ring_for
from core.scheduler import Aligner, StreamSource
from core.window import InputData, Presence, Window
from drivers.simulated.offline import render_session
from models.baselines import ConcatFusion, FusionConfig
from models.metrics import accuracy, ccc
from models.registry import SHIPPED, concat_fusion_sim_inputs, shipped_path
from models.runtime import (
    OUTPUTS,
    ModelLoadError,
    TorchRunner,
    inputs_from_json,
    inputs_to_json,
    layouts_for,
    load_runner,
    save_model,
)

INPUTS = concat_fusion_sim_inputs()
T0 = 5000.0


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    """Six seconds of a simulated session (half-size camera) in rings on a session clock."""
    session = render_session(7, 6.0, lighting="low_light", frame_size=(130, 173))
    sources = {}
    for s in session.streams.values():
        ring = ring_for(s.spec, capacity=len(s.ts) + 16)
        ring.write(s.data, s.ts + T0)
        sources[s.spec.name] = StreamSource(s.spec, ring)
    return Aligner([INPUTS], sources, VirtualClock(T0))


@pytest.fixture(scope="module")
def window(aligner) -> Window:
    return aligner.cut(INPUTS.model, T0 + 5.5)


@pytest.fixture(scope="module")
def shipped() -> TorchRunner:
    return load_runner("concat-fusion-sim", device="cpu")


def random_model(seed: int = 0) -> ConcatFusion:
    torch.manual_seed(seed)
    return ConcatFusion(FusionConfig(layouts_for(INPUTS))).eval()


def test_shipped_model_serves_an_aligned_window(shipped, window):
    assert shipped.name == "concat-fusion-sim"
    assert shipped.inputs == INPUTS
    assert shipped.device == "cpu"
    assert shipped.outputs == OUTPUTS
    assert shipped.metadata["trained_on"] == "simulated data (affectlab virtual participant)"
    assert "train-demo" in shipped.metadata["training_command"]
    assert all(d.presence is Presence.PRESENT for d in window.inputs.values())
    out = shipped.infer(shipped.prepare(window))
    assert set(out.affect) == {"valence", "arousal", "dominance", "liking"}
    assert all(1.0 <= v <= 9.0 for v in out.affect.values())
    assert list(out.expression) == list(EXPRESSIONS)
    assert sum(out.expression.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(out.routing["feature_norm"]) == len(INPUTS.inputs)
    assert out.routing["present"] == [1.0] * len(INPUTS.inputs)
    assert sum(out.routing["modality_weight"]) == pytest.approx(1.0, abs=1e-5)
    # the runner's columns are exactly what a Prediction row carries
    row = Prediction("m", 0, window.t_end, affect=out.affect, expression=out.expression).flat()
    assert set(shipped.outputs) <= set(row)


def test_missing_and_stale_inputs(shipped, aligner, window):
    physio_only = {name: src for name, src in aligner.sources.items() if "davis" not in name}
    cut = Aligner([INPUTS], physio_only, VirtualClock(T0)).cut(INPUTS.model, T0 + 5.5)
    assert cut.inputs["frames"].presence is Presence.MISSING
    prepared = shipped.prepare(cut)
    assert prepared.tensors["frames"] is None and prepared.tensors["events"] is None
    assert prepared.present.tolist() == [[1, 1, 1, 1, 1, 1, 0, 0]]
    out = shipped.infer(prepared)
    assert out.routing["feature_norm"][-2:] == [0.0, 0.0]
    assert all(1.0 <= v <= 9.0 for v in out.affect.values())
    # STALE data is still data for the model
    stale = Window(window.model, 1, window.t_end, dict(window.inputs))
    eda = window.inputs["eda"]
    stale.inputs["eda"] = InputData("eda", Presence.STALE, eda.data, 2.0, eda.stream)
    assert shipped.prepare(stale).present[0, 3] == 1.0


def test_wrong_shape_names_the_input(shipped, window):
    bad = Window(window.model, 2, window.t_end, dict(window.inputs))
    bad.inputs["eeg"] = InputData("eeg", Presence.PRESENT, np.zeros((16, 256), np.float32), 0.0)
    with pytest.raises(ValueError, match="'eeg'.*\\(32, 256\\)"):
        shipped.prepare(bad)


def test_save_load_round_trip_is_exact(tmp_path, window):
    model = random_model(3)
    path = save_model(
        tmp_path / "m.safetensors",
        model,
        INPUTS,
        {"trained_on": "nothing (random init)", "training_command": "none", "scores": [1, 2]},
    )
    runner = load_runner(str(path), device="cpu")
    assert runner.inputs == INPUTS
    assert json.loads(runner.metadata["scores"]) == [1, 2]
    ours = TorchRunner(model, INPUTS, "cpu")
    a = ours.infer(ours.prepare(window))
    b = runner.infer(runner.prepare(window))
    assert a.affect == b.affect and a.expression == b.expression and a.routing == b.routing


def test_inputs_json_round_trip():
    assert inputs_from_json(inputs_to_json(INPUTS)) == INPUTS


def test_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown model 'hi-moe-9000'.*concat-fusion-sim"):
        load_runner("hi-moe-9000")
    with pytest.raises(ModelLoadError, match="nowhere.safetensors does not exist"):
        load_runner(str(tmp_path / "nowhere.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01 certainly not a safetensors header" * 10)
    with pytest.raises(ModelLoadError, match="junk.safetensors is not a readable safetensors"):
        load_runner(str(junk))
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="bare.safetensors lacks metadata"):
        load_runner(str(bare))
    # right metadata, wrong tensors
    good = save_model(tmp_path / "good.safetensors", random_model(), INPUTS, {"trained_on": "x"})
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata=meta)
    with pytest.raises(ModelLoadError, match="wrong.safetensors: tensors do not match"):
        load_runner(str(wrong))
    meta2 = dict(meta, format="someone-else/3")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata=meta2)
    with pytest.raises(ModelLoadError, match="format 'someone-else/3'"):
        load_runner(str(other))


def test_a_training_checkpoint_is_refused_for_a_session_saying_why(tmp_path):
    """`affectlab train` writes checkpoints for `evaluate`; a session naming one is told so."""
    from models.checkpoint import save_checkpoint

    path = tmp_path / "fold_00" / "model.safetensors"
    path.parent.mkdir()
    save_checkpoint(path, "concat-fusion", random_model(), {"layouts": []}, {"data": "deap:x"})
    with pytest.raises(ModelLoadError, match=r"checkpoint of `affectlab train` \(concat-fusion"):
        load_runner(str(path))


def test_shipped_names_resolve():
    assert "concat-fusion-sim" in SHIPPED
    path = shipped_path("concat-fusion-sim")
    assert path.is_file() and path.stat().st_size < 5_000_000


def test_stacking_follows_the_runner_rule(window):
    shapes = {lay.key: lay.shape for lay in layouts_for(INPUTS)}
    stale = Window(window.model, 1, window.t_end, dict(window.inputs))
    stale.inputs["temp"] = InputData("temp", Presence.STALE, window.inputs["temp"].data, 2.0)
    stale.inputs["ppg"] = InputData("ppg", Presence.MISSING, None, math.inf)
    x, present = stack_windows([window, stale], INPUTS, shapes)
    assert present[0].all()
    assert present[1].tolist() == [True, True, False, True, True, True, True, True]
    assert np.array_equal(x["events"][0], window.inputs["events"].data)
    assert not x["ppg"][1].any()


def test_shipped_model_beats_a_constant_on_an_unseen_participant(shipped):
    """Participant 0 (the demo's default) is not among the training seeds."""
    assert 0 not in json.loads(shipped.metadata["train_seeds"])
    data = session_windows(SessionPlan(0, 2.0, "normal", (130, 173), 128.0), INPUTS)
    tensors = {k: torch.from_numpy(v.astype(np.float32)) for k, v in data.x.items()}
    present = torch.from_numpy(data.present.astype(np.float32))
    with torch.inference_mode():
        out = shipped.model(tensors, present)
    affect = out.affect.numpy()
    labels = out.logits.argmax(-1).numpy()
    majority = np.bincount(data.expression).max() / len(data)
    assert accuracy(data.expression, labels) > majority + 0.1
    assert ccc(data.affect[:, 1], affect[:, 1]) > 0.3  # arousal


def test_live_drivers_and_offline_rendering_give_identical_windows():
    """Train/serve parity: the rings the live drivers fill and the offline renderer's rings,
    cut by the same aligner, hand the model the very same arrays."""
    from drivers.simulated.drivers import VirtualSession

    live = VirtualSession(seed=11, lighting="hdr", frame_size=(130, 173))
    live.start()
    try:
        t0 = live.t0
        assert t0 is not None
        t_end = math.floor((t0 + 4.6) / INPUTS.hop_s) * INPUTS.hop_s
        rings = [d.rings[s.name] for d in live.drivers for s in d.specs]
        deadline = time.monotonic() + 30.0
        while not all(r.last_timestamp() >= t_end + 0.3 for r in rings):  # NaN: nothing yet
            assert time.monotonic() < deadline, "simulated drivers fell behind"
            time.sleep(0.05)
    finally:
        live.stop()
    sources = {s.name: StreamSource(s, d.rings[s.name]) for d in live.drivers for s in d.specs}
    offline = render_session(11, 6.0, lighting="hdr", frame_size=(130, 173))
    rendered = {}
    for s in offline.streams.values():
        ring = ring_for(s.spec, capacity=len(s.ts) + 16)
        ring.write(s.data, s.ts + t0)
        rendered[s.spec.name] = StreamSource(s.spec, ring)
    a = Aligner([INPUTS], sources, VirtualClock(t0)).cut(INPUTS.model, t_end)
    b = Aligner([INPUTS], rendered, VirtualClock(t0)).cut(INPUTS.model, t_end)
    for key in INPUTS.inputs:
        assert a.inputs[key].presence is Presence.PRESENT
        assert np.array_equal(a.inputs[key].data, b.inputs[key].data), key
