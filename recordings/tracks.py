"""Replayable streams: what the replay driver asks of a recorded stream, whatever file holds it.

A ``Track`` is one stream: its original ``StreamSpec`` and its items in time
order on the one clock. The replay driver only ever asks four things of it:
where a time falls (``index``), the stamps and items of a span (``span``),
how many items its busiest stretch holds (``busiest``, to size a ring) and
its first and last stamps. A plain ``Track`` holds its stamps in memory and
its items in an array, or for XDF streams in a ``recordings.xdf_values.XdfValues``
that reads them from the file by slice; ``VideoTrack`` decodes frames from a video on
demand; ``recordings.aedat_tracks.AedatTrack`` reads events and APS frames
from an AEDAT4 file by time, because those are too big to hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.streams import StreamSpec


class SourceError(ValueError):
    """A recording cannot be replayed; the message names the file and the problem."""


@dataclass
class Track:
    """One replayable stream: its stamps, and its items in an array (or any object sliced like one)."""

    spec: StreamSpec
    ts: np.ndarray
    data: Any  # ndarray (n, ...) of the ring's item type
    file: Path

    def read(self, i0: int, i1: int) -> np.ndarray:
        return self.data[i0:i1]

    def span(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        """Stamps and items ``[i0, i1)``."""
        return self.ts[i0:i1], self.read(i0, i1)

    def index(self, t: float, side: str = "left") -> int:
        """Items stamped before ``t`` (``side="right"``: at or before), as ``np.searchsorted``."""
        return int(np.searchsorted(self.ts, t, side=side))

    def busiest(self, hold_s: float) -> int:
        """Most items within any ``hold_s`` seconds of the track."""
        ts = self.ts
        if len(ts) == 0:
            return 0
        ends = np.searchsorted(ts, ts + hold_s, side="right")
        return int(np.max(ends - np.arange(len(ts))))

    @property
    def count(self) -> int:
        return len(self.ts)

    @property
    def first(self) -> float:
        return float(self.ts[0])

    @property
    def last(self) -> float:
        return float(self.ts[-1])

    def close(self) -> None:
        """Let go of any file the track reads from (a later read opens it again)."""


class VideoTrack(Track):
    """Frames decoded from a video file on demand; ``ts`` from its frame-times stream."""

    def __init__(self, spec: StreamSpec, ts: np.ndarray, file: Path) -> None:
        super().__init__(spec, ts, None, file)
        self._cap: Any = None
        self._next = 0
        #: False once OpenCV is known to seek this file wrongly (see ``_seek``)
        self._seekable = True

    def _open(self) -> Any:
        import cv2

        cap = cv2.VideoCapture(str(self.file))
        if not cap.isOpened():
            raise SourceError(f"{self.file}: OpenCV cannot open this video")
        assert self.spec.frame_shape is not None
        if len(self.spec.frame_shape) == 2:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        return cap

    def _seek(self, i0: int) -> None:
        """Make frame ``i0`` the next one read, checking where OpenCV's seek landed.

        A video cut off by a crash or a kill has no duration or index (matroska writes them
        on close): OpenCV then reports a bogus frame count (-2.8e17 here, OpenCV 4.14), clamps
        every seek to frame 0 and still reads on from wherever it was, so frames would come
        from the wrong place without a word. A finalised file seeks, and says so; in any
        other the frames are decoded forward to ``i0`` (a 160 x 120 FFV1 frame: about 1 ms
        here), from a reopened file when going back. Going back to 0 always reopens: OpenCV
        "seeks" there by reading on, and reports 0 even where that is wrong.
        """
        import cv2

        if i0 == self._next:
            return
        if self._seekable and i0 > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, i0)
            landed = round(self._cap.get(cv2.CAP_PROP_POS_FRAMES))
            end = round(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if landed == i0 or 0 < end == landed < i0:  # (past the end: reads give black)
                self._next = i0
                return
            self._seekable = False
            self._next = -1  # wherever the failed seek left it: reopen
        if i0 < self._next or self._next < 0:
            self._cap.release()
            self._cap, self._next = self._open(), 0
        while self._next < i0 and self._cap.grab():
            self._next += 1
        self._next = i0  # past the frames the file holds: reads give black frames

    def read(self, i0: int, i1: int) -> np.ndarray:
        if self._cap is None:
            self._cap = self._open()
            self._next = 0
        self._seek(i0)
        assert self.spec.frame_shape is not None
        out = np.zeros((max(0, i1 - i0), *self.spec.frame_shape), np.uint8)
        for k in range(i1 - i0):
            ok, frame = self._cap.read()
            if not ok:
                break  # the video is shorter than its stamps (a crash): black frames
            if frame.ndim == 3 and len(self.spec.frame_shape) == 2:
                frame = frame[:, :, 0]
            out[k] = frame.reshape(self.spec.frame_shape)
        self._next = i1
        return out

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def sorted_track(track: Track) -> Track:
    """The track in time order (stable: equal stamps keep their recorded order)."""
    if track.count > 1 and bool(np.any(np.diff(track.ts) < 0)):
        order = np.argsort(track.ts, kind="stable")
        track.ts = track.ts[order]
        if track.data is not None:  # (values still in a file are read in to be sorted)
            track.data = np.asarray(track.data)[order]
    return track


def effective_rate(track: Track) -> float:
    """Items per second between the first and last stamp (NaN for fewer than two)."""
    if track.count < 2 or track.last <= track.first:
        return math.nan
    return (track.count - 1) / (track.last - track.first)
