"""An AEDAT4 file's streams as replayable tracks; events and APS frames stay in the file.

A DAVIS recording outgrows memory long before its physiology does: 13 bytes
per event with its stamp is 4.7 GB for an hour at 100 k events/s, and a
346 x 260 APS frame is 90 kB (9.7 GB an hour at 30 fps). So events and frames
are not loaded. Opening the file scans it once (stamps only for events, about
70 M events/s here) and counts the items in each fixed time bin (``BIN_US``);
a replay then decodes just the bins it reaches with dv-processing's time-range
reads, which seek through the file's index, and keeps the last few decoded
(``CACHED_BINS``). The bins are fixed spans of the file's own microseconds, so
every item has one place and the counts say exactly where item ``i`` is.
IMU and trigger streams are small and are read into memory as before.

A stream whose stamps go backwards cannot be indexed that way; it is read
into memory and sorted, as an XDF stream is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.clock import unix_us_to_lsl
from core.streams import EVENT_DTYPE, Modality, StreamSpec
from recordings.tracks import SourceError, Track, sorted_track

#: microseconds of file time per bin: 1.2 M events at a DAVIS346's 12 M events/s
BIN_US = 100_000
#: decoded bins kept per track (a replay reads forwards; a seek decodes one bin)
CACHED_BINS = 4
#: dv-processing's stream kinds that are indexed rather than loaded
INDEXED = ("events", "frames")


@dataclass(frozen=True)
class BinIndex:
    """Where a sorted stream's items are: per non-empty bin, its start (file us), its count,
    the index of its first item and the stamps of its first and last items."""

    lo_us: np.ndarray
    counts: np.ndarray
    starts: np.ndarray  # len(counts) + 1; starts[-1] is the stream's item count
    first_us: np.ndarray
    last_us: np.ndarray
    bin_us: int = BIN_US

    @property
    def total(self) -> int:
        return int(self.starts[-1])


@dataclass
class BinIndexBuilder:
    """Bins the stamps of consecutive batches; ``add`` is False once they go backwards."""

    bin_us: int = BIN_US
    base: int | None = None
    bins: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)
    firsts: list[np.ndarray] = field(default_factory=list)
    lasts: list[np.ndarray] = field(default_factory=list)
    newest: int | None = None

    def add(self, t_us: np.ndarray) -> bool:
        if len(t_us) == 0:
            return True
        t_us = np.asarray(t_us, np.int64)
        if (self.newest is not None and t_us[0] < self.newest) or bool(np.any(np.diff(t_us) < 0)):
            return False
        if self.base is None:
            self.base = int(t_us[0]) - int(t_us[0]) % self.bin_us
        b = (t_us - self.base) // self.bin_us
        uniq, first, count = np.unique(b, return_index=True, return_counts=True)
        self.bins.append(uniq)
        self.counts.append(count)
        self.firsts.append(t_us[first])
        self.lasts.append(t_us[first + count - 1])
        self.newest = int(t_us[-1])
        return True

    def build(self) -> BinIndex:
        if not self.bins:
            z = np.zeros(0, np.int64)
            return BinIndex(z, z, np.zeros(1, np.int64), z, z, self.bin_us)
        bins = np.concatenate(self.bins)
        counts = np.concatenate(self.counts)
        firsts = np.concatenate(self.firsts)
        lasts = np.concatenate(self.lasts)
        # a bin that spans two batches appears twice in a row: merge it
        uniq, at = np.unique(bins, return_index=True)
        merged = np.add.reduceat(counts, at)
        ends = np.append(at[1:], len(bins)) - 1
        starts = np.concatenate([[0], np.cumsum(merged)]).astype(np.int64)
        lo = self.base + uniq * self.bin_us  # type: ignore[operator]
        return BinIndex(
            lo.astype(np.int64),
            merged.astype(np.int64),
            starts,
            firsts[at],
            lasts[ends],
            self.bin_us,
        )


@dataclass
class AedatStream:
    """One dv stream of a file: ``index`` when it stays in the file, else its arrays. An
    indexed frames stream keeps its stamps too (8 bytes a frame), so that asking for them
    (``affectlab info``'s gaps) does not decode every image."""

    kind: str  # events | frames | imu | triggers
    name: str  # dv's stream name
    index: BinIndex | None = None
    t_us: np.ndarray | None = None
    data: np.ndarray | None = None
    frame_shape: tuple[int, ...] | None = None

    @property
    def count(self) -> int:
        return self.index.total if self.index is not None else len(self.t_us)  # type: ignore[arg-type]

    @property
    def first_us(self) -> int | None:
        if self.index is not None:
            return int(self.index.first_us[0]) if self.index.total else None
        return int(self.t_us[0]) if self.t_us is not None and len(self.t_us) else None


@dataclass
class AedatContents:
    camera: str
    resolution: tuple[int, int] | None  # (W, H)
    streams: dict[str, AedatStream]
    problems: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ reading dv items
def _open(path: Path) -> Any:
    import dv_processing as dv

    try:
        return dv.io.MonoCameraRecording(str(path))
    except Exception as exc:  # noqa: BLE001 - dv raises RuntimeError and others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if ".hpp(" in first or ".cpp(" in first:  # a C++ source location says nothing to a person
            first = (
                "it ends before its contents do" if "read" in first.lower() else "internal error"
            )
        raise SourceError(
            f"{path}: dv-processing cannot open this AEDAT4 file: it is damaged or not AEDAT4 ({first})"
        ) from None


def _arrays(kind: str, item: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Stamps and items of one dv read (None when it holds nothing)."""
    from drivers.dv_data import event_arrays, gray_frame, imu_arrays, trigger_arrays

    if kind == "events":
        return None if item.isEmpty() else event_arrays(item)
    if kind == "frames":
        return np.array([item.timestamp], np.int64), gray_frame(np.asarray(item.image))[None]
    if len(item) == 0:
        return None
    return imu_arrays(item) if kind == "imu" else trigger_arrays(item)


def _frames_arrays(frames: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    from drivers.dv_data import gray_frame

    t = np.array([f.timestamp for f in frames], np.int64)
    return t, np.stack([gray_frame(np.asarray(f.image)) for f in frames])


_EMPTY = {
    "events": np.empty(0, EVENT_DTYPE),
    "imu": np.empty((0, 7), np.float32),
    "triggers": np.empty((0, 1), np.float32),
}


def _read_stream(
    rec: Any, kind: str, name: str, path: Path, problems: list[str], index_only: bool
) -> AedatStream:
    """One pass over a stream: a bin index (``index_only`` and sorted) or all its items."""
    from drivers.dv_data import READ, gray_frame

    read = getattr(rec, READ[kind])
    builder = BinIndexBuilder() if index_only else None
    t_parts: list[np.ndarray] = []
    d_parts: list[np.ndarray] = []
    shape: tuple[int, ...] | None = None
    try:
        while True:
            item = read(name)
            if item is None:
                break
            if builder is not None and kind == "events":
                if item.isEmpty():
                    continue
                if builder.add(np.asarray(item.timestamps(), np.int64)):
                    continue
                builder = None  # out of order: read it whole instead
                rec.resetSequentialRead()
                continue
            if builder is not None:  # frames: the stamps index them, the first image's shape
                t = np.array([item.timestamp], np.int64)
                shape = shape or gray_frame(np.asarray(item.image)).shape
                if builder.add(t):
                    t_parts.append(t)  # a few MB for hours of frames: ``AedatTrack.ts``
                    continue
                builder = None
                t_parts.clear()
                rec.resetSequentialRead()
                continue
            got = _arrays(kind, item)
            if got is None:
                continue
            t_parts.append(got[0])
            d_parts.append(got[1])
    except Exception as exc:  # noqa: BLE001 - a damaged packet: keep what came before
        problems.append(f"{path}: {kind} stream {name!r} breaks off ({exc})")
    if builder is not None:
        stamps = np.concatenate(t_parts) if t_parts else np.empty(0, np.int64)
        return AedatStream(
            kind, name, index=builder.build(), t_us=stamps if kind == "frames" else None,
            frame_shape=shape,
        )  # fmt: skip
    if kind == "frames":
        data = np.concatenate(d_parts) if d_parts else None
        shape = None if data is None else data.shape[1:]
    else:
        data = np.concatenate(d_parts) if d_parts else _EMPTY[kind]
    t = np.concatenate(t_parts) if t_parts else np.empty(0, np.int64)
    return AedatStream(kind, name, t_us=t, data=data, frame_shape=shape)


def _empty_frames(stream: AedatStream, resolution: Any) -> AedatStream | None:
    """An APS-frames stream that got no frame (frames off, or a session shorter than a frame
    interval) is still a recorded stream: it opens empty, with the frame size dv declares for
    it, so that its session (events, EEG and all) replays. None when dv declares no size."""
    if resolution is None:
        return None
    stream.frame_shape = (int(resolution[1]), int(resolution[0]))  # dv says (W, H)
    if stream.index is None:
        stream.data = np.empty((0, *stream.frame_shape), np.uint8)
    return stream


def scan_aedat(path: Path, index: tuple[str, ...] = INDEXED) -> AedatContents:
    """Every stream of an AEDAT4 file: the kinds in ``index`` as bin indices (when their
    stamps are in order), the others as arrays. SourceError when dv cannot open it."""
    from drivers.dv_data import IS_TYPE, KINDS

    if not path.is_file():
        raise SourceError(f"{path}: no such AEDAT4 file")
    rec = _open(path)
    names = list(rec.getStreamNames())
    out = AedatContents(str(rec.getCameraName()), None, {})
    for kind in KINDS:
        name = next((n for n in names if getattr(rec, IS_TYPE[kind])(n)), None)
        if name is None:
            continue
        stream = _read_stream(rec, kind, name, path, out.problems, kind in index)
        if out.resolution is None and kind in ("events", "frames"):
            res = (rec.getEventResolution if kind == "events" else rec.getFrameResolution)(name)
            out.resolution = (int(res[0]), int(res[1])) if res is not None else None
        if kind == "frames" and stream.count == 0:
            stream = _empty_frames(stream, rec.getFrameResolution(name))
            if stream is None:
                continue
        out.streams[kind] = stream
    del rec
    if not out.streams:
        raise SourceError(f"{path}: the AEDAT4 file holds no event, frame, IMU or trigger stream")
    return out


# ------------------------------------------------------------------ tracks
class AedatTrack(Track):
    """Events or APS frames read from their AEDAT4 file as the replay reaches them.

    Stamps are ``(t_us - offset_us) * 1e-6`` seconds, computed the same way for
    the index and for decoded bins, so ``index`` is exactly ``np.searchsorted``
    over every stamp. Reads may come from the replay thread and the GUI: a lock
    guards the reader and the cache.
    """

    def __init__(self, spec: StreamSpec, file: Path, stream: AedatStream, offset_us: int) -> None:
        assert stream.index is not None and stream.kind in INDEXED
        self.spec, self.file, self.data = spec, file, None
        self.kind, self.dv_name, self.idx = stream.kind, stream.name, stream.index
        self._stamps_us = stream.t_us  # frames: every stamp, read when the file was scanned
        self.offset_us = int(offset_us)
        self._first_s = self._seconds(self.idx.first_us)
        self._last_s = self._seconds(self.idx.last_us)
        self._reader: Any = None
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the dataclass repr would read every stamp
        return f"AedatTrack({self.spec.name!r}, {self.count} {self.kind} in {self.file})"

    def _seconds(self, t_us: np.ndarray) -> np.ndarray:
        return unix_us_to_lsl(t_us, self.offset_us)

    # ------------------------------------------------------------ decoding
    def _bin(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Stamps (s) and items of non-empty bin ``j``, from the cache or the file."""
        with self._lock:
            hit = self._cache.get(j)
            if hit is not None:
                self._cache.move_to_end(j)
                return hit
            if self._reader is None:
                self._reader = _open(self.file)
            lo = int(self.idx.lo_us[j])
            hi = lo + self.idx.bin_us
            try:
                t_us, items = self._fetch(lo, hi)
            except Exception as exc:  # noqa: BLE001 - dv raises RuntimeError and others
                raise SourceError(
                    f"{self.file}: reading {self.kind} {lo}..{hi} us failed ({exc})"
                ) from None
            want = int(self.idx.counts[j])
            if len(t_us) != want:
                raise SourceError(
                    f"{self.file}: {self.kind} {lo}..{hi} us hold {len(t_us)} items now, "
                    f"{want} when the file was opened; was it changed during the replay?"
                )
            hit = (self._seconds(t_us), items)
            self._cache[j] = hit
            while len(self._cache) > CACHED_BINS:
                self._cache.popitem(last=False)
            return hit

    def _fetch(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Stamps (file us) and items in ``[lo, hi)`` by dv's time-range read."""
        if self.kind == "events":
            store = self._reader.getEventsTimeRange(lo, hi, self.dv_name)
            got = _arrays("events", store) if store is not None else None
            return got if got is not None else (np.empty(0, np.int64), _EMPTY["events"])
        frames = self._reader.getFramesTimeRange(lo, hi, self.dv_name) or []
        if not frames:
            return np.empty(0, np.int64), None
        t_us, items = _frames_arrays(frames)
        assert self.spec.frame_shape is not None
        return t_us, items.reshape(len(items), *self.spec.frame_shape).astype(
            self.spec.dtype, copy=False
        )

    def span(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        i0, i1 = max(0, i0), min(self.count, i1)
        if i1 <= i0:
            if self.kind == "events":
                return np.empty(0), np.empty(0, EVENT_DTYPE)
            return np.empty(0), np.empty((0, *self.spec.frame_shape), self.spec.dtype)
        starts = self.idx.starts
        j0 = int(np.searchsorted(starts, i0, side="right")) - 1
        j1 = int(np.searchsorted(starts, i1 - 1, side="right")) - 1
        ts, items = [], []
        for j in range(j0, j1 + 1):
            t, d = self._bin(j)
            a = max(i0, int(starts[j])) - int(starts[j])
            b = min(i1, int(starts[j + 1])) - int(starts[j])
            ts.append(t[a:b])
            items.append(d[a:b])
        if len(ts) == 1:
            return ts[0], items[0]
        return np.concatenate(ts), np.concatenate(items)

    def read(self, i0: int, i1: int) -> np.ndarray:
        return self.span(i0, i1)[1]

    def index(self, t: float, side: str = "left") -> int:
        # bins hold disjoint, ordered spans of stamps: whole bins before t, then part of one
        j = int(np.searchsorted(self._last_s, t, side=side))
        if j == len(self._last_s):
            return self.count
        before = int(self.idx.starts[j])
        inside = self._first_s[j] < t if side == "left" else self._first_s[j] <= t
        if not inside:
            return before
        return before + int(np.searchsorted(self._bin(j)[0], t, side=side))

    def busiest(self, hold_s: float) -> int:
        """An upper bound from the bins: all of every bin that reaches into the span."""
        if self.count == 0:
            return 0
        lo = self.idx.lo_us
        reach = np.searchsorted(lo, lo + int(hold_s * 1e6) + self.idx.bin_us, side="left")
        starts = self.idx.starts
        return int(np.max(starts[reach] - starts[: len(lo)]))

    @property
    def ts(self) -> np.ndarray:  # type: ignore[override]
        """Every stamp (8 bytes an item; the replay never asks). Frames' come from the scan;
        events' are decoded bin by bin, keeping the stamps only."""
        if self._stamps_us is not None:
            return self._seconds(self._stamps_us)
        starts = self.idx.starts
        out = np.empty(self.count)
        for j in range(len(starts) - 1):
            out[starts[j] : starts[j + 1]] = self._bin(j)[0]
        return out

    @property
    def count(self) -> int:
        return self.idx.total

    @property
    def first(self) -> float:
        return float(self._first_s[0])

    @property
    def last(self) -> float:
        return float(self._last_s[-1])

    def close(self) -> None:
        with self._lock:
            self._reader = None
            self._cache.clear()


def aedat_track(spec: StreamSpec, file: Path, stream: AedatStream, offset_us: int) -> Track:
    """The stream as a track: read from the file when indexed, else from its arrays."""
    if stream.index is not None:
        return AedatTrack(spec, file, stream, offset_us)
    assert stream.t_us is not None
    ts = unix_us_to_lsl(stream.t_us, offset_us)
    data = stream.data
    if data is not None and spec.frame_shape is not None and stream.kind == "frames":
        data = data.reshape(len(data), *spec.frame_shape)
    if data is not None and stream.kind != "events":
        data = data.astype(spec.dtype, copy=False)
    return sorted_track(Track(spec, ts, data, file))


def aedat_specs(path: Path, got: AedatContents, prefix: str) -> dict[str, StreamSpec]:
    """Specs for a bare AEDAT4 file's streams, named ``<prefix>-<kind>``."""
    from drivers.dv_data import IMU_CHANNELS, IMU_UNITS

    w, h = got.resolution or (0, 0)
    meta = {
        "input": "file",
        "where": str(path),
        "camera": got.camera,
        "width": w,
        "height": h,
        "sensor_width": w,
        "sensor_height": h,
    }
    src = f"recordings.replay:{path}"
    specs: dict[str, StreamSpec] = {}
    for kind, stream in got.streams.items():
        name = f"{prefix}-{kind}"
        if kind == "events":
            specs[kind] = StreamSpec(
                name,
                Modality.EVENTS,
                0.0,
                dtype=str(EVENT_DTYPE),
                frame_shape=(h, w),
                source=src,
                metadata=dict(meta),
            )
        elif kind == "frames":
            assert stream.frame_shape is not None
            specs[kind] = StreamSpec(
                name,
                Modality.FRAMES,
                0.0,
                dtype="uint8",
                frame_shape=tuple(stream.frame_shape),
                source=src,
                metadata={**meta, "color": "gray"},
            )
        elif kind == "imu":
            specs[kind] = StreamSpec(
                name, Modality.IMU, 0.0, IMU_CHANNELS, IMU_UNITS, source=src, metadata=dict(meta)
            )
        else:
            specs[kind] = StreamSpec(
                name, Modality.TRIGGERS, 0.0, ("type",), source=src, metadata=dict(meta)
            )
    return specs
