"""WebcamDriver with video files written by cv2.VideoWriter (FFV1, lossless) standing in for a
webcam, the eye region on a drawn face moving in a video, and the missing-camera message."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_eye_region import draw_face
from waiting import wait_until

from core.clock import lsl_now
from core.streams import Modality
from drivers.base import DriverError, OptionError
from drivers.eye_region import RegionStatus
from drivers.webcam import WebcamDriver, from_config

FPS = 30.0


def _indexed_frames(n: int, size=(96, 72)) -> list[np.ndarray]:
    """BGR frames whose top-left block says their index (value 4 * i); the rest is texture."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        f = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        f[:16, :16] = 4 * i
        frames.append(f)
    return frames


def _write_video(path: Path, frames: list[np.ndarray], fps: float = FPS) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h), True)
    assert writer.isOpened()
    for f in frames:
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def _index(frame: np.ndarray) -> int:
    return int(round(float(frame[:16, :16].mean()) / 4))


def _run_to_end(d: WebcamDriver, timeout: float = 30.0) -> None:
    d.start()
    try:
        assert wait_until(lambda: not d.running, timeout), "the video did not end"
    finally:
        d.stop()
    assert d.error is None


def test_video_file_plays_as_a_webcam(tmp_path):
    frames = _indexed_frames(45)
    d = WebcamDriver(file=_write_video(tmp_path / "clip.mkv", frames), gray=False)
    spec = d.specs[0]
    assert spec.name == "webcam-frames" and spec.modality is Modality.FRAMES
    assert spec.frame_shape == (72, 96, 3) and spec.nominal_rate == FPS
    assert d.frame_count == 45
    started = lsl_now()
    _run_to_end(d)
    h = d.health()["webcam-frames"]
    # every frame arrives, or is counted as dropped when the machine was too busy
    assert h.received + h.lost == 45 and h.received >= 30
    assert not h.connected and "end of video file" in h.message
    chunk = d.rings["webcam-frames"].latest(45)
    idx = [_index(f) for f in chunk.data]
    assert idx == sorted(set(idx)) and idx[0] == 0
    for i, f in zip(idx, chunk.data, strict=True):
        np.testing.assert_array_equal(f, frames[i])  # lossless: exactly what was written
    # host stamps at grab, paced at the file's rate
    assert chunk.ts[0] >= started and np.all(np.diff(chunk.ts) > 0)
    per_frame = np.diff(chunk.ts) / np.diff(idx)
    assert np.median(per_frame) == pytest.approx(1 / FPS, rel=0.2)


def test_gray_resized_frames(tmp_path):
    frames = _indexed_frames(12)
    d = WebcamDriver(file=_write_video(tmp_path / "clip.mkv", frames, fps=60), size=(48, 36))
    assert d.specs[0].frame_shape == (36, 48) and d.fps == 60
    _run_to_end(d)
    chunk = d.rings["webcam-frames"].latest(12)
    assert len(chunk) + d.lost_frames == 12
    for f in chunk.data:
        i = int(round(float(f[:6, :6].mean()) / 4))  # the 16 x 16 index block is 8 x 6 now
        bgr = cv2.resize(frames[i], (48, 36), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(f, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def test_frames_skipped_past_the_end_of_a_file_count_as_lost(tmp_path):
    """A driver that falls behind just before the end of a file (a slow first face
    detection on a busy machine) skips past the end: those frames are lost too, so
    received + lost is still the file's length."""
    import time

    class SlowOnce(WebcamDriver):
        def publish_frame(self, frame, ts):
            super().publish_frame(frame, ts)
            if self.rings[self.frame_stream].head == 3:
                time.sleep(0.5)  # 15 frames at 30 fps: past the 7 left

    d = SlowOnce(file=_write_video(tmp_path / "clip.mkv", _indexed_frames(10)))
    _run_to_end(d)
    h = d.health()["webcam-frames"]
    assert h.received == 3 and h.lost == 7 and d.lost_frames == 7


def test_looping_file_keeps_playing(tmp_path):
    frames = _indexed_frames(10)
    d = WebcamDriver(file=_write_video(tmp_path / "clip.mkv", frames, fps=50), loop=True)
    d.start()
    try:
        assert wait_until(lambda: d.rings["webcam-frames"].head >= 25)
        assert d.running and d.health()["webcam-frames"].connected
    finally:
        d.stop()
    assert not d.running and d.error is None
    chunk = d.rings["webcam-frames"].latest(25)
    idx = [int(round(float(f[:16, :16].mean()) / 4)) for f in chunk.data]
    assert idx.count(0) >= 2 and max(idx) == 9  # it went round at least twice
    assert np.all(np.diff(chunk.ts) > 0)


def _face_video(path: Path, n: int) -> tuple[Path, list[tuple[int, int]]]:
    """A face drifting right and back, with sensor noise; returns the right eye's true centres."""
    frames, eyes = [], []
    for i in range(n):
        x = 300 + round(30 * np.sin(2 * np.pi * i / n))
        img, centres = draw_face((640, 480), (x, 240), 2.0, noise=4.0, seed=i)
        if 30 <= i < 34:  # the person leaves the frame for four frames
            img = np.full_like(img, 60)
        frames.append(img)
        eyes.append(centres[0])
    return _write_video(path, frames), eyes


def test_eye_region_and_crop_streams_follow_the_face(tmp_path):
    path, eyes = _face_video(tmp_path / "face.mkv", 60)
    d = WebcamDriver(file=path, eye_region=True, eye_size=(100, 100))
    specs = {s.name: s for s in d.specs}
    # the eye crop is the first frame stream: unbound FRAMES inputs take it
    assert d.specs[0].name == "webcam-eye" and specs["webcam-eye"].frame_shape == (100, 100)
    assert specs["webcam-eye-region"].channel_names == ("x", "y", "w", "h", "status")
    _run_to_end(d, 60)
    region = d.rings["webcam-eye-region"].latest(60)
    frames = d.rings["webcam-frames"].latest(60)
    crops = d.rings["webcam-eye"].latest(60)
    assert len(region) == len(frames) and len(region) + d.lost_frames == 60
    np.testing.assert_array_equal(region.ts, frames.ts)
    status = region.data[:, 4].astype(int)
    assert (status == RegionStatus.DETECTED).sum() >= len(region) // 5 - 2
    # where there was a face, the region sits on the right eye (Haar boxes run a bit high)
    t0 = frames.ts[0]
    for row, t in zip(region.data, region.ts, strict=True):
        i = int(round((t - t0) * FPS))  # frame index from the stamp (no drops: exact)
        if 0 < i < 30 and d.lost_frames == 0 and row[4] >= 0:
            cx, cy = row[0] + row[2] / 2, row[1] + row[3] / 2
            assert abs(cx - eyes[i][0]) < 20 and abs(cy - eyes[i][1]) < 20
    # the blank frames are held, never lost (hold is 15 frames), and crops continue through them
    assert (status == RegionStatus.LOST).sum() == 0
    assert len(crops) == len(region)
    assert crops.data.shape[1:] == (100, 100) and crops.data.dtype == np.uint8
    assert d.eye_tracker is not None and d.eye_tracker.detections < len(region)


def test_a_missing_webcam_says_what_was_found():
    with pytest.raises(DriverError, match=r"no webcam at index 9; found: "):
        WebcamDriver(device=9)
    with pytest.raises(DriverError, match="no webcam at index 9"):
        from_config({"device": 9})


class ThirtyFpsCamera:
    """A camera that delivers 30 frames a second whatever it is asked for (no webcam here:
    the one stand-in for hardware in this file)."""

    def __init__(self, index: int) -> None:
        self.next_at = None

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's names
        return True

    def set(self, prop: int, value: float) -> bool:
        return True  # accepted, and ignored

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: 32.0}.get(prop, 24.0)

    def grab(self) -> bool:
        import time

        now = time.monotonic()
        self.next_at = now if self.next_at is None else self.next_at + 1 / 30
        time.sleep(max(0.0, self.next_at - now))
        return True

    def retrieve(self):
        return True, np.zeros((24, 32, 3), np.uint8)

    def release(self) -> None:
        pass


def test_a_camera_that_cannot_give_the_rate_asked_is_taken_at_its_own(monkeypatch):
    monkeypatch.setattr("drivers.webcam.cv2.VideoCapture", ThirtyFpsCamera)
    d = WebcamDriver(device=0, fps=60)
    assert d.fps == 30.0 and d.specs[0].nominal_rate == 30.0
    d.start()
    try:
        assert wait_until(lambda: d.rings[d.frame_stream].head >= 30, 10)
    finally:
        d.stop()
    assert d.lost_frames == 0  # every frame it can give came: none counted as lost


def test_a_file_that_decodes_slower_than_its_rate_keeps_publishing(tmp_path):
    """Frames it falls behind on are skipped by seeking: decoding each would put it further
    behind with every round, and the stream would dry up. Counted in decodes, not in
    seconds, so a busy machine does not change the answer."""
    import time

    from drivers.video_seek import SEEK_FROM

    noise = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    path = tmp_path / "fast.avi"  # 100 frames of 400 kB, ~7 ms to decode each at 1000 fps
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 1000.0, (1280, 720))
    for i in range(100):
        writer.write(np.roll(noise, i, axis=1))
    writer.release()

    class CountingCapture:
        """The driver's own capture; counts the frames decoded between two published."""

        def __init__(self, cap: cv2.VideoCapture) -> None:
            self.cap, self.grabs, self.most = cap, 0, 0

        def grab(self) -> bool:
            self.grabs += 1
            return self.cap.grab()

        def retrieve(self):
            self.most, self.grabs = max(self.most, self.grabs), 0
            return self.cap.retrieve()

        def __getattr__(self, name: str):
            return getattr(self.cap, name)

    d = WebcamDriver(file=path, loop=True, gray=True)
    counting = d._cap = CountingCapture(d._cap)
    d.start()
    try:
        assert wait_until(lambda: d.rings[d.frame_stream].head >= 1, 30)
        time.sleep(2.0)
        before = d.rings[d.frame_stream].head
        assert wait_until(lambda: d.rings[d.frame_stream].head >= before + 5, 30)
    finally:
        d.stop()
    # behind at every frame, yet never more than a few decodes per published frame
    assert d.lost_frames > 0
    assert 1 <= counting.most <= SEEK_FROM


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(DriverError, match="video file not found"):
        WebcamDriver(file=tmp_path / "absent.mkv")
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(DriverError, match="cannot open video file"):
        WebcamDriver(file=junk)


def test_from_config(tmp_path):
    path = _write_video(tmp_path / "clip.mkv", _indexed_frames(5))
    (d,) = from_config(
        {
            "file": str(path),
            "name": "cam",
            "fps": 15,
            "size": [48, 36],
            "gray": True,
            "eye_region": True,
            "eye_size": 64,
            "eye": "left",
            "detect_every": 3,
        }
    )
    assert isinstance(d, WebcamDriver) and d.fps == 15
    assert [s.name for s in d.specs] == ["cam-eye", "cam-frames", "cam-eye-region"]
    assert d.specs[0].frame_shape == (64, 64) and d.specs[1].frame_shape == (36, 48)
    assert d.eye_tracker is not None and d.eye_tracker.options.eye == "left"
    d.close()
    bad = [
        ({"device": 0, "file": str(path)}, "file", "not both"),
        ({"device": "usb"}, "device", "camera index"),
        ({"camera": 0}, "camera", "unknown option"),
        ({"file": str(path), "size": [640]}, "size", "width, height"),
        ({"file": str(path), "eye": "third"}, "eye", "right, left, both"),
        ({"loop": True}, "loop", "video file only"),
        ({"file": str(path), "fps": 0}, "fps", "frames per second"),
        ({"file": str(path), "gray": "yes"}, "gray", "true or false"),
        ({"file": str(path), "detect_every": 0}, "detect_every", "integer"),
    ]
    for options, key, text in bad:
        with pytest.raises(OptionError, match=text) as err:
            from_config(options)
        assert err.value.key == key


def test_shipped_example_config_with_a_file_for_the_camera(tmp_path):
    import tomllib

    path = Path(__file__).resolve().parents[1] / "app" / "configs" / "brainflow_webcam.toml"
    (table,) = [s for s in tomllib.loads(path.read_text())["sources"] if s["kind"] == "webcam"]
    options = {k: v for k, v in table.items() if k != "kind"}
    with pytest.raises(DriverError, match="no webcam at index 0"):  # no camera on the test machine
        from_config(options)
    options.pop("device")
    options["file"] = str(_face_video(tmp_path / "face.mkv", 10)[0])
    (d,) = from_config(options)
    assert [s.name for s in d.specs] == ["webcam-eye", "webcam-frames", "webcam-eye-region"]
    assert d.specs[1].frame_shape == (480, 640)
    _run_to_end(d)
    assert d.rings["webcam-eye"].head + d.lost_frames == 10


def test_shipped_brainflow_webcam_config_runs_both_models(tmp_path):
    """app/configs/brainflow_webcam.toml through `affectlab run`: the synthetic board and a
    face video standing in for the webcam feed Hi-MoE and MCO-E Net lite."""
    import csv
    import json

    from app.cli import main as cli_main

    video, _ = _face_video(tmp_path / "face.mkv", 90)
    path = Path(__file__).resolve().parents[1] / "app" / "configs" / "brainflow_webcam.toml"
    text = path.read_text()
    assert "device = 0 " in text
    text = text.replace("device = 0 ", f'file = "{video}"\nloop = true  ', 1)
    config = tmp_path / "session.toml"
    config.write_text(text)
    preds, stats = tmp_path / "p.csv", tmp_path / "s.json"
    rc = cli_main(
        ["run", "--config", str(config), "--headless", "--duration", "8", "--no-lsl", "--quiet",
         "--predictions", str(preds), "--stats", str(stats)]
    )  # fmt: skip
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["streams"]["board-eda"]["received"] > 1000 and s["streams"]["board-eda"]["lost"] == 0
    assert s["streams"]["webcam-eye"]["received"] > 100
    for model in ("hi-moe-sim", "mco-e-net-lite-sim"):
        assert s["models"][model]["inferred"] > 3 and s["models"][model]["errors"] == 0
    rows = list(csv.DictReader(preds.open()))
    assert sum(r["model"] == "mco-e-net-lite-sim" and r["p_neutral"] != "" for r in rows) > 3
    assert sum(r["model"] == "hi-moe-sim" and r["arousal"] != "" for r in rows) > 3


def test_a_stream_with_the_wrong_channel_count_is_refused_at_start(tmp_path, capsys):
    """Without `channels = { ppg = [24] }` the synthetic board's PPG has two channels and the
    demo Hi-MoE takes one: `affectlab run` says so and exits 1 before the session runs."""
    from app.cli import main as cli_main

    path = Path(__file__).resolve().parents[1] / "app" / "configs" / "brainflow_webcam.toml"
    text = path.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("channels = { ppg"))
    video, _ = _face_video(tmp_path / "face.mkv", 10)
    text = text.replace("device = 0 ", f'file = "{video}"\nloop = true  ', 1)
    config = tmp_path / "session.toml"
    config.write_text(text.replace(line, ""))
    rc = cli_main(["run", "--config", str(config), "--headless", "--duration", "2", "--no-lsl",
                   "--quiet"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "'hi-moe-sim' input 'ppg' takes 1 channel(s), but stream 'board-ppg' has 2" in err


class ScheduledCamera(ThirtyFpsCamera):
    """Frames due at fixed times, 30 a second; those in ``dropped`` never come, and a read
    after some are due gets the waiting ones at once (as a driver's buffers hand them)."""

    dropped: frozenset[int] = frozenset()
    late_read_at: int | None = None  # before this read the reader stalls 0.12 s

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.start = None
        self.reads = 0
        self.frame = -1

    def grab(self) -> bool:
        import time

        if self.reads == self.late_read_at:
            time.sleep(0.12)  # the reader was busy elsewhere
        self.reads += 1
        self.frame += 1
        while self.frame in self.dropped:
            self.frame += 1
        now = time.monotonic()
        if self.start is None:
            self.start = now - self.frame / 30
        time.sleep(max(0.0, self.start + self.frame / 30 - now))
        return True


def _received_and_lost(monkeypatch, dropped: frozenset[int], late_read_at: int | None):
    """(frames received, frames counted lost) of a ScheduledCamera read for ~40 frames."""
    camera = type("Camera", (ScheduledCamera,), {"dropped": dropped, "late_read_at": late_read_at})
    monkeypatch.setattr("drivers.webcam.cv2.VideoCapture", camera)
    d = WebcamDriver(device=0, fps=30)
    d.start()
    try:
        assert wait_until(lambda: d.rings[d.frame_stream].head >= 40, 10)
    finally:
        d.stop()
    return d.rings[d.frame_stream].head, d.lost_frames


@pytest.mark.parametrize(
    ("dropped", "late_read_at", "lost"),
    [
        (frozenset(), 10, 0),  # a late read finds the frames waiting: none lost
        (frozenset({10, 20}), None, 2),  # the camera never sent two
        (frozenset({10}), 10, 1),  # both at once: the waiting frames pay back only theirs
    ],
)
def test_only_frames_that_never_come_count_as_lost(monkeypatch, dropped, late_read_at, lost):
    """Arrival gaps used to count as lost frames even when a reader that was late on a busy
    machine then found the frames waiting."""
    assert _received_and_lost(monkeypatch, dropped, late_read_at)[1] == lost


def test_a_camera_that_gives_half_the_rate_it_reports_loses_every_other_frame(monkeypatch):
    """Low light: a 30 fps camera that delivers 15 (every gap two frames, never a frame
    waiting): each gap is one lost frame."""
    received, lost = _received_and_lost(monkeypatch, frozenset(range(1, 400, 2)), None)
    assert received - 2 <= lost <= received
