"""The recorder with real components: every item that reached a ring is in the files.

A demo-like Session (virtual participant with its DAVIS events, both demo models)
is recorded and compared item by item with its rings; a counter driver checks
exact values, video frames and a start mid-session under load; real LSL outlets
(a counter in another process, string markers) go through the LSL driver; a
SIGKILL-ed recording still loads; folders that cannot take a session and a disk
that refuses mid-way give messages, not tracebacks, and keep what was written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import dv_processing as dv
import numpy as np
import pylsl
import pytest
import pyxdf
from collect import Collect
from waiting import wait_until

from core.clock import lsl_now
from core.streams import Modality, StreamSpec
from drivers.base import Driver
from drivers.session_inputs import MARKER_STREAM, SELF_REPORT_STREAM
from recordings.aedat import lsl_to_unix_us
from recordings.errors import RecordingError
from recordings.manifest import read_manifest
from recordings.recorder import SessionRecorder
from recordings.sources import open_recording

ROOT = Path(__file__).resolve().parents[1]


def load_xdf(path: Path) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False)
    return {s["info"]["name"][0]: s for s in streams}


def read_aedat(path: Path) -> dict[str, list]:
    """Every event batch, frame, IMU and trigger of an AEDAT4 file, read stream by stream."""
    rec = dv.io.MonoCameraRecording(str(path))
    out: dict[str, list] = {"events": [], "frames": []}
    if rec.isEventStreamAvailable():
        while (batch := rec.getNextEventBatch()) is not None:
            out["events"].append(batch.numpy())
    if rec.isFrameStreamAvailable():
        while (frame := rec.getNextFrame()) is not None:
            out["frames"].append((frame.timestamp, np.array(frame.image)))
    return out


# ------------------------------------------------------------------ a counter source
class CounterDriver(Driver):
    """Counter signals on three kinds of stream, paced on the one clock: 32-channel numeric
    (sample k, channel c holds 32 k + c), BGR and grey frames (frame k is seeded noise
    ``frame(k)``, or a crop of its green plane) and string markers ("m<k>")."""

    def __init__(self, rate: float = 2000.0, fps: float = 30.0, marker_rate: float = 10.0):
        specs = [
            StreamSpec(
                "ctr-numeric",
                Modality.EEG,
                rate,
                tuple(f"c{i}" for i in range(32)),
                ("uV",) * 32,
                "float32",
                source="tests.counter",
            ),
            StreamSpec(
                "ctr-frames",
                Modality.FRAMES,
                fps,
                dtype="uint8",
                frame_shape=(48, 64, 3),
                source="tests.counter",
            ),
            StreamSpec(
                "ctr-markers",
                Modality.MARKERS,
                0.0,
                ("marker",),
                dtype="object",
                source="tests.counter",
            ),
            StreamSpec(
                "ctr-gray",
                Modality.FRAMES,
                10.0,
                dtype="uint8",
                frame_shape=(24, 32),
                source="tests.counter",
            ),
        ]
        super().__init__("counter", specs)
        self.rates = {
            "ctr-numeric": rate,
            "ctr-frames": fps,
            "ctr-markers": marker_rate,
            "ctr-gray": 10.0,
        }
        self.sent = dict.fromkeys(self.rates, 0)

    @staticmethod
    def frame(k: int) -> np.ndarray:
        return np.random.default_rng(k).integers(0, 256, (48, 64, 3), dtype=np.uint8)

    def _run(self) -> None:
        t0 = lsl_now()
        while not self.wait(0.01):
            elapsed = lsl_now() - t0
            for stream, rate in self.rates.items():
                k0 = self.sent[stream]
                k1 = int(elapsed * rate) + 1
                if k1 <= k0:
                    continue
                k = np.arange(k0, k1)
                ts = t0 + k / rate
                if stream == "ctr-numeric":
                    data = (k[:, None] * 32 + np.arange(32)).astype(np.float32)
                elif stream == "ctr-frames":
                    data = np.stack([self.frame(int(i)) for i in k])
                elif stream == "ctr-gray":
                    data = np.stack([self.frame(int(i))[:24, :32, 1] for i in k])
                else:
                    data = np.array([[f"m{i}"] for i in k], dtype=object)
                self.push(stream, data, ts)
                self.sent[stream] = k1


def test_a_cameras_unix_stamps_replay_as_the_live_ones_bit_for_bit():
    """A DAVIS stamps in whole Unix microseconds: live, they go onto the one clock through
    the measured offset; recorded, back to Unix microseconds through the recording's own;
    replayed, onto the one clock again. The live offset is taken to the whole microsecond
    (it was fractional: every replayed stamp came back 0.1-0.5 us early, and events at a
    slice's edge changed slice)."""
    from core.clock import UnixClockMapper, unix_us_to_lsl
    from drivers.dv_data import UnixTime

    mapper = UnixClockMapper()
    live = UnixTime(mapper)
    t_us = int(time.time() * 1e6) + np.cumsum(np.random.default_rng(0).integers(0, 400, 5000))
    stamps = live.to_lsl(t_us)
    recording_offset = round(mapper.offset * 1e6) + 7  # the recorder measured at another moment
    replayed = unix_us_to_lsl(lsl_to_unix_us(stamps, recording_offset), recording_offset)
    np.testing.assert_array_equal(replayed, stamps)
    assert abs(stamps[0] - (t_us[0] * 1e-6 - mapper.offset)) < 1e-6


def test_counter_streams_started_mid_run_are_recorded_whole_with_video(tmp_path):
    driver = CounterDriver()
    driver.start()
    folder = tmp_path / "session"
    try:
        assert wait_until(lambda: driver.rings["ctr-numeric"].head > 1000)
        rec = SessionRecorder(folder, [driver], name="counter")
        rec.start()
        assert wait_until(lambda: rec.counts()["ctr-numeric"] > 6000, 30)
    finally:
        driver.stop()
    counts = rec.stop()
    starts = rec.ring_starts()
    assert starts["ctr-numeric"] > 1000  # recording began mid-run, at the ring's head
    for name, ring in driver.rings.items():
        assert counts[name] == ring.head - starts[name] > 0, name
    assert rec.lost() == dict.fromkeys(driver.rings, 0)
    assert rec.error is None

    got = load_xdf(folder / "streams.xdf")
    num = got["ctr-numeric"]
    k = np.arange(starts["ctr-numeric"], driver.rings["ctr-numeric"].head)
    np.testing.assert_array_equal(
        num["time_series"], (k[:, None] * 32 + np.arange(32)).astype(np.float32)
    )
    ring = driver.rings["ctr-numeric"].copy_span(k[0], k[-1] + 1)
    np.testing.assert_array_equal(num["time_stamps"], ring.ts)
    info = num["info"]
    assert info["nominal_srate"] == ["2000.0"] and info["type"] == ["EEG"]
    assert info["source_id"] == ["tests.counter/ctr-numeric"]
    chans = info["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == [f"c{i}" for i in range(32)]
    assert {c["unit"][0] for c in chans} == {"uV"}
    markers = got["ctr-markers"]
    assert markers["info"]["channel_format"] == ["string"]
    m0 = starts["ctr-markers"]
    assert markers["time_series"] == [[f"m{i}"] for i in range(m0, m0 + counts["ctr-markers"])]

    # frames: lossless video, frame i stamped by sample i of <stream>-frame-times
    times = got["ctr-frames-frame-times"]
    n = counts["ctr-frames"]
    np.testing.assert_array_equal(np.asarray(times["time_series"])[:, 0], np.arange(n))
    f0 = starts["ctr-frames"]
    np.testing.assert_array_equal(
        times["time_stamps"], driver.rings["ctr-frames"].copy_span(f0, f0 + n).ts
    )
    cap = cv2.VideoCapture(str(folder / "ctr-frames.mkv"))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == n
    for i in (0, n // 2, n - 1):
        np.testing.assert_array_equal(frames[i], CounterDriver.frame(f0 + i))
    gray = cv2.VideoCapture(str(folder / "ctr-gray.mkv"))
    g0, got_gray = starts["ctr-gray"], []
    while (frame := gray.read())[0]:
        got_gray.append(frame[1])
    assert len(got_gray) == counts["ctr-gray"] > 0
    for i, img in enumerate(got_gray):  # grey comes back as three equal planes
        np.testing.assert_array_equal(img[:, :, 0], CounterDriver.frame(g0 + i)[:24, :32, 1])

    m = read_manifest(folder)
    entries = {s["name"]: s for s in m["streams"]}
    assert entries["ctr-frames"]["file"] == "ctr-frames.mkv"
    assert entries["ctr-frames"]["codec"] == "FFV1" and entries["ctr-frames"]["lossless"] is True
    assert entries["ctr-frames"]["xdf_stream_id"] == times["info"]["stream_id"]
    assert entries["ctr-markers"]["kind"] == "markers"
    assert entries["ctr-numeric"]["count"] == counts["ctr-numeric"]
    assert m["stop_lsl"] > m["start_lsl"]
    assert m["files"]["streams.xdf"]["bytes"] == (folder / "streams.xdf").stat().st_size


# ------------------------------------------------------------------ the demo session
DEMO_CONFIG = """
[session]
name = "recorded-demo"
health_period = 60.0

[[sources]]
kind = "simulated"
name = "virtual-participant"
seed = 3

[[models]]
name = "hi-moe-sim"
device = "cpu"

[[models]]
name = "mco-e-net-lite-sim"
device = "cpu"
"""


def test_a_demo_session_is_recorded_item_for_item(tmp_path):
    from app.config import load_config
    from app.session import Session

    cfg_path = tmp_path / "demo.toml"
    cfg_path.write_text(DEMO_CONFIG)
    session = Session(load_config(cfg_path))
    collect = Collect()
    session.bus.add(collect)
    folder = tmp_path / "rec"
    session.start_recording(folder)
    assert session.recording is not None and session.recording.folder == folder
    session.start()
    try:
        session.add_marker("stimulus-1")
        session.add_self_report(2.5, 7.0)
        assert wait_until(lambda: len(collect.predictions) >= 6, 60)
        session.add_marker("end é")
        time.sleep(0.3)
    finally:
        recorder = session.recording
        session.stop()  # stops the recording after the sources and models
    assert session.recording is None
    counts = recorder.counts()
    assert recorder.error is None
    assert all(v == 0 for v in recorder.lost().values())
    for name, src in session.sources.items():
        assert counts[name] == src.ring.head > 0 or name == SELF_REPORT_STREAM, name

    got = load_xdf(folder / "streams.xdf")
    for name in ("sim-eeg", "sim-ecg", "sim-eda", "sim-ppg", "sim-resp", "sim-temp"):
        ring = session.sources[name].ring
        chunk = ring.copy_span(0, ring.head)
        np.testing.assert_array_equal(got[name]["time_series"], chunk.data)
        np.testing.assert_array_equal(got[name]["time_stamps"], chunk.ts)
    assert got[MARKER_STREAM]["time_series"] == [["stimulus-1"], ["end é"]]
    assert got[MARKER_STREAM]["info"]["type"] == ["Markers"]
    np.testing.assert_array_equal(got[SELF_REPORT_STREAM]["time_series"], [[2.5, 7.0]])
    labels = [
        c["label"][0] for c in got[SELF_REPORT_STREAM]["info"]["desc"][0]["channels"][0]["channel"]
    ]
    assert labels == ["valence", "arousal"]

    # predictions: one stream per model, every one the bus carried, same values and stamps
    for runner in session.runners:
        mine = [p for p in collect.predictions if p.model == runner.name]
        stream = got[f"affectlab-predictions-{runner.name}"]
        assert stream["info"]["type"] == ["Emotion"]
        np.testing.assert_array_equal(stream["time_stamps"], [p.t_end for p in mine])
        # an output a prediction lacks (no eye in view: no expression) is NaN
        expect = [[p.flat().get(c, np.nan) for c in runner.outputs] for p in mine]
        np.testing.assert_array_equal(stream["time_series"], np.array(expect, np.float64))

    # the event camera: events and APS frames in davis.aedat4, stamps in Unix microseconds
    m = read_manifest(folder)
    offset_us = m["clock"]["unix_minus_lsl_us"]
    aedat = read_aedat(folder / "davis.aedat4")
    ev_ring = session.sources["sim-davis-events"].ring
    ev = ev_ring.copy_span(0, ev_ring.head)
    written = np.concatenate(aedat["events"])
    assert len(written) == ev_ring.head
    for field in ("x", "y"):
        np.testing.assert_array_equal(written[field], ev.data[field])
    np.testing.assert_array_equal(written["polarity"], ev.data["polarity"] > 0)
    np.testing.assert_array_equal(written["timestamp"], lsl_to_unix_us(ev.ts, offset_us))
    fr_ring = session.sources["sim-davis-frames"].ring
    fr = fr_ring.copy_span(0, fr_ring.head)
    assert len(aedat["frames"]) == fr_ring.head
    for (t_us, img), want, t in zip(aedat["frames"], fr.data, fr.ts, strict=True):
        np.testing.assert_array_equal(img, want)
        assert t_us == lsl_to_unix_us(np.array([t]), offset_us)[0]

    assert m["format"] == "affectlab-session" and m["version"] == 1
    assert m["name"] == "recorded-demo" and m["stop_lsl"] > m["start_lsl"]
    assert abs(m["clock"]["unix_minus_lsl"] - (time.time() - lsl_now())) < 1.0
    assert {e["name"] for e in m["models"]} == {"hi-moe-sim", "mco-e-net-lite-sim"}
    assert all(len(e["sha256"]) == 64 and e["family"] for e in m["models"])
    assert m["config"]["session"]["name"] == "recorded-demo"
    assert "dv-processing" in m["software"] and "numpy" in m["software"]
    entries = {s["name"]: s for s in m["streams"]}
    assert entries["sim-davis-events"]["file"] == "davis.aedat4"
    assert entries["sim-davis-events"]["xdf_stream_id"] is None
    assert entries["sim-davis-events"]["kind"] == "events"
    assert entries["sim-eeg"]["xdf_stream_id"] == got["sim-eeg"]["info"]["stream_id"]
    assert entries["sim-eeg"]["channels"] and entries["sim-eeg"]["units"]
    assert entries[MARKER_STREAM]["count"] == 2
    assert entries["affectlab-predictions-hi-moe-sim"]["modality"] == "PREDICTIONS"
    assert set(m["files"]) == {"streams.xdf", "davis.aedat4"}


def test_a_davis_file_with_imu_and_triggers_is_recorded_into_aedat4(tmp_path):
    """The real DAVIS driver playing an AEDAT4 file (events, APS frames, IMU, triggers) fast:
    what it put in its rings comes back out of the recorded davis.aedat4."""
    from test_davis_driver import T0, write_aedat4

    from drivers.davis import DavisDriver

    ref = write_aedat4(tmp_path / "in.aedat4")
    driver = DavisDriver(
        "file", file=tmp_path / "in.aedat4", playback="fast", timestamps="recorded"
    )
    rec = SessionRecorder(tmp_path / "rec", [driver], name="davis-file")
    rec.start()
    driver.start()
    try:
        assert wait_until(lambda: driver.finished, 30)
    finally:
        driver.stop()
    counts = rec.stop()
    assert counts == {name: ring.head for name, ring in driver.rings.items()}
    m = read_manifest(tmp_path / "rec")
    assert {s["file"] for s in m["streams"]} == {"davis.aedat4"}
    assert {s["aedat_stream"] for s in m["streams"]} == {"events", "frames", "imu", "triggers"}

    out = dv.io.MonoCameraRecording(str(tmp_path / "rec" / "davis.aedat4"))
    assert out.getCameraName() == "DAVIS346_test"
    events = []
    while (batch := out.getNextEventBatch()) is not None:
        events.append(batch.numpy())
    ev = np.concatenate(events)
    np.testing.assert_array_equal(ev["x"], ref["x"])
    np.testing.assert_array_equal(ev["polarity"], ref["p"])
    # Unix microseconds -> one clock -> Unix microseconds: the same distances, to the microsecond
    np.testing.assert_array_equal(ev["timestamp"] - ev["timestamp"][0], ref["t"] - ref["t"][0])
    assert abs(int(ev["timestamp"][0]) - int(ref["t"][0])) < 100
    frames = []
    while (frame := out.getNextFrame()) is not None:
        frames.append(frame)
    assert len(frames) == len(ref["frames"])
    for got_frame, (ft, img) in zip(frames, ref["frames"], strict=True):
        np.testing.assert_array_equal(got_frame.image, img)
        assert abs(got_frame.timestamp - ft) < 100
    imu = []
    while (batch := out.getNextImuBatch()) is not None:
        imu.extend(batch)
    assert [round(i.accelerometerX, 5) for i in imu] == [round(a, 5) for _, a, _ in ref["imu"]]
    assert [i.gyroscopeX for i in imu] == [float(g) for _, _, g in ref["imu"]]
    triggers = []
    while (batch := out.getNextTriggerBatch()) is not None:
        triggers.extend(batch)
    assert [t.type for t in triggers] == [dv.TriggerType.EXTERNAL_GENERATOR_RISING_EDGE] * len(
        ref["triggers"]
    )
    assert [t.timestamp - T0 for t in triggers] == pytest.approx(
        [t - T0 for t in ref["triggers"]], abs=100
    )


# ------------------------------------------------------------------ LSL sources
def test_an_lsl_counter_and_lsl_string_markers_are_recorded_in_order(tmp_path):
    from test_lsl_driver import _kill, _local_outlet, _outlet, _tag

    from drivers.lsl import LslDriver, LslQuery

    tag = _tag()
    proc = _outlet(f"rec-counter-{tag}", f"sid-{tag}")
    markers = _local_outlet(f"rec-markers-{tag}", "Markers", pylsl.IRREGULAR_RATE, "string", 1)
    try:
        counter = LslDriver(LslQuery(name=f"rec-counter-{tag}"), dejitter=False, resolve_timeout=10)
        marker_driver = LslDriver(LslQuery(name=f"rec-markers-{tag}"), resolve_timeout=10)
        rec = SessionRecorder(tmp_path / "lsl", [counter, marker_driver], name="lsl")
        rec.start()
        counter.start()
        marker_driver.start()
        try:
            assert wait_until(lambda: markers.have_consumers(), 10)
            sent = [f"trial/{i}/ü" for i in range(25)]
            for s in sent:
                markers.push_sample([s])
                time.sleep(0.01)
            assert wait_until(lambda: counter.rings[counter.stream].head >= 1500, 30)
            assert wait_until(lambda: marker_driver.rings[marker_driver.stream].head >= len(sent))
        finally:
            counter.stop()
            marker_driver.stop()
        counts = rec.stop()
    finally:
        _kill(proc)
    assert rec.lost() == {counter.stream: 0, marker_driver.stream: 0}
    assert counts[counter.stream] == counter.rings[counter.stream].head
    got = load_xdf(tmp_path / "lsl" / "streams.xdf")
    values = np.asarray(got[counter.stream]["time_series"])
    assert len(values) == counts[counter.stream]
    assert np.all(np.diff(values[:, 0]) == 1), "every counter value once, in order"
    assert got[counter.stream]["info"]["channel_format"] == ["double64"]
    assert got[marker_driver.stream]["time_series"] == [[s] for s in sent]
    assert got[marker_driver.stream]["info"]["type"] == ["Markers"]


# ------------------------------------------------------------------ crashes and bad disks
#: records until killed: the virtual participant (physiology + DAVIS events), or with a
#: second argument that video file played in a loop as a webcam
RECORD_UNTIL_KILLED = textwrap.dedent(
    """
    import sys, time
    from drivers.simulated.drivers import VirtualSession
    from drivers.webcam import WebcamDriver
    from recordings.recorder import SessionRecorder
    if len(sys.argv) > 2:
        source = WebcamDriver(file=sys.argv[2], loop=True, gray=False)
        drivers = [source]
    else:
        source = VirtualSession(seed=1)
        drivers = source.drivers
    rec = SessionRecorder(sys.argv[1], drivers, name="killed")
    rec.start()
    source.start()
    print("recording", flush=True)
    while True:
        time.sleep(1)
    """
)


def test_a_recording_killed_with_sigkill_loads_up_to_its_last_flush(tmp_path):
    folder = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD_UNTIL_KILLED, str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "recording"
        xdf = folder / "streams.xdf"
        assert wait_until(lambda: xdf.stat().st_size > 20_000, 30)
        time.sleep(0.7)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    got = load_xdf(folder / "streams.xdf")
    assert "footer" not in got["sim-eeg"]  # cut off before the footers
    for name in ("sim-eeg", "sim-ecg", "sim-eda", "sim-ppg", "sim-resp"):
        ts = got[name]["time_stamps"]
        rate = float(got[name]["info"]["nominal_srate"][0])
        assert len(ts) > 0, name
        # whole chunks only: a regular series with no hole and no garbage sample
        np.testing.assert_allclose(np.diff(ts), 1.0 / rate, rtol=1e-6)
        assert np.all(np.isfinite(got[name]["time_series"]))
    # dv-processing opens an AEDAT4 file that was never closed (no index) and reads its events
    n_events = sum(len(b) for b in read_aedat(folder / "davis.aedat4")["events"])
    assert n_events > 0
    m = read_manifest(folder)
    assert m["stop_lsl"] is None and m["start_lsl"] is not None
    assert {s["name"] for s in m["streams"]} >= {"sim-eeg", "sim-davis-events"}
    # and the replay reads them by time from it, every one
    events = next(t for t in open_recording(folder).tracks if t.spec.name == "sim-davis-events")
    assert events.count == len(events.span(0, events.count)[0]) == n_events


@pytest.fixture(scope="module")
def killed_webcam(tmp_path_factory) -> Path:
    """A webcam (a 30-frame clip in a loop) recorded until SIGKILL: its .mkv is unfinalised."""
    from test_webcam_driver import _indexed_frames, _write_video

    tmp = tmp_path_factory.mktemp("webcam")
    clip = _write_video(tmp / "clip.mkv", _indexed_frames(30))
    folder = tmp / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD_UNTIL_KILLED, str(folder), str(clip)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "recording"
        xdf = folder / "streams.xdf"
        assert wait_until(lambda: xdf.exists() and xdf.stat().st_size > 2_000, 30)
        time.sleep(1.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    return folder


def test_a_webcam_recording_killed_with_sigkill_replays_its_frames(killed_webcam):
    from test_webcam_driver import _index

    # the .mkv was cut mid-write; every frame it holds decodes, lossless, under its stamp
    [video] = open_recording(killed_webcam).tracks
    assert video.count >= 20
    frames = video.read(0, video.count)
    # the encoder's last frames may not have reached the file when it was killed (on a
    # busy machine their stamps can reach the XDF first): those read as black, at the end
    black = np.array([not f.any() for f in frames])
    tail = len(black) - int(np.argmin(black[::-1])) if black.any() else len(black)
    assert not black[:tail].any() and len(black) - tail <= 5, black.tolist()
    frames, ts = frames[:tail], video.ts[:tail]
    shown = np.array([_index(f) for f in frames])
    # each frame is the clip's next one, or, where the driver fell behind a busy machine
    # and skipped frames, the one its stamp says
    steps = np.diff(shown) % 30
    timed = np.rint(np.diff(ts) * 30) % 30
    assert np.all(steps >= 1), shown.tolist()
    assert np.all(np.abs(steps - timed) <= 1), (shown.tolist(), timed.tolist())
    assert np.mean(steps == 1) > 0.5


def test_frames_read_at_a_position_of_a_killed_webcam_recording_are_the_frames_there(
    killed_webcam,
):
    """OpenCV cannot seek in an unfinalised .mkv (it clamps to frame 0 and reads on from
    wherever it was): a seek, --from or a replay restart showed other frames, silently."""
    from test_webcam_driver import _index

    [video] = open_recording(killed_webcam).tracks
    n = video.count
    truth = [_index(f) for f in video.read(0, n)]
    video.close()
    # forwards, backwards, the same again, back to 0, the last one, a span after a seek
    for i in (2 * n // 3, 5, 5, n // 2, 0, n - 1, 3):
        assert _index(video.read(i, i + 1)[0]) == truth[i], i
    assert [_index(f) for f in video.read(n // 3, n // 3 + 8)] == truth[n // 3 : n // 3 + 8]


def test_a_finalised_video_is_read_at_a_position_by_seeking(tmp_path):
    from test_webcam_driver import _index, _indexed_frames, _write_video

    from recordings.tracks import VideoTrack

    clip = _write_video(tmp_path / "clip.mkv", _indexed_frames(60))
    spec = StreamSpec("cam", Modality.FRAMES, 30.0, dtype="uint8", frame_shape=(72, 96, 3))
    video = VideoTrack(spec, np.arange(60) / 30.0, clip)
    for i in (40, 5, 5, 33, 0, 59, 3):
        assert _index(video.read(i, i + 1)[0]) == i, i
    assert video._seekable  # OpenCV's seeks landed: nothing was decoded forward
    assert not video.read(70, 71).any()  # past its end: black, as for a video cut short


def test_folders_that_cannot_take_a_session_are_refused_before_anything_starts(tmp_path):
    driver = CounterDriver()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("earlier session")
    with pytest.raises(RecordingError, match="not empty"):
        SessionRecorder(busy, [driver]).start()
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]  # nothing written
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(RecordingError, match="it is a file"):
        SessionRecorder(afile, [driver]).start()
    with pytest.raises(RecordingError, match="cannot create the session folder .*a-file/sub"):
        SessionRecorder(afile / "sub", [driver]).start()
    with pytest.raises(RecordingError, match="cannot create the session folder /proc/"):
        SessionRecorder(Path("/proc/affectlab-no/rec"), [driver]).start()
    empty = tmp_path / "empty"
    empty.mkdir()
    rec = SessionRecorder(empty, [driver])
    rec.start()  # an existing empty folder is fine
    rec.stop()
    assert (empty / "manifest.json").exists()


#: records under a file size limit (SIGXFSZ ignored, so writes fail with EFBIG); the
#: sources keep running after the recording stopped itself; prints what happened as JSON
RECORD_UNDER_SIZE_LIMIT = textwrap.dedent(
    """
    import json, resource, signal, sys, time
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit, reserve, camera = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "camera"
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from drivers.simulated.drivers import VirtualSession
    from recordings.recorder import SessionRecorder
    vs = VirtualSession(seed=2, physiology=None if camera else ["eeg", "ecg", "ppg"], camera=camera,
                        eeg_rate=256)
    rec = SessionRecorder(sys.argv[1], vs.drivers, name="full", reserve_bytes=reserve)
    rec.start()
    vs.start()
    end = time.monotonic() + 40
    while rec.error is None and time.monotonic() < end:
        time.sleep(0.05)
    heads = {n: r.head for d in vs.drivers for n, r in d.rings.items()}
    time.sleep(0.5)
    alive = all(d.running for d in vs.drivers)
    grew = all(r.head > heads[n] for d in vs.drivers for n, r in d.rings.items())
    vs.stop()
    print(json.dumps({"error": rec.error, "counts": rec.stop(), "alive": alive, "grew": grew,
                      "running": rec.running}))
    """
)


def _record_under_limit(folder: Path, limit: int, reserve: int, camera: bool) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RECORD_UNDER_SIZE_LIMIT,
            str(folder),
            str(limit),
            str(reserve),
            "camera" if camera else "physiology",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_full_disk_stops_the_recording_keeps_the_session_and_what_was_written(tmp_path):
    folder = tmp_path / "full"
    report = _record_under_limit(folder, limit=40_000, reserve=0, camera=False)
    assert report["error"] is not None and "File too large" in report["error"]
    assert "streams.xdf" in report["error"]
    assert report["alive"] and report["grew"] and not report["running"]
    xdf = folder / "streams.xdf"
    assert xdf.stat().st_size <= 40_000
    got = load_xdf(xdf)  # what was written stays readable: every chunk whole
    for name in ("sim-eeg", "sim-ecg", "sim-ppg"):
        ts = got[name]["time_stamps"]
        assert len(ts) == report["counts"][name] > 0
        rate = float(got[name]["info"]["nominal_srate"][0])
        np.testing.assert_allclose(np.diff(ts), 1.0 / rate, rtol=1e-6)
    m = read_manifest(folder)
    assert "File too large" in m["error"] and m["stop_lsl"] is None


def test_a_nearly_full_disk_stops_an_event_recording_before_dv_processing_would_abort(tmp_path):
    """dv-processing's writer thread aborts the process on a failed write (std::terminate,
    measured with 2.0.4), so the recorder stops while the files can still be closed."""
    folder = tmp_path / "camera"
    report = _record_under_limit(folder, limit=12_000_000, reserve=6_000_000, camera=True)
    assert report["error"] is not None and "size limit" in report["error"]
    assert report["alive"] and report["grew"]
    aedat = read_aedat(folder / "davis.aedat4")  # closed properly: dv opens it
    assert sum(len(b) for b in aedat["events"]) == report["counts"]["sim-davis-events"] > 0
    assert len(aedat["frames"]) == report["counts"]["sim-davis-frames"] > 0


#: records random DAVIS events at 1 M/s under a file size limit until the recorder stops
#: itself; prints the AEDAT4 file's size then, as JSON
RECORD_EVENTS_UNDER_SIZE_LIMIT = textwrap.dedent(
    """
    import json, resource, signal, sys, time
    import numpy as np
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit, reserve = int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from core.clock import lsl_now
    from core.ring import Ring
    from core.streams import EVENT_DTYPE, Modality, StreamSpec
    from drivers.base import Driver
    from recordings.recorder import SessionRecorder

    class Camera(Driver):
        def __init__(self):
            spec = StreamSpec("davis-events", Modality.EVENTS, 0.0, dtype=str(EVENT_DTYPE),
                              frame_shape=(260, 346))
            super().__init__("davis", [spec])
        def _make_ring(self, spec, seconds):
            return Ring(2_000_000, (), EVENT_DTYPE)
        def _run(self):
            pass

    cam = Camera()
    rec = SessionRecorder(sys.argv[1], [cam], name="events", reserve_bytes=reserve)
    rec.start()
    rng = np.random.default_rng(0)
    n, t0, pushed = 100_000, lsl_now(), 0
    while rec.error is None and pushed < 8_000_000:
        ev = np.zeros(n, EVENT_DTYPE)
        ev["x"], ev["y"] = rng.integers(0, 346, n), rng.integers(0, 260, n)
        ev["polarity"] = rng.integers(0, 2, n)
        cam.push("davis-events", ev, t0 + pushed * 1e-6 + np.sort(rng.uniform(0, 0.1, n)))
        pushed += n
        time.sleep(0.1)
    size = (rec.folder / "davis.aedat4").stat().st_size
    print(json.dumps({"error": rec.error, "counts": rec.stop(), "size": size}))
    """
)


def test_a_long_event_recording_fills_the_disk_up_to_the_reserve(tmp_path):
    """dv compresses with LZ4 (about 8 of 13 bytes an event stay): the savings are not
    counted as bytes still queued in its writer thread, which stopped a recording with
    a third of its room unused (1.5 GB an hour at 100 k events/s)."""
    folder = tmp_path / "events"
    limit, reserve = 24_000_000, 4_000_000
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RECORD_EVENTS_UNDER_SIZE_LIMIT,
            str(folder),
            str(limit),
            str(reserve),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["error"] is not None and "size limit" in report["error"]
    room = limit - reserve
    # it stopped once the file filled its room (give or take the pass written after the
    # last check, which the reserve is for), not at 13 bytes an event (0.6 of the room)
    assert 0.9 * room <= report["size"] < limit, (report["size"], room)
    events = read_aedat(folder / "davis.aedat4")["events"]  # closed properly: dv opens it
    assert sum(len(b) for b in events) == report["counts"]["davis-events"] > 0


# ------------------------------------------------------------------ session inputs, CLI
def test_markers_and_self_reports_are_checked_and_stamped_when_asked(tmp_path):
    from drivers.session_inputs import SessionInputs

    inputs = SessionInputs(lsl_now)
    with pytest.raises(ValueError, match="valence must be a number from 1 to 9"):
        inputs.add_self_report(0.5, 5)
    with pytest.raises(ValueError, match="non-empty label"):
        inputs.add_marker("  ")
    t_before = lsl_now()
    t = inputs.add_marker("queued before start")
    inputs.start()
    try:
        inputs.add_self_report(9, 1)
        assert wait_until(lambda: inputs.rings[SELF_REPORT_STREAM].head == 1)
    finally:
        inputs.stop()
    ring = inputs.rings[MARKER_STREAM]
    chunk = ring.copy_span(0, ring.head)
    assert chunk.data.tolist() == [["queued before start"]] and chunk.ts[0] == t >= t_before


def test_cli_record_writes_a_session_and_refuses_a_used_folder(tmp_path, capsys):
    from app.cli import main

    folder = tmp_path / "cli-session"
    args = ["demo", "--headless", "--duration", "3", "--quiet", "--no-lsl", "--record", str(folder)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"recording to {folder}" in err
    assert f"recorded {folder}: sim-eeg " in err
    m = read_manifest(folder)
    counts = {s["name"]: s["count"] for s in m["streams"]}
    assert counts["sim-eeg"] > 128 and counts["sim-davis-events"] > 0
    assert counts["affectlab-predictions-hi-moe-sim"] > 0
    assert len(load_xdf(folder / "streams.xdf")["sim-eeg"]["time_stamps"]) == counts["sim-eeg"]
    assert main(args) == 2  # refused before anything starts, as a config mistake is
    assert "not empty" in capsys.readouterr().err
