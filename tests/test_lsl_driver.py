"""LslDriver against real pylsl outlets: in a subprocess (counter signals, kill and restart) and
in this process (string markers, headers, holes). No mocks; stream names carry a random tag so
that other LSL users on the machine cannot collide with them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import numpy as np
import pylsl
import pytest
from waiting import wait_until

from core.streams import Modality
from drivers.base import DriverError, OptionError
from drivers.lsl import LslDriver, expected_summary
from drivers.lsl_config import from_config
from drivers.lsl_streams import LslQuery, modality_for, xpath_literal

#: An outlet sending a counter (channel 0) and its own LSL stamp (channel 1) at a paced rate.
#: It exits when its stdin closes, so a crashed test leaves no orphan.
OUTLET = r"""
import json, os, sys, threading, time
import numpy as np, pylsl
cfg = json.loads(sys.argv[1])
info = pylsl.StreamInfo(cfg["name"], cfg["type"], cfg["channels"], cfg["rate"], "double64",
                        cfg["source_id"])
chans = info.desc().append_child("channels")
for i in range(cfg["channels"]):
    ch = chans.append_child("channel")
    ch.append_child_value("label", f"C{i + 1}")
    ch.append_child_value("unit", "microvolts")
    ch.append_child_value("type", "EEG")
info.desc().append_child_value("manufacturer", "affectlab-tests")
outlet = pylsl.StreamOutlet(info, 0, 30)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
rate, n_ch, k = cfg["rate"], cfg["channels"], cfg["start"]
t0 = pylsl.local_clock()
print("ready", flush=True)
while True:
    due = cfg["start"] + int((pylsl.local_clock() - t0) * rate) + 1
    if due > k:
        idx = np.arange(k, due)
        stamps = t0 + (idx - cfg["start"]) / rate
        x = np.zeros((len(idx), n_ch))
        x[:, 0] = idx
        x[:, 1] = stamps
        outlet.push_chunk(x, stamps.tolist())
        k = due
    time.sleep(0.005)
"""


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _outlet(name: str, source_id: str, start: int = 0, rate: float = 500.0, channels: int = 8):
    cfg = {
        "name": name,
        "type": "EEG",
        "source_id": source_id,
        "rate": rate,
        "channels": channels,
        "start": start,
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", OUTLET, json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"outlet did not start: {line!r}"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(10)


def _all(driver: LslDriver):
    ring = driver.rings[driver.stream]
    return ring.copy_span(ring.oldest_index(), ring.head)


# ------------------------------------------------------------------ subprocess outlets
def test_counter_stream_arrives_whole_in_order_on_the_local_clock():
    tag = _tag()
    proc = _outlet(f"counter-{tag}", f"sid-{tag}")
    try:
        driver = LslDriver(LslQuery(name=f"counter-{tag}"), dejitter=False, resolve_timeout=10)
        spec = driver.specs[0]
        assert spec.name == f"counter-{tag}"
        assert spec.modality is Modality.EEG
        assert spec.nominal_rate == 500.0
        assert spec.dtype == "float64"
        assert spec.channel_names == tuple(f"C{i}" for i in range(1, 9))
        assert spec.units == ("microvolts",) * 8
        assert spec.metadata["source_id"] == f"sid-{tag}"
        assert spec.metadata["manufacturer"] == "affectlab-tests"
        driver.start()
        try:
            assert wait_until(lambda: driver.rings[driver.stream].head >= 1000)
        finally:
            driver.stop()
        chunk = _all(driver)
        counter = chunk.data[:, 0]
        assert np.all(np.diff(counter) == 1), "every counter value once, in order"
        # the sender's own local_clock stamps, clock-synced onto ours (same host: ~0)
        offset = chunk.ts - chunk.data[:, 1]
        assert np.max(np.abs(offset)) < 2e-3
        health = driver.health()[driver.stream]
        assert health.received == len(counter)
        assert health.gaps == 0 and health.lost == 0
        assert abs(health.clock_offset) < 2e-3
        assert np.isfinite(health.latency)
        assert driver.error is None
    finally:
        _kill(proc)


def test_outlet_killed_and_restarted_reconnects_and_marks_the_gap():
    tag = _tag()
    sid = f"sid-{tag}"
    proc = _outlet(f"restart-{tag}", sid)
    try:
        driver = LslDriver(LslQuery(source_id=sid), resolve_timeout=10, reconnect_interval=0.5)
        driver.start()
        try:
            assert wait_until(lambda: driver.rings[driver.stream].head >= 200)
            assert driver.health()[driver.stream].connected
            _kill(proc)
            assert wait_until(lambda: not driver.health()[driver.stream].connected)
            before = driver.rings[driver.stream].head
            health = driver.health()[driver.stream]
            assert health.gaps == 1
            assert "lost" in health.message
            proc = _outlet(f"restart-{tag}", sid, start=100_000)
            assert wait_until(
                lambda: (
                    driver.rings[driver.stream].head > before + 200
                    and driver.rings[driver.stream].latest(1).data[0, 0] >= 100_200
                )
            )
        finally:
            driver.stop()
        health = driver.health()[driver.stream]
        assert health.connected
        assert health.gaps == 1
        assert driver.reconnects == 1
        counter = _all(driver).data[:, 0]
        first, second = counter[counter < 100_000], counter[counter >= 100_000]
        assert len(first) >= 200 and len(second) >= 200
        assert np.all(np.diff(first) == 1) and np.all(np.diff(second) == 1)
        assert driver.error is None
    finally:
        _kill(proc)


# ------------------------------------------------------------------ in-process outlets
def _local_outlet(
    name: str, type_: str = "EEG", rate: float = 100.0, fmt: str = "float32", n: int = 2
):
    info = pylsl.StreamInfo(name, type_, n, rate, fmt, f"sid-{name}")
    return pylsl.StreamOutlet(info)


def test_missing_stream_names_what_was_looked_for_and_what_was_found():
    tag = _tag()
    outlet = _local_outlet(f"present-{tag}")
    with pytest.raises(DriverError) as err:
        LslDriver(LslQuery(name=f"absent-{tag}"), resolve_timeout=0.3)
    text = str(err.value)
    assert f"name='absent-{tag}'" in text
    assert f"present-{tag}" in text  # the listing of what the network offers
    # the config path gives the same message (a DriverError, not a traceback)
    with pytest.raises(DriverError, match=f"absent-{tag}"):
        from_config({"lsl_name": f"absent-{tag}", "resolve_timeout": 0.3})
    del outlet


def test_string_markers_land_as_str_in_a_marker_ring():
    tag = _tag()
    outlet = _local_outlet(f"markers-{tag}", "Markers", pylsl.IRREGULAR_RATE, "string", 1)
    driver = LslDriver(LslQuery(name=f"markers-{tag}"), stream="triggers", resolve_timeout=5)
    assert driver.stream == "triggers"
    assert driver.specs[0].modality is Modality.MARKERS
    assert driver.specs[0].dtype == "object"
    assert driver.stall_timeout == 0.0  # irregular streams never stall
    driver.start()
    try:
        assert wait_until(lambda: outlet.have_consumers(), 10)
        sent = [f"stimulus/{i}/é" for i in range(20)]
        for s in sent:
            outlet.push_sample([s])
        assert wait_until(lambda: driver.rings["triggers"].head >= len(sent))
    finally:
        driver.stop()
    got = _all(driver).data[:, 0].tolist()
    assert got == sent


@pytest.mark.parametrize("dejitter", [True, False])
def test_holes_in_a_regular_timeline_count_as_gaps_with_lost_samples(dejitter):
    """With or without de-jitter: ours starts a new line at the hole, so it is counted and
    the stamps after it are the ones sent (LSL's would have run one line over it)."""
    tag = _tag()
    outlet = _local_outlet(f"holes-{tag}", rate=100.0)
    driver = LslDriver(LslQuery(name=f"holes-{tag}"), dejitter=dejitter, resolve_timeout=5)
    driver.start()
    try:
        assert wait_until(lambda: outlet.have_consumers(), 10)
        t0 = pylsl.local_clock()
        idx = np.r_[0:50, 100:150]  # samples 50..99 never sent: a 0.5 s hole
        x = np.stack([idx, idx], axis=1).astype(np.float32)
        outlet.push_chunk(x[:50], (t0 + idx[:50] / 100).tolist())
        outlet.push_chunk(x[50:], (t0 + idx[50:] / 100).tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= 100)
    finally:
        driver.stop()
    health = driver.health()[driver.stream]
    assert health.gaps == 1
    assert health.lost == 50
    assert health.connected
    got = _all(driver)
    np.testing.assert_array_equal(got.data[:, 0], idx)
    np.testing.assert_allclose(got.ts, t0 + idx / 100, atol=1e-3)  # the stamps sent


def test_a_sender_pausing_between_two_pulls_is_one_gap_with_its_lost_samples():
    """The usual dropout: the sender stops and resumes, so the hole lies between the last
    stamp of one pull and the first of the next, not inside a chunk. Health must count
    it (one gap, the samples a second holds) or a dropout never shows on the dashboard."""
    tag = _tag()
    outlet = _local_outlet(f"between-{tag}", rate=100.0)
    # no stall check: a busy machine's slow test thread must not add a gap of its own
    driver = LslDriver(
        LslQuery(name=f"between-{tag}"), dejitter=False, stall_timeout=0, resolve_timeout=5
    )
    driver.start()
    try:
        assert wait_until(lambda: outlet.have_consumers(), 10)
        t0 = pylsl.local_clock()
        x = np.zeros((50, 2), np.float32)
        outlet.push_chunk(x, (t0 + np.arange(50) / 100).tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= 50)  # pulled
        # 1 s after the last stamp: samples 50..148 never sent
        outlet.push_chunk(x, (t0 + np.arange(149, 199) / 100).tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= 100)
    finally:
        driver.stop()
    health = driver.health()[driver.stream]
    assert (health.gaps, health.lost) == (1, 99)


def test_two_holes_inside_one_pull_are_two_gaps():
    """A sender that drops out twice within one pull (a backlog after the reader fell
    behind) has two gaps, each with its own lost samples, not one."""
    tag = _tag()
    outlet = _local_outlet(f"two-holes-{tag}", rate=100.0)
    # pulls at most every 2 s: the chunk below is all in the inlet at the next pull (no
    # stall check: those 2 s of quiet are not a silent outlet)
    driver = LslDriver(
        LslQuery(name=f"two-holes-{tag}"),
        dejitter=False,
        stall_timeout=0,
        poll_interval=2.0,
        resolve_timeout=5,
    )
    driver.start()
    try:
        assert wait_until(lambda: outlet.have_consumers(), 10)
        t0 = pylsl.local_clock()
        outlet.push_chunk(np.zeros((10, 2), np.float32), (t0 + np.arange(10) / 100).tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= 10)
        idx = np.r_[10:20, 70:80, 150:160]  # holes of 50 and 70 samples
        x = np.zeros((len(idx), 2), np.float32)
        outlet.push_chunk(x, (t0 + idx / 100).tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= 40)
    finally:
        driver.stop()
    health = driver.health()[driver.stream]
    assert (health.gaps, health.lost) == (2, 120)


def test_dejitter_smooths_a_jittery_sender_and_keeps_its_pause():
    """A sender that stamps each sample as it pushes it (2 ms of jitter) and pauses 1 s with
    its outlet alive: the stamps come out nearer the true times than sent, the pause is
    one gap of 100 lost samples, and the stamps after it are right at once."""
    tag = _tag()
    outlet = _local_outlet(f"pause-{tag}", rate=100.0)
    driver = LslDriver(LslQuery(name=f"pause-{tag}"), resolve_timeout=5)
    assert driver.dejitter  # the default
    driver.start()
    rng = np.random.default_rng(3)
    idx = np.r_[0:1000, 1100:1600]  # 10 s, a 1 s pause, 5 s
    try:
        assert wait_until(lambda: outlet.have_consumers(), 10)
        true = pylsl.local_clock() - 20.0 + idx / 100
        sent = np.maximum.accumulate(true + rng.normal(0.0, 0.002, len(idx)))
        x = np.stack([idx, idx], axis=1).astype(np.float32)
        for a in range(0, len(idx), 10):
            outlet.push_chunk(x[a : a + 10], sent[a : a + 10].tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= len(idx))
    finally:
        driver.stop()
    health = driver.health()[driver.stream]
    assert (health.gaps, health.lost) == (1, 100)
    got = _all(driver)
    np.testing.assert_array_equal(got.data[:, 0], idx)
    err = np.abs(got.ts - true)
    after = slice(1000, 1100)  # the first second after the pause
    assert np.median(err[after]) < 0.002 and err[after].max() < 0.01
    assert np.median(err[200:]) < 0.5 * np.median(np.abs(sent - true)[200:])
    assert np.all(np.diff(got.ts) >= 0)


def test_stale_samples_and_a_silent_outlet_show_in_health():
    tag = _tag()
    outlet = _local_outlet(f"stale-{tag}", rate=100.0)
    driver = LslDriver(
        LslQuery(name=f"stale-{tag}"), dejitter=False, stall_timeout=0.5, resolve_timeout=5
    )
    driver.start()
    try:
        assert wait_until(lambda: outlet.have_consumers(), 10)
        # samples stamped 2 s ago arrive now: the latency (and the message) say how stale
        t0 = pylsl.local_clock() - 2.0
        outlet.push_chunk(np.zeros((10, 2), np.float32), (t0 + np.arange(10) / 100).tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= 10)
        health = driver.health()[driver.stream]
        assert health.latency > 1.8
        assert health.message.startswith("behind")
        assert health.staleness() > 1.8
        # then the outlet stays alive but sends nothing: disconnected after stall_timeout
        assert wait_until(lambda: not driver.health()[driver.stream].connected, 10)
        health = driver.health()[driver.stream]
        assert health.gaps == 1 and "silent" in health.message
        now = pylsl.local_clock()
        outlet.push_chunk(np.zeros((5, 2), np.float32), (now - 0.04 + np.arange(5) / 100).tolist())
        assert wait_until(lambda: driver.health()[driver.stream].connected, 10)
    finally:
        driver.stop()
    health = driver.health()[driver.stream]
    assert health.gaps == 1 and health.lost == 0  # the silence is one gap, not also a hole
    assert health.received == 15


def test_multi_inlet_form_and_header_fallbacks():
    tag = _tag()
    a = _local_outlet(f"multi-a-{tag}", "ECG", 256.0)
    b = _local_outlet(f"multi-b-{tag}", "Gaze", 60.0, "int16", 3)
    drivers = from_config(
        {
            "name": "lab",
            "resolve_timeout": 5,
            "inlets": [
                {"lsl_name": f"multi-a-{tag}"},
                {"lsl_name": f"multi-b-{tag}", "type": "Gaze", "stream": "gaze"},
            ],
        }
    )
    assert [d.name for d in drivers] == ["lab-0", "lab-1"]
    ecg, gaze = (d.specs[0] for d in drivers)
    assert (ecg.name, ecg.modality, ecg.nominal_rate) == (f"multi-a-{tag}", Modality.ECG, 256.0)
    assert ecg.channel_names == ("ch1", "ch2") and ecg.units == ()
    # an unknown LSL type is kept and recorded, but never bound to a model as EEG or the like
    assert (gaze.name, gaze.modality, gaze.dtype) == ("gaze", Modality.MARKERS, "int16")
    assert gaze.metadata["lsl_type"] == "Gaze"
    del a, b


# ------------------------------------------------------------------ pure helpers
def test_modalities_queries_and_options():
    assert modality_for("EEG") is Modality.EEG
    assert modality_for("ekg") is Modality.ECG
    assert modality_for("GSR") is Modality.EDA
    assert modality_for("Events") is Modality.MARKERS  # never a DVS event ring
    q = LslQuery(name="it's", type="EEG")
    assert q.predicate() == "name=\"it's\" and type='EEG'"
    assert xpath_literal("a'b\"c") == "concat('a', \"'\", 'b\"c')"
    with pytest.raises(ValueError):
        LslQuery(hostname="lab-pc")
    for options, key in [
        ({"type": "EEG", "colour": 1}, "colour"),
        ({"resolve_timeout": 1}, "lsl_name"),
        ({"type": "EEG", "dejitter": "yes"}, "dejitter"),
        ({"type": "EEG", "max_buffered": 0}, "max_buffered"),
        ({"type": "EEG", "modality": "EVENTS"}, "modality"),
        ({"type": "EEG", "inlets": [{"type": "ECG"}]}, "type"),
        ({"inlets": [{"type": "ECG", "rate": 1}]}, "inlets[0].rate"),
        ({"inlets": []}, "inlets"),
    ]:
        with pytest.raises(OptionError) as err:
            from_config(options)
        assert err.value.key == key, (options, err.value)


# ------------------------------------------------------------------ declared streams (expect)
def _labelled_outlet(name: str, labels: list[str], rate: float = 100.0):
    info = pylsl.StreamInfo(name, "EEG", len(labels), rate, "float32", f"sid-{name}")
    chans = info.desc().append_child("channels")
    for label in labels:
        chans.append_child("channel").append_child_value("label", label)
    return pylsl.StreamOutlet(info)


def test_a_declared_stream_that_appears_after_the_start_is_read_from_then():
    tag = _tag()
    expect = expected_summary(LslQuery(name=f"late-{tag}"), 2, 100.0, labels=("Fz", "Cz"))
    driver = LslDriver(
        LslQuery(name=f"late-{tag}"),
        modality="EEG",
        expect=expect,
        reconnect_interval=0.2,
        resolve_timeout=5,
    )
    spec = driver.specs[0]
    assert (spec.name, spec.modality, spec.n_channels, spec.nominal_rate, spec.dtype) == (
        f"late-{tag}",
        Modality.EEG,
        2,
        100.0,
        "float32",
    )
    assert spec.channel_names == ("Fz", "Cz")
    driver.start()
    try:
        assert wait_until(
            lambda: "not on the network yet" in driver.health()[driver.stream].message, 10
        )
        assert not driver.health()[driver.stream].connected
        # a stream with the name but another layout is refused, and the search goes on
        wrong = _local_outlet(f"late-{tag}", n=3)
        assert wait_until(lambda: "appeared as" in driver.health()[driver.stream].message, 10)
        assert "3 x float32" in driver.health()[driver.stream].message
        assert "not connecting" in driver.health()[driver.stream].message
        del wrong
        outlet = _labelled_outlet(f"late-{tag}", ["Fz", "Cz"])
        assert wait_until(lambda: outlet.have_consumers(), 15)
        t0 = pylsl.local_clock()
        x = np.stack([np.arange(50), -np.arange(50)], axis=1).astype(np.float32)
        outlet.push_chunk(x, (t0 + np.arange(50) / 100).tolist())
        assert wait_until(lambda: driver.rings[driver.stream].head >= 50, 10)
    finally:
        driver.stop()
    chunk = _all(driver)
    np.testing.assert_array_equal(chunk.data, x)
    health = driver.health()[driver.stream]
    assert health.connected and health.received == 50
    assert driver.reconnects == 0 and driver.connected_once
    assert driver.summary.source_id == f"sid-late-{tag}"
    assert driver.reconnect_query.source_id == f"sid-late-{tag}"  # pinned once seen
    assert driver.error is None


def test_a_declared_stream_present_at_start_must_match_the_declaration():
    tag = _tag()
    outlet = _labelled_outlet(f"decl-{tag}", ["Fz", "Cz"])
    query = LslQuery(name=f"decl-{tag}")
    with pytest.raises(DriverError, match="this ring holds 4 x float32 @ 100 Hz"):
        LslDriver(query, expect=expected_summary(query, 4, 100.0), resolve_timeout=5)
    with pytest.raises(DriverError, match=r"its channels are \['Fz', 'Cz'\]"):
        LslDriver(
            query, expect=expected_summary(query, 2, 100.0, labels=("C3", "C4")), resolve_timeout=5
        )
    driver = LslDriver(query, expect=expected_summary(query, 2, 100.0), resolve_timeout=5)
    assert driver.connected_once and driver.specs[0].channel_names == ("Fz", "Cz")
    del outlet


def test_expect_in_a_config():
    tag = _tag()
    [driver] = from_config(
        {
            "lsl_name": f"cfg-{tag}",
            "type": "ECG",
            "stream": "ecg",
            "expect": {"channels": 3, "rate": 256, "format": "int16", "units": ["mV", "mV", "mV"]},
        }
    )
    spec = driver.specs[0]
    assert (
        spec.name,
        spec.modality,
        spec.n_channels,
        spec.nominal_rate,
        spec.dtype,
        spec.units,
    ) == ("ecg", Modality.ECG, 3, 256.0, "int16", ("mV",) * 3)
    assert not driver.connected_once
    for options, key in [
        ({"lsl_name": "x", "expect": {"channels": 2, "rate": 1}}, "expect"),  # no modality or type
        ({"type": "EEG", "expect": {"rate": 1}}, "expect.channels"),
        ({"type": "EEG", "expect": {"channels": 2}}, "expect.rate"),
        ({"type": "EEG", "expect": {"channels": 0, "rate": 1}}, "expect.channels"),
        ({"type": "EEG", "expect": {"channels": 2, "rate": -1}}, "expect.rate"),
        (
            {"type": "EEG", "expect": {"channels": 2, "rate": 1, "format": "float16"}},
            "expect.format",
        ),
        ({"type": "EEG", "expect": {"channels": 2, "rate": 1, "labels": ["a"]}}, "expect.labels"),
        ({"type": "EEG", "expect": {"channels": 2, "rate": 1, "hz": 1}}, "expect.hz"),
        ({"type": "EEG", "expect": 32}, "expect"),
        ({"inlets": [{"type": "EEG", "expect": {"channels": 2}}]}, "inlets[0].expect.rate"),
    ]:
        with pytest.raises(OptionError) as err:
            from_config(options)
        assert err.value.key == key, (options, err.value)


@pytest.mark.parametrize(
    ("rate", "stall_s", "one_by_one"),
    [(256, 0.75, False), (64, 1.5, True)],
    ids=["pushed as one chunk", "pushed sample by sample"],
)
def test_a_stalled_senders_backlog_keeps_its_times_and_loses_nothing(rate, stall_s, one_by_one):
    """A sender stalls, then pushes the samples it owes back to back, stamped as pushed
    (microseconds apart), and goes on. The backlog is longer than one pull (the driver
    pulls at most max(64, rate / 2)), and a pull woken by its first sample gets that one
    alone: the driver reads on until the run ends, so the backlog is placed back from its
    last stamp. It was stamped up to the whole stall late (0.17 s here), and a longer stall
    showed a hole and samples counted lost that never were."""
    import threading
    import time

    stall_at, owed = 2 * rate, round(stall_s * rate)
    tag = _tag()
    outlet = _local_outlet(f"backlog-{tag}", rate=float(rate), n=1)
    t0 = pylsl.local_clock() + 1.0
    done = threading.Event()

    def send() -> None:
        # explicit stamps (the true times) outside the backlog, so a busy machine adds none
        k = 0
        while k < 4 * rate:
            if k == stall_at:
                time.sleep(max(0.0, t0 + (k + owed) / rate - pylsl.local_clock()))
                if one_by_one:
                    for j in range(owed):
                        outlet.push_sample([float(k + j)])  # stamped as pushed
                else:
                    now = pylsl.local_clock()
                    stamps = [now + j * 2e-6 for j in range(owed)]
                    outlet.push_chunk([[float(k + j)] for j in range(owed)], stamps)
                k += owed
                continue
            time.sleep(max(0.0, t0 + k / rate - pylsl.local_clock()))
            outlet.push_sample([float(k)], t0 + k / rate)
            k += 1
        done.set()

    driver = LslDriver(LslQuery(name=f"backlog-{tag}"), resolve_timeout=5)
    assert owed > driver._cap  # longer than a pull
    sender = threading.Thread(target=send)
    driver.start()
    sender.start()
    try:
        assert wait_until(done.is_set, 20)
        assert wait_until(lambda: driver.rings[driver.stream].head >= 4 * rate, 10)
    finally:
        sender.join()
        driver.stop()
    got = _all(driver)
    k = got.data[:, 0].astype(int)
    assert list(k) == list(range(4 * rate))
    health = driver.health()[driver.stream]
    assert health.lost == 0 and health.gaps == 0
    err = got.ts - (t0 + k / rate)
    # placed back from the last stamp, which came up to a period after its true time
    assert np.abs(err).max() < 1.5 / rate


def test_a_sender_of_short_blocks_reaches_the_ring_as_it_sends():
    """4-sample blocks every 4 ms at 1 kHz, pushed sample by sample (stamped as pushed).
    Each block is a run de-jitter places from its end; the driver reads on only until a
    run ends, so the ring keeps up with the sender. It read on while the next block came
    within 5 ms, i.e. for seconds: samples reached the ring up to 6 s late."""
    import threading
    import time

    rate, blk, blocks = 1000, 4, 750
    tag = _tag()
    outlet = _local_outlet(f"blocks-{tag}", rate=float(rate), n=1)
    driver = LslDriver(LslQuery(name=f"blocks-{tag}"), resolve_timeout=5)
    ring = driver.rings[driver.stream]
    behind: list[int] = []  # samples sent but not yet in the ring, sampled before each block

    def send() -> None:
        t0 = time.monotonic() + 0.5
        for b in range(blocks):
            time.sleep(max(0.0, t0 + b * blk / rate - time.monotonic()))
            behind.append(b * blk - ring.head)
            for j in range(blk):
                outlet.push_sample([float(b * blk + j)])

    driver.start()
    sender = threading.Thread(target=send)
    sender.start()
    try:
        sender.join(30)
        assert wait_until(lambda: ring.head >= blocks * blk, 10)
    finally:
        driver.stop()
    assert list(_all(driver).data[:, 0].astype(int)) == list(range(blocks * blk))
    # a block or two in flight, not seconds' worth (the median is robust to a busy moment)
    assert np.median(behind[blocks // 4 :]) < 0.05 * rate


@pytest.mark.parametrize("dejitter", [True, False])
def test_a_sender_that_stamps_in_bursts_is_a_whole_stream(dejitter):
    """A sender pushing a device's blocks sample by sample stamps 50 samples at once every
    0.2 s: not a hole every 0.2 s, in health nor in the windows (de-jitter smooths the
    bursts; without it the aligner still sees no hole that short)."""
    import threading

    from core.clock import VirtualClock
    from core.scheduler import Aligner, StreamSource
    from core.window import ModelInputs, NumericInput, Presence

    tag = _tag()
    outlet = _local_outlet(f"bursts-{tag}", rate=250.0, n=4)
    stop = threading.Event()

    def send() -> None:
        # Each block's 50 samples share one stamp, every 0.2 s. The stamps are explicit and a
        # stalled sender catches up with its overdue blocks, so a busy machine makes no hole.
        t0, k = pylsl.local_clock(), 0
        while not stop.is_set():
            for _ in range(50):
                outlet.push_sample([0.0, 1.0, 2.0, 3.0], t0 + 0.2 * k)  # together
            k += 1
            stop.wait(max(0.0, t0 + 0.2 * k - pylsl.local_clock()))

    driver = LslDriver(LslQuery(name=f"bursts-{tag}"), dejitter=dejitter, resolve_timeout=5)
    sender = threading.Thread(target=send)
    sender.start()
    driver.start()
    try:
        assert wait_until(lambda: driver.rings[driver.stream].head >= 250 * 5, 15)
    finally:
        stop.set()
        sender.join()
        driver.stop()
    health = driver.health()[driver.stream]
    assert health.gaps == 0 and health.lost == 0
    src = StreamSource(driver.spec, driver.rings[driver.stream])
    want = NumericInput(Modality.EEG, 4.0, 128.0)
    aligner = Aligner([ModelInputs("m", {"eeg": want}, hop_s=0.5)], {"eeg": src}, VirtualClock())
    w = aligner.cut("m", float(_all(driver).ts[-1]) - 0.05).inputs["eeg"]
    assert w.presence is Presence.PRESENT and w.coverage > 0.95
