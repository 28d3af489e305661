"""Eye region on drawn faces: OpenCV's Haar face and eye cascades fire on a shaded drawing
(an ellipse face, eyes with iris and pupil, brows, nose and mouth, blurred), so the real
cascades are tested, not a stand-in. ``draw_face`` is shared with the webcam tests and bench."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from drivers.eye_region import (
    Box,
    EyeDetector,
    EyeRegionOptions,
    EyeRegionTracker,
    RegionStatus,
    crop,
)


def draw_face(
    size: tuple[int, int] = (320, 240),
    center: tuple[int, int] = (160, 120),
    scale: float = 1.0,
    eyes_open: bool = True,
    background: int = 60,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A grayscale face (``size`` = width, height) and its eye centres, image left first."""
    w, h = size
    cx, cy = center
    s = scale
    img = np.full((h, w), background, np.float32)
    cv2.ellipse(img, (cx, cy), (round(60 * s), round(80 * s)), 0, 0, 360, 190, -1)
    ey, dx = cy - round(18 * s), round(24 * s)
    eyes = []
    for side in (-1, 1):
        ex = cx + side * dx
        eyes.append((ex, ey))
        if eyes_open:
            cv2.ellipse(img, (ex, ey), (round(13 * s), round(7 * s)), 0, 0, 360, 235, -1)
            cv2.circle(img, (ex, ey), round(6 * s), 90, -1)  # iris
            cv2.circle(img, (ex, ey), round(3 * s), 20, -1)  # pupil
        else:
            cv2.ellipse(
                img, (ex, ey), (round(13 * s), round(3 * s)), 0, 0, 180, 80, max(2, round(2 * s))
            )
        brow = (ex, ey - round(14 * s))
        cv2.ellipse(img, brow, (round(15 * s), round(4 * s)), 0, 180, 360, 50, max(2, round(3 * s)))
    cv2.line(img, (cx, ey + round(5 * s)), (cx - round(5 * s), cy + round(20 * s)), 140, 2)
    mouth = (cx, cy + round(42 * s))
    cv2.ellipse(img, mouth, (round(22 * s), round(7 * s)), 0, 0, 180, 90, max(2, round(3 * s)))
    img = cv2.GaussianBlur(img, (0, 0), 1.5 * s)
    if noise:
        img += np.random.default_rng(seed).normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), eyes


def _dist(box: Box, point: tuple[float, float]) -> float:
    return math.hypot(box.cx - point[0], box.cy - point[1])


@pytest.fixture(scope="module")
def detector() -> EyeDetector:
    return EyeDetector()


@pytest.mark.parametrize(
    ("size", "scale", "center", "noise"),
    [
        ((320, 240), 1.0, (160, 120), 0.0),
        ((320, 240), 1.2, (120, 110), 6.0),
        ((640, 480), 2.0, (320, 240), 0.0),
        ((640, 480), 1.8, (400, 220), 6.0),
    ],
)
def test_cascades_find_the_drawn_face_and_both_eyes(detector, size, scale, center, noise):
    img, eyes = draw_face(size, center, scale, noise=noise)
    det = detector.detect(img)
    assert det is not None, "the Haar face cascade did not fire on the drawing"
    assert det.face.contains(*center)
    assert det.from_eyes and det.eyes[0] is not None and det.eyes[1] is not None
    eye_w = 26 * scale  # drawn eye width
    for box, truth in zip(det.eyes, eyes, strict=True):
        assert _dist(box, truth) < 0.35 * eye_w  # Haar eye boxes include the brow: a bit high
    # default: the person's right eye, on the image's left; square crop around it
    assert _dist(det.region, eyes[0]) < 0.35 * eye_w
    assert det.region.w == pytest.approx(det.region.h)
    assert det.region.w == pytest.approx(1.6 * det.eyes[0].w)


def test_eye_choice_mirroring_and_aspect(detector):
    img, eyes = draw_face((640, 480), (320, 240), 2.0)
    left = EyeDetector(EyeRegionOptions(eye="left")).detect(img)
    mirrored = EyeDetector(EyeRegionOptions(eye="right", mirrored=True)).detect(img)
    both = EyeDetector(EyeRegionOptions(eye="both", output_size=(128, 64))).detect(img)
    assert left is not None and mirrored is not None and both is not None
    assert _dist(left.region, eyes[1]) < 15
    assert _dist(mirrored.region, eyes[1]) < 15
    mid = ((eyes[0][0] + eyes[1][0]) / 2, eyes[0][1])
    assert _dist(both.region, mid) < 15
    assert both.region.w / both.region.h == pytest.approx(2.0)
    assert both.region.x < eyes[0][0] - 26 and both.region.x + both.region.w > eyes[1][0] + 26


def test_no_face_no_detection(detector):
    assert detector.detect(np.full((240, 320), 60, np.uint8)) is None
    noise = np.random.default_rng(1).integers(0, 255, (240, 320), dtype=np.uint8)
    assert detector.detect(cv2.GaussianBlur(noise, (0, 0), 4)) is None


def test_closed_eyes_fall_back_to_face_geometry(detector):
    img, eyes = draw_face((640, 480), (320, 240), 2.0, eyes_open=False)
    det = detector.detect(img)
    assert det is not None and not det.from_eyes
    assert _dist(det.region, eyes[0]) < 0.5 * 26 * 2.0


def test_crop_is_fixed_size_and_centred_on_the_pupil(detector):
    img, eyes = draw_face((640, 480), (320, 240), 2.0)
    det = detector.detect(img)
    assert det is not None
    eye = crop(img, det.region, (100, 100))
    assert eye.shape == (100, 100) and eye.dtype == np.uint8
    # the darkest spot of the crop is the pupil: where the drawn eye is
    y, x = np.unravel_index(np.argmin(cv2.GaussianBlur(eye, (0, 0), 2)), eye.shape)
    sx, sy = 100 / det.region.w, 100 / det.region.h
    px, py = (eyes[0][0] - det.region.x) * sx, (eyes[0][1] - det.region.y) * sy
    assert math.hypot(x - px, y - py) < 4
    # a region partly outside the frame still gives a full crop (edges replicated)
    edge = crop(img, Box(-30, -30, 80, 80), (50, 40))
    assert edge.shape == (40, 50)


def test_tracker_detects_every_n_frames_and_tracks_between(detector):
    tracker = EyeRegionTracker(EyeRegionOptions(detect_every=4), detector)
    img, _ = draw_face((640, 480), (320, 240), 2.0)
    statuses = [tracker.update(img).status for _ in range(9)]
    D, T = RegionStatus.DETECTED, RegionStatus.TRACKED
    assert statuses == [D, T, T, T, D, T, T, T, D]
    assert tracker.detections == 3


def test_tracker_damps_wobble_and_follows_real_moves(detector):
    opts = EyeRegionOptions(detect_every=1, smoothing=0.5, jitter=0.05, follow=0.25)
    tracker = EyeRegionTracker(opts, EyeDetector(opts))
    a, _ = draw_face((640, 480), (300, 240), 2.0)
    b, _ = draw_face((640, 480), (303, 241), 2.0)  # a wobble of 3 px
    first = tracker.update(a).box
    raw_b = tracker.detector.detect(b, tracker.box, tracker.face)  # what update() will see
    assert first is not None and raw_b is not None
    assert math.hypot(raw_b.region.cx - first.cx, raw_b.region.cy - first.cy) < 0.05 * first.w
    moved = tracker.update(b).box
    assert moved is not None
    # wobble: half way from the old region to the new detection
    assert moved.cx == pytest.approx((first.cx + raw_b.region.cx) / 2, abs=1e-6)
    assert moved.cy == pytest.approx((first.cy + raw_b.region.cy) / 2, abs=1e-6)
    for _ in range(10):
        settled = tracker.update(b).box
    assert settled is not None and abs(settled.cx - raw_b.region.cx) < 0.05 * settled.w
    # a move of a third of the region: taken at once, the crop does not trail the head
    c, _ = draw_face((640, 480), (340, 240), 2.0)
    followed = tracker.update(c)
    assert followed.status is RegionStatus.DETECTED and followed.detection is not None
    assert followed.box == followed.detection.region
    # in between, the weight grows with the move
    d, _ = draw_face((640, 480), (352, 240), 2.0)
    raw_d = tracker.detector.detect(d, tracker.box, tracker.face)
    assert raw_d is not None and followed.box is not None
    step = tracker.update(d).box
    assert step is not None
    frac = (step.cx - followed.box.cx) / (raw_d.region.cx - followed.box.cx)
    assert 0.5 < frac < 1.0


def test_tracker_holds_a_lost_region_then_drops_it(detector):
    opts = EyeRegionOptions(detect_every=5, hold_frames=3)
    tracker = EyeRegionTracker(opts, detector)
    face, _ = draw_face((320, 240), (160, 120), 1.2)
    empty = np.full_like(face, 60)
    found = tracker.update(face)
    assert found.status is RegionStatus.DETECTED
    for _ in range(4):
        assert tracker.update(face).status is RegionStatus.TRACKED
    # the face leaves: detection is due, misses, and the region is held for 3 frames
    held = [tracker.update(empty) for _ in range(3)]
    assert [s.status for s in held] == [RegionStatus.HELD] * 3
    assert all(s.box == found.box for s in held)
    lost = tracker.update(empty)
    assert lost.status is RegionStatus.LOST and lost.box is None
    assert np.isnan(lost.as_row()[:4]).all() and lost.as_row()[4] == -1
    # nobody there: searched every 5 frames only; the face is found at the next search
    statuses = [tracker.update(face).status for _ in range(5)]
    assert statuses == [RegionStatus.LOST] * 4 + [RegionStatus.DETECTED]
    assert tracker.box == found.box and tracker.detections == 1 + 3 + 1 + 1


def test_options_are_validated():
    with pytest.raises(ValueError, match="eye must be"):
        EyeRegionOptions(eye="middle")
    with pytest.raises(ValueError, match="output_size"):
        EyeRegionOptions(output_size=(4, 4))
    with pytest.raises(ValueError, match="smoothing"):
        EyeRegionOptions(smoothing=0)
    with pytest.raises(ValueError, match="jitter and follow"):
        EyeRegionOptions(jitter=0.3, follow=0.2)
