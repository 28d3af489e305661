"""An incremental XDF 1.0 writer that survives a crash up to its last flush.

XDF (https://github.com/sccn/xdf/wiki/Specifications) is a sequence of chunks
after the magic ``XDF:``; each chunk is ``[NumLengthBytes][Length][Tag][Content]``
with tags 1 FileHeader, 2 StreamHeader, 3 Samples, 4 ClockOffset, 5 Boundary,
6 StreamFooter. pyxdf, MNE and EEGLAB read it.

Why not a buffered file object: a ``kill -9`` may cut such a file in the
middle of a chunk, and a disk that fills up leaves half a chunk behind. Here
chunks are assembled in memory and handed to the kernel by ``flush`` in
``os.write`` calls that end on chunk boundaries, then ``fsync``-ed; a write
that fails part-way is cut back (``ftruncate``) to the last whole chunk. So
the file on disk is always a valid XDF prefix: whole chunks, footers missing
at worst (pyxdf and the XDF spec treat footers as optional).

Samples are always written with their 8-byte timestamps (the one-clock LSL
seconds of the ring), so irregular streams and gaps survive exactly.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
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
    record_dtype,
)

#: numpy dtype -> (XDF channel_format, numpy dtype the values are written as). XDF has no
#: unsigned integers: they widen to the next signed type so no value changes.
XDF_FORMATS: dict[str, tuple[str, str]] = {
    "float32": ("float32", "<f4"),
    "float64": ("double64", "<f8"),
    "int8": ("int8", "<i1"),
    "int16": ("int16", "<i2"),
    "int32": ("int32", "<i4"),
    "int64": ("int64", "<i8"),
    "uint8": ("int16", "<i2"),
    "uint16": ("int32", "<i4"),
    "uint32": ("int64", "<i8"),
    "bool": ("int8", "<i1"),
    "object": ("string", ""),
    "str": ("string", ""),
    "string": ("string", ""),
}

#: XDF channel_format -> the little-endian numpy dtype of its values on disk
DISK_DTYPES = {fmt: disk for fmt, disk in XDF_FORMATS.values() if disk}


def xdf_format(dtype: str | np.dtype) -> tuple[str, str]:
    """(channel_format, on-disk numpy dtype) for a ring's dtype; a ValueError names it otherwise."""
    key = np.dtype(dtype).name if str(dtype) not in XDF_FORMATS else str(dtype)
    if key.startswith("str") or key.startswith("<U") or key == "object":
        key = "object"
    if key not in XDF_FORMATS:
        raise ValueError(f"XDF cannot hold values of dtype {dtype!r}")
    return XDF_FORMATS[key]


def varlen(n: int) -> bytes:
    """XDF's variable-length integer: one byte saying 1, 4 or 8, then the value little-endian."""
    if n < 0:
        raise ValueError("XDF lengths are non-negative")
    if n <= 0xFF:
        return struct.pack("<BB", 1, n)
    if n <= 0xFFFFFFFF:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def chunk(tag: int, content: bytes) -> bytes:
    """One whole chunk: its length counts the 2-byte tag and the content."""
    return varlen(len(content) + 2) + struct.pack("<H", tag) + content


@dataclass
class XdfStreamInfo:
    """What a StreamHeader says about a stream (the LSL stream info as XDF spells it).

    ``channels`` are dicts with ``label``, ``unit`` and ``type``; ``extra`` goes
    under ``desc`` as ``<key>value</key>`` elements (nested dicts become nested
    elements; anything else is written as text, non-strings as JSON).
    """

    name: str
    type: str
    channel_count: int
    nominal_srate: float
    channel_format: str
    source_id: str = ""
    channels: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bool, int)) or value is None:
        return json.dumps(value)
    return json.dumps(value, default=str)


_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _append(parent: ET.Element, key: str, value: Any) -> None:
    """Nested dicts become nested elements while their keys are XML names; else JSON text."""
    el = ET.SubElement(parent, key)
    if isinstance(value, dict) and all(_XML_NAME.match(str(k)) for k in value):
        for k, v in value.items():
            _append(el, str(k), v)
    else:
        el.text = _text(value)


def header_xml(info: XdfStreamInfo, created_at: float) -> bytes:
    root = ET.Element("info")
    for key, value in (
        ("name", info.name),
        ("type", info.type),
        ("channel_count", str(info.channel_count)),
        ("nominal_srate", repr(float(info.nominal_srate))),
        ("channel_format", info.channel_format),
        ("source_id", info.source_id),
        ("version", "1.1"),
        ("created_at", repr(float(created_at))),
    ):
        ET.SubElement(root, key).text = value
    desc = ET.SubElement(root, "desc")
    if info.channels:
        chans = ET.SubElement(desc, "channels")
        for ch in info.channels:
            c = ET.SubElement(chans, "channel")
            for k in ("label", "unit", "type"):
                ET.SubElement(c, k).text = str(ch.get(k, ""))
    for key, value in info.extra.items():
        _append(desc, key, value)
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


@dataclass
class _StreamState:
    info: XdfStreamInfo
    disk_dtype: np.dtype | None  # None for strings
    record: np.dtype | None
    count: int = 0  # samples added
    durable: int = 0  # samples in chunks that reached the file
    first_t: float = math.nan
    last_t: float = math.nan


class XdfWriter:
    """Writes one XDF file from one thread; ``flush`` makes what was added durable.

    Nothing reaches the file between flushes, so call ``flush`` at least once a
    second (the recorder does). ``OSError`` from ``flush``/``close`` means the
    disk refused; the file then ends at the last whole chunk written.
    """

    def __init__(self, path: Path, *, created: _dt.datetime | None = None) -> None:
        self.path = Path(path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._pending: list[bytes] = []
        self._pending_samples: list[tuple[int, int]] = []  # (stream id, samples) per chunk
        self._pending_bytes = 0
        self.bytes_written = 0
        self._streams: dict[int, _StreamState] = {}
        created = created or _dt.datetime.now(_dt.UTC)
        root = ET.Element("info")
        ET.SubElement(root, "version").text = "1.0"
        ET.SubElement(root, "datetime").text = created.isoformat()
        ET.SubElement(root, "writer").text = "affectlab"
        self._add(MAGIC)
        self._add(chunk(TAG_FILE_HEADER, b'<?xml version="1.0"?>' + ET.tostring(root, "utf-8")))

    # ------------------------------------------------------------ chunks
    def _add(self, data: bytes, sid: int = 0, samples: int = 0) -> None:
        self._pending.append(data)
        self._pending_samples.append((sid, samples))
        self._pending_bytes += len(data)

    def add_stream(self, info: XdfStreamInfo, created_at: float = 0.0) -> int:
        """Write a StreamHeader; returns the stream id (1, 2, ...)."""
        sid = len(self._streams) + 1
        if info.channel_format == "string":
            disk, record = None, None
        else:
            if info.channel_format not in DISK_DTYPES:
                raise ValueError(
                    f"stream {info.name!r}: XDF has no channel_format {info.channel_format!r} "
                    f"(one of {', '.join([*DISK_DTYPES, 'string'])})"
                )
            disk = np.dtype(DISK_DTYPES[info.channel_format])
            record = record_dtype(disk, info.channel_count)
        self._streams[sid] = _StreamState(info, disk, record)
        self._add(chunk(TAG_STREAM_HEADER, struct.pack("<I", sid) + header_xml(info, created_at)))
        return sid

    def write_samples(self, sid: int, data: np.ndarray | list, ts: np.ndarray) -> None:
        """Append samples (n x channels) stamped ``ts`` (one clock) as one Samples chunk."""
        st = self._streams[sid]
        ts = np.asarray(ts, dtype="<f8").reshape(-1)
        n = len(ts)
        if n == 0:
            return
        head = struct.pack("<I", sid) + varlen(n)
        if st.record is None:
            body = self._string_samples(st, data, ts)
        else:
            values = np.asarray(data).reshape(n, st.info.channel_count)
            rec = np.empty(n, st.record)
            rec["n"] = 8
            rec["t"] = ts
            rec["v"] = values
            body = rec.tobytes()
        self._add(chunk(TAG_SAMPLES, head + body), sid, n)
        if st.count == 0:
            st.first_t = float(ts[0])
        st.count += n
        st.last_t = float(ts[-1])

    @staticmethod
    def _string_samples(st: _StreamState, data: Any, ts: np.ndarray) -> bytes:
        parts: list[bytes] = []
        rows = data.tolist() if isinstance(data, np.ndarray) else list(data)
        for t, row in zip(ts.tolist(), rows, strict=True):
            parts.append(b"\x08" + struct.pack("<d", t))
            values = row if isinstance(row, (list, tuple)) else [row]
            if len(values) != st.info.channel_count:
                raise ValueError(
                    f"stream {st.info.name!r}: a sample of {len(values)} values, "
                    f"{st.info.channel_count} channels declared"
                )
            for v in values:
                b = ("" if v is None else str(v)).encode("utf-8")
                parts.append(varlen(len(b)) + b)
        return b"".join(parts)

    def clock_offsets(self, collection_time: float) -> None:
        """A ClockOffset of 0 for every stream: the data are already on the local clock."""
        for sid in self._streams:
            self._add(chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", sid, collection_time, 0.0)))

    def boundary(self) -> None:
        """A Boundary chunk lets a reader resynchronise after a damaged region."""
        self._add(chunk(TAG_BOUNDARY, BOUNDARY_UUID))

    def counts(self) -> dict[str, int]:
        """Samples added per stream (on disk after the next flush)."""
        return {st.info.name: st.count for st in self._streams.values()}

    def durable_counts(self) -> dict[int, int]:
        """Samples per stream id in chunks that reached the file."""
        return {sid: st.durable for sid, st in self._streams.items()}

    def span(self, sid: int) -> tuple[float, float]:
        st = self._streams[sid]
        return st.first_t, st.last_t

    # ------------------------------------------------------------ disk
    def flush(self, fsync: bool = True) -> None:
        """Hand every pending chunk to the kernel, then fsync.

        Each ``os.write`` carries whole chunks; after a failure the file is
        truncated back to the end of the last chunk written in full and the
        ``OSError`` propagates (pending chunks are dropped: the disk is gone).
        """
        if self._fd is None:
            return
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        samples, self._pending_samples = self._pending_samples, []
        first = 0
        try:
            for block, ends in _batches(pending, 1 << 22):
                view = memoryview(block)
                done = 0
                try:
                    while done < len(view):
                        done += os.write(self._fd, view[done:])
                finally:
                    # whole chunks of this block that reached the file count as written
                    whole = [e for e in ends if e <= done]
                    self.bytes_written += whole[-1] if whole else 0
                    for sid, n in samples[first : first + len(whole)]:
                        if sid:
                            self._streams[sid].durable += n
                    first += len(ends)
            if fsync:
                os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.bytes_written)
            raise

    def footers(self) -> None:
        """A StreamFooter per stream: first/last stamp, count and the clock offsets (all 0)."""
        for sid, st in self._streams.items():
            root = ET.Element("info")
            ET.SubElement(root, "first_timestamp").text = repr(st.first_t if st.count else 0.0)
            ET.SubElement(root, "last_timestamp").text = repr(st.last_t if st.count else 0.0)
            ET.SubElement(root, "sample_count").text = str(st.count)
            offsets = ET.SubElement(root, "clock_offsets")
            off = ET.SubElement(offsets, "offset")
            ET.SubElement(off, "time").text = repr(st.last_t if st.count else 0.0)
            ET.SubElement(off, "value").text = "0.0"
            xml = b'<?xml version="1.0"?>' + ET.tostring(root, "utf-8")
            self._add(chunk(TAG_STREAM_FOOTER, struct.pack("<I", sid) + xml))

    def close(self, write_footers: bool = True) -> None:
        """Footers, a last flush, close. Safe to call twice; after a disk error pass
        ``write_footers=False`` to just release the file."""
        if self._fd is None:
            return
        try:
            if write_footers:
                self.boundary()
                self.footers()
                self.flush()
        finally:
            os.close(self._fd)
            self._fd = None
            self._pending, self._pending_samples, self._pending_bytes = [], [], 0

    @property
    def closed(self) -> bool:
        return self._fd is None


def _batches(chunks: list[bytes], target: int) -> list[tuple[bytes, list[int]]]:
    """Join whole chunks into blocks of about ``target`` bytes (fewer syscalls), each with
    the offsets inside it where its chunks end."""
    out: list[tuple[bytes, list[int]]] = []
    cur: list[bytes] = []
    ends: list[int] = []
    size = 0
    for c in chunks:
        cur.append(c)
        size += len(c)
        ends.append(size)
        if size >= target:
            out.append((b"".join(cur), ends))
            cur, ends, size = [], [], 0
    if cur:
        out.append((b"".join(cur), ends))
    return out
