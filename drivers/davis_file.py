"""Reading an AEDAT4 file with dv-processing, batch by batch, for the DAVIS driver's file input.

A recording is read stream by stream until each returns None (``isRunning``
turns False as soon as ANY stream ends); the driver delivers batches in the
order of their newest stamp, which ``next_batch`` gives with each batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dv_processing as dv

from drivers.base import DriverError
from drivers.dv_data import IS_TYPE, KINDS, READ, dv_error_text


def open_recording(path: Path) -> Any:
    """A ``dv.io.MonoCameraRecording``; a missing or unreadable file is a DriverError."""
    if not path.is_file():
        raise DriverError(f"AEDAT4 file not found: {path}")
    try:
        return dv.io.MonoCameraRecording(str(path))
    except RuntimeError as exc:
        raise DriverError(
            f"cannot read AEDAT4 file {path} (not an AEDAT4 file, or cut short): "
            f"{dv_error_text(exc)}"
        ) from exc


def next_batch(rec: Any, kind: str, stream: str) -> tuple[int, Any] | None:
    """The next non-empty batch of ``kind`` from the file stream ``stream`` with its newest
    stamp (Unix us); None at the stream's end."""
    read = getattr(rec, READ[kind])
    while True:
        item = read(stream)
        if item is None:
            return None
        if kind == "events":
            if item.isEmpty():
                continue
            return int(item.getHighestTime()), item
        if kind == "frames":
            return int(item.timestamp), item
        if len(item) == 0:
            continue
        return int(item[-1].timestamp), item


@dataclass(frozen=True)
class FileLayout:
    """What an AEDAT4 file holds: the stream of each kind, the sensor, the time it spans."""

    streams: dict[str, str]  # kind -> the file's stream name (the first of that kind)
    resolution: tuple[int, int]  # (width, height)
    camera_name: str
    time_range: tuple[int, int]  # Unix us

    @property
    def kinds(self) -> list[str]:
        return [k for k in KINDS if k in self.streams]


def probe(path: Path) -> FileLayout:
    """Open the file once to learn its layout; a file with neither events nor frames is a
    DriverError naming the streams it has."""
    rec = open_recording(path)
    names = list(rec.getStreamNames())
    streams: dict[str, str] = {}
    for kind in KINDS:
        found = next((n for n in names if getattr(rec, IS_TYPE[kind])(n)), None)
        if found is not None:
            streams[kind] = found
    res = None
    if "events" in streams:
        res = rec.getEventResolution(streams["events"])
    if res is None and "frames" in streams:
        res = rec.getFrameResolution(streams["frames"])
    if res is None:
        raise DriverError(f"AEDAT4 file {path} has no event or frame stream (streams: {names})")
    start, end = (int(t) for t in rec.getTimeRange())
    return FileLayout(streams, (int(res[0]), int(res[1])), str(rec.getCameraName()), (start, end))


def batches_in_order(
    rec: Any, streams: Mapping[str, str], kinds: list[str]
) -> Iterator[tuple[str, int, Any]]:
    """(kind, newest stamp in Unix us, batch) of every kind, in the order of their newest
    stamp, until every stream has ended."""
    pending: dict[str, tuple[int, Any]] = {}

    def queue(kind: str) -> None:
        got = next_batch(rec, kind, streams[kind])
        if got is not None:
            pending[kind] = got

    for kind in kinds:
        queue(kind)
    while pending:
        kind = min(pending, key=lambda k: pending[k][0])
        newest, item = pending.pop(kind)
        yield kind, newest, item
        queue(kind)
