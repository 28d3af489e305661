"""The inference worker: one thread per model, fed windows by the aligner.

The hand-off holds one window. When the model is slower than the hop, the
newest window replaces the waiting one and the replaced one is counted as
skipped: a live display wants the present, not a growing backlog. Each
Prediction carries how long every stage took, measured with ``perf_counter``
(the clock may be virtual during replay, durations must not be).

The model itself sits behind ``ModelRunner``, a two-call adapter (prepare the
tensors, run the model) so the worker never imports torch (devices are
chosen by ``models.runtime.pick_device``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.clock import Clock
from core.prediction import LATENCIES, ModelOutput, Prediction
from core.window import ModelInputs, Window

#: latencies kept per stage for the percentiles: about 66 minutes at 5 windows a second
RECENT_LATENCIES = 20_000

log = logging.getLogger(__name__)


class ModelRunner(Protocol):
    """The seam between engine and models: Window -> tensors -> outputs.

    ``prepare`` turns a window's numpy inputs into whatever the model eats (on
    its device); ``infer`` runs it. ``outputs`` lists the flat column names the
    runner fills (valence, ..., p_angry, ...) so sinks can declare them up front.
    """

    name: str
    inputs: ModelInputs
    device: str
    outputs: tuple[str, ...]

    def prepare(self, window: Window) -> Any: ...

    def infer(self, prepared: Any) -> ModelOutput: ...


@dataclass
class LatencyHistory:
    """One stage's latencies in seconds: the newest ``RECENT_LATENCIES`` values for the percentiles
    (bounded, so an hour of session costs what a minute does), and the count, mean and
    maximum over the whole session, so a slow spell early on is not forgotten."""

    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_LATENCIES))
    n: int = 0
    total: float = 0.0
    max: float = float("-inf")

    def append(self, value: float) -> None:
        self.recent.append(value)
        self.n += 1
        self.total += value
        self.max = max(self.max, value)

    def __len__(self) -> int:
        return len(self.recent)

    def __iter__(self) -> Iterator[float]:
        return iter(self.recent)


@dataclass
class WorkerStats:
    """Counters and latencies of one worker. Written by its thread only."""

    windows: int = 0  # windows handed to the worker
    inferred: int = 0  # predictions published
    skipped: int = 0  # windows replaced by a newer one before the model got to them
    errors: int = 0
    last_error: str = ""
    latencies: dict[str, LatencyHistory] = field(
        default_factory=lambda: {k: LatencyHistory() for k in LATENCIES}
    )

    def latency_percentiles(self) -> dict[str, dict[str, float]]:
        """Seconds per stage: p50, p90 and p99 over the newest ``n_recent`` windows; max
        and mean over all ``n`` of the session."""
        out: dict[str, dict[str, float]] = {}
        for stage, history in self.latencies.items():
            if not history.n:
                continue
            a = np.fromiter(list(history.recent), dtype=np.float64)
            p50, p90, p99 = np.percentile(a, [50, 90, 99])
            out[stage] = {
                "p50": float(p50),
                "p90": float(p90),
                "p99": float(p99),
                "max": history.max,
                "mean": history.total / history.n,
                "n": history.n,
                "n_recent": len(a),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "inferred": self.inferred,
            "skipped": self.skipped,
            "errors": self.errors,
            "last_error": self.last_error,
            "latency_s": self.latency_percentiles(),
        }


class InferenceWorker:
    """Runs one ModelRunner on the newest window in a thread of its own."""

    def __init__(
        self,
        runner: ModelRunner,
        publish: Callable[[Prediction], None],
        clock: Clock,
        name: str | None = None,
    ) -> None:
        self.runner = runner
        self.publish = publish
        self.clock = clock
        self.name = name or runner.name
        self.stats = WorkerStats()
        self._cond = threading.Condition()
        self._pending: Window | None = None
        self._stopping = False
        self._busy = False
        self._thread: threading.Thread | None = None
        #: wait in ``submit`` while a window is still waiting instead of replacing it:
        #: deterministic replay processes every window (live keeps latest-wins)
        self.blocking = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"worker {self.name!r} already started")
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name=f"worker-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the window in hand and the one waiting, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("worker %s did not stop within %.0f s", self.name, timeout)
            self._thread = None

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is waiting or running (tests and replay use this)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ------------------------------------------------------------ hand-off
    def submit(self, window: Window) -> None:
        """Offer a window; a window still waiting is replaced and counted as skipped."""
        window.stamps.setdefault("submitted", time.perf_counter())
        with self._cond:
            if self.blocking:
                while self._pending is not None and not self._stopping and self._thread is not None:
                    self._cond.wait(0.1)
            self.stats.windows += 1
            if self._pending is not None:
                self.stats.skipped += 1
            self._pending = window
            self._cond.notify_all()

    def _take(self) -> Window | None:
        with self._cond:
            while self._pending is None and not self._stopping:
                self._cond.wait()
            window, self._pending = self._pending, None
            self._busy = window is not None
            self._cond.notify_all()  # a blocking submit may hand over the next one
            return window

    def _main(self) -> None:
        while True:
            window = self._take()
            if window is None:
                return
            try:
                self._process(window)
            except Exception as exc:  # noqa: BLE001 - one bad window must not end the session
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if self.stats.errors <= 3 or self.stats.errors % 100 == 0:
                    log.exception("model %s failed on window %d", self.name, window.index)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _process(self, window: Window) -> None:
        t_taken = time.perf_counter()
        prepared = self.runner.prepare(window)
        t_inputs = time.perf_counter()
        out = self.runner.infer(prepared)
        t_model = time.perf_counter()
        latency: dict[str, float] = {
            "inputs": t_inputs - t_taken,
            "model": t_model - t_inputs,
            "queue": t_taken - window.stamps["submitted"],
        }
        if "due" in window.stamps and "cut" in window.stamps:
            latency["cut"] = window.stamps["cut"] - window.stamps["due"]
        prediction = Prediction(
            model=self.name,
            window_index=window.index,
            t_end=window.t_end,
            affect=dict(out.affect),
            expression=dict(out.expression),
            mask=window.mask(),
            routing=dict(out.routing),
            latency=latency,
        )
        prediction.published_at = self.clock.now()
        latency["total"] = prediction.published_at - window.t_end
        self.publish(prediction)
        latency["publish"] = time.perf_counter() - t_model
        self.stats.inferred += 1
        for stage, value in latency.items():
            self.stats.latencies[stage].append(value)
