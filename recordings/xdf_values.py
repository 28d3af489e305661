"""A numeric XDF stream's values left in the file and read by sample index on demand.

Why: a replay needs every stamp up front (to find where a time falls) but each
value only when the replay reaches it. For a 64-channel float32 amplifier a
sample's values are 256 bytes against its stamp's 8, so keeping only the stamps
in memory holds a 1 kHz hour in 29 MB instead of 0.95 GB.

Where every sample of a chunk carries its 8-byte stamp (affectlab's files),
the chunk's samples have one size and sample ``k`` sits at a computable byte;
where stamps are deduced (0 bytes, as LabRecorder writes samples that follow
their predecessor at the nominal rate), the byte each sample starts at is
listed, 8 bytes a sample, which still saves memory for anything wider than two
float32 channels (narrower streams and strings are decoded into memory).

The file is opened for each read (a replay reads a few times a second per
stream), so nothing stays open and reads from several threads do not share a
file position. A file whose size or modification time changed since it was
scanned is refused, not read at stale offsets.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recordings.xdf_format import XdfError


def gather_rows(raw: np.ndarray, at: np.ndarray, item: np.dtype, channels: int) -> np.ndarray:
    """The (n, channels) values whose bytes start at offsets ``at`` of the byte array
    ``raw``: one fancy index, a new array (samples with deduced stamps vary in size)."""
    if len(at) == 0:
        return np.empty((0, channels), item)
    picked = raw[at[:, None] + np.arange(item.itemsize * channels)]
    return picked.view(item).reshape(len(at), channels)


@dataclass(frozen=True)
class ChunkMap:
    """Where a stream's samples are. Chunk ``j`` holds samples ``first[j]`` to
    ``first[j + 1] - 1``. When every sample of it carries its stamp, its records have
    one size, ``stride[j]``, and the first starts at byte ``pos[j]``; otherwise
    (``stride[j] == 0``: stamps deduced, 0 bytes) the byte where each sample's values
    start is listed in ``offsets`` from ``offsets_from[j]`` on."""

    first: np.ndarray  # int64, chunks + 1; first[-1] is the sample count
    pos: np.ndarray  # int64 per chunk
    stride: np.ndarray  # int64 per chunk; 0: see offsets
    offsets_from: np.ndarray  # int64 per chunk
    offsets: np.ndarray  # int64, one per sample of the chunks without a stride
    record: np.dtype  # [("n", u1), ("t", <f8), ("v", item, (channels,))]

    @property
    def count(self) -> int:
        return int(self.first[-1])


@dataclass
class ChunkMapBuilder:
    """Collects chunks in file order while a stream's Samples chunks are walked."""

    record: np.dtype
    _first: list[int] = field(default_factory=lambda: [0])
    _pos: list[int] = field(default_factory=list)
    _stride: list[int] = field(default_factory=list)
    _from: list[int] = field(default_factory=list)
    _offsets: list[np.ndarray] = field(default_factory=list)
    _n_offsets: int = 0

    def fixed(self, pos: int, n: int) -> None:
        """``n`` records of ``record.itemsize`` bytes from byte ``pos``."""
        self._add(pos, n, self.record.itemsize, -1)

    def variable(self, offsets: np.ndarray) -> None:
        """Samples whose values start at the bytes ``offsets``."""
        self._add(int(offsets[0]) if len(offsets) else 0, len(offsets), 0, self._n_offsets)
        self._offsets.append(np.asarray(offsets, np.int64))
        self._n_offsets += len(offsets)

    def _add(self, pos: int, n: int, stride: int, at: int) -> None:
        self._first.append(self._first[-1] + n)
        self._pos.append(pos)
        self._stride.append(stride)
        self._from.append(at)

    def build(self) -> ChunkMap:
        offsets = np.concatenate(self._offsets) if self._offsets else np.empty(0, np.int64)
        return ChunkMap(
            np.array(self._first, np.int64),
            np.array(self._pos, np.int64),
            np.array(self._stride, np.int64),
            np.array(self._from, np.int64),
            offsets,
            self.record,
        )


class XdfValues:
    """``(count, channels)`` values of one stream, sliced like an array and read from the file.

    ``values[i0:i1]`` is a new ndarray of ``dtype``; ``np.asarray(values)`` reads
    them all (for callers that want the whole stream).
    """

    def __init__(self, path: Path, chunks: ChunkMap, dtype: Any = None) -> None:
        self.path = Path(path)
        self.chunks = chunks
        self._item = chunks.record["v"].base
        self._channels = int(chunks.record["v"].shape[0])
        self.dtype = np.dtype(dtype) if dtype is not None else self._item
        st = os.stat(self.path)
        self._stat = (st.st_size, st.st_mtime_ns)

    def __repr__(self) -> str:
        return f"XdfValues({self.path.name}, shape={self.shape}, dtype={self.dtype})"

    def __len__(self) -> int:
        return self.chunks.count

    @property
    def shape(self) -> tuple[int, int]:
        return (self.chunks.count, self._channels)

    def as_dtype(self, dtype: Any) -> XdfValues:
        """The same values, read as ``dtype`` (the replay ring's item type)."""
        out = copy.copy(self)
        out.dtype = np.dtype(dtype)
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        whole = self[0 : len(self)]
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        """Rows by slice are read from the file; a row, ``[rows, cols]`` and any other
        index work as on the array (reading the rows they need, or everything)."""
        if isinstance(key, tuple) and key and isinstance(key[0], slice | int):
            return self[key[0]][(slice(None),) * isinstance(key[0], slice) + key[1:]]
        if isinstance(key, int | np.integer):
            i = int(key) + len(self) * (key < 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} of {len(self)}")
            return self._rows(i, i + 1)[0]
        if not isinstance(key, slice):
            return np.asarray(self)[key]
        i0, i1, step = key.indices(len(self))
        if step != 1:
            return np.asarray(self)[key]
        return self._rows(i0, max(i0, i1))

    def _rows(self, i0: int, i1: int) -> np.ndarray:
        out = np.empty((i1 - i0, self._channels), self.dtype)
        if i1 == i0:
            return out
        first = self.chunks.first
        j = int(np.searchsorted(first, i0, side="right")) - 1
        with open(self.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if (st.st_size, st.st_mtime_ns) != self._stat:
                raise XdfError(
                    f"{self.path}: the file changed since it was opened "
                    f"({self._stat[0]} -> {st.st_size} bytes); was it written to during the replay?"
                )
            at = i0
            while at < i1:
                lo, hi = at - int(first[j]), min(i1, int(first[j + 1])) - int(first[j])
                if hi > lo:
                    out[at - i0 : at - i0 + hi - lo] = self._chunk_rows(fh, j, lo, hi)
                at += hi - lo
                j += 1
        return out

    def _chunk_rows(self, fh: Any, j: int, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo`` to ``hi - 1`` of chunk ``j``, as stored."""
        m, rec = self.chunks, self.chunks.record
        stride = int(m.stride[j])
        if stride:
            raw = _read(fh, self.path, int(m.pos[j]) + lo * stride, (hi - lo) * stride)
            return np.frombuffer(raw, rec)["v"]
        width = self._item.itemsize * self._channels
        at = m.offsets[int(m.offsets_from[j]) + lo : int(m.offsets_from[j]) + hi]
        raw = _read(fh, self.path, int(at[0]), int(at[-1] - at[0]) + width)
        return gather_rows(np.frombuffer(raw, np.uint8), at - at[0], self._item, self._channels)


def _read(fh: Any, path: Path, pos: int, size: int) -> bytes:
    fh.seek(pos)
    raw = fh.read(size)
    if len(raw) != size:
        raise XdfError(f"{path}: the file ends at byte {pos + len(raw)}, inside samples it held")
    return raw
