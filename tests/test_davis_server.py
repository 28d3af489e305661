"""The virtual DAVIS over DV network streams, end to end with the real dv-processing:
numpy -> EventStore conversions, `python -m app.serve virtual-davis` in a subprocess read by
DavisDriver(network), with frames from the virtual participant or a video file written by OpenCV."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from waiting import wait_until

from app.serve import main as serve_main
from drivers.davis import DavisDriver
from drivers.davis_server import (
    VideoFrames,
    VirtualEyeFrames,
    events_to_store,
    events_to_store_binned,
    free_port_pair,
    to_sensor_frame,
)
from drivers.dv_data import Endpoint
from drivers.simulated.events import EventEmulator
from drivers.simulated.eye_camera import DAVIS346_SIZE

ROOT = Path(__file__).resolve().parents[1]
H, W = DAVIS346_SIZE


def random_events(n: int, span_us: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = 1_700_000_000_000_000 + np.sort(rng.integers(0, span_us, n))
    return t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n).astype(np.int8)


def as_keys(x, y, p) -> np.ndarray:
    return np.sort((np.asarray(y, np.int64) * W + np.asarray(x, np.int64)) * 2 + np.asarray(p))


def test_events_to_store_is_exact():
    t, x, y, p = random_events(20_000, 50_000)
    a = events_to_store(t, x, y, p).numpy()
    np.testing.assert_array_equal(a["timestamp"], t)
    np.testing.assert_array_equal(a["x"], x)
    np.testing.assert_array_equal(a["y"], y)
    np.testing.assert_array_equal(a["polarity"], p)
    assert events_to_store(t[:0], x[:0], y[:0], p[:0]).size() == 0


def test_binned_store_keeps_every_event_and_moves_stamps_to_their_bin():
    t, x, y, p = random_events(30_000, 20_000, seed=3)  # dense: pixels repeat within bins
    x[:50], y[:50], p[:50] = 7, 9, np.arange(50) % 2  # one pixel firing 50 times in a bin
    bin_us = 1000
    a = events_to_store_binned(t, x, y, p, (W, H), bin_us).numpy()
    assert len(a) == len(t)
    np.testing.assert_array_equal(as_keys(a["x"], a["y"], a["polarity"]), as_keys(x, y, p))
    assert np.all(np.diff(a["timestamp"]) >= 0)
    newest = {b: int(t[t // bin_us == b].max()) for b in np.unique(t // bin_us)}
    assert set(a["timestamp"].tolist()) == set(newest.values())
    # per bin, the same events
    for b, stamp in list(newest.items())[:5]:
        mine = t // bin_us == b
        got = a["timestamp"] == stamp
        np.testing.assert_array_equal(
            as_keys(a["x"][got], a["y"][got], a["polarity"][got]),
            as_keys(x[mine], y[mine], p[mine]),
        )
    with pytest.raises(ValueError):
        events_to_store_binned(t, x, y, p, (W, H), 0)


def serve(*args: str) -> tuple[subprocess.Popen, int]:
    port = free_port_pair()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.serve", "virtual-davis", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert "virtual DAVIS346 serving events" in line, line + proc.stderr.read()
    return proc, port


def read_served(port: int, until) -> DavisDriver:
    d = DavisDriver(
        "network",
        endpoints={"events": Endpoint(port=port), "frames": Endpoint(port=port + 1)},
        reconnect_interval=0.1,
    )
    d.start()
    end = time.monotonic() + 30
    while time.monotonic() < end and not until(d):
        time.sleep(0.05)
    d.stop()
    assert d.error is None
    return d


def finish(proc: subprocess.Popen) -> str:
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the server did not stop on its own: {err}")
    assert proc.returncode == 0, err
    return out


def test_served_counts_only_what_a_client_of_that_port_was_sent():
    """With only the events port read, every frame rendered goes to a writer with no
    client, which drops it: counted as served, the summary claimed frames nobody got."""
    proc, port = serve("--duration", "3", "--seed", "5")
    d = DavisDriver("network", endpoints={"events": Endpoint(port=port)}, reconnect_interval=0.1)
    d.start()
    try:
        assert wait_until(lambda: d.rings["davis-events"].head > 0, 30)
        assert wait_until(lambda: proc.poll() is not None, 30)
    finally:
        d.stop()
        out = finish(proc)
    served = re.search(r"served (\d+) frames \([^)]*\) and (\d+) events", out)
    unsent = re.search(r"not sent \(no client on that port\) (\d+) frames and (\d+) events", out)
    assert served and unsent, out
    assert int(served[1]) == 0 and int(unsent[1]) > 0, out
    assert int(served[2]) >= d.rings["davis-events"].head > 0, out


def emulated_rate(seed: int, seconds: float = 2.0) -> float:
    """Events per second the same virtual eye gives offline (no clock, no network)."""
    src = VirtualEyeFrames(seed)
    em = EventEmulator(DAVIS346_SIZE, seed=seed)
    n = 0
    frames = int(seconds * src.fps)
    for k in range(frames + 1):
        _, irradiance = src.read(k)
        n += len(em.emulate(irradiance, k / src.fps)[0])
    return n / seconds


def test_virtual_davis_end_to_end():
    proc, port = serve("--duration", "4", "--seed", "3")
    try:
        # read until the server stops on its own while we are still connected: it must
        # exit (a NetworkWriter destroyed with a client attached would hang) and the
        # driver must see the server go away, and say so still once a retry has failed
        d = read_served(
            port,
            lambda d: (
                proc.poll() is not None
                and not d.health()["davis-events"].connected
                and "reconnecting: " in d.health()["davis-events"].message
            ),
        )
    finally:
        out = finish(proc)
    assert "served" in out
    h = d.health()
    assert h["davis-events"].gaps == 1 and "went away" in h["davis-events"].message
    frames = d.rings["davis-frames"].latest(1000)
    events = d.rings["davis-events"].latest(10_000_000)
    assert len(frames) >= 45 and frames.data.shape[1:] == (H, W)
    # frames on the server's 30 fps schedule (stamps come from it, not from arrival)
    assert np.median(np.diff(frames.ts)) == pytest.approx(1 / 30, abs=2e-4)
    assert frames.data.std() > 10  # a picture, not a blank
    assert len(events) > 1000
    assert events.data["x"].max() < W and events.data["y"].max() < H
    assert set(np.unique(events.data["polarity"]).tolist()) == {0, 1}
    # events are stamped on the server's frame schedule, within its 4 s run (its last
    # frames may be cut off by its exit after their events went out - more of them when
    # the machine is busy - so the bound is the run, not the last frame received)
    assert events.ts[0] >= frames.ts[0] - 1.0
    assert events.ts[-1] <= frames.ts[0] + 4.0 + 1 / 30 + 1e-6
    assert frames.ts[-1] <= frames.ts[0] + 4.0 + 1e-6
    inside = (events.ts > frames.ts[0]) & (events.ts <= frames.ts[-1])
    rate = inside.sum() / (frames.ts[-1] - frames.ts[0])
    want = emulated_rate(3)
    assert 0.5 * want < rate < 2.0 * want, (rate, want)


def write_video(path: Path, frames: int = 60, fps: float = 30.0) -> None:
    """A bright square sliding right along a band of a dark 64 x 48 video."""
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert wr.isOpened()
    for k in range(frames):
        img = np.full((48, 64, 3), 20, np.uint8)
        x0 = 4 + (k % 48)
        img[20:28, x0 : x0 + 8] = 230
        wr.write(img)
    wr.release()


def test_video_frames_source_and_sensor_frames(tmp_path):
    path = tmp_path / "eye.avi"
    write_video(path, frames=10)
    src = VideoFrames(path)
    assert src.fps == pytest.approx(30.0) and not src.live
    aps, scene = src.read(0)
    assert aps.shape == (H, W) and aps.dtype == np.uint8 and scene is aps
    assert src.read(5) is not None and src.skipped == 4
    assert src.read(12) is not None  # loops at the end of the file
    src.close()
    assert to_sensor_frame(np.zeros((48, 64, 3), np.uint8)).shape == (H, W)
    with pytest.raises(FileNotFoundError):
        VideoFrames(tmp_path / "missing.avi")


@pytest.mark.parametrize("loop", [True, False])
def test_video_frames_far_behind_skip_to_the_frame_due(tmp_path, loop):
    """A client connecting after a long idle asks for frame k at once: the frame shown is the
    one due then (round the loop), reached by seeking rather than decoding every frame."""
    frames = [np.full((DAVIS346_SIZE[0], DAVIS346_SIZE[1], 3), 3 * i, np.uint8) for i in range(50)]
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, DAVIS346_SIZE[::-1])
    for f in frames:
        writer.write(f)
    writer.release()
    src = VideoFrames(path, loop=loop)
    first, _ = src.read(0)
    assert first.mean() == pytest.approx(0, abs=1)
    if not loop:
        assert src.read(1800) is None  # past the end of a file that does not loop
        return
    aps, _ = src.read(1800)  # 36 loops and 0 frames later: frame 0
    assert aps.mean() == pytest.approx(0, abs=1) and src.skipped == 1799
    aps, _ = src.read(1827)  # 27 frames on, skipping 26
    assert aps.mean() == pytest.approx(3 * 27, abs=1) and src.skipped == 1825
    aps, _ = src.read(1828)  # the next frame, no skip
    assert aps.mean() == pytest.approx(3 * 28, abs=1)


def test_virtual_davis_from_a_video_file(tmp_path):
    path = tmp_path / "eye.avi"
    write_video(path)
    proc, port = serve("--video", str(path), "--duration", "4")
    try:
        d = read_served(port, lambda d: d.health()["davis-frames"].received >= 30)
    finally:
        finish(proc)
    frames = d.rings["davis-frames"].latest(1000)
    events = d.rings["davis-events"].latest(10_000_000).data
    assert len(frames) >= 30 and frames.data.shape[1:] == (H, W)
    # the square's band (rows 20-28 of 48) scaled to 260 rows: bright there, dark elsewhere
    band = slice(int(20 * H / 48) + 3, int(28 * H / 48) - 3)
    assert frames.data[:, band].max() > 200 and np.median(frames.data[:, :80]) < 40
    # events come from the moving square's edges, far more than from sensor noise
    in_band = (events["y"] >= int(20 * H / 48) - 3) & (events["y"] <= int(28 * H / 48) + 3)
    assert len(events) > 1000 and in_band.mean() > 0.6


def test_serve_reports_bad_input(tmp_path, capsys):
    assert serve_main(["virtual-davis", "--video", str(tmp_path / "none.avi")]) == 1
    assert "video file not found" in capsys.readouterr().err
    assert serve_main(["virtual-davis", "--port", "0"]) == 2
    with socket.socket() as s:  # a port in use
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert serve_main(["virtual-davis", "--port", str(busy), "--duration", "0.1"]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_shipped_lsl_eeg_davis_config_runs_both_models(tmp_path):
    """app/configs/lsl_eeg_davis.toml end to end: a 32-channel EEG outlet on LSL and the
    virtual DAVIS on the network feed Hi-MoE and MCO-E Net lite through `affectlab run`."""
    import csv
    import json
    import threading
    import tomllib
    import uuid

    import pylsl

    from app.cli import main as cli_main
    from models.registry import DEAP_EEG_CHANNELS

    proc, port = serve("--duration", "30", "--seed", "1")
    tag = uuid.uuid4().hex[:8]
    info = pylsl.StreamInfo(f"eeg-{tag}", "EEG", 32, 128.0, "float32", f"sid-{tag}")
    chans = info.desc().append_child("channels")
    for label in DEAP_EEG_CHANNELS:
        chans.append_child("channel").append_child_value("label", label)
    outlet = pylsl.StreamOutlet(info)
    stop = threading.Event()

    def push() -> None:
        # Paced by a sample counter, as a buffered device hands over its samples: every time
        # round, all samples due since the start, each stamped with its own time
        # (start + k / rate). A stall of this thread (it shares the GIL with the session's
        # models) then delays samples but leaves no hole in their stamps, so any sample the
        # driver counts as lost is one it lost itself.
        rng = np.random.default_rng(0)
        rate = 128.0
        start, sent = pylsl.local_clock(), 0
        while not stop.wait(1 / 16):
            due = int((pylsl.local_clock() - start) * rate) + 1
            if due > sent:
                stamps = start + np.arange(sent, due) / rate
                chunk = rng.normal(0, 10, (due - sent, 32)).astype(np.float32)
                outlet.push_chunk(chunk, stamps.tolist())
                sent = due

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    try:
        text = (ROOT / "app" / "configs" / "lsl_eeg_davis.toml").read_text()
        cfg = tomllib.loads(text)
        text = text.replace('type = "EEG"', f'type = "EEG"\nlsl_name = "eeg-{tag}"', 1)
        text = text.replace("events_port = 7777", f"events_port = {port}")
        text = text.replace("frames_port = 7778", f"frames_port = {port + 1}")
        assert [m["name"] for m in cfg["models"]] == ["hi-moe-sim", "mco-e-net-lite-sim"]
        config = tmp_path / "session.toml"
        config.write_text(text)
        preds, stats = tmp_path / "p.csv", tmp_path / "s.json"
        args = ["run", "--config", str(config), "--headless", "--duration", "8", "--no-lsl"]
        rc = cli_main([*args, "--quiet", "--predictions", str(preds), "--stats", str(stats)])
    finally:
        stop.set()
        pusher.join()
        os.kill(proc.pid, signal.SIGTERM)
        finish(proc)
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["streams"]["eeg"]["lost"] == 0 and s["streams"]["eeg"]["received"] > 500
    assert s["streams"]["davis-events"]["received"] > 1000
    assert s["streams"]["davis-frames"]["received"] > 100
    for model in ("hi-moe-sim", "mco-e-net-lite-sim"):
        assert s["models"][model]["inferred"] > 3 and s["models"][model]["errors"] == 0
    rows = list(csv.DictReader(preds.open()))
    mco = [r for r in rows if r["model"] == "mco-e-net-lite-sim" and r["p_happiness"]]
    hi = [r for r in rows if r["model"] == "hi-moe-sim" and r["valence"]]
    assert len(mco) > 3 and len(hi) > 3
