"""Where the eye is in a webcam frame: Haar face, then Haar eyes in the upper face, held steady.

The eye models (MCO-E Net and the eye branch of the fusion models) take a
fixed-size grayscale crop of one eye, as a DAVIS camera mounted at the eye
would see it. A webcam sees the whole face, so the driver has to find the eye
and crop it, and the crop must not jitter: Haar boxes wobble by several pixels
from frame to frame and miss now and then (blinks, a turned head), and either
would show up to the models as motion that is not there. So:

- detection runs every ``detect_every`` frames (Haar is the expensive part),
  on every frame while a held region waits for the eye, and every
  ``detect_every`` frames again once the region is lost;
- each detection moves the region only part of the way: exponential smoothing
  whose weight grows with the size of the move (as in the 1-euro filter), so
  wobble smaller than ``jitter`` (a fraction of the region's width) is damped
  with weight ``smoothing``, while a real move of ``follow`` or more is taken
  at once and a moving head is not trailed by a lagging crop;
- a miss keeps the last region for up to ``hold_frames`` frames (status
  ``HELD``), then the region is dropped (``LOST``) until the face is found again;
- a face whose eyes the eye cascade does not find still gives a region from the
  usual eye position inside a Haar face box, so a squint does not lose the eye.

Which eye: ``"right"`` is the person's right eye, which an unmirrored camera
facing them shows on the image's left (``mirrored`` flips that); ``"both"``
takes the span of both eyes. The crop keeps the aspect ratio of the output
size, so the eye is not squashed.

Cost: the first search (and the search after a loss) looks for faces in the
whole frame downscaled to ``detect_width`` pixels; later ones look near the
last face only, at about its size, scaled so the face is ~48 px (a fraction of
the cost). Eyes are searched in the upper face rescaled to 200 px wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import cv2
import numpy as np

#: Where the eyes sit in a Haar frontal-face box (fractions of its size), for the fallback.
EYE_CENTERS = ((0.32, 0.40), (0.68, 0.40))
EYE_WIDTH = 0.25
EYE_CHOICES = ("right", "left", "both")
EYE_SEARCH_WIDTH = 200
NEAR_FACE_WIDTH = 48


def cascade_dir() -> Path:
    """OpenCV's bundled Haar cascades (opencv-python 4.x; 5.x ships none, REFERENCE 7)."""
    data = getattr(cv2, "data", None)
    path = Path(getattr(data, "haarcascades", "")) if data is not None else Path()
    if not path.is_dir():
        raise RuntimeError(
            f"OpenCV {cv2.__version__} ships no Haar cascades (cv2.data.haarcascades); "
            "eye-region detection needs opencv-python(-headless) < 5"
        )
    return path


def load_cascade(filename: str) -> cv2.CascadeClassifier:
    path = cascade_dir() / filename
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path}")
    return cascade


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels; floats so smoothing keeps sub-pixel positions."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @classmethod
    def around(cls, cx: float, cy: float, w: float, h: float) -> Box:
        return cls(cx - w / 2, cy - h / 2, w, h)

    def union(self, other: Box) -> Box:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1 = max(self.x + self.w, other.x + other.w)
        y1 = max(self.y + self.h, other.y + other.h)
        return Box(x0, y0, x1 - x0, y1 - y0)

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x <= self.x + self.w and self.y <= y <= self.y + self.h

    def as_array(self) -> np.ndarray:
        return np.array([self.x, self.y, self.w, self.h], dtype=np.float64)


class RegionStatus(IntEnum):
    """Per-frame state of the region, published beside x, y, w, h."""

    LOST = -1  # no region (x, y, w, h are NaN)
    HELD = 0  # detection missed; the last region is kept for a while
    TRACKED = 1  # no detection ran on this frame; the region is the last one
    DETECTED = 2  # detected on this frame


@dataclass(frozen=True)
class EyeRegionOptions:
    """How the region is found and stabilised (see the module docstring)."""

    eye: str = "right"
    output_size: tuple[int, int] = (100, 100)  # (width, height) of the crop
    margin: float = 1.6  # crop size in eye-box sizes
    detect_every: int = 5
    smoothing: float = 0.35  # weight of a new detection for small moves, 0-1
    jitter: float = 0.05  # moves up to this fraction of the region's width count as wobble
    follow: float = 0.25  # moves from this fraction on are followed at once
    hold_frames: int = 15
    detect_width: int = 320
    min_face: float = 0.2  # smallest face, as a fraction of the frame's shorter side
    mirrored: bool = False

    def __post_init__(self) -> None:
        if self.eye not in EYE_CHOICES:
            raise ValueError(f"eye must be one of {EYE_CHOICES}, got {self.eye!r}")
        if len(self.output_size) != 2 or min(self.output_size) < 8:
            raise ValueError(f"output_size must be (width, height) >= 8, got {self.output_size}")
        if not self.margin > 0 or not 0 < self.smoothing <= 1:
            raise ValueError("margin must be > 0 and smoothing in (0, 1]")
        if not 0 <= self.jitter < self.follow:
            raise ValueError("jitter and follow are fractions of the region, 0 <= jitter < follow")
        if self.detect_every < 1 or self.hold_frames < 0 or self.detect_width < 64:
            raise ValueError("detect_every >= 1, hold_frames >= 0 and detect_width >= 64 needed")
        if not 0 < self.min_face < 1:
            raise ValueError("min_face is a fraction of the frame's shorter side, in (0, 1)")

    @property
    def aspect(self) -> float:
        """Width over height of the crop."""
        return self.output_size[0] / self.output_size[1]


@dataclass(frozen=True)
class Detection:
    """One detection pass: the face, the eyes found in it (image left first) and the crop region."""

    face: Box
    eyes: tuple[Box | None, Box | None]
    region: Box
    from_eyes: bool  # False: the eye cascade missed and the region comes from the face geometry


class EyeDetector:
    """Haar face then eye cascades; one call per frame that needs detecting."""

    def __init__(self, options: EyeRegionOptions | None = None) -> None:
        self.options = options or EyeRegionOptions()
        self.face_cascade = load_cascade("haarcascade_frontalface_default.xml")
        self.eye_cascade = load_cascade("haarcascade_eye.xml")

    def detect(
        self, gray: np.ndarray, near: Box | None = None, face_hint: Box | None = None
    ) -> Detection | None:
        """Find the face and its eye region.

        With ``face_hint`` (the face found last time) the face is first looked for
        near it, at about its size, which costs a fraction of a full search; the
        full search (the face holding ``near``'s centre, else the largest) runs
        when that fails.
        """
        face = self._face_near(gray, face_hint) if face_hint is not None else None
        if face is None:
            face = self._face(gray, near)
        if face is None:
            return None
        eyes = self._eyes(gray, face)
        region = self._region(face, eyes)
        return Detection(face, eyes, region, from_eyes=self._chosen(eyes) is not None)

    def _face(self, gray: np.ndarray, near: Box | None) -> Box | None:
        o = self.options
        h, w = gray.shape[:2]
        scale = min(1.0, o.detect_width / w)
        small = (
            gray
            if scale == 1.0
            else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        side = max(24, int(o.min_face * min(small.shape[:2])))
        found = self.face_cascade.detectMultiScale(small, 1.1, 4, minSize=(side, side))
        if len(found) == 0:
            return None
        faces = [Box(*(float(v) / scale for v in f)) for f in found]
        if near is not None:
            holding = [f for f in faces if f.contains(near.cx, near.cy)]
            if holding:
                faces = holding
        return max(faces, key=lambda f: f.w * f.h)

    def _face_near(self, gray: np.ndarray, hint: Box) -> Box | None:
        """The face within 1.6 face sizes of ``hint``, searched at 0.7-1.4 times its size."""
        H, W = gray.shape[:2]
        side = 1.6 * max(hint.w, hint.h)
        x0, y0 = max(0, int(hint.cx - side / 2)), max(0, int(hint.cy - side / 2))
        x1, y1 = min(W, int(hint.cx + side / 2)), min(H, int(hint.cy + side / 2))
        if x1 - x0 < 24 or y1 - y0 < 24:
            return None
        k = min(1.0, NEAR_FACE_WIDTH / hint.w)  # the cascade window is 24 px: a 48 px face will do
        roi = gray[y0:y1, x0:x1]
        if k < 1.0:
            roi = cv2.resize(roi, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        fw = hint.w * k
        lo, hi = max(24, int(0.7 * fw)), max(25, int(1.4 * fw))
        found = self.face_cascade.detectMultiScale(roi, 1.1, 4, minSize=(lo, lo), maxSize=(hi, hi))
        if len(found) == 0:
            return None
        faces = [
            Box(float(x / k + x0), float(y / k + y0), float(w / k), float(h / k))
            for x, y, w, h in found
        ]
        return min(faces, key=lambda f: math.hypot(f.cx - hint.cx, f.cy - hint.cy))

    def _eyes(self, gray: np.ndarray, face: Box) -> tuple[Box | None, Box | None]:
        """The best eye on each side of the face's midline (image left, image right)."""
        H, W = gray.shape[:2]
        x0, y0 = max(0, int(face.x)), max(0, int(face.y))
        x1, y1 = min(W, int(face.x + face.w)), min(H, int(face.y + 0.6 * face.h))
        if x1 - x0 < 24 or y1 - y0 < 24:
            return None, None
        # the face is searched for eyes at a fixed width of 200 pixels: eyes are then 40-60
        # pixels wide whatever the distance, where the eye cascade (20 x 20 window) works best
        k = EYE_SEARCH_WIDTH / (x1 - x0)
        roi = gray[y0:y1, x0:x1]
        if k != 1.0:
            interp = cv2.INTER_AREA if k < 1.0 else cv2.INTER_LINEAR
            roi = cv2.resize(roi, None, fx=k, fy=k, interpolation=interp)
        fw = face.w * k
        lo, hi = max(12, int(0.12 * fw)), max(13, int(0.45 * fw))
        found = self.eye_cascade.detectMultiScale(roi, 1.1, 3, minSize=(lo, lo), maxSize=(hi, hi))
        best: list[Box | None] = [None, None]
        expected = [
            Box.around(face.x + fx * face.w, face.y + fy * face.h, 1, 1) for fx, fy in EYE_CENTERS
        ]
        for ex, ey, ew, eh in found:
            box = Box(float(ex / k + x0), float(ey / k + y0), float(ew / k), float(eh / k))
            if not face.y + 0.15 * face.h <= box.cy <= face.y + 0.55 * face.h:
                continue  # brows, nostrils and the mouth corners fool the eye cascade
            side = 0 if box.cx < face.cx else 1
            d = math.hypot(box.cx - expected[side].cx, box.cy - expected[side].cy)
            current = best[side]
            if current is None or d < math.hypot(
                current.cx - expected[side].cx, current.cy - expected[side].cy
            ):
                best[side] = box
        return best[0], best[1]

    def _image_side(self) -> int:
        """Index (0 image left, 1 image right) of the chosen eye."""
        right = self.options.eye == "right"
        return (0 if right else 1) if not self.options.mirrored else (1 if right else 0)

    def _chosen(self, eyes: tuple[Box | None, Box | None]) -> Box | None:
        if self.options.eye == "both":
            a, b = eyes
            return a.union(b) if a is not None and b is not None else None
        return eyes[self._image_side()]

    def _region(self, face: Box, eyes: tuple[Box | None, Box | None]) -> Box:
        o = self.options
        box = self._chosen(eyes)
        if box is None:  # the eye cascade missed: the usual place of the eye in the face
            guess = [
                Box.around(
                    face.x + fx * face.w,
                    face.y + fy * face.h,
                    EYE_WIDTH * face.w,
                    EYE_WIDTH * face.w,
                )
                for fx, fy in EYE_CENTERS
            ]
            box = guess[0].union(guess[1]) if o.eye == "both" else guess[self._image_side()]
        w = max(box.w * o.margin, box.h * o.margin * o.aspect)
        return Box.around(box.cx, box.cy, w, w / o.aspect)


@dataclass(frozen=True)
class RegionState:
    """The region after a frame: ``box`` is None when LOST."""

    box: Box | None
    status: RegionStatus
    detection: Detection | None = None

    def as_row(self) -> np.ndarray:
        """x, y, w, h, status as published per frame (NaN box when lost)."""
        xywh = self.box.as_array() if self.box is not None else np.full(4, np.nan)
        return np.append(xywh, float(self.status))


class EyeRegionTracker:
    """A stable eye region from per-frame updates (smoothed, re-detected, held when lost)."""

    def __init__(
        self, options: EyeRegionOptions | None = None, detector: EyeDetector | None = None
    ):
        self.options = options or EyeRegionOptions()
        self.detector = detector or EyeDetector(self.options)
        self.box: Box | None = None
        self.face: Box | None = None  # the face of the last detection, where to look next
        self.misses = 0
        self.frames = 0
        self.detections = 0  # detection passes run (the CPU-heavy part)
        self._since_detect = self.options.detect_every  # the first frame is searched

    def reset(self) -> None:
        self.box = None
        self.face = None
        self.misses = 0
        self._since_detect = self.options.detect_every

    def update(self, gray: np.ndarray) -> RegionState:
        """Advance by one frame (grayscale, uint8).

        Detection runs every ``detect_every`` frames, on every frame while a held
        region waits for the eye to come back, and every ``detect_every`` frames
        again once the region is lost (nobody there: a full search per frame
        would burn a core for nothing).
        """
        o = self.options
        self.frames += 1
        self._since_detect += 1
        due = self._since_detect >= o.detect_every or (self.box is not None and self.misses > 0)
        if not due:
            if self.box is None:
                return RegionState(None, RegionStatus.LOST)
            return RegionState(self.box, RegionStatus.TRACKED)
        self._since_detect = 0
        self.detections += 1
        det = self.detector.detect(gray, near=self.box, face_hint=self.face)
        if det is not None:
            self.box = self._smoothed(det.region)
            self.face = det.face
            self.misses = 0
            return RegionState(self.box, RegionStatus.DETECTED, det)
        self.misses += 1
        if self.box is not None and self.misses <= o.hold_frames:
            return RegionState(self.box, RegionStatus.HELD)
        self.box = None
        self.face = None
        return RegionState(None, RegionStatus.LOST)

    def _smoothed(self, new: Box) -> Box:
        old = self.box
        if old is None:
            return new
        o = self.options
        move = math.hypot(new.cx - old.cx, new.cy - old.cy) / old.w
        ramp = min(1.0, max(0.0, (move - o.jitter) / (o.follow - o.jitter)))
        a = o.smoothing + (1.0 - o.smoothing) * ramp
        if a >= 1.0:
            return new
        w = old.w + a * (new.w - old.w)
        return Box.around(
            old.cx + a * (new.cx - old.cx), old.cy + a * (new.cy - old.cy), w, w / o.aspect
        )


def crop(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """``box`` of ``image`` resampled to ``size`` (width, height); edges replicate outside the frame."""
    out_w, out_h = size
    sx, sy = out_w / box.w, out_h / box.h
    m = np.array([[sx, 0.0, -box.x * sx], [0.0, sy, -box.y * sy]], dtype=np.float64)
    return cv2.warpAffine(
        image, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
