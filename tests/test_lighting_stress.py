"""Lighting harsher than SEE's conditions, and scoring the demo expression model under it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.demo_data import SessionPlan, cache_path, version_dir
from app.score_demo_mco import main as score_demo
from drivers.simulated.events import EventEmulator
from drivers.simulated.eye_camera import VirtualEyeCamera
from drivers.simulated.lighting import LIGHTINGS
from drivers.simulated.participant import VirtualParticipant
from models.registry import mco_e_net_lite_sim_inputs


def test_harsher_scales_the_exposure_error_in_stops() -> None:
    low, over, hdr = LIGHTINGS["low_light"], LIGHTINGS["overexposure"], LIGHTINGS["hdr"]
    assert low.harsher(1.0) is low and LIGHTINGS["normal"].harsher(3.0) is LIGHTINGS["normal"]
    dark = low.harsher(2.0)
    assert dark.gain == pytest.approx(0.12**2) and dark.offset == low.offset  # black level stays
    assert (dark.read_noise, dark.shot_noise, dark.pupil_px) == (
        low.read_noise,
        low.shot_noise,
        low.pupil_px,
    )
    bright = over.harsher(2.0)
    assert bright.gain == pytest.approx(1.7**2) and bright.offset == pytest.approx(50.0)
    assert hdr.harsher(1.5).gradient == pytest.approx((1.5, -2.1))
    with pytest.raises(ValueError, match="severity must be > 0"):
        low.harsher(0.0)


def _frames_and_events(lighting: str, severity: float) -> tuple[np.ndarray, int]:
    cam = VirtualEyeCamera(
        VirtualParticipant(0), size=(100, 100), lighting=lighting, severity=severity
    )
    frames, irradiance = cam.render_pair(0, 60)
    emu = EventEmulator(cam.size, seed=0, shot_noise_hz=0.0, leak_hz=0.0)
    n = sum(len(emu.emulate(f, k / cam.fps)[0]) for k, f in enumerate(irradiance))
    return frames, n


def test_harsher_light_ruins_the_frames_but_not_the_events() -> None:
    frames_1, events_1 = _frames_and_events("overexposure", 1.0)
    frames_2, events_2 = _frames_and_events("overexposure", 2.0)
    assert (frames_1 == 255).mean() < 0.2 and (frames_2 == 255).mean() > 0.9
    assert 0.7 * events_1 < events_2 < 1.3 * events_1  # the DVS does not saturate
    dark_1, _ = _frames_and_events("low_light", 1.0)
    dark_2, _ = _frames_and_events("low_light", 2.0)
    assert dark_2.mean() < 0.5 * dark_1.mean()
    cam = VirtualEyeCamera(VirtualParticipant(0), size=(100, 100), lighting="hdr", severity=2.0)
    assert cam.spec().metadata["lighting_severity"] == 2.0
    assert "lighting_severity" not in VirtualEyeCamera(VirtualParticipant(0)).spec().metadata


def test_severity_is_part_of_a_plans_cache_key(tmp_path: Path) -> None:
    inputs = mco_e_net_lite_sim_inputs()
    plan = SessionPlan.for_seed(0, 2.0).under("low_light")
    assert plan.lighting_severity == 1.0
    assert cache_path(tmp_path, plan.under("low_light", 1.0), inputs) == cache_path(
        tmp_path, plan, inputs
    )
    assert cache_path(tmp_path, plan.under("low_light", 2.0), inputs) != cache_path(
        tmp_path, plan, inputs
    )


def test_score_demo_scores_the_shipped_model_under_harsher_light(tmp_path: Path, capsys) -> None:
    out = tmp_path / "scores.json"
    argv = ["mco-e-net-lite-sim", "--severity", "1", "2", "--test-seeds", "1"]
    argv += ["--test-minutes", "0.25", "--workers", "1", "--no-progress"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--json", str(out)]
    assert score_demo(argv) == 0
    rows = json.loads(out.read_text())
    assert [(r["severity"], r["inputs"]) for r in rows] == [
        (1.0, "frames + events"),
        (1.0, "events missing"),
        (2.0, "frames + events"),
        (2.0, "events missing"),
    ]
    assert set(rows[0]["figures"]) == {"all", "normal", "overexposure", "low_light", "hdr"}
    assert set(rows[2]["figures"]) == {"all", "overexposure", "low_light", "hdr"}  # no normal
    first = rows[0]["figures"]
    assert first["all"]["n"] == sum(first[c]["n"] for c in first if c != "all")
    assert first["normal"]["accuracy"] > 0.5  # an unseen participant, as trained
    table = capsys.readouterr().out
    assert "| mco_e_net_lite_sim.safetensors | events missing | 2 |" in table
    assert len(list(version_dir(tmp_path / "cache").glob("*.npz"))) == 7  # 4 lightings + 3 harsher

    hi_moe = Path(__file__).parents[1] / "models" / "weights" / "hi_moe_sim.safetensors"
    assert score_demo([str(hi_moe)]) == 2
    assert "does not read mco-e-net-lite-sim's windows" in capsys.readouterr().err
    assert score_demo(["mco-e-net-lite-sim", "--severity", "0"]) == 2


def test_training_plans_draw_a_severity_per_participant(capsys) -> None:
    from app.train_demo_mco import main as train_mco

    plans = [SessionPlan.for_seed(s, 4.0) for s in range(100, 120)]
    harsh = [p.harsher_between(1.0, 2.0) for p in plans]
    assert harsh == [p.harsher_between(1.0, 2.0) for p in plans]  # drawn from the seed
    assert [p.harsher_between(1.0, 1.0) for p in plans] == plans
    for p, h in zip(plans, harsh, strict=True):
        assert (h.seed, h.lighting, h.frame_size) == (p.seed, p.lighting, p.frame_size)
        if p.lighting == "normal":
            assert h.lighting_severity == 1.0
        else:
            assert 1.0 <= h.lighting_severity <= 2.0
    assert len({h.lighting_severity for h in harsh if h.lighting != "normal"}) > 10
    assert train_mco(["--lighting-severity", "2", "1"]) == 2
    assert "0 < LOW <= HIGH" in capsys.readouterr().err
