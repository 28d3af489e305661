"""BrainFlowDriver against the real BrainFlow library: the synthetic board and the playback
board replaying a file written by DataFilter.write_file. No hardware, no mocks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BoardShim
from brainflow.data_filter import DataFilter
from waiting import wait_until

from core.clock import lsl_now
from core.streams import Modality
from drivers.base import DriverError, OptionError
from drivers.brainflow import (
    BrainFlowDriver,
    PackageCounter,
    board_id,
    from_config,
    plan_streams,
)

SYNTHETIC = int(BoardIds.SYNTHETIC_BOARD)


def _descrs(bid: int) -> dict[int, dict]:
    return {p: BoardShim.get_board_descr(bid, p) for p in BoardShim.get_board_presets(bid)}


# ------------------------------------------------------------------ layout rules
def test_duplicate_rows_are_published_once():
    groups, layouts = plan_streams(_descrs(SYNTHETIC))
    by_kind = {g.kind: g for g in groups}
    # EMG/ECG/EOG list the EEG rows on the synthetic board: only EEG publishes them
    assert list(by_kind) == ["eeg", "eda", "ppg", "temperature", "accel", "gyro"]
    assert by_kind["eeg"].rows == tuple(range(1, 17))
    assert by_kind["eeg"].spec.channel_names[:3] == ("Fz", "C3", "Cz")
    assert by_kind["accel"].spec.channel_names == ("accel_x", "accel_y", "accel_z")
    # every kind comes from the default preset, so the auxiliary preset is not read
    assert [lay.preset for lay in layouts] == [0]
    rows = [r for g in groups for r in g.rows]
    assert len(rows) == len(set(rows))
    # listing ECG first gives it the rows instead
    groups, _ = plan_streams(_descrs(SYNTHETIC), ["ecg", "eeg"])
    assert [(g.kind, len(g.rows)) for g in groups] == [("ecg", 16)]
    assert groups[0].spec.modality is Modality.ECG


def test_explicit_channels_and_multi_preset_boards():
    cyton = _descrs(int(BoardIds.CYTON_BOARD))
    groups, _ = plan_streams(cyton, ["eeg", "ecg"], {"ecg": [8]})
    assert [(g.kind, g.rows) for g in groups] == [("eeg", tuple(range(1, 8))), ("ecg", (8,))]
    assert groups[0].spec.channel_names == ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1")
    with pytest.raises(ValueError, match="given to two kinds"):
        plan_streams(cyton, ["eeg", "ecg"], {"eeg": [1, 8], "ecg": [8]})
    with pytest.raises(ValueError, match="not ecg rows"):
        plan_streams(cyton, ["eeg", "ecg"], {"ecg": [20]})
    # Muse S: EEG in the default preset, IMU in the auxiliary one, PPG in the ancillary one
    groups, layouts = plan_streams(_descrs(int(BoardIds.MUSE_S_BOARD)), prefix="muse")
    names = {g.spec.name: g.preset for g in groups}
    assert names == {"muse-eeg": 0, "muse-anc-ppg": 2, "muse-aux-accel": 1, "muse-aux-gyro": 1}
    assert sorted(lay.preset for lay in layouts) == [0, 1, 2]
    assert {lay.preset: lay.rate for lay in layouts} == {0: 256.0, 1: 52.0, 2: 64.0}


def test_package_counter_wraps_and_counts_gaps():
    c = PackageCounter(learn=4)
    assert c.update(np.arange(250, 256)) == 0
    assert c.update(np.arange(0, 5)) == 0  # 255 -> 0 is a wrap, not a gap
    assert c.update(np.array([7, 8, 9])) == 2  # 5 and 6 are missing
    assert c.update(np.array([9, 10])) == 0  # a repeated counter is not a loss
    assert c.lost == 2 and c.step == 1
    two = PackageCounter(learn=4)  # boards that step by two
    two.update(np.arange(0, 20, 2))
    assert two.step == 2 and two.update(np.array([20, 26, 28])) == 2


def _feed(counter: PackageCounter, values, stamps=None, chunk: int = 7) -> int:
    """Hand the counter a board's samples in chunks, as the driver polls them."""
    lost = 0
    for i in range(0, len(values), chunk):
        ts = None if stamps is None else stamps[i : i + chunk]
        lost += counter.update(np.asarray(values[i : i + chunk]), ts)
    return lost


@pytest.mark.parametrize("chunk", [1, 5, 7, 12, 40])
def test_package_counters_of_other_shapes_are_learned(chunk):
    # a packet id through 1..100 with two samples per id (BrainFlow's Ganglion)
    ids = np.repeat(np.tile(np.arange(1, 101), 10), 2)
    rate = 200.0
    ts = np.arange(len(ids)) / rate
    c = PackageCounter(rate)
    assert _feed(c, ids, ts, chunk) == 0  # nine wraps, none a loss
    assert (c.step, c.run, c.period) == (1, 2, 100)
    keep = ~np.isin(np.arange(len(ids)), np.arange(1000, 1006))  # three ids, six samples
    c = PackageCounter(rate)
    assert _feed(c, ids[keep], ts[keep], chunk) == 6
    # a 16-bit packet counter shared by twelve samples (BrainFlow's Muse), wrapping
    packets = np.r_[np.arange(65400, 65536), np.arange(0, 100), np.arange(105, 200)]
    values = np.repeat(packets, 12)
    ts = np.repeat(np.r_[np.arange(236), np.arange(241, 336)], 12) * 12 / 256.0
    c = PackageCounter(256.0)
    assert _feed(c, values, ts, chunk) == 5 * 12  # five packets lost after the wrap
    assert (c.run, c.period) == (12, 65536)


def test_a_counter_glitch_before_the_first_wrap_teaches_no_period():
    """A counter that steps back to the middle of its range with no time passing is a
    glitch, not a wrap: learning a period of 57 from it would miscount every later step."""
    c = PackageCounter(250.0)
    n = np.arange(100)
    assert c.update(n, n / 250) == 0
    assert c.update(np.array([43, 44, 45]), np.arange(100, 103) / 250) == 0
    assert c.period is None
    # the real wrap still teaches it, and later steps count with it
    ramp = np.arange(46, 256)
    c.update(ramp, np.arange(103, 103 + len(ramp)) / 250)
    t = 103 + len(ramp)
    assert c.update(np.array([0, 1, 2]), np.arange(t, t + 3) / 250) == 0
    assert c.period == 256
    assert c.update(np.array([5, 6]), np.array([t + 5, t + 6]) / 250) == 2


def test_a_hole_longer_than_the_counters_period_is_sized_by_the_stamps():
    rate = 250.0
    n = np.arange(4000)
    for missing in (300, 600, 1000):  # 1.2-4 s: more than one wrap of 256
        keep = (n < 1000) | (n >= 1000 + missing)
        c = PackageCounter(rate)
        assert _feed(c, n[keep] % 256, n[keep] / rate, 25) == missing
    # samples that arrive late after a stall (stamped on arrival) are not lost
    for stall in (0.6, 1.2):
        ts = n / rate
        ts[1000:1300] = ts[1300] + stall  # 300 samples held up, delivered at once
        ts[1300:] += stall
        c = PackageCounter(rate)
        assert _feed(c, n % 256, ts, 25) == 0
        # without stamps the counter can only tell the hole modulo its period
    c = PackageCounter()
    keep = (n < 1000) | (n >= 1300)
    assert _feed(c, n[keep] % 256, None, 25) == 300 - 256


def test_a_counter_that_jumps_further_than_time_went_is_no_hole():
    """A counter step of 200 between two samples one period apart (a glitch, or a board
    that renumbers): the stamps say no time for 199 samples passed, so the counter's
    word is not taken and nothing is lost; counted, health would report 199 samples
    lost that never existed. A step the stamps agree with is still counted."""
    rate = 250.0
    n = np.arange(300)  # one clean wrap: the period (256) is known
    c = PackageCounter(rate)
    assert c.update(n % 256, n / rate) == 0 and c.period == 256
    glitch = (np.array([299, 300, 301]) + 200) % 256  # 43 -> 243 in one period
    assert c.update(glitch, np.arange(300, 303) / rate) == 0
    assert c.lost == 0
    c = PackageCounter(rate)
    c.update(n % 256, n / rate)
    # the same counter step, 200 periods later as the stamps say: 199 samples lost
    assert c.update(glitch, (np.arange(300, 303) + 199) / rate) == 199


def test_board_names():
    assert board_id("synthetic") == SYNTHETIC == board_id(SYNTHETIC) == board_id("-1")
    assert board_id("cyton") == int(BoardIds.CYTON_BOARD)
    assert board_id("Cyton-Daisy") == int(BoardIds.CYTON_DAISY_BOARD)
    assert board_id("playback") == int(BoardIds.PLAYBACK_FILE_BOARD)
    with pytest.raises(ValueError, match="did you mean cyton"):
        board_id("cytn")
    with pytest.raises(ValueError, match="unknown BrainFlow board id"):
        board_id(12345)


# ------------------------------------------------------------------ synthetic board
def test_synthetic_board_through_the_driver():
    d = BrainFlowDriver()
    names = [s.name for s in d.specs]
    assert names == [
        "brainflow-eeg",
        "brainflow-eda",
        "brainflow-ppg",
        "brainflow-temperature",
        "brainflow-accel",
        "brainflow-gyro",
        "brainflow-markers",
    ]
    counts = {s.name: s.n_channels for s in d.specs}
    assert counts["brainflow-eeg"] == 16 and counts["brainflow-ppg"] == 2
    assert counts["brainflow-accel"] == counts["brainflow-gyro"] == 3
    eeg = d.rings["brainflow-eeg"]
    latencies: list[float] = []
    d.start()
    try:
        assert wait_until(lambda: d.health()["brainflow-eeg"].received >= 125, 10)
        marked_at = lsl_now()
        d.insert_marker(42.0)
        markers = d.rings["brainflow-markers"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            eeg.head < 750 or markers.head < 1
        ):  # about 3 s of data and the marker back
            h = d.health()["brainflow-eeg"]
            if np.isfinite(h.latency):
                latencies.append(h.latency)
            time.sleep(0.03)
        health = d.health()
    finally:
        d.stop()
    assert d.error is None and not d.running
    assert d._shim is None  # stop_stream + release_session ran on the driver thread

    chunk = eeg.latest(eeg.head)
    assert chunk.data.shape[1] == 16 and len(chunk) >= 750
    steps = np.diff(chunk.ts)
    assert np.median(steps) == pytest.approx(1 / 250, rel=0.05)
    assert (chunk.ts[-1] - chunk.ts[0]) / (len(chunk) - 1) == pytest.approx(1 / 250, rel=0.05)
    assert np.all(steps > 0)
    # stamps sit on the local LSL clock: the newest sample is a few ms older than its arrival
    assert np.median(latencies) < 0.05 and min(latencies) > -0.005
    h = health["brainflow-eeg"]
    assert h.lost == 0 and h.gaps == 0
    assert h.effective_rate == pytest.approx(250, rel=0.15)
    assert h.clock_offset == pytest.approx(lsl_now() - time.time(), abs=0.01)
    for name in names[:-1]:
        assert health[name].lost == 0
        assert abs(health[name].received - h.received) <= 250  # one table feeds them all
    # all streams of one table share its stamps
    eda = d.rings["brainflow-eda"].latest(len(chunk))
    np.testing.assert_array_equal(eda.ts[-100:], chunk.ts[len(chunk) - len(eda) :][-100:])
    # the marker comes back in the marker stream, stamped when it was inserted
    m = d.rings["brainflow-markers"].latest(10)
    assert m.data[:, 0].tolist() == [42.0]
    assert abs(m.ts[0] - marked_at) < 0.1


def test_the_board_can_be_opened_again_after_stop():
    for _ in range(2):
        d = BrainFlowDriver(streams=["eeg"])
        d.start()
        try:
            assert wait_until(lambda d=d: d.rings["brainflow-eeg"].head > 10, 10)
        finally:
            d.stop()
        assert d.error is None


def test_insert_marker_needs_a_running_board_and_a_value():
    d = BrainFlowDriver(streams=["eeg", "markers"])
    with pytest.raises(DriverError, match="not streaming"):
        d.insert_marker(1.0)
    with pytest.raises(ValueError, match="non-zero"):
        d.insert_marker(0.0)
    d2 = BrainFlowDriver(streams=["eeg"])
    with pytest.raises(DriverError, match="no marker stream"):
        d2.insert_marker(1.0)


# ------------------------------------------------------------------ playback board
def _synthetic_file(path, n: int, drop: slice | None = None, seed: int = 0) -> np.ndarray:
    """A synthetic-layout table of n samples (counter wraps at 255); ``drop`` removes samples."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 20.0, size=(32, n))
    data[0] = np.arange(n) % 256
    data[30] = time.time() - 3600 + np.arange(n) / 250  # old stamps: the board restamps
    data[31] = 0.0
    if drop is not None:
        data = np.delete(data, np.arange(n)[drop], axis=1)
    DataFilter.write_file(np.ascontiguousarray(data), str(path), "w")
    return DataFilter.read_file(str(path))  # the file keeps 6 decimals: compare with the file


def test_playback_board_replays_the_file(tmp_path):
    path = tmp_path / "session.csv"
    data = _synthetic_file(path, 300, drop=slice(100, 103))  # 297 samples, 3 lost, one wrap
    n = data.shape[1]
    d = BrainFlowDriver("playback", {"file": str(path), "master_board": "synthetic"})
    assert d.reconnect is False  # replaying a finished file again is opt-in
    d.start()
    try:
        assert wait_until(lambda: d.rings["brainflow-eeg"].head >= n, 15)
        arrived = lsl_now()
    finally:
        d.stop()
    assert d.error is None
    eeg = d.rings["brainflow-eeg"].latest(n)
    np.testing.assert_array_equal(eeg.data, data[1:17].T.astype(np.float32))
    for stream, rows in (("brainflow-eda", [23]), ("brainflow-ppg", [24, 25])):
        np.testing.assert_array_equal(
            d.rings[stream].latest(n).data, data[rows].T.astype(np.float32)
        )
    assert d.health()["brainflow-eeg"].lost == 3
    # the playback board restamps samples as it replays them: they land on "now"
    assert abs(eeg.ts[-1] - arrived) < 1.0
    assert np.median(np.diff(eeg.ts)) == pytest.approx(1 / 250, rel=0.1)


def test_a_stalled_board_is_marked_and_reconnected(tmp_path):
    path = tmp_path / "short.csv"
    data = _synthetic_file(path, 100)
    d = BrainFlowDriver(
        "playback",
        {"file": str(path), "master_board": "synthetic"},
        streams=["eeg"],
        stall_timeout=0.3,
        reconnect=True,  # re-opening the playback board replays the file: a real reconnection
        reconnect_interval=0.2,
    )
    d.start()
    try:
        assert wait_until(lambda: d.health()["brainflow-eeg"].received >= 100, 15)
        assert wait_until(lambda: not d.health()["brainflow-eeg"].connected, 10)
        gap = d.health()["brainflow-eeg"]
        assert gap.gaps == 1 and "no data from the board" in gap.message
        assert wait_until(lambda: d.health()["brainflow-eeg"].received >= 200, 15)
        back = d.health()["brainflow-eeg"]
    finally:
        d.stop()
    assert back.lost == 0  # the restarted counter is a gap, not lost samples
    eeg = d.rings["brainflow-eeg"].latest(200)
    np.testing.assert_array_equal(eeg.data[100:], data[1:17].T.astype(np.float32))


def test_a_board_that_cannot_be_opened_is_a_clear_error(tmp_path):
    d = BrainFlowDriver("cyton", {"serial_port": "/dev/ttyAFFECTLAB_MISSING"})
    with pytest.raises(DriverError) as err:
        d.start()
    message = str(err.value)
    assert "'cyton'" in message and "serial_port='/dev/ttyAFFECTLAB_MISSING'" in message
    assert "UNABLE_TO_OPEN_PORT" in message
    assert not d.running
    missing = tmp_path / "absent.csv"
    d = BrainFlowDriver("playback", {"file": str(missing), "master_board": "synthetic"})
    with pytest.raises(DriverError, match="playback file not found"):
        d.start()
    with pytest.raises(DriverError, match="set master_board"):
        BrainFlowDriver("playback", {"file": str(missing)})


# ------------------------------------------------------------------ config
def test_from_config_builds_and_validates(tmp_path):
    (d,) = from_config({"board": "synthetic", "streams": ["eeg", "eda", "markers"], "name": "bf"})
    assert isinstance(d, BrainFlowDriver)
    assert [s.name for s in d.specs] == ["bf-eeg", "bf-eda", "bf-markers"]
    (p,) = from_config({"board": "playback", "file": str(tmp_path / "x.csv"), "loop": True})
    assert p.params.master_board == SYNTHETIC and p.config_commands == ["loopback_true"]
    (c,) = from_config(
        {
            "board": "cyton",
            "serial_port": "/dev/ttyUSB0",
            "streams": ["eeg", "ecg"],
            "channels": {"ecg": [8]},
        }
    )
    assert [s.n_channels for s in c.specs] == [7, 1]
    bad = [
        ({"board": "cytn"}, "board", "did you mean"),
        ({"serial": "/dev/ttyUSB0"}, "serial", "unknown option"),
        ({"serial_port": 3}, "serial_port", "expected a string"),
        ({"ip_port": -1}, "ip_port", "non-negative"),
        ({"streams": ["eeg", "brainwaves"]}, "streams", "expected a list"),
        ({"loop": True}, "loop", "playback board only"),
        ({"poll_interval": 5}, "poll_interval", "0.001 to 1"),
        ({"channels": {"eeg": "1-8"}}, "channels", "board rows"),
        ({"board": "cyton", "streams": ["eeg"], "channels": {"ecg": [8]}}, "channels", "not among"),
        ({"master_board": "nope", "board": "playback"}, "master_board", "unknown"),
    ]
    for options, key, text in bad:
        with pytest.raises(OptionError, match=text) as err:
            from_config(options)
        assert err.value.key == key


def _shipped_sources(kind: str) -> list[dict]:
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "app" / "configs" / "brainflow_webcam.toml"
    data = tomllib.loads(path.read_text())
    return [s for s in data["sources"] if s["kind"] == kind]


def test_shipped_example_config_builds_and_runs():
    (table,) = _shipped_sources("brainflow")
    options = {k: v for k, v in table.items() if k != "kind"}
    (d,) = from_config(options)
    assert [s.name for s in d.specs] == [
        "board-eda",
        "board-ppg",
        "board-temperature",
        "board-accel",
        "board-gyro",
        "board-markers",
    ]
    d.start()
    try:
        assert wait_until(lambda: d.rings["board-eda"].head >= 50, 10)
    finally:
        d.stop()
    assert d.error is None


def test_a_session_says_nothing_of_brainflow_s_pkg_resources(tmp_path):
    """setuptools warned on every BrainFlow session that pkg_resources is deprecated."""
    import subprocess
    import sys

    script = (
        "from drivers.brainflow import BrainFlowDriver\n"
        "from brainflow.board_shim import BoardIds\n"
        "d = BrainFlowDriver(int(BoardIds.SYNTHETIC_BOARD), {})\n"
        "d.start(); d.stop()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pkg_resources" not in proc.stderr
