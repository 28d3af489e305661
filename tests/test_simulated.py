"""The simulated participant and its physiology: deterministic, continuous, and really driven by the affect.

The live drivers are run for real (2 s on the LSL clock) and must deliver
exactly what the clock made due, stamped exactly, equal to the offline render.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import signal
from waiting import wait_until

from core.clock import lsl_now
from core.prediction import EXPRESSIONS
from core.streams import EVENT_DTYPE, Modality
from drivers.simulated.catalog import DEFAULT_RATES, PHYSIOLOGY_STREAMS, build_sensors
from drivers.simulated.drivers import SharedOrigin, SimulatedPhysiology, VirtualSession, due_count
from drivers.simulated.eeg import DEAP_EEG_CHANNELS, EEG
from drivers.simulated.offline import render_session
from drivers.simulated.participant import EXPRESSION_REGIONS, VirtualParticipant
from drivers.simulated.sensor import lagged_mean

DIMS = ("valence", "arousal", "dominance", "liking")
WIN_S = 10.0


# ---------------------------------------------------------------- participant
def test_participant_is_a_pure_function_of_seed_and_time() -> None:
    t = np.linspace(0.0, 900.0, 4001)
    a = VirtualParticipant(7).states(t)
    b = VirtualParticipant(7).states(t[::-1])  # the other way round: the schedule grows differently
    c = VirtualParticipant(7)
    scattered = np.random.default_rng(0).permutation(t)
    c_states = c.states(scattered)
    order = np.argsort(scattered)
    for k in (*DIMS, "expression_index"):
        np.testing.assert_array_equal(a[k], b[k][::-1])
        np.testing.assert_array_equal(a[k], c_states[k][order])
    other = VirtualParticipant(8).states(t)
    assert not np.allclose(a["valence"], other["valence"])
    s = VirtualParticipant(7).state_at(123.4)
    assert s.valence == pytest.approx(float(VirtualParticipant(7).states(123.4)["valence"][0]))
    assert s.expression == EXPRESSIONS[s.expression_index]


def test_participant_covers_the_scale_and_switches_expressions() -> None:
    t = np.arange(0.0, 600.0, 0.01)
    for seed in (0, 1, 2):
        s = VirtualParticipant(seed).states(t)
        for k in DIMS:
            assert s[k].min() >= 1.0 and s[k].max() <= 9.0
            assert s[k].min() < 3.0 and s[k].max() > 7.0, (seed, k, s[k].min(), s[k].max())
            assert np.abs(np.diff(s[k])).max() < 0.08  # continuous: at most ~6 points per second
        expr = s["expression_index"]
        switches = int(np.count_nonzero(np.diff(expr)))
        assert switches >= 15, switches
        assert len(np.unique(expr)) >= 6
        assert expr[0] == EXPRESSIONS.index("neutral")


def test_expressions_agree_with_valence_and_arousal() -> None:
    p = VirtualParticipant(3)
    cols = p.episodes(3600.0)
    settled = cols["t"] + cols["tau"] + 0.5  # inside each episode, after its transition
    s = p.states(settled)
    names = [EXPRESSIONS[i] for i in s["expression_index"]]
    assert names == [EXPRESSIONS[i] for i in cols["expr"]]
    for i, name in enumerate(names):
        (v0, v1), (a0, a1), (d0, d1) = EXPRESSION_REGIONS[name]
        tol = 0.6  # the bounded within-episode drift
        assert v0 - tol <= s["valence"][i] <= v1 + tol, name
        assert a0 - tol <= s["arousal"][i] <= a1 + tol, name
        assert d0 - tol <= s["dominance"][i] <= d1 + tol, name
    by = {
        e: np.array([s["valence"][i] for i, n in enumerate(names) if n == e]) for e in EXPRESSIONS
    }
    ar = {
        e: np.array([s["arousal"][i] for i, n in enumerate(names) if n == e]) for e in EXPRESSIONS
    }
    assert by["happiness"].mean() > 6.5 and by["sadness"].mean() < 3.5
    assert ar["sadness"].mean() < 3.5 and ar["angry"].mean() > 6.5 and ar["surprise"].mean() > 6.5
    weights = p.expression_weights(settled)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert np.array_equal(weights.argmax(axis=1), cols["expr"])


# ---------------------------------------------------------------- sensors
@pytest.mark.parametrize("key", PHYSIOLOGY_STREAMS)
def test_sensor_chunks_are_continuous_and_deterministic(key: str) -> None:
    sensor = build_sensors(VirtualParticipant(5), [key])[key]
    whole = sensor.render(0, 1000)
    assert whole.shape == (1000, sensor.n_channels) and whole.dtype == np.float32
    assert np.all(np.isfinite(whole))
    fresh = build_sensors(VirtualParticipant(5), [key])[key]
    tens = np.concatenate([fresh.render(k, 100) for k in range(0, 1000, 100)])
    cuts = [0, 1, 7, 64, 65, 300, 301, 777, 1000]
    ragged = np.concatenate(
        [fresh.render(a, b - a) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    )
    scale = float(np.abs(whole).max())
    np.testing.assert_allclose(tens, whole, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(ragged, whole, rtol=0, atol=1e-5 * scale)
    late = build_sensors(VirtualParticipant(5), [key])[key].render(600, 50)  # alone, out of order
    np.testing.assert_allclose(late, whole[600:650], rtol=0, atol=1e-5 * scale)
    other = build_sensors(VirtualParticipant(6), [key])[key].render(0, 1000)
    assert not np.allclose(other, whole)


def test_specs_name_channels_units_and_rates() -> None:
    sensors = build_sensors(VirtualParticipant(0), eeg_rate=256.0)
    specs = {k: s.spec("sim") for k, s in sensors.items()}
    assert specs["eeg"].channel_names == DEAP_EEG_CHANNELS and len(DEAP_EEG_CHANNELS) == 32
    assert DEAP_EEG_CHANNELS[:3] == ("Fp1", "AF3", "F3") and DEAP_EEG_CHANNELS[-1] == "O2"
    assert specs["eeg"].nominal_rate == 256.0 and set(specs["eeg"].units) == {"uV"}
    expected = {
        "eeg": Modality.EEG,
        "ecg": Modality.ECG,
        "eda": Modality.EDA,
        "ppg": Modality.PPG,
        "resp": Modality.RESP,
        "temp": Modality.TEMP,
    }
    for key, spec in specs.items():
        assert spec.name == f"sim-{key}" and spec.modality is expected[key]
        if key != "eeg":
            assert spec.nominal_rate == DEFAULT_RATES[key]
        assert len(spec.units) == spec.n_channels
    assert (
        specs["ecg"].units == ("mV",)
        and specs["eda"].units == ("uS",)
        and specs["temp"].units == ("degC",)
    )
    with pytest.raises(ValueError, match="unknown simulated stream"):
        build_sensors(VirtualParticipant(0), ["emg"])


# ---------------------------------------------------------------- signals follow the affect
@pytest.fixture(scope="module")
def session() -> dict:
    r = render_session(11, 600.0, streams=PHYSIOLOGY_STREAMS)
    centres = np.arange(int(600 / WIN_S)) * WIN_S + WIN_S / 2
    return {"r": r, "t": centres, "s": r.participant.states(centres)}


def _windows(stream) -> tuple[np.ndarray, float]:
    fs = stream.spec.nominal_rate
    n = int(WIN_S * fs)
    m = len(stream.data) // n
    return stream.data[: m * n].reshape(m, n, -1), fs


def _heart_rate(x: np.ndarray, fs: float, height: float | None) -> np.ndarray:
    rates = []
    for w in x[:, :, 0]:
        peaks, _ = signal.find_peaks(
            w, height=height, distance=int(0.35 * fs), prominence=0.3 * np.ptp(w)
        )
        rates.append(60.0 * fs / np.median(np.diff(peaks)))
    return np.array(rates)


def test_heart_rate_from_ecg_and_ppg_follows_arousal(session) -> None:
    ecg, fs = _windows(session["r"]["ecg"])
    hr = _heart_rate(ecg, fs, height=0.5)
    arousal = session["s"]["arousal"]
    assert np.corrcoef(hr, arousal)[0, 1] > 0.8
    assert hr[arousal > 7].mean() > hr[arousal < 3].mean() + 15
    assert hr.min() > 50 and hr.max() < 115
    ppg, fs_ppg = _windows(session["r"]["ppg"])
    hr_ppg = _heart_rate(ppg, fs_ppg, height=None)
    assert np.median(np.abs(hr_ppg - hr)) < 3.0  # the same heart


def test_eeg_bands_and_asymmetry_follow_the_affect(session) -> None:
    x, fs = _windows(session["r"]["eeg"])
    f, pxx = signal.welch(x, fs=fs, nperseg=int(2 * fs), axis=1)

    def band(lo: float, hi: float) -> np.ndarray:
        return pxx[:, (f >= lo) & (f < hi), :].mean(axis=1)

    s = session["s"]
    ch = DEAP_EEG_CHANNELS.index
    alpha, beta = band(8, 13), band(13, 30)
    posterior_alpha = np.log(
        alpha[:, [ch(c) for c in ("O1", "O2", "Oz", "PO3", "PO4")]].mean(axis=1)
    )
    assert np.corrcoef(posterior_alpha, s["arousal"])[0, 1] < -0.8
    assert np.corrcoef(np.log(beta.mean(axis=1)), s["arousal"])[0, 1] > 0.8
    faa = np.mean(
        [
            np.log(alpha[:, ch(r)]) - np.log(alpha[:, ch(left)])
            for left, r in (("F3", "F4"), ("AF3", "AF4"), ("F7", "F8"))
        ],
        axis=0,
    )
    assert np.corrcoef(faa, s["valence"])[0, 1] > 0.7
    pos, neg = s["valence"] > 6.5, s["valence"] < 3.5
    assert pos.sum() >= 5 and neg.sum() >= 5
    assert (faa[pos] > 0).mean() >= 0.9 and (faa[neg] < 0).mean() >= 0.9
    beta_asym = np.log(beta[:, ch("C4")]) - np.log(beta[:, ch("C3")])
    assert np.corrcoef(beta_asym, s["dominance"])[0, 1] > 0.4


def test_eda_respiration_and_temperature_follow_the_affect(session) -> None:
    r, t = session["r"], session["t"]
    p = r.participant
    eda, _ = _windows(r["eda"])
    level = eda.mean(axis=(1, 2))
    slow_arousal = lagged_mean(p, t, "arousal", 30.0)
    assert level[slow_arousal > 6].mean() > level[slow_arousal < 4].mean() + 0.5
    assert np.corrcoef(level, slow_arousal)[0, 1] > 0.5
    fs = r["resp"].spec.nominal_rate
    resp = r["resp"].data[:, 0].reshape(-1, int(20 * fs))  # 20 s windows: a few breaths each
    rate = [
        60
        * fs
        / np.median(np.diff(signal.find_peaks(w, distance=int(1.5 * fs), prominence=0.3)[0]))
        for w in resp
    ]
    arousal20 = p.states(np.arange(len(resp)) * 20.0 + 10.0)["arousal"]
    assert np.corrcoef(rate, arousal20)[0, 1] > 0.7
    temp = r["temp"].data[:, 0]
    assert temp.min() > 30.0 and temp.max() < 37.0 and np.abs(np.diff(temp)).max() < 0.1


def _liking_t_statistic(feature: np.ndarray, s: dict[str, np.ndarray]) -> float:
    """t of liking in ``feature ~ 1 + arousal + liking``: liking's own trace, arousal held fixed."""
    x = np.column_stack([np.ones(len(feature)), s["arousal"], s["liking"]])
    coef, *_ = np.linalg.lstsq(x, feature, rcond=None)
    resid = feature - x @ coef
    se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * resid.var() * len(feature) / (len(feature) - 3))
    return float(coef[2] / se[2])


def test_liking_leaves_a_trace_in_theta_and_heart_rate_variability(session) -> None:
    r, s = session["r"], session["s"]
    x, fs = _windows(r["eeg"])
    f, pxx = signal.welch(x, fs=fs, nperseg=int(2 * fs), axis=1)
    fz_theta = np.log(pxx[:, (f >= 4) & (f < 8), DEAP_EEG_CHANNELS.index("Fz")].mean(axis=1))
    assert _liking_t_statistic(fz_theta, s) > 3.0
    ecg = r["ecg"]
    peaks, _ = signal.find_peaks(
        ecg.data[:, 0], height=0.5, distance=int(0.35 * ecg.spec.nominal_rate)
    )
    beats = ecg.ts[peaks]
    rr = np.diff(beats)
    window = (beats[1:] // WIN_S).astype(int)
    rmssd = np.array(
        [np.sqrt(np.mean(np.diff(rr[window == k]) ** 2)) for k in range(len(session["t"]))]
    )
    assert _liking_t_statistic(np.log(rmssd), s) > 3.0


def test_eeg_blinks_are_the_eye_cameras_blinks() -> None:
    p = VirtualParticipant(4)
    eeg = EEG(p)
    x = eeg.render(0, int(120 * eeg.rate))
    onsets = p.eyes.blink_times(1.0, 119.0)
    assert 15 <= len(onsets) <= 50  # about 15 per minute
    fp1 = x[:, DEAP_EEG_CHANNELS.index("Fp1")]
    o1 = x[:, DEAP_EEG_CHANNELS.index("O1")]
    at_blink = (onsets * eeg.rate + 0.06 * eeg.rate).astype(int)
    baseline = np.median(np.abs(fp1))
    assert np.median(fp1[at_blink]) > 4 * baseline
    assert np.median(np.abs(o1[at_blink])) < 2 * np.median(np.abs(o1))
    assert p.eyes.closure(onsets + 0.05).min() > 0.9


# ---------------------------------------------------------------- offline render
def test_render_session_matches_the_sensors_and_truth() -> None:
    r = render_session(2, 3.0, frame_size=(60, 80))
    assert set(r.streams) == {*PHYSIOLOGY_STREAMS, "frames", "events"}
    eeg = r["eeg"]
    assert eeg.data.shape == (384, 32) and eeg.ts[1] == pytest.approx(1 / 128)
    direct = EEG(VirtualParticipant(2)).render(0, 384)
    np.testing.assert_allclose(eeg.data, direct, atol=1e-3)
    assert r["frames"].data.shape == (90, 60, 80) and r["frames"].data.dtype == np.uint8
    ev = r["events"]
    assert ev.data.dtype == EVENT_DTYPE and len(ev.data) > 0 and np.all(np.diff(ev.ts) >= 0)
    assert ev.ts[0] > 0.0 and ev.ts[-1] <= r["frames"].ts[-1]
    assert set(np.unique(ev.data["polarity"])) <= {0, 1}
    assert len(r.truth_t) == 30 and set(r.truth) == {*DIMS, "expression_index"}
    assert r.truth_at(1.0).valence == pytest.approx(float(r.truth["valence"][10]))


# ---------------------------------------------------------------- live drivers
def test_virtual_session_runs_in_real_time_on_one_clock() -> None:
    vs = VirtualSession(seed=9, lighting="low_light", eeg_rate=128)
    with pytest.raises(RuntimeError, match="not started"):
        vs.truth_at(lsl_now())
    names = {s.name for s in vs.specs}
    assert names == {
        "sim-eeg",
        "sim-ecg",
        "sim-eda",
        "sim-ppg",
        "sim-resp",
        "sim-temp",
        "sim-davis-frames",
        "sim-davis-events",
    }
    physio, cam = vs.physiology, vs.eye_camera
    assert physio is not None and cam is not None
    frames = cam.rings["sim-davis-frames"]
    before = lsl_now()
    vs.start()
    after = lsl_now()  # starting the threads may take a while on a busy machine
    try:
        t0 = vs.t0
        assert t0 is not None and before <= t0 <= after
        time.sleep(2.0)
        # Each stream keeps up with the clock: within one tick (one period plus scheduling
        # slack) of what is due. A busy machine may hold a thread back for longer than a
        # tick at any one moment, but one that counts what is due from the clock catches up
        # whenever it runs, so wait (generously) for a moment when it is caught up; a driver
        # slower than its rate falls further behind and never is.
        ticks = {(physio, n): s.rate * 0.1 + 1 for n, s in physio.sensors.items()}
        ticks[(cam, "sim-davis-frames")] = 4
        rates = {n: s.rate for n, s in physio.sensors.items()} | {"sim-davis-frames": 30.0}

        def caught_up(driver, name: str) -> bool:
            due = due_count(lsl_now() - t0, rates[name])  # the clock first, then the ring
            return due - ticks[(driver, name)] <= driver.rings[name].head

        behind = [
            n for d, n in ticks if not wait_until(lambda d=d, n=n: caught_up(d, n), timeout=60)
        ]
    finally:
        vs.stop()
        stopped_at = lsl_now()  # after the threads ended: nothing can be due later than this
    assert not behind, behind
    for d in vs.drivers:
        assert not d.running and d.error is None
    t0 = vs.t0
    for name, sensor in physio.sensors.items():
        ring = physio.rings[name]
        due = due_count(stopped_at - t0, sensor.rate)
        assert ring.head <= due, (name, ring.head, due)  # nothing before the clock made it due
        chunk = ring.latest(ring.head)
        assert chunk.lost == 0 and chunk.start == 0
        np.testing.assert_array_equal(chunk.ts, t0 + np.arange(ring.head) / sensor.rate)
        expected = build_sensors(VirtualParticipant(9), [sensor.key])[sensor.key].render(
            0, ring.head
        )
        np.testing.assert_allclose(
            chunk.data, expected, atol=1e-3 * max(1.0, float(np.abs(expected).max()))
        )
        health = physio.health()[name]
        assert health.received == ring.head and health.connected
    due = due_count(stopped_at - t0, 30.0)
    assert 0 < frames.head <= due, (frames.head, due)
    fchunk = frames.latest(frames.head)
    np.testing.assert_array_equal(fchunk.ts, t0 + np.arange(frames.head) / 30.0)
    assert fchunk.data.shape[1:] == (260, 346) and fchunk.data.dtype == np.uint8
    events = cam.rings["sim-davis-events"]
    echunk = events.latest(events.head)
    assert events.head > 0 and events.nonmonotonic == 0
    assert echunk.ts[0] > t0 and echunk.ts[-1] <= fchunk.ts[-1] and np.all(np.diff(echunk.ts) >= 0)
    truth = vs.truth_at(t0 + 1.0)
    assert truth == VirtualParticipant(9).state_at(1.0)


def test_drivers_sharing_a_past_origin_catch_up_without_loss() -> None:
    p = VirtualParticipant(3)
    origin = SharedOrigin(lsl_now() - 1.0)  # the session began a second ago
    a = SimulatedPhysiology(p, origin, streams=["temp", "resp"])
    b = SimulatedPhysiology(p, origin, streams=["eeg"], name="second", name_prefix="other")
    assert [s.name for s in b.specs] == ["other-eeg"]
    a.start()
    b.start()
    time.sleep(0.3)
    stopped_at = lsl_now()
    a.stop()
    b.stop()
    for driver in (a, b):
        assert driver.error is None
        for name, sensor in driver.sensors.items():
            ring = driver.rings[name]
            due = due_count(stopped_at - origin.t0, sensor.rate)
            assert due - (sensor.rate * 0.1 + 1) <= ring.head <= due
            assert ring.head >= sensor.rate * 1.2  # the past second was rendered too
            ts = ring.latest(ring.head).ts
            np.testing.assert_array_equal(ts, origin.t0 + np.arange(ring.head) / sensor.rate)
