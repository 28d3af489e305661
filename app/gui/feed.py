"""What the dashboard reads: a thread-safe bus sink and per-stream status, never a wait.

Workers publish predictions from their own threads; the GUI thread must never
block on them (nor on a driver). ``DashboardFeed`` is a bus sink that only
appends to bounded deques under a short lock, and the GUI takes a
``FeedSnapshot`` (plain copies) on its timer. Stream state comes from the
drivers' health copies, which are equally lock-free for the reader.

This module holds no Qt: it is plain data and can be tested without a window.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from core.health import StreamHealth
from core.prediction import Prediction
from core.streams import Modality, StreamSpec

#: predictions kept per model for the time plots (two minutes of the demo's 5 Hz and more)
HISTORY = 1200


@dataclass
class FeedSnapshot:
    """A consistent copy of what the bus delivered so far."""

    #: per model, oldest first, at most HISTORY items
    history: dict[str, list[Prediction]] = field(default_factory=dict)
    #: predictions received in total (all models); changes whenever anything new arrived
    received: int = 0
    health: dict[str, StreamHealth] = field(default_factory=dict)
    closed: bool = False

    def latest(self, model: str) -> Prediction | None:
        items = self.history.get(model)
        return items[-1] if items else None


class DashboardFeed:
    """A bus sink that buffers predictions for the GUI; all methods are thread-safe."""

    def __init__(self, history: int = HISTORY) -> None:
        self._lock = threading.Lock()
        self._history: dict[str, deque[Prediction]] = {}
        self._max = history
        self._received = 0
        self._health: dict[str, StreamHealth] = {}
        self._closed = False

    # ------------------------------------------------------------ Sink protocol
    def on_prediction(self, prediction: Prediction) -> None:
        with self._lock:
            q = self._history.get(prediction.model)
            if q is None:
                q = self._history[prediction.model] = deque(maxlen=self._max)
            q.append(prediction)
            self._received += 1

    def on_health(self, health: dict[str, StreamHealth], now: float) -> None:
        with self._lock:
            self._health = dict(health)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    # ------------------------------------------------------------ reader side
    @property
    def received(self) -> int:
        return self._received

    def snapshot(self, since: int | None = None) -> FeedSnapshot:
        """Copies of the buffers. With ``since`` equal to ``received`` nothing is copied."""
        with self._lock:
            if since is not None and since == self._received:
                return FeedSnapshot({}, self._received, dict(self._health), self._closed)
            return FeedSnapshot(
                {m: list(q) for m, q in self._history.items()},
                self._received,
                dict(self._health),
                self._closed,
            )


class StreamState(StrEnum):
    """What the sources panel shows per stream."""

    WAITING = "waiting"  # source running, nothing received yet
    CONNECTED = "connected"
    STALE = "stale"  # connected, but nothing new for longer than expected
    DISCONNECTED = "disconnected"  # the source stopped, failed or reported a drop-out
    PAUSED = "paused"  # replay paused


#: streams that are sparse by nature: silence is normal, never "stale"
SPARSE_MODALITIES = frozenset(
    {Modality.MARKERS, Modality.RATINGS, Modality.TRIGGERS, Modality.PREDICTIONS}
)


def stale_after(spec: StreamSpec) -> float:
    """Seconds without a new sample after which a stream counts as frozen.

    Regular streams: ten sample periods, at least one second (a 4 Hz
    thermometer is late after 2.5 s, not after 250 ms). Irregular but dense
    ones (events, IMU): two seconds. Sparse ones (markers, ratings): never.
    """
    if spec.modality in SPARSE_MODALITIES:
        return math.inf
    if spec.nominal_rate > 0:
        return max(1.0, 10.0 / spec.nominal_rate)
    return 2.0


def stream_state(
    spec: StreamSpec, health: StreamHealth, now: float, source_running: bool, paused: bool = False
) -> StreamState:
    """Classify one stream from its health copy, the clock and whether its driver still runs."""
    if not source_running or (health.received > 0 and not health.connected):
        return StreamState.DISCONNECTED
    if spec.modality in SPARSE_MODALITIES:
        return StreamState.CONNECTED  # markers and ratings come when they come: silence is fine
    if health.received == 0:
        return StreamState.WAITING if not paused else StreamState.PAUSED
    if health.staleness(now) > stale_after(spec):
        return StreamState.PAUSED if paused else StreamState.STALE
    return StreamState.CONNECTED
