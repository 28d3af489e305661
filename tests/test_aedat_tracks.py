"""AEDAT4 events and frames replayed from the file: the same answers as holding them in memory."""

from __future__ import annotations

import shutil
from pathlib import Path

import dv_processing as dv
import numpy as np
import pytest

from drivers.davis_server import events_to_store
from recordings.aedat_tracks import (
    BIN_US,
    CACHED_BINS,
    AedatTrack,
    BinIndexBuilder,
    aedat_specs,
    aedat_track,
    scan_aedat,
)
from recordings.sources import open_recording
from recordings.tracks import SourceError, Track

T0_US = 1_700_000_000_000_000


def _write(path: Path, seed: int = 0, batches: int = 12) -> int:
    """Events with awkward stamps: many on bin edges, runs of equal stamps across batch
    (and so across dv packet) boundaries, empty stretches of several bins; a frame per batch."""
    cfg = dv.io.MonoCameraWriter.DAVISConfig("DAVIS346_test", (346, 260))
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    rng = np.random.default_rng(seed)
    n_total, t_next = 0, T0_US + 37
    for k in range(batches):
        n = int(rng.integers(500, 3000))
        t = t_next + np.sort(rng.integers(0, 60_000, n))
        edges = T0_US + BIN_US * (1 + np.arange(k * 2, k * 2 + 3))
        t[: len(edges)] = np.clip(edges, t_next, None)
        t = np.sort(t)
        if k % 4 == 3:
            t = t + 5 * BIN_US  # a quiet spell: bins without events
        writer.writeEvents(
            events_to_store(
                t, rng.integers(0, 346, n), rng.integers(0, 260, n), rng.integers(0, 2, n)
            )
        )
        writer.writeFrame(dv.Frame(int(t[0]), np.full((260, 346), k * 7 % 256, np.uint8)))
        n_total += n
        t_next = int(t[-1])  # the next batch starts on the same stamp
    del writer
    return n_total


@pytest.fixture(scope="module")
def aedat(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("aedat") / "cam.aedat4"
    return path, _write(path)


def _pair(path: Path, kind: str) -> tuple[Track, Track]:
    """The same stream read from the file by time (lazy) and loaded whole."""
    lazy, whole = scan_aedat(path), scan_aedat(path, index=())
    specs = aedat_specs(path, lazy, "cam")
    return (
        aedat_track(specs[kind], path, lazy.streams[kind], T0_US),
        aedat_track(specs[kind], path, whole.streams[kind], T0_US),
    )


@pytest.mark.parametrize("kind", ["events", "frames"])
def test_a_track_read_from_the_file_answers_as_one_held_in_memory(aedat, kind):
    path, n_events = aedat
    lazy, whole = _pair(path, kind)
    assert isinstance(lazy, AedatTrack) and not isinstance(whole, AedatTrack)
    assert lazy.count == whole.count == (n_events if kind == "events" else 12)
    assert (lazy.first, lazy.last) == (whole.first, whole.last)
    stamps = whole.ts
    rng = np.random.default_rng(1)
    edges = (np.arange(-1, 80) * BIN_US + T0_US % BIN_US) * 1e-6  # every bin edge
    queries = np.concatenate(
        [
            stamps[rng.integers(0, len(stamps), 400)],
            edges,
            rng.uniform(lazy.first - 1, lazy.last + 1, 200),
            [lazy.first, lazy.last, np.nextafter(lazy.last, np.inf)],
        ]
    )
    for q in queries:
        for side in ("left", "right"):
            assert lazy.index(q, side) == whole.index(q, side), (q, side)
    for _ in range(60):
        i0 = int(rng.integers(0, lazy.count + 1))
        i1 = int(rng.integers(i0, lazy.count + 1))
        t_lazy, d_lazy = lazy.span(i0, i1)
        t_whole, d_whole = whole.span(i0, i1)
        np.testing.assert_array_equal(t_lazy, t_whole)
        np.testing.assert_array_equal(d_lazy, d_whole)
    for hold in (0.01, 0.5, 5.0):
        exact = whole.busiest(hold)
        assert exact <= lazy.busiest(hold) <= exact + 2 * whole.busiest(BIN_US * 1e-6)


@pytest.mark.parametrize("kind", ["events", "frames"])
def test_every_stamp_of_a_track_in_the_file_without_its_images(aedat, kind):
    """``affectlab info`` asks a track for every stamp to find gaps. For frames that decoded
    every image (12.8 GB of memory for a 40-minute recording): the stamps come from the
    scan now and no image is read. Events come bin by bin, keeping the stamps only."""
    lazy, whole = _pair(aedat[0], kind)
    np.testing.assert_array_equal(lazy.ts, whole.ts)
    if kind == "frames":
        assert lazy._reader is None and not lazy._cache  # nothing decoded
    else:
        assert len(lazy._cache) <= CACHED_BINS


def test_the_index_holds_bins_not_events(aedat):
    path, n_events = aedat
    events = scan_aedat(path).streams["events"]
    assert events.index is not None and events.t_us is None and events.data is None
    assert events.index.total == n_events
    assert len(events.index.counts) < n_events / 100
    assert (events.index.counts > 0).all()


def test_a_file_changed_under_a_replay_is_an_error_not_wrong_data(aedat, tmp_path):
    path = tmp_path / "cam.aedat4"
    shutil.copy(aedat[0], path)
    rec = open_recording(path)
    events = next(t for t in rec.tracks if t.spec.name == "cam-events")
    _write(path, seed=5)  # other events, other counts per bin
    events.close()
    with pytest.raises(SourceError, match="when the file was opened"):
        events.span(0, events.count)


def test_batches_whose_stamps_go_backwards_are_not_indexed():
    b = BinIndexBuilder()
    assert b.add(np.array([100, 200, 200, 300]))
    assert b.add(np.array([300, 400]))  # equal to the newest: still in order
    assert not b.add(np.array([350]))
    assert not BinIndexBuilder().add(np.array([5, 4]))
    idx = b.build()
    assert idx.total == 6


def test_bins_spanning_two_batches_are_merged():
    b = BinIndexBuilder(bin_us=100)
    b.add(np.array([10, 20, 150]))
    b.add(np.array([160, 170, 420]))
    idx = b.build()
    np.testing.assert_array_equal(idx.lo_us, [0, 100, 400])
    np.testing.assert_array_equal(idx.counts, [2, 3, 1])
    np.testing.assert_array_equal(idx.starts, [0, 2, 5, 6])
    np.testing.assert_array_equal(idx.first_us, [10, 150, 420])
    np.testing.assert_array_equal(idx.last_us, [20, 170, 420])


def test_a_stream_that_cannot_be_indexed_is_read_whole_from_the_start(aedat, monkeypatch):
    """dv's writer refuses stamps that go backwards, so such a file cannot be made here;
    the builder is made to refuse at the third batch instead, and the stream must then
    come back whole, from its first event, as the in-memory reading gives it."""
    path, n_events = aedat
    add = BinIndexBuilder.add
    calls = {"n": 0}

    def refuse_third(self, t_us):
        calls["n"] += 1
        return False if calls["n"] == 3 else add(self, t_us)

    monkeypatch.setattr(BinIndexBuilder, "add", refuse_third)
    got = scan_aedat(path, index=("events",)).streams["events"]
    assert got.index is None and len(got.t_us) == n_events
    whole = scan_aedat(path, index=()).streams["events"]
    np.testing.assert_array_equal(got.t_us, whole.t_us)
    np.testing.assert_array_equal(got.data, whole.data)


@pytest.mark.parametrize("index", [("events", "frames"), ()])
def test_a_frames_stream_without_a_frame_opens_empty_at_its_declared_size(tmp_path, index):
    path = tmp_path / "aps-off.aedat4"
    writer = dv.io.MonoCameraWriter(str(path), dv.io.MonoCameraWriter.DAVISConfig("D", (346, 260)))
    t = T0_US + np.arange(500) * 100
    writer.writeEvents(events_to_store(t, t % 346, t % 260, t % 2))
    del writer
    got = scan_aedat(path, index=index)
    assert got.streams["frames"].count == 0
    specs = aedat_specs(path, got, "cam")
    assert specs["frames"].frame_shape == (260, 346)
    frames = aedat_track(specs["frames"], path, got.streams["frames"], T0_US)
    assert frames.count == 0 and frames.index(1e9) == 0 and frames.busiest(1.0) == 0
    assert frames.span(0, 3)[1].shape == (0, 260, 346)
    # as its empty IMU and trigger streams (a DAVISConfig declares them) always did
    rec = open_recording(path)
    assert {t.spec.name: t.count for t in rec.tracks} == {
        "aps-off-events": 500,
        "aps-off-frames": 0,
        "aps-off-imu": 0,
        "aps-off-triggers": 0,
    }
