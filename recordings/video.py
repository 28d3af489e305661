"""A frame stream into a video file through OpenCV, lossless when the build allows.

This machine's OpenCV (opencv-python-headless, FFmpeg backend) writes FFV1 in
Matroska, which is lossless: frames read back bit-equal (grey frames come back
as three equal BGR channels unless read with ``CAP_PROP_CONVERT_RGB`` off).
When FFV1 is missing the next codec that opens is used and the manifest says
which (``codec``, ``lossless``). Frame i of the file is sample i of the
stream's ``<stream>-frame-times`` XDF stream, which carries its timestamp.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from core.streams import StreamSpec

log = logging.getLogger(__name__)

#: (FourCC, lossless) in order of preference
CODECS: tuple[tuple[str, bool], ...] = (("FFV1", True), ("MJPG", False), ("mp4v", False))


class VideoStream:
    """Writes one FRAMES stream's frames, in order, to ``path``."""

    def __init__(self, path: Path, spec: StreamSpec) -> None:
        assert spec.frame_shape is not None
        self.path = Path(path)
        self.spec = spec
        h, w = spec.frame_shape[:2]
        channels = spec.frame_shape[2] if len(spec.frame_shape) == 3 else 1
        if channels not in (1, 3):
            raise ValueError(
                f"stream {spec.name!r}: video needs grey or BGR frames, got {channels} channels"
            )
        if np.dtype(spec.dtype) != np.uint8:
            raise ValueError(f"stream {spec.name!r}: video needs uint8 frames, got {spec.dtype}")
        self.is_color = channels == 3
        fps = spec.nominal_rate or 30.0  # the container's rate; true times are in the XDF
        self._writer: cv2.VideoWriter | None = None
        for fourcc, lossless in CODECS:
            writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), self.is_color
            )
            if writer.isOpened():
                self._writer, self.codec, self.lossless = writer, fourcc, lossless
                break
            writer.release()
        if self._writer is None:
            raise OSError(
                f"{self.path}: OpenCV cannot write video here (tried {', '.join(c for c, _ in CODECS)})"
            )
        if not self.lossless:
            log.warning("%s: FFV1 unavailable, writing %s (lossy)", self.path, self.codec)
        self.count = 0

    def write(self, frames: np.ndarray) -> None:
        assert self._writer is not None
        for frame in frames:
            if frame.ndim == 3 and frame.shape[2] == 1:
                frame = frame[:, :, 0]
            self._writer.write(np.ascontiguousarray(frame))
            self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    @property
    def closed(self) -> bool:
        return self._writer is None
