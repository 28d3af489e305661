"""DavisDriver against the real dv-processing: NetworkWriters in a subprocess (TCP and UNIX
sockets), AEDAT4 files written by MonoCameraWriter, and the camera path with none attached.
No hardware, no mocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dv_processing as dv
import numpy as np
import pytest
from waiting import wait_until

from core.clock import UnixClockMapper, measure_unix_offset
from core.streams import EVENT_DTYPE, Modality
from drivers.base import DriverError, OptionError
from drivers.davis import DavisDriver
from drivers.davis_config import from_config
from drivers.dv_data import IMU_CHANNELS, Endpoint, OverrunMeter, Roi, event_arrays

W, H = 346, 260

# A DV server: events, frames, IMU and triggers each on its own port (or UNIX socket), with
# known content. It waits for a client on every stream (a NetworkWriter drops what it writes
# while nobody listens), writes, prints "sent <base_us>", and serves until killed.
WRITER = textwrap.dedent(
    """
    import sys, time, json
    import numpy as np
    import dv_processing as dv
    cfg = json.loads(sys.argv[1])
    W, H = cfg.get("resolution", [346, 260])
    S = dv.io.Stream
    def serve(kind, where):
        stream = {
            "events": lambda: S.EventStream(0, "events", "DAVIS346_test", (W, H)),
            "frames": lambda: S.FrameStream(0, "frames", "DAVIS346_test", (W, H)),
            "imu": lambda: S.IMUStream(0, "imu", "DAVIS346_test"),
            "triggers": lambda: S.TriggerStream(0, "triggers", "DAVIS346_test"),
        }[kind]()
        if isinstance(where, str):
            return dv.io.NetworkWriter(where, stream)
        return dv.io.NetworkWriter("127.0.0.1", where, stream)
    writers = {k: serve(k, v) for k, v in cfg["streams"].items()}
    print("listening", flush=True)
    while any(w.getClientCount() == 0 for w in writers.values()):
        time.sleep(0.01)
    time.sleep(0.2)
    base = dv.now() - 2_000_000  # events from the recent past, as a camera's packets are
    n, per = cfg["events"], cfg["per_packet"]
    i = np.arange(n)
    t = base + i * 7
    x, y, p = i % W, (i // W) % H, i % 3 == 0
    if "events" in writers:
        for a in range(0, n, per):
            s = dv.EventStore()
            for e in zip(t[a:a+per].tolist(), x[a:a+per].tolist(), y[a:a+per].tolist(),
                         p[a:a+per].tolist()):
                s.push_back(e)
            writers["events"].writeEvents(s)
            time.sleep(0.002)
    if "frames" in writers:
        for j in range(cfg["frames"]):
            img = ((np.arange(H)[:, None] + np.arange(W)[None, :] + j) % 256).astype(np.uint8)
            writers["frames"].writeFrame(dv.Frame(base + j * 33333, img))
    if "imu" in writers:
        v = [dv.IMU(base + k * 1000, 30.0 + k, 0.01 * k, -0.02 * k, 1.0, k, 2.0 * k, -k, 0, 0, 0)
             for k in range(cfg["imu"])]
        writers["imu"].writeImu(dv.IMUPacket.ImuVector(v))
    if "triggers" in writers:
        tt = dv.TriggerType
        kinds = [tt.EXTERNAL_SIGNAL_RISING_EDGE, tt.EXTERNAL_SIGNAL_FALLING_EDGE]
        v = [dv.Trigger(base + k * 5000, kinds[k % 2]) for k in range(cfg["triggers"])]
        writers["triggers"].writeTriggers(dv.TriggerPacket.TriggersVector(v))
    print("sent", base, flush=True)
    while True:
        time.sleep(1)
    """
)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Writer:
    """The WRITER script in a subprocess."""

    def __init__(self, tmp: Path, streams: dict, events=2000, per_packet=250, frames=5,
                 imu=20, triggers=6, resolution=(W, H)):  # fmt: skip
        import json

        script = tmp / "dv_writer.py"
        script.write_text(WRITER)
        cfg = dict(streams=streams, events=events, per_packet=per_packet, frames=frames,
                   imu=imu, triggers=triggers, resolution=list(resolution))  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.strip() == "listening", line + self.proc.stderr.read()
        self.base_us: int | None = None

    def wait_sent(self, timeout: float = 20.0) -> int:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the writer never sent (no client?)"
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "sent", line
        self.base_us = int(line[1])
        return self.base_us

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def expected_events(n: int, base: int):
    i = np.arange(n)
    return base + i * 7, i % W, (i // W) % H, (i % 3 == 0).astype(np.int8)


@pytest.fixture
def writers():
    made: list[Writer] = []
    yield made
    for w in made:
        w.kill()


# ------------------------------------------------------------------ network
def test_network_streams_arrive_whole_and_on_the_one_clock(tmp_path, writers):
    pe, pf, pi, pt = free_ports(4)
    w = Writer(tmp_path, {"events": pe, "frames": pf, "imu": pi, "triggers": pt})
    writers.append(w)
    d = DavisDriver(
        "network",
        clock=UnixClockMapper(refresh_s=3600),  # one offset: exact spacing across batches
        endpoints={
            k: Endpoint(port=p)
            for k, p in zip(("events", "frames", "imu", "triggers"), (pe, pf, pi, pt), strict=True)
        },  # fmt: skip
    )
    assert [s.name for s in d.specs] == [
        "davis-events",
        "davis-frames",
        "davis-imu",
        "davis-triggers",
    ]
    ev_spec = d.specs[0]
    assert ev_spec.frame_shape == (H, W) and ev_spec.metadata["width"] == W
    assert d.rings["davis-events"].capacity == 13_200_000  # 1 s at the DAVIS346's top rate + 10 %
    d.start()
    try:
        base = w.wait_sent()
        ok = wait_until(lambda: d.health()["davis-events"].received >= 2000
                      and d.health()["davis-triggers"].received >= 6
                      and d.health()["davis-frames"].received >= 5
                      and d.health()["davis-imu"].received >= 20)  # fmt: skip
        assert ok, {k: (v.received, v.message) for k, v in d.health().items()}
        offset = measure_unix_offset().offset
        chunk = d.rings["davis-events"].latest(10_000)
        t, x, y, p = expected_events(2000, base)
        assert len(chunk) == 2000  # every event, none twice
        np.testing.assert_array_equal(chunk.data["x"], x)
        np.testing.assert_array_equal(chunk.data["y"], y)
        np.testing.assert_array_equal(chunk.data["polarity"], p)
        # Unix microseconds -> LSL seconds through the offset
        assert np.max(np.abs(chunk.ts - (t * 1e-6 - offset))) < 0.003
        np.testing.assert_allclose(np.diff(chunk.ts), 7e-6, atol=1e-9)
        frames = d.rings["davis-frames"].latest(100)
        assert frames.data.shape == (5, H, W) and frames.data.dtype == np.uint8
        for j in range(5):
            img = (np.arange(H)[:, None] + np.arange(W)[None, :] + j) % 256
            np.testing.assert_array_equal(frames.data[j], img)
        np.testing.assert_allclose(frames.ts - frames.ts[0], np.arange(5) * 0.033333, atol=1e-7)
        imu = d.rings["davis-imu"].latest(100)
        k = np.arange(20)
        np.testing.assert_allclose(imu.data[:, IMU_CHANNELS.index("accel_x")], 0.01 * k, atol=1e-6)
        np.testing.assert_allclose(imu.data[:, IMU_CHANNELS.index("gyro_y")], 2.0 * k, atol=1e-5)
        np.testing.assert_allclose(imu.data[:, IMU_CHANNELS.index("temperature")], 30.0 + k)
        assert np.max(np.abs(imu.ts - ((base + k * 1000) * 1e-6 - offset))) < 0.003
        trig = d.rings["davis-triggers"].latest(100)
        assert trig.data[:, 0].tolist() == [1.0, 2.0] * 3  # rising, falling edges
        h = d.health()["davis-events"]
        assert h.connected and h.lost == 0 and h.gaps == 0
        assert abs(h.clock_offset + offset) < 1e-3
    finally:
        d.stop()
    assert d.error is None


def test_network_reconnects_after_the_server_restarts(tmp_path, writers):
    (port,) = free_ports(1)
    d = DavisDriver("network", endpoints={"events": Endpoint(port=port)}, reconnect_interval=0.1)
    d.start()
    try:
        assert wait_until(lambda: "waiting for" in d.health()["davis-events"].message, 5)
        w1 = Writer(tmp_path, {"events": port}, events=500)
        writers.append(w1)
        w1.wait_sent()
        assert wait_until(lambda: d.health()["davis-events"].received == 500)
        w1.kill()
        assert wait_until(lambda: not d.health()["davis-events"].connected)
        h = d.health()["davis-events"]
        assert h.gaps == 1 and "went away" in h.message
        w2 = Writer(tmp_path, {"events": port}, events=700)
        writers.append(w2)
        base2 = w2.wait_sent()
        assert wait_until(lambda: d.health()["davis-events"].received == 1200)
        h = d.health()["davis-events"]
        assert h.connected and h.gaps == 1 and h.message == ""
        chunk = d.rings["davis-events"].latest(700)
        t, x, _, _ = expected_events(700, base2)
        np.testing.assert_array_equal(chunk.data["x"], x)
    finally:
        d.stop()
    assert d.error is None


def test_unix_socket_and_a_port_serving_the_wrong_type(tmp_path, writers):
    sock = str(tmp_path / "events.sock")
    (port,) = free_ports(1)
    w = Writer(tmp_path, {"events": sock}, events=300)
    writers.append(w)
    d = DavisDriver("network", endpoints={"events": Endpoint(socket=sock)})
    d.start()
    try:
        w.wait_sent()
        assert wait_until(lambda: d.health()["davis-events"].received == 300)
    finally:
        d.stop()
    # frames asked of a port that serves events: refused with a message, never read
    w2 = Writer(tmp_path, {"events": port}, events=10)
    writers.append(w2)
    d = DavisDriver("network", endpoints={"frames": Endpoint(port=port)})
    d.start()
    try:
        assert wait_until(lambda: "not frames" in d.health()["davis-frames"].message, 10)
        assert "EVTS" in d.health()["davis-frames"].message
    finally:
        d.stop()
    assert d.error is None and d.health()["davis-frames"].received == 0


@pytest.mark.timeout(60)
def test_a_port_that_never_speaks_dv_neither_freezes_the_process_nor_stop(tmp_path):
    """dv's NetworkReader would wait for a header for good, holding the GIL."""
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never writes
    port = listener.getsockname()[1]
    ticks: list[float] = []
    done = threading.Event()

    def tick():  # another thread of the process: must keep running
        while not done.wait(0.05):
            ticks.append(time.monotonic())

    ticker = threading.Thread(target=tick)
    ticker.start()
    d = DavisDriver("network", endpoints={"events": Endpoint(port=port)}, reconnect_interval=0.1)
    d.start()
    try:
        assert wait_until(lambda: "no DV stream header" in d.health()["davis-events"].message, 10)
        started = time.monotonic()
        d.stop()
        assert time.monotonic() - started < 5
    finally:
        done.set()
        ticker.join()
        listener.close()
    assert max(np.diff(ticks)) < 1.5  # never stalled for long (probe timeout 1 s)
    with pytest.raises(RuntimeError, match="refused"):
        Endpoint(port=port).probe()  # nobody listens there any more


def test_resolution_mismatch_is_reported(tmp_path, writers):
    (port,) = free_ports(1)
    w = Writer(tmp_path, {"events": port}, events=10, resolution=(640, 480))
    writers.append(w)
    d = DavisDriver("network", endpoints={"events": Endpoint(port=port)})
    d.start()
    try:
        assert wait_until(lambda: "640 x 480" in d.health()["davis-events"].message, 10)
        assert "resolution = [640, 480]" in d.health()["davis-events"].message
    finally:
        d.stop()


# ------------------------------------------------------------------ AEDAT4 files
T0 = 1_700_000_000_000_000


def write_aedat4(path: Path, packets: int = 8, per: int = 400) -> dict:
    """Events, frames, IMU and triggers with known values and stamps (40 ms per packet)."""
    wr = dv.io.MonoCameraWriter(
        str(path), dv.io.MonoCameraWriter.DAVISConfig("DAVIS346_test", (W, H))
    )
    rng = np.random.default_rng(1)
    n = packets * per
    t = T0 + np.sort(rng.choice(packets * 40_000, n, replace=False)).astype(np.int64)
    x, y = rng.integers(0, W, n), rng.integers(0, H, n)
    p = rng.integers(0, 2, n).astype(bool)
    frames, imu, trig = [], [], []
    for k in range(packets):
        s = dv.EventStore()
        sl = slice(k * per, (k + 1) * per)
        for e in zip(t[sl].tolist(), x[sl].tolist(), y[sl].tolist(), p[sl].tolist(), strict=True):
            s.push_back(e)
        wr.writeEvents(s)
        ft = T0 + k * 40_000
        img = rng.integers(0, 256, (H, W), dtype=np.uint8)
        wr.writeFrame(dv.Frame(ft, img))
        frames.append((ft, img))
        for j in range(4):
            it = ft + j * 10_000 + 5
            wr.writeImu(dv.IMU(it, 25.0, 0.1 * k, 0.2, 1.0, j, 0.0, -1.0, 0, 0, 0))
            imu.append((it, 0.1 * k, j))
        tt = ft + 777
        wr.writeTrigger(dv.Trigger(tt, dv.TriggerType.EXTERNAL_GENERATOR_RISING_EDGE))
        trig.append(tt)
    del wr  # closes the file
    return {"t": t, "x": x, "y": y, "p": p, "frames": frames, "imu": imu, "triggers": trig}


def run_file(path: Path, **kw) -> DavisDriver:
    d = DavisDriver("file", file=path, **kw)
    d.start()
    assert wait_until(lambda: d.finished, 30), d.health()
    d.stop()
    assert d.error is None
    return d


def test_file_playback_is_exact(tmp_path):
    path = tmp_path / "rec.aedat4"
    ref = write_aedat4(path)
    d = run_file(path, playback="fast")
    assert d.kinds == ("events", "frames", "imu", "triggers") and d.camera_name == "DAVIS346_test"
    ev = d.rings["davis-events"].latest(100_000)
    assert len(ev) == len(ref["t"])
    np.testing.assert_array_equal(ev.data["x"], ref["x"])
    np.testing.assert_array_equal(ev.data["y"], ref["y"])
    np.testing.assert_array_equal(ev.data["polarity"], ref["p"].astype(np.int8))
    rel = (ref["t"] - T0) * 1e-6
    np.testing.assert_allclose(ev.ts - ev.ts[0], rel - rel[0], rtol=0, atol=1e-9)
    fr = d.rings["davis-frames"].latest(100)
    assert len(fr) == len(ref["frames"])
    for img, (_ft, want) in zip(fr.data, ref["frames"], strict=True):
        np.testing.assert_array_equal(img, want)
    # one time base for every stream: frame k and event stamps keep their recorded distance
    want = [(ft - ref["t"][0]) * 1e-6 for ft, _ in ref["frames"]]
    np.testing.assert_allclose(fr.ts - ev.ts[0], want, atol=1e-9)
    imu = d.rings["davis-imu"].latest(100)
    assert len(imu) == len(ref["imu"])
    np.testing.assert_allclose(imu.data[:, 0], [a for _, a, _ in ref["imu"]], atol=1e-6)
    np.testing.assert_allclose(imu.data[:, 3], [g for _, _, g in ref["imu"]])
    trig = d.rings["davis-triggers"].latest(100)
    assert trig.data[:, 0].tolist() == [4.0] * len(ref["triggers"])
    h = d.health()
    assert all(not v.connected and "end of AEDAT4 file" in v.message for v in h.values())
    assert h["davis-events"].received == len(ref["t"]) and h["davis-events"].lost == 0


def test_file_recorded_timestamps_and_realtime_pace(tmp_path):
    path = tmp_path / "rec.aedat4"
    ref = write_aedat4(path, packets=6)  # 0.24 s of data
    t0 = time.monotonic()
    d = run_file(path, playback="realtime", timestamps="recorded", streams=["events", "frames"])
    assert time.monotonic() - t0 >= 0.18  # paced (the last packet ends ~0.2 s in)
    assert set(d.rings) == {"davis-events", "davis-frames"}
    ev = d.rings["davis-events"].latest(100_000)
    offset = measure_unix_offset().offset
    assert np.max(np.abs(ev.ts - (ref["t"] * 1e-6 - offset))) < 1e-3


def test_file_roi_and_noise_filter(tmp_path):
    path = tmp_path / "noise.aedat4"
    wr = dv.io.MonoCameraWriter(
        str(path), dv.io.MonoCameraWriter.DAVISConfig("DAVIS346_test", (W, H))
    )
    s = dv.EventStore()
    for i in range(60):
        t = T0 + i * 10_000
        s.push_back((t, 100 + i, 50, True))  # an edge: each event has a neighbour 100 us before
        s.push_back((t + 100, 101 + i, 50, True))
        s.push_back((t + 5_000, 300, 10 + 4 * i, False))  # isolated noise
    wr.writeEvents(s)
    wr.writeFrame(dv.Frame(T0, np.arange(H * W, dtype=np.uint32).reshape(H, W).astype(np.uint8)))
    del wr
    plain = run_file(path, playback="fast")
    assert plain.health()["davis-events"].received == 180
    runs = [
        run_file(path, playback="fast", noise_filter=True, noise_filter_ms=2.0) for _ in range(2)
    ]
    for d in runs:  # a fresh filter per replay: the second replay filters the same way
        ev = d.rings["davis-events"].latest(1000).data
        assert len(ev) == 60 and np.all(ev["x"] != 300) and d.filtered == 120
    roi = run_file(path, playback="fast", roi=[120, 40, 50, 20])
    assert roi.specs[0].frame_shape == (20, 50) and roi.specs[0].metadata["roi"] == [
        120,
        40,
        50,
        20,
    ]
    ev = roi.rings["davis-events"].latest(1000).data
    # x 120..169 at y 50: the edge's events at x = 100 + i (i >= 20) and 101 + i (i >= 19), shifted
    assert len(ev) == 81 and ev["x"].min() == 0 and ev["x"].max() == 40 and set(ev["y"]) == {10}
    frame = roi.rings["davis-frames"].latest(1).data[0]
    full = np.arange(H * W, dtype=np.uint32).reshape(H, W).astype(np.uint8)
    np.testing.assert_array_equal(frame, full[40:60, 120:170])


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(DriverError, match="not found"):
        DavisDriver("file", file=tmp_path / "nope.aedat4")
    bad = tmp_path / "bad.aedat4"
    bad.write_bytes(b"not an aedat file at all")
    with pytest.raises(DriverError, match="cannot read AEDAT4 file"):
        DavisDriver("file", file=bad)
    bad.write_bytes(b"hello")  # shorter than a header: dv's sentence, not its C++ location
    with pytest.raises(DriverError, match="cannot read AEDAT4 file") as err:
        DavisDriver("file", file=bad)
    assert "End-Of-File reached" in str(err.value) and ".hpp" not in str(err.value)
    path = tmp_path / "rec.aedat4"
    write_aedat4(path, packets=1, per=10)
    with pytest.raises(DriverError, match="outside the 346 x 260 sensor"):
        DavisDriver("file", file=path, roi=[300, 0, 100, 10])


def test_a_missing_file_in_a_session_config_is_a_message_not_a_traceback(tmp_path, capsys):
    from app.cli import main as cli_main

    config = tmp_path / "s.toml"
    missing = tmp_path / "gone.aedat4"
    config.write_text(
        f'[[sources]]\nkind = "davis"\ninput = "file"\nfile = "{missing}"\n'
        '[[models]]\nname = "mco-e-net-lite-sim"\n'
    )
    assert cli_main(["run", "--config", str(config), "--headless", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert f"AEDAT4 file not found: {missing}" in err and "Traceback" not in err


# ------------------------------------------------------------------ camera
def test_no_camera_is_a_clear_error():
    if dv.io.camera.discover():
        pytest.skip("a DV camera is attached")
    with pytest.raises(
        DriverError, match=r"no DV camera found: dv.io.camera.discover\(\) lists none"
    ):
        DavisDriver("camera")
    with pytest.raises(DriverError, match="no DV camera found"):
        from_config({"input": "camera", "serial": "00000499", "exposure_us": 4000})


# ------------------------------------------------------------------ pieces
def test_overrun_meter_counts_only_what_a_burst_pushes_out_too_soon():
    m = OverrunMeter(capacity=1000, hold_s=1.0)
    for k in range(30):  # 500 events/s: the ring holds 2 s, nothing is lost
        m.on_write(50, k * 0.1, k * 0.1)
    assert m.lost == 0
    m.on_write(900, 3.05, 3.05)  # a burst overwrites t = 1.0-2.7; those after 2.05 were < 1 s old
    assert m.lost == 7 * 50
    m.on_write(5000, 3.06, 3.06)  # larger than the ring: all it held (100 + 900) plus its head
    assert m.lost == 350 + 100 + 900 + 4000
    # within a chunk, stamps are interpolated: a chunk spanning 0-1 s, overwritten at 1.5 s,
    # lost only its second half
    m = OverrunMeter(capacity=100, hold_s=1.0)
    m.on_write(100, 0.0, 0.99)
    assert m.on_write(100, 1.5, 1.5) == 49  # items stamped 0.51-0.99 s


def test_event_arrays_and_roi():
    s = dv.EventStore()
    for i in range(5):
        s.push_back((T0 + i, 10 * i, 2 * i, i % 2 == 0))
    t, ev = event_arrays(s)
    assert ev.dtype == EVENT_DTYPE and t.dtype == np.int64
    assert ev["x"].tolist() == [0, 10, 20, 30, 40] and ev["polarity"].tolist() == [1, 0, 1, 0, 1]
    t2, ev2 = Roi(10, 2, 21, 5).crop_events(t, ev)
    assert (t2 - T0).tolist() == [1, 2, 3]
    assert ev2["x"].tolist() == [0, 10, 20] and ev2["y"].tolist() == [0, 2, 4]


def test_from_config_validates_options():
    with pytest.raises(OptionError) as e:
        from_config({"input": "network", "bogus": 1})
    assert e.value.key == "bogus"
    with pytest.raises(OptionError) as e:
        from_config({"input": "network", "file": "x.aedat4"})
    assert e.value.key == "file" and "input = 'file'" in str(e.value)
    with pytest.raises(OptionError) as e:
        from_config({"input": "network", "events_port": 70000})
    assert e.value.key == "events_port"
    with pytest.raises(OptionError) as e:
        from_config({"input": "network", "events_port": 7000, "events_socket": "/tmp/s"})
    assert e.value.key == "events_socket"
    with pytest.raises(OptionError) as e:
        from_config({"input": "network", "streams": ["events"]})
    assert e.value.key == "streams"
    with pytest.raises(OptionError) as e:
        from_config({"input": "file", "file": "x.aedat4", "playback": "slow"})
    assert e.value.key == "playback"
    with pytest.raises(OptionError) as e:
        from_config({"input": "webcam"})
    assert e.value.key == "input"
    with pytest.raises(OptionError):
        from_config({"input": "network", "roi": [0, 0, 0, 10]})
    (d,) = from_config({"input": "network", "name": "eye", "exposure_us": 5000,
                        "event_ring_seconds": 0.5, "max_event_rate": 2e6})  # fmt: skip
    assert isinstance(d, DavisDriver)
    assert {k: str(e) for k, e in d.endpoints.items()} == {
        "events": "127.0.0.1:7777",
        "frames": "127.0.0.1:7778",
    }
    assert [s.name for s in d.specs] == ["eye-events", "eye-frames"]
    assert d.specs[1].modality is Modality.FRAMES and d.rings["eye-events"].capacity == 1_100_000
    assert any("apply to a live camera only" in n for n in d.notes)
    assert "ignored for network input" in d.health()["eye-events"].message
    (d,) = from_config({"input": "network", "host": "10.0.0.2", "imu_port": 7790,
                        "triggers_socket": "/tmp/trig.sock"})  # fmt: skip
    assert {k: str(e) for k, e in d.endpoints.items()} == {
        "imu": "10.0.0.2:7790",
        "triggers": "unix:/tmp/trig.sock",
    }
