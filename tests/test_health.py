"""Stream health: counts, effective rate from sample stamps, gaps, copies, JSON form."""

from __future__ import annotations

import json
import math

import pytest

from core.clock import lsl_now
from core.health import HealthTracker, StreamHealth


def feed(tracker: HealthTracker, rate: float, chunk: int, n_chunks: int, t0: float) -> float:
    """Chunks of ``chunk`` samples at ``rate`` Hz; arrivals 3 ms after the newest stamp."""
    t_last = t0
    for k in range(n_chunks):
        t_last = t0 + ((k + 1) * chunk - 1) / rate
        tracker.on_chunk(t_last, chunk, arrival=t_last + 0.003)
    return t_last


@pytest.mark.parametrize("rate,chunk", [(250.0, 10), (1000.0, 32), (30.0, 1), (2048.0, 7)])
def test_effective_rate_matches_the_stamps(rate: float, chunk: int) -> None:
    tracker = HealthTracker(StreamHealth("s"))
    n_chunks = int(5 * rate / chunk)  # 5 s, longer than the 2 s window
    t_last = feed(tracker, rate, chunk, n_chunks, t0=1000.0)
    h = tracker.health
    assert h.effective_rate == pytest.approx(rate, rel=0.01)
    assert h.received == n_chunks * chunk
    assert h.connected
    assert h.last_sample_time == t_last
    assert h.last_arrival == pytest.approx(t_last + 0.003)
    assert h.latency == pytest.approx(0.003)


def test_effective_rate_follows_a_change_within_the_window() -> None:
    tracker = HealthTracker(StreamHealth("s"), window_s=1.0)
    t = feed(tracker, 500.0, 10, 200, t0=0.0)
    assert tracker.health.effective_rate == pytest.approx(500.0, rel=0.01)
    feed(tracker, 250.0, 10, 100, t0=t + 1 / 250)  # 4 s at half the rate
    assert tracker.health.effective_rate == pytest.approx(250.0, rel=0.01)
    assert tracker.health.received == 3000


def test_one_chunk_gives_no_rate_yet() -> None:
    tracker = HealthTracker(StreamHealth("s"))
    tracker.on_chunk(10.0, 5, arrival=10.1)
    assert tracker.health.effective_rate == 0.0
    assert tracker.health.received == 5
    tracker.on_chunk(10.0, 0, arrival=10.2)  # empty chunks are ignored
    assert tracker.health.received == 5
    assert tracker.health.last_arrival == 10.1


def test_arrival_defaults_to_now() -> None:
    tracker = HealthTracker(StreamHealth("s"))
    a = lsl_now()
    tracker.on_chunk(a - 0.5, 1)
    b = lsl_now()
    assert a <= tracker.health.last_arrival <= b
    assert tracker.health.latency == pytest.approx(0.5, abs=0.1)


def test_disconnect_counts_one_gap_per_outage() -> None:
    tracker = HealthTracker(StreamHealth("eeg"))
    tracker.on_disconnect("not yet seen")  # never connected: not a gap
    assert tracker.health.gaps == 0
    assert tracker.health.message == "not yet seen"
    t = feed(tracker, 100.0, 10, 50, t0=0.0)
    assert tracker.health.effective_rate > 0
    tracker.on_disconnect("stream 'eeg' lost")
    tracker.on_disconnect("stream 'eeg' lost")  # repeated report of the same outage
    h = tracker.health
    assert (h.gaps, h.connected, h.effective_rate) == (1, False, 0.0)
    assert h.message == "stream 'eeg' lost"
    # After reconnecting, the rate starts afresh (no span across the hole).
    feed(tracker, 100.0, 10, 50, t0=t + 10.0)
    assert tracker.health.connected
    assert tracker.health.effective_rate == pytest.approx(100.0, rel=0.01)
    tracker.on_disconnect()
    assert tracker.health.gaps == 2
    assert tracker.health.received == 1000


def test_snapshot_is_a_copy() -> None:
    tracker = HealthTracker(StreamHealth("s"))
    feed(tracker, 100.0, 10, 10, t0=0.0)
    snap = tracker.snapshot()
    assert snap == tracker.health
    assert snap is not tracker.health
    snap.received = -1
    snap.message = "changed"
    assert tracker.health.received == 100
    assert tracker.health.message == ""
    feed(tracker, 100.0, 10, 10, t0=1.0)
    assert snap.received == -1
    assert tracker.snapshot().received == 200


def test_to_dict_replaces_non_finite_floats_with_none() -> None:
    h = StreamHealth("s")
    d = h.to_dict()
    assert d["latency"] is None
    assert d["last_sample_time"] is None
    assert d["last_arrival"] is None
    assert d["staleness"] is None  # nothing seen yet: infinitely stale
    assert d["effective_rate"] == 0.0
    assert d["name"] == "s" and d["connected"] is False
    json.dumps(d, allow_nan=False)  # strict JSON

    tracker = HealthTracker(h)
    tracker.on_chunk(10.0, 4, arrival=10.25)
    d = h.to_dict(now=12.0)
    assert d["staleness"] == 2.0
    assert d["latency"] == 0.25
    assert d["last_sample_time"] == 10.0
    h.effective_rate = math.inf
    h.clock_offset = -math.inf
    d = h.to_dict(now=12.0)
    assert d["effective_rate"] is None and d["clock_offset"] is None
    json.dumps(d, allow_nan=False)


def test_staleness() -> None:
    h = StreamHealth("s")
    assert h.staleness() == math.inf
    h.last_sample_time = lsl_now() - 1.0
    assert 1.0 <= h.staleness() < 2.0
    assert h.staleness(now=h.last_sample_time + 3.0) == 3.0
