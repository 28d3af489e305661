"""Replay through the live pipeline, with real files from real writers.

- a demo session recorded live by the recorder (both demo models, DAVIS events
  in AEDAT4, physiology and predictions in XDF) replayed at max speed twice:
  identical predictions, and the predictions recorded live within 1e-6;
- seek, pause and paced speed; ``--from``/``--to``;
- an XDF written by LabRecorder recording real pylsl outlets;
- an AEDAT4 written by dv-processing's MonoCameraWriter;
- ``--lsl`` re-publishing, read back with a pylsl inlet;
- every bad-file case: truncated XDF, corrupt chunk, an AEDAT4 dv cannot open,
  a manifest that does not match its files, a stream of an unknown type.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import dv_processing as dv
import numpy as np
import pylsl
import pytest
from collect import Collect
from waiting import wait_until

from app.config import SessionConfig, SinkConfig, load_config, shipped_config
from app.replay import main as replay_main
from app.session import Session
from core.clock import lsl_now
from core.streams import EVENT_DTYPE, Modality, StreamSpec
from drivers.base import Driver
from recordings.replay import ReplayControl
from recordings.sources import SourceError, open_recording
from recordings.xdf_values import XdfValues
from recordings.xdf_writer import XdfStreamInfo, XdfWriter

RECORD_S = 4.0


def cut_whole_windows(session: Session, timeout: float = 10.0) -> dict[tuple, bool]:
    """Makes the live session's aligner cut each window only once it is whole, and notes,
    per window keyed like ``_key``, whether it was.

    Whole: every stream the window reads has delivered an item stamped after its end.
    A ring holds its stream's items in stamp order, so then nothing stamped up to the end
    can still come (the cut reads one item past the end of a sampled stream: that one is
    there too), and the window is cut from the same data a replay, which has every item in
    place, cuts it from. Live, the aligner cuts at the watermark whatever has arrived, and on
    a busy machine a stream's chunk can come later (README: replaying a session); waiting
    for it here (the engine thread waits, as when the machine delays it) takes that timing
    out of the comparison. The real aligner cuts every window; windows the loop then wakes
    too late for are skipped as live ones are. Only while the session runs: a window whose
    data never comes (the drivers stopped) is cut as it is and noted as not whole.
    """
    aligner = session.aligner
    whole: dict[tuple, bool] = {}
    cut = aligner.cut

    def is_whole(model: str, t_end: float) -> bool:
        for name in aligner.bound[model].values():
            if name is None:
                continue
            newest = aligner.sources[name].ring.latest(1).ts
            if not (len(newest) and newest[-1] > t_end):
                return False
        return True

    def cut_when_whole(model: str, t_end: float):
        deadline = time.monotonic() + timeout
        while (
            not is_whole(model, t_end)
            and not any(d.stopping for d in session.drivers)
            and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        whole[(model, round(float(t_end), 6))] = is_whole(model, t_end)
        return cut(model, t_end)

    aligner.cut = cut_when_whole
    return whole


@pytest.fixture(scope="module")
def demo_live(tmp_path_factory) -> tuple[Path, dict[tuple, bool]]:
    """The demo recorded live for a few seconds by the recorder (``--record``), and which of
    its windows were whole when the live aligner cut them (``cut_whole_windows``)."""
    folder = tmp_path_factory.mktemp("rec") / "demo"
    cfg = load_config(shipped_config("demo"))
    cfg = replace(cfg, sinks=[])
    session = Session(cfg)
    whole = cut_whole_windows(session)
    session.start_recording(folder)
    session.run_for(RECORD_S)
    return folder, whole


@pytest.fixture(scope="module")
def demo_session(demo_live) -> Path:
    return demo_live[0]


def replay_predictions(path: Path, tmp: Path, *extra: str) -> list[dict]:
    out = tmp / f"pred-{time.monotonic_ns()}.csv"
    code = replay_main([str(path), "--headless", "--quiet", "--predictions", str(out), *extra])
    assert code == 0
    with open(out, newline="") as f:
        return list(csv.DictReader(f))


OUTPUT_COLUMNS = (
    "valence",
    "arousal",
    "dominance",
    "liking",
    "p_angry",
    "p_disgust",
    "p_fear",
    "p_happiness",
    "p_neutral",
    "p_sadness",
    "p_surprise",
)


def _key(row: dict) -> tuple:
    return (row["model"], round(float(row["t_end"]), 6))


def test_two_max_replays_are_identical_and_match_live(demo_live, tmp_path):
    demo_session, whole = demo_live
    a = replay_predictions(demo_session, tmp_path)
    b = replay_predictions(demo_session, tmp_path, "--speed", "max")
    strip = ("published_at",) + tuple(k for k in a[0] if k.startswith("latency"))

    def outputs(rows: list[dict]) -> list[dict]:
        # the two models' workers interleave in the log as threads go; per model, in order
        rows = sorted(rows, key=lambda r: (r["model"], int(r["window"])))
        return [{k: v for k, v in r.items() if k not in strip} for r in rows]

    assert outputs(a) == outputs(b)
    # every window the live session recorded whole comes out again with the same outputs
    rec = open_recording(demo_session)
    assert {p.model for p in rec.predictions} == {"hi-moe-sim", "mco-e-net-lite-sim"}
    mine = {_key(r): r for r in a}
    exact = total = 0
    compared: dict[str, int] = {}
    for p in rec.predictions:
        assert len(p.ts) >= 5
        outputs_of = [col for col in p.columns if col in OUTPUT_COLUMNS]
        for i, t in enumerate(p.ts):
            key = (p.model, round(float(t), 6))
            row = mine.get(key)
            if not whole[key]:
                # Cut short of data live (cut_whole_windows waits only while the session
                # runs), where the replay has all that was recorded: nothing to compare. At
                # the end the aligner goes on cutting after the drivers stopped: a window
                # ending after every recorded item, which the replay (it ends a hop after the
                # last item) does not cut at all.
                assert row is not None or t > rec.end, (key, rec.end)
                continue
            assert row is not None, key  # a whole window is inside the recording: replayed
            given = [col for j, col in enumerate(p.columns) if np.isfinite(p.values[i, j])]
            if not given:  # live gave no output (e.g. no eye frames yet): nor may the replay
                assert not any(row.get(col) for col in outputs_of), row
                continue
            assert [c for c in outputs_of if row.get(c)] == [c for c in outputs_of if c in given]
            diff = max(
                abs(float(row[col]) - p.values[i, j])
                for j, col in enumerate(p.columns)
                if col in OUTPUT_COLUMNS
            )
            # Bit-exact but for one thing: AEDAT4 keeps whole microseconds, so an event
            # within half a microsecond of a slice edge can fall into the neighbouring slice
            # on replay (one event of thousands).
            assert diff < 0.02, (p.model, t, diff)  # probabilities 0-1, affect 1-9
            exact += diff < 1e-6
            total += 1
            compared[p.model] = compared.get(p.model, 0) + 1
    assert exact >= 0.9 * total  # all but a rare edge event bit-exact
    assert set(compared) == {"hi-moe-sim", "mco-e-net-lite-sim"}, compared


def _session(control: ReplayControl, models: list[str] | None = None) -> Session:
    from app.config import ModelConfig

    cfg = SessionConfig(name="replay", models=[ModelConfig(m) for m in models or []])
    return Session(cfg, clock=control.clock, drivers=[control.driver], replay=control)


def test_a_paced_replays_time_counts_from_its_start_not_from_when_it_was_built(demo_session):
    """At 4x, a replay built a second before it starts (the models loading) must not count
    its time from then: the dashboard's "session time" would be seconds off."""
    rec = open_recording(demo_session)
    control = ReplayControl(rec, speed=4.0)
    session = _session(control)
    time.sleep(1.0)  # as long as loading the models took
    session.start()
    try:
        ring = control.driver.rings["sim-ecg"]
        assert wait_until(lambda: ring.head > 0, timeout=10)
        first_recorded = next(t for t in rec.tracks if t.spec.name == "sim-ecg").span(0, 1)[0][0]
        expected = first_recorded - (control.t0 + control.from_s)  # into the recording
        # and the statistics' start is the replay's start, not where the clock ran to meanwhile
        assert session.started_at == pytest.approx(session.time_origin(), abs=0.1)
        assert ring.latest(ring.head).ts[0] - session.time_origin() == pytest.approx(
            expected, abs=0.05
        )
    finally:
        session.stop()
        rec.close()


def test_seek_moves_the_position_and_predictions_resume(demo_session):
    rec = open_recording(demo_session)
    control = ReplayControl(rec, speed=None)
    session = _session(control, ["hi-moe-sim"])
    sink = Collect()
    session.bus.add(sink)
    session.start()
    try:
        assert control.wait_finished(60)
        first = len(sink.predictions)
        assert first >= 6
        assert control.position == pytest.approx(control.duration)
        last_t = sink.predictions[-1].t_end
        control.seek(1.0)
        wait_until(lambda: control.position < 2.5 or control.finished, timeout=30)
        assert control.wait_finished(60)
        after = sink.predictions[first:]
        # from 1 s to the end: about (duration - 1) / hop windows, all later on the clock
        assert len(after) >= int((control.duration - 1.0) / 0.5) - 2
        assert all(p.t_end > last_t for p in after)
        assert control.shift > 0 and float(control.shift).is_integer()
        assert session.workers["hi-moe-sim"].stats.skipped == 0
    finally:
        session.stop()


def test_paced_speed_pause_and_range(demo_session):
    rec = open_recording(demo_session)
    control = ReplayControl(rec, speed=4.0, from_s=1.0, to_s=3.0)
    session = _session(control)
    started = time.monotonic()
    session.start()
    try:
        control.pause()
        pos = control.position
        time.sleep(0.3)
        assert control.paused and control.position == pytest.approx(pos, abs=1e-9)
        control.play()
        assert control.wait_finished(30)
        took = time.monotonic() - started
        assert took >= 2.0 / 4.0 * 0.9  # paced: 2 s of recording at 4x
        for t in rec.tracks:
            inside = np.count_nonzero((t.ts >= rec.start + 1.0) & (t.ts <= rec.start + 3.0))
            assert control.driver.pushed[t.spec.name] == inside
        # paced replays are shifted to now on the LSL clock
        ring = control.driver.rings["sim-eeg"]
        assert abs(ring.last_timestamp() - pylsl.local_clock()) < 30
        # a seek back (no model here: nothing to resynchronise) replays from there again
        before = dict(control.driver.pushed)
        control.seek(1.5)
        assert control.wait_finished(30)
        eeg = next(t for t in rec.tracks if t.spec.name == "sim-eeg")
        again = np.count_nonzero((eeg.ts >= rec.start + 1.5) & (eeg.ts <= rec.start + 3.0))
        assert control.driver.pushed["sim-eeg"] == before["sim-eeg"] + again
        assert ring.nonmonotonic == 0  # time went on forward in the rings
    finally:
        session.stop()


# ------------------------------------------------------------------ other writers
def _labrecorder_xdf(path: Path) -> dict:
    import labrecorder

    info = pylsl.StreamInfo("r2-lr-eeg", "EEG", 3, 128.0, "float32", "r2-lr-eeg-src")
    chans = info.desc().append_child("channels")
    for label in ("Fz", "Cz", "Pz"):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", "microvolts")
        ch.append_child_value("type", "EEG")
    eeg = pylsl.StreamOutlet(info)
    mk = pylsl.StreamOutlet(
        pylsl.StreamInfo("r2-lr-markers", "Markers", 1, 0.0, "string", "r2-lr-mk")
    )
    gaze = pylsl.StreamOutlet(pylsl.StreamInfo("r2-lr-gaze", "Gaze", 2, 0.0, "float32", "r2-lr-gz"))
    found = [
        pylsl.resolve_byprop("name", n, 1, 10.0)[0]
        for n in ("r2-lr-eeg", "r2-lr-markers", "r2-lr-gaze")
    ]
    rec = labrecorder.Recording(str(path), found)
    wait_until(
        lambda: eeg.have_consumers() and mk.have_consumers() and gaze.have_consumers(), timeout=20
    )
    k = 0
    labels = []
    checked = 256  # samples whose arrival the test checks; pushing goes on ~1 s after them
    while k < checked + 160:
        eeg.push_chunk([[float(k + i), -float(k + i), 1.0] for i in range(8)])
        if k % 64 == 0 and k < checked:
            labels.append(f"m{k}")
            mk.push_sample([labels[-1]])
        gaze.push_sample([0.5, 0.5])
        k += 8
        time.sleep(8 / 128)
    rec.stop()
    del rec
    return {"checked": checked, "markers": labels}


def test_replays_an_xdf_from_labrecorder(tmp_path):
    path = tmp_path / "lab.xdf"
    truth = _labrecorder_xdf(path)
    rec = open_recording(path)
    by = {t.spec.name: t for t in rec.tracks}
    assert set(by) == {"r2-lr-eeg", "r2-lr-markers"}
    assert any("r2-lr-gaze" in s and "'Gaze'" in s for s in rec.skipped)
    eeg = by["r2-lr-eeg"]
    assert eeg.spec.modality is Modality.EEG and eeg.spec.channel_names == ("Fz", "Cz", "Pz")
    assert eeg.spec.units == ("microvolts",) * 3 and eeg.spec.nominal_rate == 128.0
    assert isinstance(eeg.data, XdfValues)  # values stay in the file; only stamps are loaded
    values = eeg.data[:, 0]
    first = int(values[0])
    assert np.array_equal(values[: truth["checked"] - first], np.arange(first, truth["checked"]))
    assert [row[0] for row in by["r2-lr-markers"].data.tolist()][: len(truth["markers"])] == [
        m for m in truth["markers"] if int(m[1:]) >= first
    ]
    # the same file through pyxdf: same stamps (no dejitter)
    import pyxdf

    ref = {s["info"]["name"][0]: s for s in pyxdf.load_xdf(str(path), dejitter_timestamps=False)[0]}
    np.testing.assert_allclose(eeg.ts, ref["r2-lr-eeg"]["time_stamps"], atol=1e-5)
    # and through the pipeline
    control = ReplayControl(rec, speed=None)
    session = _session(control)
    session.start()
    try:
        assert control.wait_finished(30)
        assert control.driver.pushed["r2-lr-eeg"] == eeg.count
        ring = control.driver.rings["r2-lr-eeg"]
        assert ring.head == eeg.count
        np.testing.assert_array_equal(ring.latest(eeg.count).data, eeg.data)
    finally:
        session.stop()


def test_an_xdf_stream_whose_stamps_go_backwards_replays_sorted(tmp_path):
    """Values left in the file are read in to be sorted with their stamps (stable)."""
    path = tmp_path / "jumbled.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(XdfStreamInfo("jumbled-eeg", "EEG", 2, 100.0, "float32"))
    ok = w.add_stream(XdfStreamInfo("steady-eeg", "EEG", 1, 100.0, "float32"))
    t = 50.0 + np.arange(300) / 100.0
    order = np.r_[np.arange(100), np.arange(150, 200), np.arange(100, 150), np.arange(200, 300)]
    for k in range(0, 300, 30):  # ten chunks; the swapped halves straddle chunk edges
        i = order[k : k + 30]
        w.write_samples(sid, np.c_[i, -i].astype(np.float32), t[i])
        w.write_samples(ok, np.arange(k, k + 30, dtype=np.float32)[:, None], t[k : k + 30])
    w.close()
    rec = open_recording(path)
    by = {tr.spec.name: tr for tr in rec.tracks}
    jumbled, steady = by["jumbled-eeg"], by["steady-eeg"]
    assert isinstance(jumbled.data, np.ndarray) and isinstance(steady.data, XdfValues)
    np.testing.assert_array_equal(jumbled.ts, t)
    np.testing.assert_array_equal(jumbled.read(0, 300)[:, 0], np.arange(300))
    np.testing.assert_array_equal(jumbled.read(0, 300)[:, 1], -np.arange(300))
    ts, got = steady.span(95, 205)
    np.testing.assert_array_equal(ts, t[95:205])
    np.testing.assert_array_equal(got[:, 0], np.arange(95, 205))
    rec.close()


def _write_aedat(path: Path, t0_us: int = 1_700_000_000_123_456) -> dict:
    from drivers.davis_server import events_to_store

    cfg = dv.io.MonoCameraWriter.DAVISConfig("DAVIS346_test", (346, 260))
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    rng = np.random.default_rng(1)
    n_events = 0
    for k in range(20):  # 20 batches of 50 ms, one frame each
        t = t0_us + k * 50_000 + np.sort(rng.integers(0, 50_000, 2000))
        x = rng.integers(0, 346, 2000)
        y = rng.integers(0, 260, 2000)
        p = rng.integers(0, 2, 2000)
        writer.writeEvents(events_to_store(t, x, y, p))
        n_events += 2000
        img = np.full((260, 346), k * 10, np.uint8)
        writer.writeFrame(dv.Frame(int(t0_us + k * 50_000), img))
    del writer
    return {"events": n_events, "frames": 20, "t0_us": t0_us}


def test_replays_an_aedat4_from_monocamerawriter(tmp_path):
    path = tmp_path / "cam.aedat4"
    truth = _write_aedat(path)
    rec = open_recording(path)
    by = {t.spec.modality: t for t in rec.tracks}
    assert by[Modality.EVENTS].count == truth["events"]
    assert by[Modality.FRAMES].count == truth["frames"]
    assert by[Modality.EVENTS].spec.frame_shape == (260, 346)
    # stamps: seconds since the whole Unix second before the first one, microsecond exact
    assert by[Modality.FRAMES].first == pytest.approx(0.123456, abs=1e-9)
    assert by[Modality.FRAMES].read(3, 4)[0].max() == 30
    control = ReplayControl(rec, speed=None)
    session = _session(control, ["mco-e-net-lite-sim"])
    sink = Collect()
    session.bus.add(sink)
    session.start()
    try:
        assert control.wait_finished(60)
        assert control.driver.pushed[by[Modality.EVENTS].spec.name] == truth["events"]
        assert len(sink.predictions) >= 3
        assert all(p.mask.get("events") == "present" for p in sink.predictions[1:-2])
    finally:
        session.stop()


class ApsOffCamera(Driver):
    """A DAVIS whose APS frames never come (frames off, or a session shorter than a frame
    interval), beside an EEG; the test pushes its data."""

    def __init__(self) -> None:
        super().__init__(
            "davis",
            [
                StreamSpec(
                    "davis-events",
                    Modality.EVENTS,
                    0.0,
                    dtype=str(EVENT_DTYPE),
                    frame_shape=(260, 346),
                ),
                StreamSpec(
                    "davis-frames", Modality.FRAMES, 30.0, dtype="uint8", frame_shape=(260, 346)
                ),
                StreamSpec("davis-eeg", Modality.EEG, 100.0, ("c0",), ("uV",), "float32"),
            ],
        )

    def _run(self) -> None:
        pass


def test_a_davis_session_without_aps_frames_replays_with_an_empty_frames_stream(tmp_path, capsys):
    from app.info import main as info_main
    from recordings.recorder import SessionRecorder

    driver = ApsOffCamera()
    folder = tmp_path / "aps-off"
    recorder = SessionRecorder(folder, [driver], name="aps-off")
    recorder.start()
    t0 = lsl_now()
    events = np.zeros(1000, EVENT_DTYPE)
    events["x"] = np.arange(1000) % 346
    driver.push("davis-events", events, t0 + np.arange(1000) * 1e-4)
    driver.push("davis-eeg", np.arange(100, dtype=np.float32)[:, None], t0 + np.arange(100) * 0.01)
    assert wait_until(lambda: recorder.counts()["davis-eeg"] == 100, timeout=30)
    counts = recorder.stop()
    assert counts == {"davis-events": 1000, "davis-frames": 0, "davis-eeg": 100}
    rec = open_recording(folder)  # the manifest's frames stream is in the file, empty
    by = {t.spec.name: t for t in rec.tracks}
    assert {n: t.count for n, t in by.items()} == counts and not rec.problems
    assert by["davis-frames"].span(0, 5)[1].shape == (0, 260, 346)
    control = ReplayControl(rec, speed=None)
    session = _session(control)
    session.start()
    try:
        assert control.wait_finished(60)
        for name, n in counts.items():
            assert control.driver.rings[name].head == n, name
    finally:
        session.stop()
    assert info_main([str(folder)]) == 0
    row = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("davis-frames"))
    assert row.split()[:4] == ["davis-frames", "FRAMES", "davis.aedat4", "0"]


def test_lsl_republishes_with_original_headers(tmp_path):
    path = tmp_path / "pub.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(
        XdfStreamInfo(
            "r2-pub-ecg",
            "ECG",
            2,
            64.0,
            "float32",
            "ecg-device-7",
            channels=[
                {"label": "lead1", "unit": "mV", "type": "ECG"},
                {"label": "lead2", "unit": "mV", "type": "ECG"},
            ],
        )
    )
    ts = 50.0 + np.arange(64 * 6) / 64.0
    w.write_samples(
        sid, np.stack([np.arange(len(ts)), -np.arange(len(ts))], 1).astype(np.float32), ts
    )
    mk = w.add_stream(XdfStreamInfo("r2-pub-markers", "Markers", 1, 0.0, "string", "mk-7"))
    w.write_samples(mk, [["start"], ["stop"]], np.array([50.5, 51.0]))
    w.close()
    rec = open_recording(path)
    import argparse

    from app.replay import make_replay_session

    args = argparse.Namespace(
        from_s=0.0,
        to_s=None,
        lsl=True,
        model=["none"],
        device="cpu",
        predictions=None,
        quiet=True,
        headless=True,
    )
    session = make_replay_session(rec, args, speed=1.0)
    session.replay.pause()
    session.start()
    try:
        found = pylsl.resolve_byprop("name", "r2-pub-ecg", 1, 10.0)
        assert found
        inlet = pylsl.StreamInlet(found[0])
        info = inlet.info(5.0)
        assert (
            info.type() == "ECG"
            and info.nominal_srate() == 64.0
            and info.source_id() == "ecg-device-7"
        )
        ch = info.desc().child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append((ch.child_value("label"), ch.child_value("unit")))
            ch = ch.next_sibling()
        assert labels == [("lead1", "mV"), ("lead2", "mV")]
        inlet.open_stream(5.0)
        markers = pylsl.StreamInlet(pylsl.resolve_byprop("name", "r2-pub-markers", 1, 10.0)[0])
        assert markers.info(5.0).type() == "Markers"
        markers.open_stream(5.0)
        session.replay.play()
        got_markers = []
        deadline = time.monotonic() + 20
        while len(got_markers) < 2 and time.monotonic() < deadline:
            sample, _ = markers.pull_sample(timeout=0.2)
            if sample is not None:
                got_markers.append(sample[0])
        assert got_markers == ["start", "stop"]
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 64 and time.monotonic() < deadline:
            data, stamps = inlet.pull_chunk(timeout=0.2)
            got.extend(data)
        assert len(got) >= 64
        first = int(got[0][0])
        assert [row[0] for row in got[:64]] == [float(first + i) for i in range(64)]
        assert all(row[1] == -row[0] for row in got[:64])
    finally:
        session.stop()


class LslSourced(Driver):
    """A stream as ``drivers.lsl`` makes it from an outlet's header (renamed in affectlab)."""

    def __init__(self) -> None:
        from drivers.lsl import spec_from_summary
        from drivers.lsl_streams import StreamSummary

        header = StreamSummary(
            "r2-biosemi", "GSR", 2, 128.0, "float32", "biosemi-AD-box-1234", "lab-pc",
            channel_names=("EDA1", "EDA2"), units=("uS", "uS"), channel_types=("GSR", "GSR"),
        )  # fmt: skip
        super().__init__("lsl", [spec_from_summary(header, stream="eda")])

    def _run(self) -> None:
        pass


def test_a_recorded_lsl_stream_is_republished_under_its_outlets_header(tmp_path):
    """Tools that pick streams by name, type or source_id find the replay as they did live."""
    import argparse

    from app.replay import make_replay_session
    from recordings.recorder import SessionRecorder

    driver = LslSourced()
    recorder = SessionRecorder(tmp_path / "lsl", [driver], name="lsl")
    recorder.start()
    driver.push("eda", np.ones((256, 2), np.float32), lsl_now() + np.arange(256) / 128)
    assert wait_until(lambda: recorder.counts()["eda"] == 256, timeout=30)
    recorder.stop()
    args = argparse.Namespace(
        from_s=0.0, to_s=None, lsl=True, model=["none"], device="cpu", predictions=None,
        quiet=True, headless=True,
    )  # fmt: skip
    session = make_replay_session(open_recording(tmp_path / "lsl"), args, speed=1.0)
    session.replay.pause()
    session.start()
    try:
        found = pylsl.resolve_byprop("source_id", "biosemi-AD-box-1234", 1, 10.0)
        assert found
        info = pylsl.StreamInlet(found[0]).info(5.0)
        assert (info.name(), info.type(), info.source_id()) == (
            "r2-biosemi", "GSR", "biosemi-AD-box-1234",
        )  # fmt: skip
        ch = info.desc().child("channels").child("channel")
        assert (ch.child_value("label"), ch.child_value("unit"), ch.child_value("type")) == (
            "EDA1", "uS", "GSR",
        )  # fmt: skip
    finally:
        session.stop()
    # the outlet ends with the replay (a dashboard's next Start would publish it again)
    assert not pylsl.resolve_byprop("source_id", "biosemi-AD-box-1234", 1, 2.0)


# ------------------------------------------------------------------ bad files
def test_truncated_session_replays_up_to_the_break(demo_session, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(demo_session, folder)
    xdf = folder / "streams.xdf"
    data = xdf.read_bytes()
    xdf.write_bytes(data[: len(data) // 2])
    rec = open_recording(folder)
    assert any("truncated" in p and str(xdf) in p for p in rec.problems)
    eeg = next(t for t in rec.tracks if t.spec.name == "sim-eeg")
    manifest = json.loads((folder / "manifest.json").read_text())
    want = next(s["count"] for s in manifest["streams"] if s["name"] == "sim-eeg")
    assert 0 < eeg.count < want
    # the session stopped cleanly: the file was cut since, which is what the line says
    assert any("sim-eeg" in p and "cut or damaged since" in p for p in rec.problems)
    assert not any("did not stop cleanly" in p for p in rec.problems)
    control = ReplayControl(rec, speed=None)
    session = _session(control)
    session.start()
    try:
        assert control.wait_finished(60)
        assert control.driver.pushed["sim-eeg"] == eeg.count
    finally:
        session.stop()


def test_corrupt_chunk_is_reported_and_skipped(tmp_path, capsys):
    path = tmp_path / "corrupt.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(XdfStreamInfo("eeg", "EEG", 1, 10.0, "float32"))
    for k in range(4):
        w.write_samples(sid, np.full((10, 1), k, np.float32), 10.0 + k + np.arange(10) / 10.0)
        w.boundary()
    w.close()
    data = bytearray(path.read_bytes())
    pos = [i for i in range(len(data) - 6) if data[i : i + 6] == b"\x03\x00\x01\x00\x00\x00"][1]
    data[pos + 6] = 4  # the second chunk's sample count varlen says 4 bytes: garbage follows
    path.write_bytes(bytes(data))
    rec = open_recording(path)
    assert len(rec.problems) == 1 and str(path) in rec.problems[0] and "byte" in rec.problems[0]
    assert rec.tracks[0].count == 30
    code = replay_main([str(path), "--headless", "--quiet"])  # no demo model fits 1 channel
    assert code == 0
    err = capsys.readouterr().err
    assert "warning" in err and "byte" in err
    code = replay_main([str(path), "--headless", "--quiet", "--model", "hi-moe-sim"])
    assert code == 1
    assert "needs channels" in capsys.readouterr().err


def test_aedat4_that_dv_cannot_open(demo_session, tmp_path, capsys):
    path = tmp_path / "broken.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(800))
    with pytest.raises(SourceError, match="dv-processing cannot open") as err:
        open_recording(path)
    assert str(path) in str(err.value)
    assert replay_main([str(path), "--headless"]) == 1
    assert "broken.aedat4" in capsys.readouterr().err
    # in a session (a crash cut the file short: dv needs the index a clean stop writes),
    # the other files still replay and the problem names the file and its streams
    folder = tmp_path / "cut-davis"
    shutil.copytree(demo_session, folder)
    davis = folder / "davis.aedat4"
    davis.write_bytes(davis.read_bytes()[: davis.stat().st_size // 2])
    rec = open_recording(folder)
    assert "sim-eeg" in {t.spec.name for t in rec.tracks}
    assert not {"sim-davis-events", "sim-davis-frames"} & {t.spec.name for t in rec.tracks}
    assert any(str(davis) in p and "sim-davis-events" in p for p in rec.problems)


def test_manifest_that_does_not_match_its_files(demo_session, tmp_path):
    folder = tmp_path / "m1"
    shutil.copytree(demo_session, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    extra = dict(manifest["streams"][0], name="ghost-eeg", xdf_stream_id=99)
    manifest["streams"].append(extra)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SourceError, match="'ghost-eeg' is in the manifest but not in"):
        open_recording(folder)
    folder2 = tmp_path / "m2"
    shutil.copytree(demo_session, folder2)
    for f in folder2.iterdir():  # every file the manifest names is gone: nothing to replay
        if f.name != "manifest.json":
            f.unlink()
    with pytest.raises(SourceError, match="every file it names is missing"):
        open_recording(folder2)


def test_stream_of_an_unknown_type(tmp_path):
    path = tmp_path / "mixed.xdf"
    w = XdfWriter(path)
    a = w.add_stream(XdfStreamInfo("odd", "Mocap", 3, 100.0, "float32"))
    b = w.add_stream(XdfStreamInfo("skin", "GSR", 1, 32.0, "float32"))
    w.write_samples(a, np.zeros((10, 3), np.float32), np.arange(10) / 100.0)
    w.write_samples(b, np.ones((32, 1), np.float32), np.arange(32) / 32.0)
    w.close()
    rec = open_recording(path)
    assert [t.spec.name for t in rec.tracks] == ["skin"]
    assert rec.tracks[0].spec.modality is Modality.EDA
    assert rec.skipped == [
        "stream 'odd' has type 'Mocap', which affectlab does not know (known, in any case: "
        "eeg, ecg/ekg, eda/gsr/scr, ppg/bvp, resp/respiration, emg, eog, temp/temperature/skt, "
        "imu/acc/accelerometer/gyro/gyroscope, markers/marker, triggers/trigger, ratings/rating, "
        "emotion/predictions); skipped"
    ]
    only = tmp_path / "only.xdf"
    w = XdfWriter(only)
    a = w.add_stream(XdfStreamInfo("odd", "Mocap", 3, 100.0, "float32"))
    w.write_samples(a, np.zeros((10, 3), np.float32), np.arange(10) / 100.0)
    w.close()
    with pytest.raises(SourceError, match="nothing affectlab can replay.*'odd' has type 'Mocap'"):
        open_recording(only)


def test_replay_cli_writes_stats(demo_session, tmp_path):
    stats = tmp_path / "s.json"
    assert (
        replay_main(
            [
                str(demo_session),
                "--headless",
                "--quiet",
                "--to",
                "2",
                "--model",
                "hi-moe-sim",
                "--stats",
                str(stats),
            ]
        )
        == 0
    )
    got = json.loads(stats.read_text())
    assert got["replay"]["finished"] and got["replay"]["speed"] == "max"
    assert set(got["models"]) == {"hi-moe-sim"}
    assert got["models"]["hi-moe-sim"]["skipped"] == 0
    assert SinkConfig  # the predictions sink is the live one (imported for the reader)


class FrameDriver(Driver):
    """BGR and grey frames (frame k is seeded noise) and string markers, paced on the clock."""

    def __init__(self) -> None:
        super().__init__(
            "cam",
            [
                StreamSpec(
                    "cam-bgr",
                    Modality.FRAMES,
                    20.0,
                    dtype="uint8",
                    frame_shape=(32, 48, 3),
                    source="tests.frames",
                ),
                StreamSpec(
                    "cam-gray",
                    Modality.FRAMES,
                    10.0,
                    dtype="uint8",
                    frame_shape=(16, 24),
                    source="tests.frames",
                ),
                StreamSpec(
                    "cam-markers",
                    Modality.MARKERS,
                    0.0,
                    ("marker",),
                    dtype="object",
                    source="tests.frames",
                ),
            ],
        )
        self.rates = {"cam-bgr": 20.0, "cam-gray": 10.0, "cam-markers": 4.0}
        self.sent = dict.fromkeys(self.rates, 0)

    @staticmethod
    def frame(k: int) -> np.ndarray:
        return np.random.default_rng(k).integers(0, 256, (32, 48, 3), dtype=np.uint8)

    def _run(self) -> None:
        t0 = lsl_now()
        while not self.wait(0.01):
            for stream, rate in self.rates.items():
                k1 = int((lsl_now() - t0) * rate) + 1
                k = np.arange(self.sent[stream], k1)
                if not len(k):
                    continue
                if stream == "cam-bgr":
                    data = np.stack([self.frame(int(i)) for i in k])
                elif stream == "cam-gray":
                    data = np.stack([self.frame(int(i))[:16, :24, 2] for i in k])
                else:
                    data = np.array([[f"m{i}"] for i in k], dtype=object)
                self.push(stream, data, t0 + k / rate)
                self.sent[stream] = k1


def test_replays_video_frames_with_their_frame_times(tmp_path, capsys):
    from app.info import main as info_main
    from recordings.recorder import SessionRecorder

    driver = FrameDriver()
    folder = tmp_path / "video"
    recorder = SessionRecorder(folder, [driver], name="video")
    recorder.start()
    driver.start()
    try:
        wait_until(lambda: recorder.counts()["cam-bgr"] >= 30, timeout=30)
    finally:
        driver.stop()
    counts = recorder.stop()
    assert {p.name for p in folder.iterdir()} >= {"cam-bgr.mkv", "cam-gray.mkv", "streams.xdf"}
    rec = open_recording(folder)
    by = {t.spec.name: t for t in rec.tracks}
    assert by["cam-bgr"].count == counts["cam-bgr"] and by["cam-gray"].count == counts["cam-gray"]
    control = ReplayControl(rec, speed=None)
    session = _session(control)
    session.start()
    try:
        assert control.wait_finished(60)
        for name in ("cam-bgr", "cam-gray", "cam-markers"):
            ring = control.driver.rings[name]
            assert ring.head == counts[name], name
            got = ring.latest(ring.head)
            np.testing.assert_array_equal(got.ts, by[name].ts)
        bgr = control.driver.rings["cam-bgr"].latest(counts["cam-bgr"]).data
        gray = control.driver.rings["cam-gray"].latest(counts["cam-gray"]).data
        # FFV1 is lossless: frame i of the video is frame i the driver pushed
        first = 0
        for i in range(len(bgr)):
            np.testing.assert_array_equal(bgr[i], FrameDriver.frame(first + i))
        for i in range(len(gray)):
            np.testing.assert_array_equal(gray[i], FrameDriver.frame(i)[:16, :24, 2])
        marks = control.driver.rings["cam-markers"].latest(counts["cam-markers"]).data
        assert [r[0] for r in marks.tolist()] == [f"m{i}" for i in range(counts["cam-markers"])]
    finally:
        session.stop()
    assert info_main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "cam-bgr.mkv" in out and "m0" in out


def test_replay_refuses_an_existing_predictions_file_before_opening_anything(tmp_path, capsys):
    log = tmp_path / "p.csv"
    log.write_text("kept\n")
    args = [str(tmp_path / "not-opened.xdf"), "--headless", "--model", "none"]
    assert replay_main([*args, "--predictions", str(log)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and len(err.splitlines()) == 1
    assert log.read_text() == "kept\n"
    assert replay_main([*args, "--predictions", str(tmp_path / "p.txt")]) == 2
    assert "expected a file ending in" in capsys.readouterr().err


def test_a_model_whose_eeg_input_cannot_take_the_recorded_cap_is_left_out(tmp_path, capsys):
    """An XDF of skin conductance and an 8-channel cap with other labels than the demo
    model's: by default the replay used to pick hi-moe-sim (it can read the EDA) and then
    fail to bind its EEG input (exit 1); now it names the model it leaves out and why."""
    path = tmp_path / "cap.xdf"
    w = XdfWriter(path)
    labels = ["Fz", "Cz", "Pz", "C3", "C4", "P3", "P4", "Oz"]
    eeg = w.add_stream(
        XdfStreamInfo("cap", "EEG", 8, 128.0, "float32", channels=[{"label": c} for c in labels])
    )
    skin = w.add_stream(XdfStreamInfo("skin", "GSR", 1, 32.0, "float32"))
    w.write_samples(eeg, np.zeros((128 * 6, 8), np.float32), np.arange(128 * 6) / 128.0)
    w.write_samples(skin, np.ones((32 * 6, 1), np.float32), np.arange(32 * 6) / 32.0)
    w.close()
    assert replay_main([str(path), "--headless", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "not running hi-moe-sim: model 'hi-moe-sim' input 'eeg' needs channels" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--from", "10", "--to", "5"], "--to 5 must be after --from 10"),
        (["--headless", "--duration", "1", "--screenshot", "x.png"], "--screenshot"),
        (["--screenshot", "x.png"], "--screenshot"),
    ],
)
def test_replay_options_that_cannot_work_are_refused(tmp_path, capsys, options, problem):
    """A backwards span replayed silently; a screenshot that would never be taken was
    ignored."""
    with pytest.raises(SystemExit) as exit_:
        replay_main([str(tmp_path / "any.xdf"), *options])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err


def test_replay_refuses_what_it_cannot_do_in_one_line(demo_session, tmp_path, capsys):
    """A device that is not there or not a device, a statistics file it could not write:
    one line each (they were tracebacks, the last after the whole replay)."""
    code = replay_main([str(demo_session), "--headless", "--quiet", "--device", "tpu"])
    err = capsys.readouterr().err
    assert code == 1 and "device 'tpu': expected auto, cpu, cuda or cuda:N" in err
    assert "Traceback" not in err
    code = replay_main([str(demo_session), "--headless", "--stats", "/proc/no/s.json"])
    assert code == 2 and "--stats: cannot write in '/proc'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        replay_main([str(demo_session), "--speed", "nan"])
    assert exit_.value.code == 2 and "speed must be a number > 0" in capsys.readouterr().err


def test_a_session_missing_its_davis_file_replays_the_rest(demo_session, tmp_path, capsys):
    """Its streams are left out with a warning, as for an unreadable file (the whole
    session was refused)."""
    import shutil

    copy = tmp_path / "session"
    shutil.copytree(demo_session, copy)
    aedat = [p for p in copy.iterdir() if p.suffix == ".aedat4"]
    assert aedat
    for p in aedat:
        p.unlink()
    rec = open_recording(copy)
    assert {t.spec.modality for t in rec.tracks} >= {Modality.EEG, Modality.EDA}
    assert not any(t.spec.kind.name in ("EVENTS", "FRAMES") for t in rec.tracks)
    assert any("is missing; not replayed:" in p for p in rec.problems)
    out = tmp_path / "p.csv"
    assert replay_main([str(copy), "--headless", "--quiet", "--predictions", str(out)]) == 0
    assert "warning:" in capsys.readouterr().err
    assert out.stat().st_size > 0


def test_an_interrupt_while_the_replay_loads_its_models_ends_it_cleanly(
    demo_session, tmp_path, monkeypatch
):
    """Ctrl-C or SIGTERM while the models load (seconds, before anything is opened) ends a
    headless replay as it ends one later: exit 130, no traceback, no log left behind."""
    import app.replay

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # what the signal handler raises

    monkeypatch.setattr(app.replay, "make_replay_session", interrupted)
    log = tmp_path / "p.csv"
    code = replay_main([str(demo_session), "--headless", "--quiet", "--predictions", str(log)])
    assert code == 130 and not log.exists()
