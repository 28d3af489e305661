"""What people add to a session while it runs: markers and self-reports, as streams.

Every live session publishes two streams through this driver so they land in
rings, recordings and replays like any sensor:

- ``affectlab-markers`` (modality MARKERS, one string channel ``marker``): a
  label from the GUI's marker button or any caller of ``Session.add_marker``;
- ``affectlab-self-report`` (modality RATINGS, float32 ``valence``, ``arousal``
  on the 1-9 SAM scale, irregular): a participant's rating.

Callers on any thread stamp the item on the session's clock *when they ask*
and queue it; the driver thread is the rings' one writer and pushes it.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

import numpy as np

from core.streams import Modality, StreamSpec
from drivers.base import Driver

MARKER_STREAM = "affectlab-markers"
SELF_REPORT_STREAM = "affectlab-self-report"
SELF_REPORT_RANGE = (1.0, 9.0)
SOURCE = "drivers.session_inputs"

MARKER_SPEC = StreamSpec(
    name=MARKER_STREAM,
    modality=Modality.MARKERS,
    nominal_rate=0.0,
    channel_names=("marker",),
    units=("",),
    dtype="object",
    source=SOURCE,
    metadata={"values": "str (labels added during the session)"},
)
SELF_REPORT_SPEC = StreamSpec(
    name=SELF_REPORT_STREAM,
    modality=Modality.RATINGS,
    nominal_rate=0.0,
    channel_names=("valence", "arousal"),
    units=("SAM 1-9", "SAM 1-9"),
    dtype="float32",
    source=SOURCE,
    metadata={"scale": "Self-Assessment Manikin, 1 (low) to 9 (high)"},
)
SESSION_INPUT_STREAMS = (MARKER_STREAM, SELF_REPORT_STREAM)


class SessionInputs(Driver):
    """Publishes markers and self-reports handed to it from any thread."""

    #: a generous ring: people add a few items a minute
    ring_seconds = 30.0

    def __init__(self, now: Callable[[], float], name: str = "session-inputs") -> None:
        super().__init__(name, [MARKER_SPEC, SELF_REPORT_SPEC])
        self._now = now
        self._queue: queue.SimpleQueue[tuple[str, np.ndarray, float]] = queue.SimpleQueue()
        self.added = {MARKER_STREAM: 0, SELF_REPORT_STREAM: 0}
        for tracker in self._trackers.values():  # says more than "waiting" on the health line
            tracker.health.message = "none yet"

    def add_marker(self, label: str) -> float:
        """Queue a marker stamped now; returns its stamp."""
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"a marker needs a non-empty label, got {label!r}")
        t = self._now()
        self._queue.put((MARKER_STREAM, np.array([[label]], dtype=object), t))
        return t

    def add_self_report(self, valence: float, arousal: float) -> float:
        """Queue a rating stamped now; both values on the 1-9 scale; returns its stamp."""
        lo, hi = SELF_REPORT_RANGE
        for key, value in (("valence", valence), ("arousal", arousal)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not lo <= value <= hi
            ):
                raise ValueError(
                    f"self-report {key} must be a number from {lo:g} to {hi:g}, got {value!r}"
                )
        t = self._now()
        self._queue.put((SELF_REPORT_STREAM, np.array([[valence, arousal]], dtype=np.float32), t))
        return t

    def _run(self) -> None:
        while not self.stopping:
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            self._publish(item)
        while True:  # what was asked for before stop still goes in
            try:
                self._publish(self._queue.get_nowait())
            except queue.Empty:
                break

    def _publish(self, item: tuple[str, np.ndarray, float]) -> None:
        stream, data, t = item
        self.push(stream, data, np.array([t]))
        self.added[stream] += 1
