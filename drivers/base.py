"""The interface every source shares: a thread that fills rings on the one clock.

A driver publishes one or more streams (``specs``), owns their rings and their
health, and runs ``_run`` in a daemon thread until ``stop()``. Subclasses only
implement ``_run`` (and optionally ``_open``/``_close``); start/stop, error
capture and health plumbing live here so that every source behaves the same.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.health import HealthTracker, StreamHealth
from core.ring import Ring, ring_for
from core.streams import StreamSpec

log = logging.getLogger(__name__)


class DriverError(RuntimeError):
    """A source could not be opened or failed; the message is meant for a person."""


class OptionError(ValueError):
    """A source option in the session config is wrong. ``key`` names it; the app prefixes
    the source's place in the config (``sources[1].port: ...``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def number_option(
    o: Mapping[str, Any], key: str, default: float | None, lo: float, hi: float
) -> Any:
    """A config number from ``lo`` to ``hi`` (``default`` when absent; None stays None)."""
    v = o.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise OptionError(key, f"expected a number from {lo:g} to {hi:g}, got {v!r}")
    return v


def distinct_choices(value: object, key: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    """A config list of distinct names drawn from ``allowed`` (which streams to publish, ...);
    anything else is an ``OptionError`` that lists the choices."""
    if (
        not isinstance(value, list)
        or not value
        or any(v not in allowed for v in value)
        or len(set(value)) != len(value)
    ):
        raise OptionError(key, f"expected a list drawn from {', '.join(allowed)}, got {value!r}")
    return value


class Driver(ABC):
    """Base class of every source (live, simulated or replay)."""

    #: seconds of data each ring holds unless the config says otherwise
    ring_seconds: float = 30.0

    def __init__(
        self, name: str, specs: list[StreamSpec], ring_seconds: float | None = None
    ) -> None:
        if not specs:
            raise ValueError(f"driver {name!r} publishes no stream")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"driver {name!r}: duplicate stream names {names}")
        self.name = name
        self.specs: list[StreamSpec] = list(specs)
        secs = ring_seconds if ring_seconds is not None else self.ring_seconds
        self.rings: dict[str, Ring] = {s.name: self._make_ring(s, secs) for s in self.specs}
        self._trackers = {s.name: HealthTracker(StreamHealth(s.name)) for s in self.specs}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _make_ring(self, spec: StreamSpec, seconds: float) -> Ring:
        """Subclasses with unusual streams (e.g. fast event cameras) may size rings here."""
        return ring_for(spec, seconds)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"driver {self.name!r} already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name=f"driver-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("driver %s did not stop within %.1f s", self.name, timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep that ends early on stop(); True when stop was asked."""
        return self._stop.wait(seconds)

    def _main(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported through health, never lost
            self.error = exc
            log.error("driver %s failed: %s", self.name, exc)
            for tracker in self._trackers.values():
                tracker.on_disconnect(f"failed: {exc}")
        finally:
            self._close()

    @abstractmethod
    def _run(self) -> None:
        """Read the source until ``self.stopping``; push with ``self.push``."""

    def _close(self) -> None:
        """Release the device; called once from the driver thread."""

    # ------------------------------------------------------------ data path
    def push(
        self, stream: str, data: np.ndarray, ts: np.ndarray, arrival: float | None = None
    ) -> None:
        """Write a chunk stamped on the one clock and account for it in health."""
        if len(ts) == 0:
            return
        self.rings[stream].write(data, ts)
        self._trackers[stream].on_chunk(float(ts[-1]), len(ts), arrival)

    def tracker(self, stream: str) -> HealthTracker:
        return self._trackers[stream]

    def health(self) -> dict[str, StreamHealth]:
        """Copies: safe to read from any thread."""
        return {name: t.snapshot() for name, t in self._trackers.items()}
