"""Fan-out of predictions and health to every sink.

Workers publish from their own threads, so the bus serialises calls: a sink
sees one call at a time and need not lock. A sink that raises is logged and,
after repeated failures, detached, so one broken sink (a full disk, a closed
window) never stops the others or the session.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from core.health import StreamHealth
from core.prediction import Prediction

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Anything that consumes predictions and health. Methods are called one at a time.

    A sink that writes a file may also have ``discard()`` (close, and remove the file
    if it holds nothing): a session that never ran calls it after ``close()``, so no
    empty file is left to block the rerun (``app.session.Session.abandon``).
    """

    def on_prediction(self, prediction: Prediction) -> None: ...

    def on_health(self, health: dict[str, StreamHealth], now: float) -> None: ...

    def close(self) -> None: ...


class Bus:
    """Delivers each prediction and health snapshot to every attached sink."""

    #: consecutive failures after which a sink is detached
    max_failures = 5

    def __init__(self) -> None:
        self._sinks: list[Sink] = []
        self._detached: list[Sink] = []  # still closed at the end: a file needs its footer
        self._failures: dict[int, int] = {}
        self._lock = threading.Lock()
        self.published = 0
        self.sink_errors = 0
        self._closed = False

    def add(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def remove(self, sink: Sink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    @property
    def sinks(self) -> list[Sink]:
        with self._lock:
            return list(self._sinks)

    def publish(self, prediction: Prediction) -> None:
        with self._lock:
            if self._closed:
                return
            self.published += 1
            for sink in list(self._sinks):
                self._deliver(sink, "on_prediction", prediction)

    def publish_health(self, health: dict[str, StreamHealth], now: float) -> None:
        with self._lock:
            if self._closed:
                return
            for sink in list(self._sinks):
                self._deliver(sink, "on_health", health, now)

    def close(self) -> None:
        """Close every sink once (flushes files, ends outlets), detached ones included: a
        sink that failed for a while may still hold what it wrote (a Parquet log is
        unreadable without the footer its close writes)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for sink in self._sinks + self._detached:
                try:
                    sink.close()
                except Exception:  # noqa: BLE001 - the other sinks still need closing
                    log.exception("closing sink %s failed", type(sink).__name__)

    def _deliver(self, sink: Sink, method: str, *args: object) -> None:
        try:
            getattr(sink, method)(*args)
            self._failures[id(sink)] = 0
        except Exception:  # noqa: BLE001 - isolate sinks from each other
            self.sink_errors += 1
            n = self._failures.get(id(sink), 0) + 1
            self._failures[id(sink)] = n
            log.exception("sink %s failed (%d in a row)", type(sink).__name__, n)
            if n >= self.max_failures:
                log.error("detaching sink %s after %d failures", type(sink).__name__, n)
                self._sinks.remove(sink)
                self._detached.append(sink)
