"""The virtual eye camera and the DVS emulator: faces follow the expression, light changes the picture,
and events obey the contrast-threshold model."""

from __future__ import annotations

import numpy as np
import pytest

from core.prediction import EXPRESSIONS
from core.streams import EVENT_DTYPE, Modality
from drivers.simulated.events import EventEmulator, lin_log, lin_log_table
from drivers.simulated.eye_camera import VirtualEyeCamera
from drivers.simulated.lighting import LIGHTING_CONDITIONS, lighting_name
from drivers.simulated.participant import VirtualParticipant

FPS = 30.0


def _settled_frames(
    p: VirtualParticipant, expression: str, t_max: float = 1800.0, count: int = 6
) -> np.ndarray:
    """Frame indices well inside episodes of one expression, with the eyes open."""
    cols = p.episodes(t_max)
    want = EXPRESSIONS.index(expression)
    picks: list[int] = []
    for start, tau, dwell, e in zip(
        cols["t"], cols["tau"], cols["dwell"], cols["expr"], strict=True
    ):
        if e != want or start > t_max:
            continue
        for t in np.linspace(start + tau + 0.5, start + dwell - 0.5, count):
            if p.eyes.closure(t)[0] == 0.0 and p.eyes.closure(t + 0.2)[0] == 0.0:
                picks.append(round(t * FPS))
    assert picks, f"no {expression} episode before {t_max} s"
    return np.array(picks[:count])


def _frames_at(cam: VirtualEyeCamera, indices: np.ndarray) -> np.ndarray:
    return np.concatenate([cam.render(int(k), 1) for k in indices])


def test_frames_are_deterministic_sized_and_described() -> None:
    cam = VirtualEyeCamera(VirtualParticipant(3))
    frames = cam.render(0, 10)
    assert frames.shape == (10, 260, 346) and frames.dtype == np.uint8
    again = VirtualEyeCamera(VirtualParticipant(3)).render(5, 3)
    np.testing.assert_array_equal(again, frames[5:8])
    assert not np.array_equal(VirtualEyeCamera(VirtualParticipant(4)).render(0, 10), frames)
    small = VirtualEyeCamera(VirtualParticipant(3), size=(100, 100)).render(0, 4)
    assert small.shape == (4, 100, 100)
    spec = cam.spec("sim")
    assert spec.name == "sim-davis-frames" and spec.modality is Modality.FRAMES
    assert spec.frame_shape == (260, 346) and spec.dtype == "uint8" and spec.nominal_rate == 30.0
    assert 60 < frames.mean() < 190 and frames.std() > 20


def test_lids_and_brow_follow_the_expression() -> None:
    p = VirtualParticipant(1)
    cam = VirtualEyeCamera(p)
    measured = {}
    for name in ("surprise", "happiness", "angry", "neutral"):
        frames = _frames_at(cam, _settled_frames(p, name)).astype(np.float32)
        sclera = (frames[:, 60:230, 60:300] > 175).mean(axis=(1, 2))  # bright white of the eye
        rows = frames[:, :110, 120:260].mean(axis=2)  # upper part, central columns
        brow_row = rows.argmin(axis=1)  # the darkest band up there is the brow
        measured[name] = (float(np.median(sclera)), float(np.median(brow_row)))
        t = _settled_frames(p, name) / FPS
        assert np.all(cam.face(t)["closure"] == 0.0)
    assert measured["surprise"][0] > 1.5 * measured["happiness"][0]
    assert measured["surprise"][0] > measured["neutral"][0] > measured["happiness"][0]
    assert measured["surprise"][1] + 10 < measured["neutral"][1] < measured["angry"][1]
    t = _settled_frames(p, "surprise") / FPS
    u = _settled_frames(p, "happiness") / FPS
    assert cam.openness(t).min() > cam.openness(u).max()


def test_blinks_close_the_eye_and_gaze_moves_the_iris() -> None:
    p = VirtualParticipant(2)
    cam = VirtualEyeCamera(p, size=(130, 173))
    onsets = p.eyes.blink_times(2.0, 60.0)
    assert len(onsets) >= 8
    shut = np.round((onsets + 0.05) * FPS).astype(int)
    shut = shut[p.eyes.closure(shut / FPS) > 0.85]
    assert len(shut) >= 5
    frames_shut = _frames_at(cam, shut).astype(np.float32)
    frames_open = _frames_at(cam, shut - 9).astype(np.float32)  # 0.3 s earlier
    pupil_shut = (frames_shut[:, 45:110, 20:155] < 40).mean(axis=(1, 2))
    pupil_open = (frames_open[:, 45:110, 20:155] < 40).mean(axis=(1, 2))
    # the lid hides the pupil
    assert np.all(pupil_open > 0.002) and np.all(pupil_shut < 0.2 * pupil_open)

    k = np.arange(0, 60 * 30, 7)
    k = k[p.eyes.closure(k / FPS) == 0.0]
    frames = _frames_at(cam, k).astype(np.float32)
    dark = frames[:, 45:110, :] < 40  # the pupil
    xs = np.arange(frames.shape[2])[None, None, :]
    centroid = (dark * xs).sum(axis=(1, 2)) / np.maximum(dark.sum(axis=(1, 2)), 1)
    gx, _ = p.eyes.gaze(k / FPS)
    assert np.corrcoef(centroid, gx)[0, 1] > 0.8


def test_lighting_conditions_change_the_picture_as_intended() -> None:
    p = VirtualParticipant(0)
    k = np.array([12, 100, 400])
    frames = {
        c: _frames_at(VirtualEyeCamera(p, lighting=c), k).astype(np.float32)
        for c in LIGHTING_CONDITIONS
    }
    normal, over, low, hdr = (frames[c] for c in ("normal", "overexposure", "low_light", "hdr"))
    assert (normal == 255).mean() < 0.01
    assert over.mean() > normal.mean() + 40 and (over == 255).mean() > 0.05  # highlights clip
    assert low.mean() < 35

    def relative_noise(f: np.ndarray) -> float:
        detail = f[:, 1:-1, 1:-1] - 0.25 * (
            f[:, :-2, 1:-1] + f[:, 2:, 1:-1] + f[:, 1:-1, :-2] + f[:, 1:-1, 2:]
        )
        return float(detail.std() / f.mean())

    assert relative_noise(low) > 3 * relative_noise(normal)
    w = normal.shape[2]
    left, right = slice(0, w // 4), slice(3 * w // 4, w)
    assert 0.6 < normal[:, :, left].mean() / normal[:, :, right].mean() < 1.6
    assert hdr[:, :, left].mean() > 3 * hdr[:, :, right].mean()
    assert (hdr[:, :, left] == 255).mean() > 0.2 and hdr[:, :, right].mean() < 60
    assert lighting_name("Overexposed") == "overexposure" and lighting_name("Low") == "low_light"
    assert lighting_name("HDR") == "hdr"
    with pytest.raises(ValueError, match="unknown lighting"):
        VirtualEyeCamera(p, lighting="disco")


# ---------------------------------------------------------------- event emulator
QUIET = {"shot_noise_hz": 0.0, "leak_hz": 0.0, "threshold_sigma": 0.0, "refractory_s": 0.0}


def _flat(value: int, shape=(40, 50)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


def test_static_scene_without_noise_gives_no_events() -> None:
    emu = EventEmulator((40, 50), seed=0, shot_noise_hz=0.0, leak_hz=0.0)
    scene = np.random.default_rng(0).integers(0, 256, (40, 50)).astype(np.uint8)
    for k in range(10):
        ev, ts = emu.emulate(scene, k / 30)
        assert len(ev) == 0 and len(ts) == 0


def test_brightening_gives_on_and_darkening_off_events_inside_the_interval() -> None:
    emu = EventEmulator((40, 50), seed=0, **QUIET)
    lut = lin_log_table()
    assert len(emu.emulate(_flat(50), 1.0)[0]) == 0
    frame = _flat(50)
    frame[10:20, 5:15] = 200
    ev, ts = emu.emulate(frame, 1.0 + 1 / 30)
    assert ev.dtype == EVENT_DTYPE and len(ev) > 0
    assert np.all(ev["polarity"] == 1)
    assert set(np.unique(ev["y"])) == set(range(10, 20))
    assert set(np.unique(ev["x"])) == set(range(5, 15))
    per_pixel = int(np.floor((lut[200] - lut[50]) / 0.2))
    assert len(ev) == 100 * per_pixel
    assert np.all(ts > 1.0) and np.all(ts <= 1.0 + 1 / 30) and np.all(np.diff(ts) >= 0)
    # linear interpolation in log space: the j-th crossing of one pixel at j * C / dL of the interval
    one = (ev["x"] == 5) & (ev["y"] == 10)
    expected = 1.0 + (1 / 30) * (np.arange(1, per_pixel + 1) * 0.2) / (lut[200] - lut[50])
    # (to float32 precision of the log intensities)
    np.testing.assert_allclose(np.sort(ts[one]), expected, rtol=0, atol=1e-7)

    ev, ts = emu.emulate(_flat(50), 1.0 + 2 / 30)
    assert len(ev) > 0 and np.all(ev["polarity"] == 0)
    assert np.all(ts > 1.0 + 1 / 30) and np.all(ts <= 1.0 + 2 / 30)


def test_reference_accumulates_sub_threshold_changes() -> None:
    emu = EventEmulator((4, 4), seed=0, **QUIET)
    lut = lin_log_table()
    levels = [100]
    while lut[levels[-1]] - lut[100] < 0.3:  # 1.5 thresholds in small steps
        levels.append(levels[-1] + 3)
    counts = []
    for k, v in enumerate(levels):
        ev, _ = emu.emulate(_flat(v, (4, 4)), k * 0.01)
        counts.append(len(ev))
    assert sum(counts) == 16  # exactly one threshold crossed per pixel, across frames
    assert max(counts) == 16 and counts.count(16) == 1


def test_refractory_period_spaces_events_of_a_pixel() -> None:
    free = EventEmulator((1, 1), seed=0, **QUIET)
    slow = EventEmulator((1, 1), seed=0, **{**QUIET, "refractory_s": 0.01})
    for emu in (free, slow):
        emu.emulate(_flat(5, (1, 1)), 0.0)
    n_free = len(free.emulate(_flat(255, (1, 1)), 1 / 30)[0])
    ev, ts = slow.emulate(_flat(255, (1, 1)), 1 / 30)
    assert n_free >= 10 and 0 < len(ev) < n_free
    assert np.all(np.diff(ts) >= 0.01 - 1e-12)


def test_noise_models_fire_at_their_rates_and_are_deterministic() -> None:
    shape = (100, 100)
    shot = EventEmulator(shape, seed=1, shot_noise_hz=2.0, leak_hz=0.0)
    dark = _flat(0, shape)
    total = 0
    pols = []
    for k in range(31):
        ev, ts = shot.emulate(dark, k / 30)
        total += len(ev)
        pols.append(ev["polarity"])
    # ~2 Hz per dark pixel for 1 s; each noise event moves the reference (as in v2e), so up
    # to one recovery event of the other sign can follow at the next frame
    assert 0.8 * 2.0 * 10_000 < total < 2.0 * 2.0 * 10_000
    assert 0.3 < np.concatenate(pols).mean() < 0.7

    leak = EventEmulator(shape, seed=1, shot_noise_hz=0.0, leak_hz=1.0)
    leak_events = [leak.emulate(_flat(120, shape), k / 30)[0] for k in range(61)]
    pol = np.concatenate([e["polarity"] for e in leak_events])
    # ~1 Hz per pixel for 2 s, ON only
    assert 0.6 * 20_000 < len(pol) < 1.4 * 20_000 and np.all(pol == 1)

    def run(seed: int) -> list[np.ndarray]:
        emu = EventEmulator(shape, seed=seed)
        rng = np.random.default_rng(5)
        return [
            emu.emulate(rng.integers(0, 256, shape).astype(np.uint8), k / 30)[1] for k in range(4)
        ]

    assert all(np.array_equal(a, b) for a, b in zip(run(3), run(3), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(run(3), run(4), strict=True))


def test_emulator_rejects_bad_input() -> None:
    emu = EventEmulator((10, 10), seed=0)
    with pytest.raises(ValueError, match="uint8 or float frames of shape"):
        emu.emulate(np.zeros((10, 11), np.uint8), 0.0)
    with pytest.raises(ValueError, match="uint8 or float frames of shape"):
        emu.emulate(np.zeros((10, 10), np.int16), 0.0)
    emu.emulate(_flat(10, (10, 10)), 1.0)
    with pytest.raises(ValueError, match="time order"):
        emu.emulate(_flat(10, (10, 10)), 1.0)


def test_float_irradiance_gives_the_same_events_as_the_same_8_bit_frames() -> None:
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (6, 30, 40)).astype(np.uint8)
    as_u8, as_float = (EventEmulator((30, 40), seed=4) for _ in range(2))
    for k, f in enumerate(frames):
        ev_u8, ts_u8 = as_u8.emulate(f, k / 30)
        ev_f, ts_f = as_float.emulate(f.astype(np.float32), k / 30)
        assert np.array_equal(ev_u8, ev_f) and np.array_equal(ts_u8, ts_f)
    np.testing.assert_array_equal(lin_log(np.arange(256)), lin_log_table())
    assert lin_log(np.array([-3.0]))[0] == 0.0


def test_the_dvs_sees_past_the_aps_full_scale() -> None:
    """A DVS pixel's log photoreceptor keeps answering where the 8-bit frame has clipped."""
    emu, video = (EventEmulator((4, 4), seed=0, **QUIET) for _ in range(2))
    bright, brighter = np.full((4, 4), 300.0, np.float32), np.full((4, 4), 600.0, np.float32)
    emu.emulate(bright, 0.0)
    video.emulate(np.clip(bright, 0, 255).astype(np.uint8), 0.0)
    ev, _ = emu.emulate(brighter, 1 / 30)
    assert len(ev) == 16 * int(np.floor(np.log(2.0) / 0.2)) and np.all(ev["polarity"] == 1)
    assert len(video.emulate(np.clip(brighter, 0, 255).astype(np.uint8), 1 / 30)[0]) == 0


def test_virtual_davis_events_come_from_the_unclipped_exposure() -> None:
    p = VirtualParticipant(0)
    for lighting in ("normal", "low_light"):
        frames, irradiance = VirtualEyeCamera(p, size=(100, 100), lighting=lighting).render_pair(
            300, 4
        )
        assert irradiance.dtype == np.float32 and irradiance.shape == frames.shape
        # the frame is that exposure plus zero-mean sensor noise, read out in 8 bits
        assert abs((frames - np.clip(irradiance, 0, 255)).mean()) < 0.5
        assert np.mean(irradiance != np.round(irradiance)) > 0.9  # no 8-bit steps
    cam = VirtualEyeCamera(p, size=(100, 100), lighting="overexposure")
    frames, irradiance = cam.render_pair(0, 90)
    saturated = frames == 255
    assert saturated.mean() > 0.05 and np.all(irradiance[saturated] > 240)
    assert irradiance[saturated].max() > 300  # the frame says 255, the light says more
    # events in pixels the APS shows saturated in both frames around them: motion the frames lost
    emu = EventEmulator(cam.size, seed=0, shot_noise_hz=0.0, leak_hz=0.0)
    emu.emulate(irradiance[0], 0.0)
    hidden = 0
    for k in range(1, len(frames)):
        ev, _ = emu.emulate(irradiance[k], k / FPS)
        hidden += int(np.sum(saturated[k - 1, ev["y"], ev["x"]] & saturated[k, ev["y"], ev["x"]]))
    assert hidden > 100
