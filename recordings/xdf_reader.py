"""A fast, forgiving XDF reader (https://github.com/sccn/xdf/wiki/Specifications).

Why not pyxdf: it decodes numeric Samples chunks sample by sample in Python,
which dominates load time for long high-rate recordings. Here the chunk walk
only records where each Samples chunk lies; each numeric stream is then
decoded with one structured ``np.frombuffer`` per chunk (every sample of a
chunk carrying its 8-byte stamp, as LabRecorder and affectlab write them), and
only chunks with deduced stamps or strings take the per-sample path.

Damage does not lose what came before it: a file cut off in the middle of a
chunk (a crash, a full disk) or a chunk that makes no sense (bad tag, a length
past the end, samples of an undeclared stream, a body that does not parse) is
reported as a ``problem`` naming the file, byte offset and what broke; reading
resumes after the next Boundary chunk when there is one, and stops otherwise.
A file that is not XDF at all raises ``XdfError``.

For replay, ``load_xdf(path, lazy=True)`` reads the stamps and leaves the
values in the file (``recordings.xdf_values``), and every pass over the mapped
file lets go of the pages behind it, so opening a long recording holds little.

Clock offsets are applied as pyxdf's synchronisation does without dejitter:
per stream a linear fit of the ClockOffset values against their collection
times (offsets of 0, as affectlab writes, leave stamps untouched).
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recordings.xdf_format import (
    BOUNDARY_UUID,
    MAGIC,
    TAG_BOUNDARY,
    TAG_CLOCK_OFFSET,
    TAG_FILE_HEADER,
    TAG_SAMPLES,
    TAG_STREAM_FOOTER,
    TAG_STREAM_HEADER,
    XdfError,
    record_dtype,
)
from recordings.xdf_values import ChunkMap, ChunkMapBuilder, XdfValues, gather_rows

log = logging.getLogger(__name__)


#: XDF channel_format -> little-endian numpy dtype (None: strings)
FORMATS: dict[str, str | None] = {
    "float32": "<f4",
    "double64": "<f8",
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "string": None,
}


@dataclass
class XdfStream:
    """One stream of an XDF file: its header fields, stamps (one clock) and values.

    ``time_series`` is (n, channels) of the stream's dtype (an ndarray, or with
    ``load_xdf(lazy=True)`` an ``XdfValues`` reading from the file), or a list of
    rows of strings for string streams. ``info`` is the header's XML root (``desc`` and
    all), for fields this class does not lift out.
    """

    stream_id: int
    name: str
    type: str
    channel_count: int
    nominal_srate: float
    channel_format: str
    source_id: str
    labels: list[str]
    units: list[str]
    channel_types: list[str]
    info: ET.Element
    time_stamps: np.ndarray
    time_series: Any
    clock_offsets: np.ndarray  # (k, 2): collection time, offset value
    footer: ET.Element | None = None

    @property
    def count(self) -> int:
        return len(self.time_stamps)

    @property
    def is_string(self) -> bool:
        return self.channel_format == "string"

    def desc(self, path: str) -> ET.Element | None:
        """An element under ``desc`` (e.g. ``"affectlab"``), or None."""
        return self.info.find("desc/" + path)


@dataclass
class XdfFile:
    """What an XDF file holds, and what was wrong with it (``problems``: one line each)."""

    path: Path
    header: ET.Element | None
    streams: list[XdfStream]
    problems: list[str] = field(default_factory=list)
    bytes_read: int = 0
    size: int = 0

    def stream(self, name: str) -> XdfStream | None:
        return next((s for s in self.streams if s.name == name), None)

    @property
    def truncated(self) -> bool:
        return self.bytes_read < self.size


@dataclass
class _Pending:
    """A stream while the file is walked: its header and where its Samples chunks are."""

    stream_id: int
    info: ET.Element
    fmt: str
    channels: int
    srate: float
    chunks: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, offset)
    offsets: list[tuple[float, float]] = field(default_factory=list)
    footer: ET.Element | None = None


class _ResidentPages:
    """Drops the file pages behind a forward pass over the mapping from this process's
    resident set (the page cache keeps them; a later touch maps them again), so that
    scanning a big file does not look like holding it. A no-op where ``madvise`` is missing."""

    STEP = 64 << 20

    def __init__(self, buf: Any) -> None:
        usable = isinstance(buf, mmap.mmap) and hasattr(buf, "madvise")
        self._buf = buf if usable and hasattr(mmap, "MADV_DONTNEED") else None
        self._done = 0

    def behind(self, pos: int) -> None:
        """A pass has reached byte ``pos``: let go of what lies before it."""
        if self._buf is None or pos - self._done < self.STEP:
            return
        end = pos // mmap.PAGESIZE * mmap.PAGESIZE
        self._buf.madvise(mmap.MADV_DONTNEED, self._done, end - self._done)
        self._done = end

    def new_pass(self) -> None:
        if self._buf is not None and self._done:
            self._buf.madvise(mmap.MADV_DONTNEED, 0, self._done)
        self._done = 0


class _Damage(Exception):
    """A chunk that makes no sense; the reader reports it and tries to resynchronise."""


def _varlen(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise _Damage("a length is cut off")
    nb = buf[pos]
    if nb == 1:
        if pos + 2 > end:
            raise _Damage("a length is cut off")
        return buf[pos + 1], pos + 2
    if nb == 4:
        if pos + 5 > end:
            raise _Damage("a length is cut off")
        return struct.unpack_from("<I", buf, pos + 1)[0], pos + 5
    if nb == 8:
        if pos + 9 > end:
            raise _Damage("a length is cut off")
        return struct.unpack_from("<Q", buf, pos + 1)[0], pos + 9
    raise _Damage(f"a length field says it has {nb} bytes (XDF allows 1, 4 or 8)")


def _xml(data: bytes | memoryview, what: str) -> ET.Element:
    try:
        return ET.fromstring(bytes(data))
    except ET.ParseError as exc:
        raise _Damage(f"the {what} is not valid XML ({exc})") from None


def _text(el: ET.Element | None, key: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(key)
    return (found.text or "").strip() if found is not None and found.text is not None else default


def load_xdf(path: str | Path, *, synchronize: bool = True, lazy: bool = False) -> XdfFile:
    """Read every stream of an XDF file; damage becomes ``problems``, not an exception.

    ``lazy``: numeric streams keep their values in the file (``time_series`` is then
    an ``XdfValues``, read by slice), except streams with deduced stamps no wider than
    two float32 channels, where listing each sample's place would cost more than its
    values; stamps are read either way. ``XdfError`` when the file is missing, unreadable
    or not XDF at all.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            # mapped, not read: the decoders copy out of the page cache once, not twice
            buf: Any = (
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                if os.fstat(fh.fileno()).st_size
                else b""
            )
    except FileNotFoundError:
        raise XdfError(f"{path}: no such file") from None
    except OSError as exc:
        raise XdfError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return _load(path, buf, synchronize, lazy)
    finally:
        if isinstance(buf, mmap.mmap):
            with contextlib.suppress(BufferError):  # a view still alive: the GC closes it
                buf.close()


def _load(path: Path, buf: Any, synchronize: bool, lazy: bool) -> XdfFile:
    if buf[:4] != MAGIC:
        raise XdfError(f"{path}: not an XDF file (it does not start with 'XDF:')")
    view = memoryview(buf)
    size = len(buf)
    pages = _ResidentPages(buf)
    pending: dict[int, _Pending] = {}
    order: list[int] = []
    header: ET.Element | None = None
    problems: list[str] = []

    def problem(offset: int, what: str) -> None:
        msg = f"{path}: byte {offset}: {what}"
        problems.append(msg)
        log.info("%s", msg)  # the caller reports ``problems``; no double lines

    pos = 4
    good_end = 4
    while pos < size:
        start = pos
        try:
            length, body = _varlen(view, pos, size)
            end = body + length
            if length < 2:
                raise _Damage(f"a chunk of length {length} (at least 2 needed for its tag)")
            if end > size:
                problem(
                    start,
                    f"the file ends inside a chunk of {length} bytes (truncated: "
                    f"{end - size} bytes missing); read up to here",
                )
                break
            tag = struct.unpack_from("<H", view, body)[0]
            content = body + 2
            if tag == TAG_FILE_HEADER:
                header = _xml(view[content:end], "file header")
            elif tag == TAG_STREAM_HEADER:
                sid = _sid(view, content, end)
                info = _xml(view[content + 4 : end], f"header of stream {sid}")
                fmt = _text(info, "channel_format")
                if fmt not in FORMATS:
                    raise _Damage(f"stream {sid} has an unknown channel_format {fmt!r}")
                try:
                    channels = int(_text(info, "channel_count", "0"))
                    srate = float(_text(info, "nominal_srate", "0") or 0)
                except ValueError:
                    raise _Damage(
                        f"stream {sid}: channel_count/nominal_srate are not numbers"
                    ) from None
                if channels < 1:
                    raise _Damage(f"stream {sid} declares {channels} channels")
                if sid not in pending:
                    order.append(sid)
                pending[sid] = _Pending(sid, info, fmt, channels, srate)
            elif tag == TAG_SAMPLES:
                sid = _sid(view, content, end)
                if sid not in pending:
                    raise _Damage(f"samples of stream {sid}, which has no header before them")
                pending[sid].chunks.append((content + 4, end, start))
            elif tag == TAG_CLOCK_OFFSET:
                sid = _sid(view, content, end)
                if end - content != 20:
                    raise _Damage(f"a clock offset chunk of {end - content} bytes (20 expected)")
                if sid in pending:
                    t, v = struct.unpack_from("<dd", view, content + 4)
                    pending[sid].offsets.append((t, v))
            elif tag == TAG_STREAM_FOOTER:
                sid = _sid(view, content, end)
                if sid in pending:
                    pending[sid].footer = _xml(view[content + 4 : end], f"footer of stream {sid}")
            elif tag == TAG_BOUNDARY:
                pass
            else:
                raise _Damage(f"a chunk with unknown tag {tag}")
            pos = end
            good_end = end
            pages.behind(pos)
        except _Damage as exc:
            resume = buf.find(BOUNDARY_UUID, start + 1)
            if resume < 0:
                problem(
                    start, f"{exc}; nothing after it can be trusted (no boundary chunk follows)"
                )
                break
            # a boundary chunk's 16-byte UUID follows its 1-byte length width, 1-byte
            # length (18) and 2-byte tag: the chunk starts 4 bytes before the UUID
            problem(start, f"{exc}; skipped to the boundary chunk at byte {resume - 4}")
            pos = resume + len(BOUNDARY_UUID)

    streams: list[XdfStream] = []
    for sid in order:
        p = pending[sid]
        stream = _decode(path, view, p, problem, lazy, pages)
        if synchronize:
            _synchronize(stream)
        streams.append(stream)
    with contextlib.suppress(BufferError):
        view.release()
    return XdfFile(path, header, streams, problems, good_end, size)


def _sid(view: memoryview, content: int, end: int) -> int:
    if end - content < 4:
        raise _Damage("a chunk too short to name its stream")
    return struct.unpack_from("<I", view, content)[0]


def _decode(
    path: Path, view: memoryview, p: _Pending, problem, lazy: bool, pages: _ResidentPages
) -> XdfStream:
    """All Samples chunks of one stream -> stamps and values (``lazy``: where the values are)."""
    dtype = FORMATS[p.fmt]
    c = p.channels
    ts_parts: list[np.ndarray] = []
    val_parts: list[Any] = []
    strings: list[list[str]] = []
    last_t = math.nan
    dt = 1.0 / p.srate if p.srate > 0 else 0.0
    places: ChunkMapBuilder | None = None
    if dtype is not None:
        item = np.dtype(dtype)
        rec = record_dtype(item, c)
        spans = _fixed_size_spans(view, p, rec, pages)
        fast = None if spans is None else _decode_fast(view, spans, lazy, pages)
        if fast is not None:
            values = XdfValues(path, fast[1]) if isinstance(fast[1], ChunkMap) else fast[1]
            return _stream(p, fast[0], values)
        # deduced stamps make samples of two sizes, so where each one's values lie is listed
        # (8 bytes a sample): worth it only for samples wider than that
        if lazy and item.itemsize * c > 8:
            places = ChunkMapBuilder(rec)
    pages.new_pass()
    for start, end, offset in p.chunks:
        pages.behind(start)
        try:
            n, pos = _varlen(view, start, end)
            if dtype is not None:
                if n * rec.itemsize == end - pos:
                    arr = np.frombuffer(view[pos:end], rec)
                    if bool(np.all(arr["n"] == 8)):
                        ts_parts.append(arr["t"])
                        if places is not None:
                            places.fixed(pos, n)
                        else:
                            val_parts.append(arr["v"])
                        last_t = float(arr["t"][-1]) if n else last_t
                        continue
                ts, at, last_t = _numeric_places(view, pos, end, n, item.itemsize * c, last_t, dt)
                ts_parts.append(ts)
                if places is not None:
                    places.variable(at)
                else:
                    whole = np.frombuffer(view, np.uint8)
                    val_parts.append(gather_rows(whole, at, item, c))
                    del whole  # no view may outlive the mapping
            else:
                ts, rows, last_t = _strings(view, pos, end, n, c, last_t, dt)
                ts_parts.append(ts)
                strings.extend(rows)
        except _Damage as exc:
            problem(offset, f"samples of stream {p.stream_id} do not parse ({exc}); chunk skipped")
    stamps = np.concatenate(ts_parts) if ts_parts else np.empty(0, np.float64)
    if places is not None:
        values: Any = XdfValues(path, places.build())
    elif dtype is not None:
        values = np.concatenate(val_parts) if val_parts else np.empty((0, c), np.dtype(dtype))
    else:
        values = strings
    return _stream(p, stamps, values)


@dataclass
class _Spans:
    record: np.dtype
    spans: list[tuple[int, int, int]]  # (byte position, first sample, end sample) per chunk
    total: int


def _fixed_size_spans(
    view: memoryview, p: _Pending, rec: np.dtype, pages: _ResidentPages
) -> _Spans | None:
    """Where each chunk's sample records (``rec``) start, when every sample carries its
    8-byte stamp (affectlab's files) so that records have one size; None otherwise."""
    spans = []
    total = 0
    pages.new_pass()
    for start, end, _ in p.chunks:
        pages.behind(start)
        try:
            n, pos = _varlen(view, start, end)
        except _Damage:
            return None
        if n * rec.itemsize != end - pos:
            return None
        spans.append((pos, total, total + n))
        total += n
    return _Spans(rec, spans, total)


def _decode_fast(
    view: memoryview, s: _Spans, lazy: bool, pages: _ResidentPages
) -> tuple[np.ndarray, Any] | None:
    """Every chunk at once: one ``frombuffer`` per chunk straight into the results (with
    ``lazy``, the stamps and a ``ChunkMap`` of where the values are). None when a sample
    turns out not to carry an 8-byte stamp after all."""
    rec, total = s.record, s.total
    nbytes = np.empty(total, np.uint8)
    stamps = np.empty(total, np.float64)
    values = None if lazy else np.empty((total, *rec["v"].shape), rec["v"].base)
    pages.new_pass()
    for pos, i, j in s.spans:
        pages.behind(pos)
        arr = np.frombuffer(view, rec, j - i, pos)
        nbytes[i:j] = arr["n"]
        stamps[i:j] = arr["t"]
        if values is not None:
            values[i:j] = arr["v"]
        del arr  # no view may outlive the mapping
    if total and not bool(np.all(nbytes == 8)):
        return None
    if values is not None:
        return stamps, values
    places = ChunkMapBuilder(rec)
    for pos, i, j in s.spans:
        places.fixed(pos, j - i)
    return stamps, places.build()


def _stream(p: _Pending, stamps: np.ndarray, values: Any) -> XdfStream:
    c = p.channels
    info = p.info
    chans = info.findall("desc/channels/channel")
    labels = [_text(ch, "label") for ch in chans] if len(chans) == c else []
    units = [_text(ch, "unit") for ch in chans] if len(chans) == c else []
    types = [_text(ch, "type") for ch in chans] if len(chans) == c else []
    return XdfStream(
        stream_id=p.stream_id,
        name=_text(info, "name"),
        type=_text(info, "type"),
        channel_count=c,
        nominal_srate=p.srate,
        channel_format=p.fmt,
        source_id=_text(info, "source_id"),
        labels=labels,
        units=units,
        channel_types=types,
        info=info,
        time_stamps=np.ascontiguousarray(stamps, dtype=np.float64),
        time_series=values,
        clock_offsets=np.asarray(p.offsets, np.float64).reshape(-1, 2),
        footer=p.footer,
    )


def _stamp(view: memoryview, pos: int, end: int, last_t: float, dt: float) -> tuple[float, int]:
    if pos >= end:
        raise _Damage("a sample is cut off")
    nb = view[pos]
    if nb == 8:
        if pos + 9 > end:
            raise _Damage("a timestamp is cut off")
        return struct.unpack_from("<d", view, pos + 1)[0], pos + 9
    if nb == 0:
        return last_t + dt, pos + 1
    raise _Damage(f"a timestamp of {nb} bytes (0 or 8 expected)")


def _numeric_places(view, pos, end, n, width: int, last_t: float, dt: float):
    """Samples whose stamps are partly deduced (0-byte stamps), one at a time: their
    stamps and the byte where each one's ``width`` bytes of values start."""
    ts = np.empty(n, np.float64)
    at = np.empty(n, np.int64)
    for i in range(n):
        last_t, pos = _stamp(view, pos, end, last_t, dt)
        if pos + width > end:
            raise _Damage("a sample is cut off")
        ts[i] = last_t
        at[i] = pos
        pos += width
    if pos != end:
        raise _Damage(f"{end - pos} bytes left over after {n} samples")
    return ts, at, last_t


def _strings(view, pos, end, n, c: int, last_t: float, dt: float):
    ts = np.empty(n, np.float64)
    rows: list[list[str]] = []
    for i in range(n):
        last_t, pos = _stamp(view, pos, end, last_t, dt)
        ts[i] = last_t
        row = []
        for _ in range(c):
            length, pos = _varlen(view, pos, end)
            if pos + length > end:
                raise _Damage("a string is cut off")
            row.append(bytes(view[pos : pos + length]).decode("utf-8", errors="replace"))
            pos += length
        rows.append(row)
    if pos != end:
        raise _Damage(f"{end - pos} bytes left over after {n} samples")
    return ts, rows, last_t


def _synchronize(stream: XdfStream) -> None:
    """Add the clock offset to every stamp: a least-squares line through the offsets
    (pyxdf's synchronisation without its robust weighting and without dejitter)."""
    off = stream.clock_offsets
    if len(off) == 0 or stream.count == 0 or not np.any(off[:, 1]):
        return
    t, v = off[:, 0], off[:, 1]
    if len(off) == 1 or np.ptp(t) == 0:
        stream.time_stamps = stream.time_stamps + float(np.mean(v))
        return
    slope, intercept = np.polyfit(t - t[0], v, 1)
    stream.time_stamps = stream.time_stamps + intercept + slope * (stream.time_stamps - t[0])
