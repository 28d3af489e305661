"""Dropping frames of a video file as a camera would: by seeking, not by decoding them.

A camera that falls behind never shows the frames it missed. A file played as a
stand-in must skip them, and OpenCV's ``grab()`` decodes every frame it skips at the
cost of showing it: a file that decodes slower than its own rate then falls further
behind with every round of skipping, and its stream dries up (gaps between published
frames grew 1.3x per round in a measured case). A seek costs at most the decodes from
the nearest keyframe, however far it goes.
"""

from __future__ import annotations

from typing import Any

import cv2

#: fewer frames than this are dropped by decoding them (cheaper than a seek)
SEEK_FROM = 3


def skip_frames(cap: Any, n: int, loop: bool) -> int | None:
    """Move the file capture ``cap`` ``n`` frames on, round its end when ``loop``.

    Returns the file position afterwards (the index of the next frame), or None when a
    file that does not loop ended on the way.
    """
    if n <= 0:
        return int(cap.get(cv2.CAP_PROP_POS_FRAMES))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
    if n >= SEEK_FROM and total > 0 and 0 <= pos <= total:
        target = pos + n
        if target >= total:
            if not loop:
                return None
            target %= total
        cap.set(cv2.CAP_PROP_POS_FRAMES, target)
        if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == target:
            return target
    # a few frames, or a file OpenCV cannot seek (no index): decode forward
    for _ in range(n):
        if cap.grab():
            continue
        if not loop:
            return None
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        if not cap.grab():
            return None
    return int(cap.get(cv2.CAP_PROP_POS_FRAMES))


def frames_left(cap: Any) -> int:
    """Frames of the file capture ``cap`` not read yet (0 when the file does not say)."""
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    return max(0, total - int(cap.get(cv2.CAP_PROP_POS_FRAMES))) if total > 0 else 0
