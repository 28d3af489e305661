"""A periodic health line on the console, for headless sessions.

One line per period: every stream's effective rate, latency and state, then
per model the newest prediction and how many windows were inferred.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from core.health import StreamHealth
from core.prediction import Prediction


def format_stream(h: StreamHealth, now: float) -> str:
    if not h.connected:
        state = h.message or "waiting"
        return f"{h.name}: {state}"
    lag = "" if math.isnan(h.latency) else f" lag {h.latency * 1000:.0f}ms"
    lost = f" lost {h.lost}" if h.lost else ""
    stale = h.staleness(now)
    old = f" STALE {stale:.1f}s" if stale > 2.0 else ""
    return f"{h.name}: {h.effective_rate:.0f}/s{lag}{lost}{old}"


def format_prediction(p: Prediction) -> str:
    parts = [f"{p.model} #{p.window_index}"]
    for k in ("valence", "arousal"):
        if k in p.affect:
            parts.append(f"{k[0]}={p.affect[k]:.1f}")
    if p.label:
        parts.append(f"{p.label} {p.expression[p.label]:.2f}")
    return " ".join(parts)


class ConsoleHealth:
    """Prints at most one line per ``period_s`` (wall time) to ``stream``."""

    def __init__(self, period_s: float = 5.0, stream: TextIO | None = None) -> None:
        self.period_s = period_s
        self.stream = stream or sys.stderr
        self._last_line = -math.inf
        self._latest: dict[str, Prediction] = {}
        self._count: dict[str, int] = {}
        self.lines = 0

    def on_prediction(self, prediction: Prediction) -> None:
        self._latest[prediction.model] = prediction
        self._count[prediction.model] = self._count.get(prediction.model, 0) + 1

    def on_health(self, health: dict[str, StreamHealth], now: float) -> None:
        wall = time.monotonic()
        if wall - self._last_line < self.period_s * 0.9:
            return
        self._last_line = wall
        streams = " | ".join(format_stream(h, now) for h in health.values())
        models = " | ".join(
            f"{format_prediction(p)} ({self._count[m]} so far)" for m, p in self._latest.items()
        )
        line = f"[health] {streams}"
        if models:
            line += f" || {models}"
        print(line, file=self.stream, flush=True)
        self.lines += 1

    def close(self) -> None:
        self.stream.flush()
