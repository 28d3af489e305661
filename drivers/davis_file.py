"""Reading an AEDAT4 file with dv-processing, batch by batch, for the DAVIS driver's file input.

A recording is read stream by stream until each returns None (``isRunning``
turns False as soon as ANY stream ends); the driver delivers batches in the
order of their newest stamp, which ``next_batch`` gives with each batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dv_processing as dv

from drivers.base import DriverError
from drivers.dv_data import READ, dv_error_text


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
