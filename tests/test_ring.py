"""Ring buffers: wrap-around, time queries at the edges, readers, loss counting, concurrency.

Every item's value encodes its own absolute index, so any wrong slot, torn copy or
off-by-one shows up as a value that differs from the index it was reported at.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from core.ring import Ring, RingChunk, ring_for
from core.streams import EVENT_DTYPE, Modality, StreamSpec

DT = 0.01  # stamps are T0 + index * DT
T0 = 100.0


def stamps(start: int, stop: int) -> np.ndarray:
    return T0 + np.arange(start, stop, dtype=np.float64) * DT


def numeric_items(start: int, stop: int, channels: int = 3) -> np.ndarray:
    """Channel c of item i holds i * 10 + c (exact in float64)."""
    idx = np.arange(start, stop, dtype=np.float64)[:, None]
    return idx * 10 + np.arange(channels, dtype=np.float64)[None, :]


def event_items(start: int, stop: int) -> np.ndarray:
    idx = np.arange(start, stop)
    ev = np.empty(len(idx), dtype=EVENT_DTYPE)
    ev["x"] = idx % 30000
    ev["y"] = idx // 30000
    ev["polarity"] = idx % 2
    return ev


def event_index(ev: np.ndarray) -> np.ndarray:
    return ev["y"].astype(np.int64) * 30000 + ev["x"].astype(np.int64)


def frame_items(start: int, stop: int, shape: tuple[int, ...]) -> np.ndarray:
    idx = np.arange(start, stop, dtype=np.float32)
    return np.broadcast_to(idx.reshape(-1, *([1] * len(shape))), (len(idx), *shape)).copy()


def fill(ring: Ring, start: int, stop: int, chunk: int) -> None:
    """Write absolute items [start, stop) as numeric items, ``chunk`` at a time."""
    ch = ring.item_shape[0]
    for a in range(start, stop, chunk):
        b = min(stop, a + chunk)
        ring.write(numeric_items(a, b, ch), stamps(a, b))


def assert_items(chunk: RingChunk, start: int, stop: int, channels: int = 3) -> None:
    assert chunk.start == start
    assert chunk.end == stop
    np.testing.assert_array_equal(chunk.data, numeric_items(start, stop, channels))
    np.testing.assert_array_equal(chunk.ts, stamps(start, stop))


# ------------------------------------------------------------------ wrap-around


@pytest.mark.parametrize("chunk", [1, 3, 7, 10, 16])
def test_numeric_wrap_keeps_newest_capacity_items(chunk: int) -> None:
    ring = Ring(10, (3,), np.float64)
    fill(ring, 0, 37, chunk)  # 7 does not divide 10: chunks straddle the end
    assert ring.head == 37
    assert len(ring) == 10
    assert ring.fill == 1.0
    assert ring.oldest_index() == 27
    assert ring.last_timestamp() == stamps(36, 37)[0]
    assert_items(ring.latest(10), 27, 37)
    assert_items(ring.latest(100), 27, 37)
    assert_items(ring.latest(4), 33, 37)
    assert_items(ring.copy_span(29, 35), 29, 35)


def test_write_straddling_the_end_splits_into_two_copies() -> None:
    ring = Ring(8, (3,), np.float64)
    fill(ring, 0, 6, 6)
    fill(ring, 6, 11, 5)  # slots 6, 7 then 0, 1, 2
    assert_items(ring.latest(8), 3, 11)
    np.testing.assert_array_equal(ring._data[:3], numeric_items(8, 11))  # wrapped part


def test_chunk_larger_than_capacity_keeps_its_tail() -> None:
    ring = Ring(10, (3,), np.float64)
    fill(ring, 0, 4, 4)
    fill(ring, 4, 29, 25)
    assert ring.head == 29
    assert ring.oldest_index() == 19
    assert_items(ring.latest(10), 19, 29)
    reader = ring.reader(from_oldest=True)
    assert reader.cursor == 19
    # A chunk of exactly the capacity, starting mid-ring.
    fill(ring, 29, 39, 10)
    assert_items(ring.latest(10), 29, 39)


def test_empty_ring_and_empty_write() -> None:
    ring = Ring(5, (2,))
    assert len(ring) == 0
    assert ring.head == 0
    assert np.isnan(ring.last_timestamp())
    ring.write(np.empty((0, 2), np.float32), np.empty(0))
    assert ring.head == 0
    assert len(ring.latest(3)) == 0
    assert len(ring.range(-1e9, 1e9)) == 0
    assert ring.search(1.0) == 0
    assert ring.latest(3).data.shape == (0, 2)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Ring(0)


# ------------------------------------------------------------------ event and frame rings


def test_event_ring_from_spec_wraps_and_queries() -> None:
    spec = StreamSpec("dvs", Modality.EVENTS, 0.0)
    ring = ring_for(spec, capacity=1000)
    assert ring.dtype == EVENT_DTYPE
    assert ring.item_shape == ()
    for a in range(0, 2550, 170):  # 170 does not divide 1000
        b = min(2550, a + 170)
        ring.write(event_items(a, b), stamps(a, b))
    chunk = ring.latest(1000)
    assert chunk.start == 1550
    assert chunk.data.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(event_index(chunk.data), np.arange(1550, 2550))
    np.testing.assert_array_equal(chunk.data["polarity"], np.arange(1550, 2550) % 2)
    np.testing.assert_array_equal(chunk.ts, stamps(1550, 2550))
    # Range across the wrap point (slot 999 -> slot 0 sits between items 1999 and 2000).
    r = ring.range(stamps(1990, 1991)[0], stamps(2010, 2011)[0])
    np.testing.assert_array_equal(event_index(r.data), np.arange(1990, 2010))


def test_event_ring_default_capacity() -> None:
    ring = ring_for(StreamSpec("dvs", Modality.EVENTS, 0.0))
    assert ring.capacity == 1 << 22


@pytest.mark.parametrize("frame_shape", [(4, 6), (4, 6, 3)])
def test_frame_ring_from_spec(frame_shape: tuple[int, ...]) -> None:
    spec = StreamSpec("cam", Modality.FRAMES, 30.0, frame_shape=frame_shape, dtype="uint8")
    ring = ring_for(spec, seconds=1.0)
    assert ring.capacity == 30
    assert ring.item_shape == frame_shape
    assert ring.dtype == np.uint8
    for a in range(0, 75, 4):
        b = min(75, a + 4)
        ring.write(frame_items(a, b, frame_shape).astype(np.uint8), stamps(a, b))
    chunk = ring.latest(30)
    assert chunk.start == 45
    assert chunk.data.shape == (30, *frame_shape)
    np.testing.assert_array_equal(chunk.data, frame_items(45, 75, frame_shape).astype(np.uint8))
    r = ring.range(stamps(58, 59)[0], stamps(62, 63)[0], pad_before=1, pad_after=1)
    assert (r.start, r.end) == (57, 63)


def test_frame_ring_direct_float() -> None:
    ring = Ring(5, (2, 3), np.float32)
    ring.write(frame_items(0, 12, (2, 3)), stamps(0, 12))  # larger than capacity
    chunk = ring.latest(5)
    np.testing.assert_array_equal(chunk.data[:, 0, 0], np.arange(7, 12, dtype=np.float32))
    with pytest.raises(ValueError):
        ring.write(np.zeros((2, 3, 2), np.float32), stamps(0, 2))


def test_ring_for_numeric_sizes() -> None:
    eeg = StreamSpec("eeg", Modality.EEG, 256.0, ("a", "b", "c", "d"))
    ring = ring_for(eeg, seconds=10.0)
    assert ring.capacity == 2560
    assert ring.item_shape == (4,)
    assert ring_for(eeg, seconds=1.0).capacity == 1024  # a floor for short windows
    markers = StreamSpec("mk", Modality.MARKERS, 0.0, ("m",))
    assert ring_for(markers).capacity == 4096
    assert ring_for(eeg, capacity=77).capacity == 77


# ------------------------------------------------------------------ time-range queries


@pytest.fixture
def wrapped_ring() -> Ring:
    """Capacity 50, items 0..129 written: holds 80..129, slot 0 holds item 100."""
    ring = Ring(50, (3,), np.float64)
    fill(ring, 0, 130, 13)
    return ring


def span(chunk: RingChunk) -> tuple[int, int]:
    return chunk.start, chunk.end


def test_range_edges_exactly_on_stamps(wrapped_ring: Ring) -> None:
    r = wrapped_ring.range(stamps(90, 91)[0], stamps(95, 96)[0])
    assert span(r) == (90, 95)  # t0 included, t1 excluded
    assert_items(r, 90, 95)


def test_range_between_stamps(wrapped_ring: Ring) -> None:
    r = wrapped_ring.range(stamps(90, 91)[0] + DT / 2, stamps(95, 96)[0] + DT / 2)
    assert span(r) == (91, 96)


def test_range_before_oldest_and_after_newest(wrapped_ring: Ring) -> None:
    assert span(wrapped_ring.range(0.0, stamps(85, 86)[0])) == (80, 85)
    assert span(wrapped_ring.range(stamps(120, 121)[0], 1e9)) == (120, 130)
    assert span(wrapped_ring.range(-1e9, 1e9)) == (80, 130)
    # t1 exactly on the newest stamp excludes it.
    assert span(wrapped_ring.range(stamps(125, 126)[0], stamps(129, 130)[0])) == (125, 129)


def test_empty_ranges(wrapped_ring: Ring) -> None:
    for t0, t1 in [
        (1e9, 2e9),  # after the newest
        (0.0, stamps(80, 81)[0]),  # ends exactly on the oldest: excluded
        (stamps(90, 91)[0], stamps(90, 91)[0]),  # zero width
        (stamps(95, 96)[0], stamps(90, 91)[0]),  # reversed
        (stamps(90, 91)[0] + 0.001, stamps(90, 91)[0] + 0.002),  # between two stamps
    ]:
        r = wrapped_ring.range(t0, t1)
        assert len(r) == 0
        assert r.data.shape == (0, 3)
        assert r.lost == 0


def test_range_padding(wrapped_ring: Ring) -> None:
    t = stamps(0, 130)
    r = wrapped_ring.range(t[90], t[95], pad_before=2, pad_after=3)
    assert span(r) == (88, 98)
    assert_items(r, 88, 98)
    # Padding is clipped at the oldest and newest items.
    assert span(wrapped_ring.range(t[81], t[83], pad_before=5)) == (80, 83)
    assert span(wrapped_ring.range(t[127], t[129], pad_after=5)) == (127, 130)
    # An empty range still yields its neighbours (what interpolation needs).
    mid = t[90] + DT / 2
    assert span(wrapped_ring.range(mid, mid, pad_before=1, pad_after=1)) == (90, 92)
    assert span(wrapped_ring.range(1e9, 2e9, pad_before=2)) == (128, 130)


def test_search_across_wrap_point() -> None:
    ring = Ring(50, (3,), np.float64)
    fill(ring, 0, 130, 13)  # stored 80..129; items 80..99 in slots 30..49, 100..129 in 0..29
    t = stamps(0, 130)
    for i in range(80, 130):
        assert ring.search(t[i], "left") == i
        assert ring.search(t[i], "right") == i + 1
        assert ring.search(t[i] + DT / 2) == i + 1
    assert ring.search(t[99] + DT / 2) == 100  # between the last slot and slot 0
    assert ring.search(-1e9) == 80
    assert ring.search(1e9) == 130


def test_search_when_oldest_is_in_slot_zero() -> None:
    ring = Ring(10, (3,), np.float64)
    fill(ring, 0, 30, 10)
    t = stamps(0, 30)
    assert [ring.search(x) for x in t[20:30]] == list(range(20, 30))
    assert ring.search(t[29], "right") == 30


def test_range_over_many_positions_matches_a_plain_scan() -> None:
    rng = np.random.default_rng(3)
    ring = Ring(64, (3,), np.float64)
    total = 0
    for _ in range(40):
        n = int(rng.integers(1, 40))
        fill(ring, total, total + n, n)
        total += n
        t = stamps(0, total)
        lo = max(0, total - 64)
        for _ in range(5):
            t0, t1 = np.sort(rng.uniform(t[0] - 0.05, t[-1] + 0.05, size=2))
            keep = np.nonzero((t >= t0) & (t < t1))[0]
            keep = keep[keep >= lo]
            r = ring.range(t0, t1)
            if len(keep):
                assert span(r) == (keep[0], keep[-1] + 1)
            else:
                assert len(r) == 0


# ------------------------------------------------------------------ readers


def test_many_readers_have_their_own_cursors() -> None:
    ring = Ring(100, (3,), np.float64)
    fill(ring, 0, 10, 10)
    a = ring.reader()  # starts at the newest: sees only new items
    b = ring.reader(from_oldest=True)
    assert (a.cursor, b.cursor) == (10, 0)
    assert a.pending == 0 and b.pending == 10
    assert_items(b.read(4), 0, 4)
    fill(ring, 10, 25, 5)
    assert_items(a.read(), 10, 25)
    c = ring.reader()
    assert_items(b.read(), 4, 25)
    assert len(a.read()) == 0
    assert len(c.read()) == 0
    fill(ring, 25, 30, 5)
    assert_items(c.read(), 25, 30)
    assert_items(a.read(), 25, 30)
    assert_items(b.read(2), 25, 27)
    assert_items(b.read(), 27, 30)
    assert (a.received, b.received, c.received) == (20, 30, 5)
    assert a.lost == b.lost == c.lost == 0


def test_slow_reader_loses_exactly_what_was_overwritten() -> None:
    ring = Ring(20, (3,), np.float64)
    fast = ring.reader()
    slow = ring.reader()
    fill(ring, 0, 15, 5)
    assert_items(fast.read(), 0, 15)
    assert_items(slow.read(3), 0, 3)
    for a in range(15, 53, 7):  # oldest kept ends at 33; slow's cursor is at 3
        b = min(53, a + 7)
        fill(ring, a, b, 7)
        assert_items(fast.read(), a, b)
    chunk = slow.read(5)  # asks for 3..8, all overwritten
    assert len(chunk) == 0
    assert chunk.lost == 30
    assert slow.lost == 30
    assert slow.cursor == 33
    assert_items(slow.read(), 33, 53)
    assert slow.received + slow.lost == ring.head == 53
    assert fast.received == 53 and fast.lost == 0


def test_reader_loses_part_of_a_read() -> None:
    ring = Ring(10, (3,), np.float64)
    r = ring.reader(from_oldest=True)
    fill(ring, 0, 25, 25)  # a single oversized chunk: 0..14 never stored
    chunk = r.read()
    assert chunk.lost == 15
    assert_items(chunk, 15, 25)
    assert r.received + r.lost == 25
    fill(ring, 25, 31, 3)
    fill(ring, 31, 40, 9)
    chunk = r.read()
    assert_items(chunk, 30, 40)
    assert chunk.lost == 5
    assert (r.received, r.lost) == (20, 20)


def test_copy_span_clips_to_head() -> None:
    ring = Ring(10, (3,), np.float64)
    fill(ring, 0, 5, 5)
    assert_items(ring.copy_span(2, 100), 2, 5)
    assert len(ring.copy_span(7, 9)) == 0


# ------------------------------------------------------------------ stamps and shapes


def test_non_monotonic_stamps_are_clamped_and_counted() -> None:
    ring = Ring(100, (1,))
    ring.write(np.zeros((4, 1)), [1.0, 2.0, 3.0, 4.0])
    assert ring.nonmonotonic == 0
    ring.write(np.zeros((4, 1)), [3.5, 5.0, 4.5, 6.0])  # first steps back, third too
    assert ring.nonmonotonic == 2
    np.testing.assert_array_equal(ring.latest(4).ts, [4.0, 5.0, 5.0, 6.0])
    ring.write(np.zeros((1, 1)), [6.0])  # equal stamps are fine
    assert ring.nonmonotonic == 2
    ring.write(np.zeros((1, 1)), [0.0])
    assert ring.nonmonotonic == 3
    assert ring.last_timestamp() == 6.0
    ts = ring.latest(100).ts
    assert np.all(np.diff(ts) >= 0)
    # The stored stamps stay sorted, so search still works.
    assert ring.search(5.0) == 5
    assert ring.search(5.0, "right") == 7


def test_a_stamp_that_is_not_a_number_takes_its_predecessors() -> None:
    """One NaN (or infinite) stamp must not become every later stamp (NaN compares false)."""
    ring = Ring(100, (1,))
    ring.write(np.zeros((7, 1)), [1.0, 2.0, 3.0, np.nan, 5.0, np.inf, 7.0])
    np.testing.assert_array_equal(ring.latest(7).ts, [1.0, 2.0, 3.0, 3.0, 5.0, 5.0, 7.0])
    assert ring.nonmonotonic == 2
    ring.write(np.zeros((2, 1)), [8.0, 9.0])
    assert ring.last_timestamp() == 9.0 and ring.nonmonotonic == 2
    assert len(ring.range(4.5, 10.0)) == 5  # search still works
    ring.write(np.zeros((1, 1)), [np.nan])  # a chunk of one bad stamp
    assert ring.last_timestamp() == 9.0 and ring.nonmonotonic == 3
    first = Ring(10, (1,))  # a stream's very first stamp has no predecessor: the next one
    first.write(np.zeros((3, 1)), [np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(first.latest(3).ts, [1.0, 1.0, 2.0])


def test_shape_errors_raise_value_error() -> None:
    ring = Ring(10, (3,))
    with pytest.raises(ValueError, match="ring expects"):
        ring.write(np.zeros((4, 2)), stamps(0, 4))  # wrong channel count
    with pytest.raises(ValueError):
        ring.write(np.zeros((3, 3)), stamps(0, 4))  # fewer items than stamps
    with pytest.raises(ValueError):
        ring.write(np.zeros(4), stamps(0, 4))  # missing channel axis
    with pytest.raises(ValueError):
        ring.write(np.zeros((4, 3, 1)), stamps(0, 4))
    with pytest.raises(ValueError, match="ring expects"):
        Ring(10, ()).write(np.float64(1.0), stamps(0, 1))  # a 0-d scalar, not a chunk of one
    assert ring.head == 0  # nothing half-written
    events = Ring(10, (), EVENT_DTYPE)
    with pytest.raises(ValueError):
        events.write(np.zeros((4, 1), EVENT_DTYPE), stamps(0, 4))


# ------------------------------------------------------------------ concurrency


def test_one_writer_three_readers_concurrently() -> None:
    """Readers race a writer that laps them; every item they get must be the right one."""
    total = 200_000
    capacity = 4096
    ring = Ring(capacity, (2,), np.int64)
    rng = np.random.default_rng(7)
    # Mostly ordinary chunks; a few larger than the whole ring.
    sizes = rng.integers(1, 600, size=total)
    sizes[rng.random(total) < 0.01] = capacity + 500
    bounds = np.minimum(np.concatenate([[0], np.cumsum(sizes)]), total)
    bounds = bounds[: np.searchsorted(bounds, total) + 1]

    def expected_ts(idx: np.ndarray) -> np.ndarray:
        return T0 + idx.astype(np.float64) * 1e-4

    readers = [ring.reader(from_oldest=True) for _ in range(3)]
    delays = [0.0, 0.0005, 0.003]  # the last two fall behind and lose data
    max_items = [None, 1500, 800]
    received: list[list[RingChunk]] = [[] for _ in readers]
    errors: list[BaseException] = []
    done = threading.Event()
    start = threading.Barrier(4)

    def write() -> None:
        start.wait()
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            idx = np.arange(a, b, dtype=np.int64)
            ring.write(np.stack([idx, -idx], axis=1), expected_ts(idx))
            if rng.random() < 0.02:
                time.sleep(0)  # let readers in mid-stream
        done.set()

    def read(k: int) -> None:
        try:
            start.wait()
            r = readers[k]
            while True:
                finished = done.is_set()
                chunk = r.read(max_items[k])
                if len(chunk):
                    received[k].append(chunk)
                if finished and r.cursor >= ring.head:
                    return
                if delays[k]:
                    time.sleep(delays[k])
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write)]
    threads += [threading.Thread(target=read, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors
    assert ring.head == total

    for k, r in enumerate(readers):
        chunks = received[k]
        assert chunks, f"reader {k} got nothing"
        idx = np.concatenate([c.start + np.arange(len(c)) for c in chunks])
        data = np.concatenate([c.data for c in chunks])
        ts = np.concatenate([c.ts for c in chunks])
        np.testing.assert_array_equal(data[:, 0], idx)  # the item written at that index
        np.testing.assert_array_equal(data[:, 1], -idx)  # not torn between two writes
        np.testing.assert_array_equal(ts, expected_ts(idx))
        assert np.all(np.diff(idx) > 0)  # strictly increasing: ordered, no duplicates
        assert r.received == len(idx)
        assert r.received + r.lost == total, (k, r.received, r.lost)
        assert sum(c.lost for c in chunks) <= r.lost  # empty chunks may carry loss too
    # The oversized chunks alone make every reader lose something.
    assert all(r.lost > 0 for r in readers)


# ------------------------------------------------------------------ a writer lapping a copy
class _WriteHook(np.ndarray):
    """The ring's storage, calling ``hook`` after every store into it: the reader that
    runs there sees the ring as another thread would in the middle of a write."""

    hook = None

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        hook, self.hook = self.hook, None  # once
        if hook is not None:
            hook()


def test_a_copy_made_while_the_writer_fills_old_slots_returns_none_of_them() -> None:
    """The writer stores new items into the oldest slots before it publishes them. A
    reader that copies meanwhile must take the reservation, not the published head, as
    the end of what may be overwritten: else it hands out new items as old ones."""
    ring = Ring(8, (3,), np.float64)
    fill(ring, 0, 8, 8)
    ring._data = ring._data.view(_WriteHook)  # fault injection: a reader inside write()
    got: list[RingChunk] = []
    ring._data.hook = lambda: got.append(ring.copy_span(0, 8))
    ring.write(numeric_items(8, 12), stamps(8, 12))  # into slots 0..3 (items 0..3)
    [chunk] = got
    assert chunk.lost == 4  # items 0..3, being overwritten
    assert_items(chunk, 4, 8)
    assert_items(ring.copy_span(0, 12), 4, 12)  # and after the write, all is as it should


def test_a_copy_lapped_while_it_was_taken_loses_exactly_its_own_items() -> None:
    """The writer laps a reader in the middle of its copy, past the end of the span it
    asked for: everything it copied is dropped, and the loss is the span's length, so
    the reader's cursor lands at the span's end and its next read counts the rest."""
    ring = Ring(8, (3,), np.float64)
    fill(ring, 0, 8, 8)
    reader = ring.reader(from_oldest=True)
    assert_items(reader.read(2), 0, 2)
    gather = ring._gather

    def lapped(start: int, stop: int):  # fault injection: the writer runs mid-copy
        half = gather(start, start + (stop - start) // 2)
        fill(ring, 8, 16, 8)  # overwrites items 0..7: the floor moves to 8
        rest = gather(start + (stop - start) // 2, stop)
        return np.concatenate([half[0], rest[0]]), np.concatenate([half[1], rest[1]])

    ring._gather = lapped
    chunk = reader.read(4)  # items 2..5, all overwritten while copied
    ring._gather = gather
    assert len(chunk) == 0 and chunk.lost == 4 and chunk.end == 6
    assert reader.cursor == 6
    chunk = reader.read()
    assert chunk.lost == 2  # items 6 and 7
    assert_items(chunk, 8, 16)
    assert reader.received + reader.lost == ring.head == 16
