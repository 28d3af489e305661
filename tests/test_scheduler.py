"""The aligner: exact windows from known timestamps, masks, lateness, scheduling."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import numpy as np
import pytest

from core.clock import VirtualClock
from core.resample import bin_events, resample_numeric, resize_bilinear, target_grid
from core.ring import ring_for
from core.scheduler import Aligner, BindingError, StreamSource
from core.streams import EVENT_DTYPE, Modality, StreamSpec
from core.window import (
    EventInput,
    EventRepresentation,
    FrameInput,
    ModelInputs,
    NumericInput,
    Presence,
    Window,
)


def numeric_source(name: str, modality: Modality, rate: float, channels: int = 2) -> StreamSource:
    spec = StreamSpec(name, modality, rate, tuple(f"c{i}" for i in range(channels)))
    return StreamSource(spec, ring_for(spec, 60))


def write_ramp(src: StreamSource, t0: float, t1: float, rate: float) -> None:
    """Channel c holds (c + 1) * t: any resampling error shows as a wrong time."""
    ts = np.arange(round(t0 * rate), round(t1 * rate)) / rate
    data = np.stack([(c + 1) * ts for c in range(src.spec.n_channels)], axis=1)
    src.ring.write(data.astype(np.float32), ts)


def model(**inputs) -> ModelInputs:
    return ModelInputs("m", inputs, hop_s=0.5, allowed_lateness_s=0.1, stale_after_s=0.5)


# ---------------------------------------------------------------- numeric
def test_known_timestamps_give_exact_windows():
    src = numeric_source("eeg", Modality.EEG, 100.0)
    write_ramp(src, 0.0, 10.0, 100.0)
    aligner = Aligner(
        [model(eeg=NumericInput(Modality.EEG, 2.0, 100.0))], {"eeg": src}, VirtualClock()
    )
    w = aligner.cut("m", 5.0)
    x = w.inputs["eeg"].data
    assert x.shape == (2, 200)
    expected = target_grid(5.0, 2.0, 100.0)
    assert expected[-1] == pytest.approx(5.0) and expected[0] == pytest.approx(3.01)
    np.testing.assert_allclose(x[0], expected, atol=1e-5)
    np.testing.assert_allclose(x[1], 2 * expected, atol=1e-5)
    assert w.inputs["eeg"].presence is Presence.PRESENT
    assert w.inputs["eeg"].staleness_s == pytest.approx(0.0, abs=1e-9)
    assert w.inputs["eeg"].stream == "eeg"


def test_upsampling_interpolates_between_samples():
    src = numeric_source("eda", Modality.EDA, 4.0, channels=1)
    write_ramp(src, 0.0, 10.0, 4.0)
    aligner = Aligner(
        [model(eda=NumericInput(Modality.EDA, 1.0, 16.0))], {"eda": src}, VirtualClock()
    )
    x = aligner.cut("m", 6.0).inputs["eda"].data
    np.testing.assert_allclose(x[0], target_grid(6.0, 1.0, 16.0), atol=1e-5)


def test_downsampling_averages_away_frequencies_above_nyquist():
    """A 40 Hz sine sampled at 256 Hz, handed to a 32 Hz model (Nyquist 16 Hz), must not alias."""
    rate = 256.0
    spec = StreamSpec("eeg", Modality.EEG, rate, ("c0",))
    src = StreamSource(spec, ring_for(spec, 30))
    ts = np.arange(0, int(10 * rate)) / rate
    src.ring.write(np.sin(2 * np.pi * 40 * ts)[:, None].astype(np.float32), ts)
    aligner = Aligner(
        [model(eeg=NumericInput(Modality.EEG, 4.0, 32.0))], {"eeg": src}, VirtualClock()
    )
    boxcar = aligner.cut("m", 8.0).inputs["eeg"].data[0]
    grid = target_grid(8.0, 4.0, 32.0)
    naive = np.sin(2 * np.pi * 40 * grid)  # what point sampling would give: an 8 Hz alias
    assert np.std(naive) > 0.5
    assert np.std(boxcar) < 0.5 * np.std(naive)


def test_resample_numeric_edges_hold_and_empty_is_nan():
    ts = np.array([1.0, 2.0])
    data = np.array([[1.0], [2.0]])
    out = resample_numeric(ts, data, np.array([0.0, 1.5, 3.0]), 1.0, 1.0)
    np.testing.assert_allclose(out[0], [1.0, 1.5, 2.0])
    assert np.isnan(resample_numeric(np.empty(0), np.empty((0, 1)), np.array([0.0]), 1, 1)).all()


@pytest.mark.parametrize("target_rate", [64.0, 512.0])  # boxcar down, interpolation up
def test_a_sample_that_is_not_a_number_is_left_out_of_its_channel_only(target_rate):
    rate = 256.0
    ts = np.arange(int(4 * rate)) / rate
    data = np.stack([np.sin(2 * np.pi * ts), np.cos(2 * np.pi * ts)], axis=1)
    grid = target_grid(4.0 - 1 / rate, 3.5, target_rate)
    clean = resample_numeric(ts, data, grid, rate, target_rate)
    holed = data.copy()
    holed[300, 0] = np.nan  # channel 0 lost one sample early in the window
    out = resample_numeric(ts, holed, grid, rate, target_rate)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], clean[1])  # the other channel is untouched
    near = np.abs(grid - ts[300]) < 2 / min(rate, target_rate)  # bins next to the lost one
    np.testing.assert_allclose(out[0][~near], clean[0][~near], atol=1e-6)
    np.testing.assert_allclose(out[0][near], clean[0][near], atol=0.03)
    dead = data.copy()
    dead[:, 1] = np.nan  # a channel with nothing at all stays NaN
    out = resample_numeric(ts, dead, grid, rate, target_rate)
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()


def test_channel_selection_and_unknown_channel():
    src = numeric_source("eeg", Modality.EEG, 100.0, channels=3)
    write_ramp(src, 0.0, 3.0, 100.0)
    want = NumericInput(Modality.EEG, 1.0, 100.0, channels=("c2", "c0"))
    x = Aligner([model(eeg=want)], {"eeg": src}, VirtualClock()).cut("m", 2.0).inputs["eeg"].data
    np.testing.assert_allclose(x[0], 3 * x[1], rtol=1e-5)
    bad = NumericInput(Modality.EEG, 1.0, 100.0, channels=("Fz",))
    with pytest.raises(BindingError, match="Fz"):
        Aligner([model(eeg=bad)], {"eeg": src}, VirtualClock())


def test_channel_count_is_checked_when_binding():
    """A model that takes n channels refuses a stream with another count when the session
    starts (before: every window failed in the worker); a selection of n channels passes."""
    src = numeric_source("ppg", Modality.PPG, 100.0, channels=3)
    one = NumericInput(Modality.PPG, 1.0, 100.0, n_channels=1)
    with pytest.raises(BindingError, match=r"takes 1 channel\(s\), but stream 'ppg' has 3"):
        Aligner([model(ppg=one)], {"ppg": src}, VirtualClock())
    picked = NumericInput(Modality.PPG, 1.0, 100.0, channels=("c1",), n_channels=1)
    write_ramp(src, 0.0, 3.0, 100.0)
    x = Aligner([model(ppg=picked)], {"ppg": src}, VirtualClock()).cut("m", 2.0).inputs["ppg"].data
    assert x.shape == (1, 100)
    three = NumericInput(Modality.PPG, 1.0, 100.0, n_channels=3)
    assert Aligner([model(ppg=three)], {"ppg": src}, VirtualClock()).bound["m"]["ppg"] == "ppg"


# ---------------------------------------------------------------- masks
def test_masks_when_a_stream_stops():
    eeg = numeric_source("eeg", Modality.EEG, 100.0)
    ecg = numeric_source("ecg", Modality.ECG, 100.0)
    write_ramp(eeg, 0.0, 10.0, 100.0)
    write_ramp(ecg, 0.0, 4.0, 100.0)  # ECG stops at t = 4 s
    m = model(
        eeg=NumericInput(Modality.EEG, 2.0, 50.0),
        ecg=NumericInput(Modality.ECG, 2.0, 50.0),
        eda=NumericInput(Modality.EDA, 2.0, 50.0),  # no EDA stream at all
    )
    aligner = Aligner([m], {"eeg": eeg, "ecg": ecg}, VirtualClock())
    assert aligner.bound["m"] == {"eeg": "eeg", "ecg": "ecg", "eda": None}

    w = aligner.cut("m", 4.0)
    assert w.mask() == {"eeg": "present", "ecg": "present", "eda": "missing"}
    assert w.inputs["eda"].data is None and math.isinf(w.inputs["eda"].staleness_s)

    w = aligner.cut("m", 5.0)  # newest ECG sample is 3.99: 1.01 s old at the window end
    assert w.inputs["ecg"].presence is Presence.STALE
    assert w.inputs["ecg"].staleness_s == pytest.approx(1.01, abs=1e-6)
    assert w.inputs["ecg"].data.shape == (2, 100)

    w = aligner.cut("m", 7.0)  # nothing inside [5, 7]
    assert w.inputs["ecg"].presence is Presence.MISSING and w.inputs["ecg"].data is None
    assert w.inputs["eeg"].presence is Presence.PRESENT
    st = aligner.stats["m"]
    assert st.windows == 3 and st.missing["eda"] == 3 and st.stale["ecg"] == 1
    assert st.missing["ecg"] == 1 and st.present["eeg"] == 3
    assert [w.index for w in (w,)] == [2]


def test_explicit_bindings_and_their_errors():
    a = numeric_source("eeg-a", Modality.EEG, 100.0)
    b = numeric_source("eeg-b", Modality.EEG, 100.0)
    write_ramp(b, 0.0, 3.0, 100.0)
    sources = {"eeg-a": a, "eeg-b": b}
    m = model(eeg=NumericInput(Modality.EEG, 1.0, 100.0))
    assert Aligner([m], sources, VirtualClock()).bound["m"]["eeg"] == "eeg-a"  # first by default
    aligner = Aligner([m], sources, VirtualClock(), {"m": {"eeg": "eeg-b"}})
    assert aligner.cut("m", 2.0).inputs["eeg"].presence is Presence.PRESENT
    with pytest.raises(BindingError, match="no source publishes"):
        Aligner([m], sources, VirtualClock(), {"m": {"eeg": "eeg-c"}})
    with pytest.raises(BindingError, match="has no input 'ecg'"):
        Aligner([m], sources, VirtualClock(), {"m": {"ecg": "eeg-a"}})
    frames = StreamSpec("cam", Modality.FRAMES, 30.0, frame_shape=(4, 4), dtype="uint8")
    with pytest.raises(BindingError, match="wants numeric"):
        Aligner(
            [m],
            {"cam": StreamSource(frames, ring_for(frames))},
            VirtualClock(),
            {"m": {"eeg": "cam"}},
        )
    # text markers are a numeric ring too, but of strings: the first marker would end the cut
    markers = StreamSpec("mk", Modality.MARKERS, 0.0, dtype="object")
    with pytest.raises(BindingError, match="wants numbers, but stream 'mk' carries object"):
        Aligner(
            [m],
            {"mk": StreamSource(markers, ring_for(markers))},
            VirtualClock(),
            {"m": {"eeg": "mk"}},
        )


# ---------------------------------------------------------------- frames and events
def test_frames_are_the_newest_before_each_instant_and_scaled():
    spec = StreamSpec("cam", Modality.FRAMES, 10.0, frame_shape=(8, 8), dtype="uint8")
    src = StreamSource(spec, ring_for(spec, 10))
    ts = np.arange(0, 30) / 10.0
    frames = np.stack([np.full((8, 8), i, np.uint8) for i in range(30)])  # frame i is all i
    src.ring.write(frames, ts)
    want = FrameInput(Modality.FRAMES, window_s=1.0, count=4, size=(4, 4))
    w = Aligner([model(cam=want)], {"cam": src}, VirtualClock()).cut("m", 2.0)
    x = w.inputs["cam"].data
    assert x.shape == (4, 4, 4)
    # instants 1.25, 1.5, 1.75, 2.0 -> frames 12, 15, 17, 20 (newest at or before)
    np.testing.assert_allclose(x[:, 0, 0], np.array([12, 15, 17, 20]) / 255.0, rtol=1e-6)


def test_resize_bilinear_preserves_a_gradient_and_block_means():
    img = np.tile(np.arange(16, dtype=np.float32), (16, 1))[None]
    half = resize_bilinear(img, (8, 8))[0]
    np.testing.assert_allclose(half[0], np.arange(8) * 2 + 0.5)
    up = resize_bilinear(img[:, :4, :4], (4, 8))[0]
    assert up.shape == (4, 8) and up[0, 0] == 0 and up[0, -1] == 3


def test_events_bin_per_slice_polarity_and_pixel():
    spec = StreamSpec("dvs", Modality.EVENTS, 0.0, frame_shape=(20, 40), dtype=str(EVENT_DTYPE))
    src = StreamSource(spec, ring_for(spec, capacity=1000))
    ev = np.zeros(6, EVENT_DTYPE)
    ev["x"] = [0, 39, 39, 20, 10, 0]
    ev["y"] = [0, 19, 19, 10, 5, 0]
    ev["polarity"] = [1, 0, 0, 1, 1, 1]
    ts = np.array([0.55, 0.70, 0.74, 0.80, 0.99, 1.0])  # the last one lies outside [.., 1.0)
    src.ring.write(ev, ts)
    want = EventInput(Modality.EVENTS, window_s=0.5, count=2, slice_s=0.25, size=(10, 20))
    w = Aligner([model(dvs=want)], {"dvs": src}, VirtualClock()).cut("m", 1.0)
    x = w.inputs["dvs"].data
    assert x.shape == (2, 2, 10, 20)
    # slice 0 = [0.5, 0.75): ON at (0,0); two OFF at (9,19)
    assert x[0, 1, 0, 0] == 1 and x[0, 0, 9, 19] == 2 and x[0].sum() == 3
    # slice 1 = [0.75, 1.0): ON at (5,10) and (2,5)
    assert x[1, 1, 5, 10] == 1 and x[1, 1, 2, 5] == 1 and x[1].sum() == 2
    signed = bin_events(
        ts, ev, np.array([0.75]), 0.25, (20, 40), (10, 20), EventRepresentation.SIGNED
    )
    assert signed.shape == (1, 1, 10, 20) and signed[0, 0, 9, 19] == -2 and signed[0, 0, 0, 0] == 1
    binary = bin_events(
        ts, ev, np.array([0.75]), 0.25, (20, 40), (10, 20), EventRepresentation.BINARY
    )
    assert binary.max() == 1 and binary[0, 0, 9, 19] == 1


# ---------------------------------------------------------------- scheduling
def run_aligner(aligner: Aligner, clock: VirtualClock, feed) -> list[Window]:
    """Run the aligner on an event loop in a thread while ``feed`` advances the clock."""
    windows: list[Window] = []
    stop_holder: dict = {}

    running = threading.Event()

    async def main():
        stop_holder["stop"] = asyncio.Event()
        stop_holder["loop"] = asyncio.get_running_loop()
        asyncio.get_running_loop().call_soon(running.set)  # after run() read the clock
        await aligner.run(windows.append, stop_holder["stop"])

    t = threading.Thread(target=asyncio.run, args=(main(),))
    t.start()
    assert running.wait(5)
    feed()
    clock.close()
    t.join(10)
    assert not t.is_alive()
    return windows


def test_hops_fall_on_multiples_and_wait_for_the_watermark():
    src = numeric_source("eeg", Modality.EEG, 100.0)
    write_ramp(src, 0.0, 1.0, 100.0)
    clock = VirtualClock(start=0.95)
    aligner = Aligner([model(eeg=NumericInput(Modality.EEG, 0.5, 100.0))], {"eeg": src}, clock)
    seen_at: list[float] = []

    def feed():
        # Data arrives in 0.05 s chunks; the clock follows the data.
        for k in range(20, 80):
            t0, t1 = k * 0.05, (k + 1) * 0.05
            write_ramp(src, t0, t1, 100.0)
            clock.advance_to(t1)
            seen_at.append(t1)
            import time

            time.sleep(0.002)

    windows = run_aligner(aligner, clock, feed)
    ends = [w.t_end for w in windows]
    # Started at 0.95 with lateness 0.1: first hop is 1.0, cut once the clock passes 1.1.
    assert ends[0] == pytest.approx(1.0)
    assert np.allclose(np.diff(ends), 0.5)
    assert ends[-1] <= 4.0 - 0.1 + 1e-9
    # every window was cut after its watermark, so its data is complete up to t_end
    for w in windows:
        x = w.inputs["eeg"].data[0]
        np.testing.assert_allclose(x, target_grid(w.t_end, 0.5, 100.0), atol=1e-5)
        assert w.inputs["eeg"].presence is Presence.PRESENT
    assert [w.index for w in windows] == list(range(len(windows)))


@pytest.mark.parametrize("hop_s", [0.05, 1 / 3])
def test_a_clock_exactly_at_a_due_time_far_from_zero_cuts_that_hop(hop_s):
    """At a large clock value (days of uptime) the due time k * hop + lateness, divided
    back, can come out one hop short; the loop must still cut hop k, not wait forever."""
    lateness = 0.1
    k = 22_687_284 if hop_s == 0.05 else 30_000_001
    due = k * hop_s + lateness
    assert math.floor((due - lateness) / hop_s + 1e-9) == k - 1  # the rounding in question
    clock = VirtualClock(start=due - 0.01)
    aligner = Aligner([ModelInputs("m", {}, hop_s=hop_s, allowed_lateness_s=lateness)], {}, clock)
    aligner.catch_up = True  # as a replay at full speed runs it

    def feed():
        time.sleep(0.05)
        clock.advance_to(due)  # a replay's clock can land exactly on it
        deadline = time.monotonic() + 5
        while aligner.next_due <= due and time.monotonic() < deadline:
            time.sleep(0.01)

    windows = run_aligner(aligner, clock, feed)
    assert [w.t_end for w in windows] == [k * hop_s]


def test_a_window_that_cannot_be_cut_is_counted_and_the_others_go_on(caplog):
    """Data a stream should not carry (a text marker where numbers are read) fails that
    model's cut; the hop is counted and skipped, and no other model's windows stop."""
    eeg = numeric_source("eeg", Modality.EEG, 100.0)
    write_ramp(eeg, 0.0, 10.0, 100.0)
    markers = StreamSpec("mk", Modality.MARKERS, 0.0, dtype="object")
    mk = StreamSource(markers, ring_for(markers))
    mk.ring.write(np.array([["stimulus on"]], dtype=object), np.array([0.5]))
    wants = NumericInput(Modality.EEG, 0.5, 100.0)
    good = ModelInputs("good", {"eeg": wants}, hop_s=0.5, allowed_lateness_s=0.1)
    bad = ModelInputs("bad", {"eeg": wants}, hop_s=0.5, allowed_lateness_s=0.1)
    clock = VirtualClock(start=0.0)
    aligner = Aligner([good, bad], {"eeg": eeg, "mk": mk}, clock)
    aligner.bound["bad"]["eeg"] = "mk"  # past the binding check, as a bug in it would let it
    aligner.catch_up = True

    def feed():
        time.sleep(0.05)
        clock.advance_to(3.0)
        deadline = time.monotonic() + 5
        while aligner.next_due <= 3.0 and time.monotonic() < deadline:
            time.sleep(0.01)

    windows = run_aligner(aligner, clock, feed)
    hops = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [w.t_end for w in windows if w.model == "good"] == hops
    # the window that reads the marker fails; the others find nothing to read (missing)
    assert [w.t_end for w in windows if w.model == "bad"] == [0.0, 0.5, 1.5, 2.0, 2.5]
    assert [w.index for w in windows if w.model == "bad"] == [0, 1, 2, 3, 4]
    assert aligner.stats["bad"].cut_errors == 1
    assert "could not be cut" in caplog.text


def test_a_stalled_loop_cuts_only_the_newest_hop():
    src = numeric_source("eeg", Modality.EEG, 100.0)
    write_ramp(src, 0.0, 10.0, 100.0)
    clock = VirtualClock(start=0.0)
    aligner = Aligner([model(eeg=NumericInput(Modality.EEG, 0.5, 100.0))], {"eeg": src}, clock)

    def feed():
        import time

        time.sleep(0.05)
        clock.advance_to(3.2)  # 6 hops due at once (0.5 .. 3.0)
        time.sleep(0.1)

    windows = run_aligner(aligner, clock, feed)
    # started at 0: hops 0.0, 0.5, ..., 2.5 were due and never cut; only 3.0 was
    assert [w.t_end for w in windows] == [pytest.approx(3.0)]
    assert aligner.stats["m"].late_hops == 6
    assert aligner.stats["m"].max_wake_delay_s == pytest.approx(0.1)


@pytest.mark.parametrize("lateness", [0.0, 0.15])
def test_late_samples_make_it_only_within_the_allowed_lateness(lateness):
    """Samples reach the ring 0.1 s after their time (a chunked device): with 0.15 s of
    allowed lateness every window is complete; with none, each window's tail is missing."""
    src = numeric_source("eeg", Modality.EEG, 100.0, channels=1)
    write_ramp(src, 0.0, 1.0, 100.0)
    m = ModelInputs(
        "m",
        {"eeg": NumericInput(Modality.EEG, 0.5, 100.0)},
        hop_s=0.5,
        allowed_lateness_s=lateness,
        stale_after_s=0.05,
    )
    clock = VirtualClock(start=1.0)
    aligner = Aligner([m], {"eeg": src}, clock)

    def feed():
        import time

        for k in range(100, 300):  # one sample per 10 ms, delivered 100 ms late
            t = k / 100.0
            before = aligner.stats["m"].windows
            clock.advance_to(t)
            if round(t * 100 - lateness * 100) % 50 == 0 and t - lateness >= 1.5:
                # a hop is due: let the aligner cut it before more data arrives
                deadline = time.monotonic() + 5
                while aligner.stats["m"].windows == before and time.monotonic() < deadline:
                    time.sleep(0.0005)
            if k >= 110:
                write_ramp(src, (k - 10) / 100.0, (k - 9) / 100.0, 100.0)

    windows = run_aligner(aligner, clock, feed)
    assert len(windows) >= 3
    for w in windows:
        item = w.inputs["eeg"]
        if lateness > 0.1:
            assert item.presence is Presence.PRESENT and item.staleness_s < 0.011
            np.testing.assert_allclose(item.data[0], target_grid(w.t_end, 0.5, 100.0), atol=1e-5)
        else:
            assert item.presence is Presence.STALE and item.staleness_s >= 0.09


def test_a_stream_that_just_started_is_missing_until_it_covers_enough_of_the_window():
    src = numeric_source("eeg", Modality.EEG, 100.0)
    write_ramp(src, 9.0, 12.0, 100.0)  # starts at 9 s
    aligner = Aligner(
        [model(eeg=NumericInput(Modality.EEG, 4.0, 50.0))], {"eeg": src}, VirtualClock()
    )
    early = aligner.cut("m", 10.0).inputs["eeg"]  # 1 s of 4: 25 % < min_coverage 50 %
    assert early.presence is Presence.MISSING and early.data is None
    assert early.coverage == pytest.approx(0.25)
    later = aligner.cut("m", 11.5).inputs["eeg"]
    assert later.presence is Presence.PRESENT and later.coverage == pytest.approx(0.625)
    full = aligner.cut("m", 11.99).inputs["eeg"]
    assert full.coverage == pytest.approx(0.7475)


def test_a_stream_that_came_back_counts_only_what_it_sent_since():
    """The sample before a dropout is not drawn across the gap into the window."""
    src = numeric_source("eeg", Modality.EEG, 100.0, channels=1)
    write_ramp(src, 0.0, 10.0, 100.0)  # value t until 10 s, then nothing until 18.5 s
    ts = np.arange(1850, 2000) / 100.0
    src.ring.write(np.full((len(ts), 1), 100.0, np.float32), ts)
    aligner = Aligner(
        [model(eeg=NumericInput(Modality.EEG, 4.0, 50.0))], {"eeg": src}, VirtualClock()
    )
    back = aligner.cut("m", 19.0).inputs["eeg"]  # 0.5 s of 4 since it came back
    assert back.presence is Presence.MISSING and back.data is None
    assert back.coverage == pytest.approx(0.125)
    short = aligner.cut("m", 20.0).inputs["eeg"]  # 1.5 s of 4: still short
    assert short.presence is Presence.MISSING and short.coverage == pytest.approx(0.375, abs=0.01)
    aligner = Aligner(
        [model(eeg=NumericInput(Modality.EEG, 2.0, 50.0))], {"eeg": src}, VirtualClock()
    )
    held = aligner.cut("m", 19.99).inputs["eeg"]  # window [17.99, 19.99]: 1.5 s since
    assert held.presence is Presence.PRESENT and held.coverage == pytest.approx(0.745, abs=0.01)
    # before the stream came back the window holds its first value, not a ramp from 9.99
    np.testing.assert_allclose(held.data[0], 100.0)


def test_a_stream_of_nothing_but_nan_is_missing():
    """Samples arrive on time but none is a number (a device whose electrodes are all off):
    the models must see the input as missing, not as a present flat zero signal."""
    src = numeric_source("eda", Modality.EDA, 32.0, channels=2)
    ts = np.arange(0, 32 * 10) / 32.0
    values = np.full((len(ts), 2), np.nan, np.float32)
    values[ts >= 8.0, 1] = 1.0  # one channel comes back at 8 s
    src.ring.write(values, ts)
    aligner = Aligner(
        [model(eda=NumericInput(Modality.EDA, 4.0, 32.0))], {"eda": src}, VirtualClock()
    )
    dead = aligner.cut("m", 7.5).inputs["eda"]
    assert dead.presence is Presence.MISSING and dead.data is None and dead.coverage == 1.0
    one = aligner.cut("m", 9.9).inputs["eda"]  # one live channel: present
    assert one.presence is Presence.PRESENT and np.isfinite(one.data[1]).any()


def test_a_hole_inside_the_window_is_not_coverage():
    src = numeric_source("eeg", Modality.EEG, 100.0, channels=1)
    write_ramp(src, 0.0, 5.0, 100.0)
    write_ramp(src, 7.5, 10.0, 100.0)  # 2.5 s without samples inside a 4 s window
    aligner = Aligner(
        [model(eeg=NumericInput(Modality.EEG, 4.0, 50.0))], {"eeg": src}, VirtualClock()
    )
    w = aligner.cut("m", 9.0).inputs["eeg"]  # [5, 9]: samples 5-4.99 ... 7.5-9
    assert w.presence is Presence.MISSING and w.coverage == pytest.approx(1.5 / 4, abs=0.01)
    w = aligner.cut("m", 9.99).inputs["eeg"]  # [5.99, 9.99]: 2.49 s of samples
    assert w.presence is Presence.PRESENT and w.coverage == pytest.approx(2.49 / 4, abs=0.01)
    # a slow stream's own period is no hole: 4 Hz temperature covers its window
    temp = numeric_source("temp", Modality.TEMP, 4.0, channels=1)
    write_ramp(temp, 0.0, 10.0, 4.0)
    aligner = Aligner(
        [model(temp=NumericInput(Modality.TEMP, 4.0, 4.0))], {"temp": temp}, VirtualClock()
    )
    assert aligner.cut("m", 9.0).inputs["temp"].coverage == pytest.approx(1.0)


def test_a_stream_stamped_in_bursts_covers_its_window():
    """Senders that stamp on arrival (BLE packets, blocks pushed sample by sample) give
    bunches of equal stamps a tenth of a second or more apart: no holes."""
    src = numeric_source("ppg", Modality.PPG, 250.0, channels=1)
    for burst in range(50):  # 50 samples stamped together every 0.2 s
        src.ring.write(np.zeros((50, 1), np.float32), np.full(50, 0.2 * burst))
    aligner = Aligner(
        [model(ppg=NumericInput(Modality.PPG, 4.0, 64.0))], {"ppg": src}, VirtualClock()
    )
    w = aligner.cut("m", 9.0).inputs["ppg"]
    assert w.presence is Presence.PRESENT and w.coverage == pytest.approx(1.0)


def test_a_frame_from_before_a_dropout_is_not_shown_in_the_window():
    spec = StreamSpec("cam", Modality.FRAMES, 10.0, frame_shape=(4, 4), dtype="uint8")
    src = StreamSource(spec, ring_for(spec, 10))
    src.ring.write(np.zeros((100, 4, 4), np.uint8), np.arange(100) / 10.0)  # black until 9.9 s
    src.ring.write(np.full((1, 4, 4), 255, np.uint8), np.array([19.9]))  # back at 19.9 s
    want = FrameInput(Modality.FRAMES, window_s=2.0, count=8, size=(4, 4))
    w = Aligner([model(cam=want)], {"cam": src}, VirtualClock()).cut("m", 20.0)
    assert w.inputs["cam"].presence is Presence.PRESENT
    np.testing.assert_allclose(w.inputs["cam"].data, 1.0)  # the new frame, never the old


def test_a_sample_after_a_dropout_is_not_drawn_as_a_ramp_into_the_window_end():
    """The sample that ends a dropout, read just past the window for interpolation, says
    nothing about the dropout: drawn as a ramp it would show the model a signal that was
    never measured. The window's tail holds the last value before the dropout."""
    src = numeric_source("eeg", Modality.EEG, 100.0, channels=1)
    before = np.arange(0, 441) / 100.0  # until 4.40 s: 0.6 s before the window ends
    src.ring.write(np.full((len(before), 1), 1.0, np.float32), before)
    after = np.arange(501, 600) / 100.0  # back at 5.01 s, just after it
    src.ring.write(np.full((len(after), 1), 100.0, np.float32), after)
    aligner = Aligner(
        [model(eeg=NumericInput(Modality.EEG, 2.0, 100.0))], {"eeg": src}, VirtualClock()
    )
    w = aligner.cut("m", 5.0).inputs["eeg"]
    assert w.presence is Presence.STALE and w.staleness_s == pytest.approx(0.6)
    np.testing.assert_array_equal(w.data[0], 1.0)  # held, not a ramp up to 100


def test_a_frame_shortly_before_a_short_window_still_shows_the_scene():
    """A 2 fps camera has no frame inside most 0.25 s windows; the frame half a period
    before still shows the scene, so the input is there (not MISSING) while it is fresh
    enough, and STALE once it is older than stale_after."""
    spec = StreamSpec("cam", Modality.FRAMES, 2.0, frame_shape=(4, 4), dtype="uint8")
    src = StreamSource(spec, ring_for(spec, 10))
    ts = np.arange(0, 8) / 2.0  # 0.0, 0.5, ... 3.5
    src.ring.write(np.stack([np.full((4, 4), i, np.uint8) for i in range(8)]), ts)
    want = FrameInput(Modality.FRAMES, window_s=0.25, count=2, size=(4, 4))
    aligner = Aligner([model(cam=want)], {"cam": src}, VirtualClock())
    fresh = aligner.cut("m", 1.4).inputs["cam"]  # window [1.15, 1.4]: frame 2 at 1.0
    assert fresh.presence is Presence.PRESENT and fresh.staleness_s == pytest.approx(0.4)
    np.testing.assert_allclose(fresh.data[:, 0, 0], 2 / 255.0)
    old = aligner.cut("m", 4.1).inputs["cam"]  # window [3.85, 4.1]: frame 7 at 3.5
    assert old.presence is Presence.STALE and old.staleness_s == pytest.approx(0.6)
    np.testing.assert_allclose(old.data[:, 0, 0], 7 / 255.0)


def test_an_irregular_stream_with_a_long_hole_covers_only_what_it_sent():
    """A stream without a nominal rate (rate 0) has no period to judge holes by; its
    value is held for stale_after_s and no longer, so a 1.5 s hole in a 2 s window leaves
    it short of coverage: MISSING, not the old value drawn across the hole."""
    spec = StreamSpec("eda", Modality.EDA, 0.0, ("c0",))
    src = StreamSource(spec, ring_for(spec))
    ts = np.r_[np.arange(0, 21), np.arange(35, 41)] / 10.0  # nothing from 2.0 s to 3.5 s
    src.ring.write(np.ones((len(ts), 1), np.float32), ts)
    aligner = Aligner(
        [model(eda=NumericInput(Modality.EDA, 2.0, 10.0))], {"eda": src}, VirtualClock()
    )
    w = aligner.cut("m", 4.0).inputs["eda"]  # [2, 4]: 1.5 s of it is the hole
    assert w.coverage == pytest.approx(0.25)
    assert w.presence is Presence.MISSING and w.data is None


def test_a_sample_exactly_stale_after_old_is_still_present():
    """The boundary of STALE is pinned: a newest sample exactly ``stale_after_s`` old is
    PRESENT, anything older is STALE (models and the dashboard count on the same
    window getting the same mark on every run)."""
    src = numeric_source("eda", Modality.EDA, 4.0, channels=1)
    ts = np.arange(0, 5) / 4.0  # 0, 0.25, ... 1.0: exact in binary
    src.ring.write(np.ones((5, 1), np.float32), ts)
    aligner = Aligner(
        [model(eda=NumericInput(Modality.EDA, 1.0, 4.0))], {"eda": src}, VirtualClock()
    )
    edge = aligner.cut("m", 1.5).inputs["eda"]
    assert edge.staleness_s == 0.5 and edge.presence is Presence.PRESENT
    past = aligner.cut("m", 1.5 + 2**-20).inputs["eda"]
    assert past.staleness_s > 0.5 and past.presence is Presence.STALE
