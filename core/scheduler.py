"""The aligner: cuts time windows across asynchronous streams, one per hop per model.

Hops fall on multiples of the model's ``hop_s`` on the one clock, so two runs
over the same data (a replay on a virtual clock) cut the very same windows. A
window ending at ``t_end`` is cut once the clock passes ``t_end +
allowed_lateness_s`` (the watermark): samples that arrive a little late, as
chunked devices and network streams do, still make it in.

Every input of every window is marked:
- PRESENT: data inside the window and the newest sample is recent enough;
- STALE: data inside the window, but the newest sample is older than
  ``stale_after_s`` at the window's end (the stream stalled or dropped out);
- MISSING: no stream bound, nothing inside the window, or a sampled stream covering
  less than ``min_coverage`` of it (holes longer than ``continuity_limit`` do not
  count). The window still goes out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.clock import Clock
from core.resample import bin_events, resample_numeric, sample_frames, target_grid
from core.ring import Ring
from core.streams import RingKind, StreamSpec
from core.window import (
    EventInput,
    FrameInput,
    InputData,
    InputSpec,
    ModelInputs,
    NumericInput,
    Presence,
    Window,
)

log = logging.getLogger(__name__)


class BindingError(ValueError):
    """A model input cannot be bound to the stream the configuration names."""


@dataclass
class StreamSource:
    """A stream the aligner may read: its spec and its ring."""

    spec: StreamSpec
    ring: Ring


@dataclass
class AlignerStats:
    """Per model: windows cut, presence counts per input, hops lost to stalls."""

    windows: int = 0
    present: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    late_hops: int = 0  # hops never cut because the loop woke up more than a hop late
    max_wake_delay_s: float = 0.0  # worst delay between a hop's watermark and its cut
    cut_errors: int = 0  # windows that could not be cut (logged): the hop is skipped

    def count(self, window: Window) -> None:
        self.windows += 1
        for key, item in window.inputs.items():
            bucket = {
                Presence.PRESENT: self.present,
                Presence.STALE: self.stale,
                Presence.MISSING: self.missing,
            }[item.presence]
            bucket[key] = bucket.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "present": dict(self.present),
            "stale": dict(self.stale),
            "missing": dict(self.missing),
            "late_hops": self.late_hops,
            "max_wake_delay_s": self.max_wake_delay_s,
            "cut_errors": self.cut_errors,
        }


def _wants(spec: InputSpec) -> RingKind:
    if isinstance(spec, NumericInput):
        return RingKind.NUMERIC
    if isinstance(spec, FrameInput):
        return RingKind.FRAMES
    return RingKind.EVENTS


def default_stream(want: InputSpec, streams: Iterable[StreamSpec]) -> StreamSpec | None:
    """The stream an input binds to when no binding names one: the first of its modality
    and ring kind, in source order (None: the input stays MISSING)."""
    return next(
        (s for s in streams if s.modality == want.modality and s.kind is _wants(want)), None
    )


def channel_problem(model: str, key: str, want: NumericInput, stream: StreamSpec) -> str | None:
    """Why ``stream`` cannot feed numeric input ``key`` of ``model`` (None when it can): it
    lacks channels the input names, or has another count than the input takes."""
    have = stream.channel_names
    absent = [c for c in want.channels if c not in have]
    if absent:
        return (
            f"model {model!r} input {key!r} needs channels {absent} "
            f"that stream {stream.name!r} does not have"
        )
    count = len(want.channels) if want.channels else len(have)
    if want.n_channels and count != want.n_channels:
        return (
            f"model {model!r} input {key!r} takes {want.n_channels} channel(s), but stream "
            f"{stream.name!r} has {count} ({', '.join(have)}); choose the channels in that "
            f"source's config, e.g. channels = {{ {want.modality.lower()} = [...] }} for "
            f"BrainFlow, or bind the input to another stream"
        )
    return None


class Aligner:
    """Serves several models from one set of streams."""

    def __init__(
        self,
        models: list[ModelInputs],
        sources: dict[str, StreamSource],
        clock: Clock,
        bindings: dict[str, dict[str, str]] | None = None,
    ) -> None:
        names = [m.model for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"two models share a name: {names}")
        self.models = {m.model: m for m in models}
        self.sources = sources
        self.clock = clock
        self.bound = {m.model: self._bind(m, (bindings or {}).get(m.model, {})) for m in models}
        self.stats = {m.model: AlignerStats() for m in models}
        self._index = dict.fromkeys(names, 0)
        #: cut every hop, even when the loop wakes late (deterministic replay); live cuts
        #: only the newest hop of a backlog
        self.catch_up = False
        #: the earliest hop watermark not cut yet (-inf until the loop runs, +inf with no
        #: models): a replay waits for ``next_due > t`` before moving its clock past ``t``
        self.next_due = -math.inf if models else math.inf
        self._resync = False

    def resync(self) -> None:
        """Time jumped (a replay seek): start the hop schedule afresh from the clock's now,
        without cutting the hops in between. ``resync_pending`` until the loop has done so."""
        if self.models:
            self._resync = True

    @property
    def resync_pending(self) -> bool:
        return self._resync

    # ------------------------------------------------------------ binding
    def _bind(self, model: ModelInputs, explicit: dict[str, str]) -> dict[str, str | None]:
        """Input key -> stream name. Explicit bindings win; otherwise the first stream of the
        input's modality (in source order); otherwise nothing (the input stays MISSING)."""
        unknown = set(explicit) - set(model.inputs)
        if unknown:
            raise BindingError(
                f"model {model.model!r} has no input {sorted(unknown)[0]!r}; "
                f"its inputs are {', '.join(model.inputs)}"
            )
        bound: dict[str, str | None] = {}
        for key, spec in model.inputs.items():
            if key in explicit:
                name = explicit[key]
                if name not in self.sources:
                    raise BindingError(
                        f"model {model.model!r} input {key!r} is bound to stream {name!r}, "
                        f"but no source publishes it (streams: {', '.join(self.sources) or 'none'})"
                    )
                src = self.sources[name].spec
                if src.kind is not _wants(spec):
                    raise BindingError(
                        f"model {model.model!r} input {key!r} wants {_wants(spec)} data, "
                        f"but stream {name!r} carries {src.kind} ({src.modality})"
                    )
                if isinstance(spec, NumericInput) and np.dtype(src.dtype).kind not in "biuf":
                    raise BindingError(
                        f"model {model.model!r} input {key!r} wants numbers, but stream "
                        f"{name!r} carries {src.dtype} samples ({src.modality}: text markers?)"
                    )
            else:
                found = default_stream(spec, (s.spec for s in self.sources.values()))
                name = next((n for n, s in self.sources.items() if s.spec is found), None)
            if name is not None and isinstance(spec, NumericInput):
                self._check_channels(model.model, key, spec, name)
            bound[key] = name
        return bound

    def _check_channels(self, model: str, key: str, spec: NumericInput, stream: str) -> None:
        problem = channel_problem(model, key, spec, self.sources[stream].spec)
        if problem is not None:
            raise BindingError(problem)

    # ------------------------------------------------------------ cutting
    def cut(self, model: str, t_end: float) -> Window:
        """The window of ``model`` ending at ``t_end``, from what the rings hold now."""
        started = time.perf_counter()
        spec = self.models[model]
        inputs: dict[str, InputData] = {}
        for key, want in spec.inputs.items():
            stream = self.bound[model][key]
            if stream is None:
                inputs[key] = InputData(key, Presence.MISSING, None, math.inf)
                continue
            inputs[key] = self._cut_input(key, want, self.sources[stream], t_end, spec)
        window = Window(model, self._index[model], t_end, inputs)
        self._index[model] += 1
        window.stamps["due"] = started
        window.stamps["cut"] = time.perf_counter()
        self.stats[model].count(window)
        return window

    def _cut_input(
        self, key: str, want: InputSpec, source: StreamSource, t_end: float, model: ModelInputs
    ) -> InputData:
        stale_after = model.stale_after_s
        t_start = t_end - want.window_s
        ring = source.ring
        if isinstance(want, NumericInput):
            chunk = ring.range(t_start - 1.0 / want.rate, t_end, pad_before=1, pad_after=1)
        elif isinstance(want, FrameInput):
            chunk = ring.range(t_start - stale_after, t_end, pad_after=1)
        else:
            chunk = ring.range(t_start - want.slice_s, t_end)
        ts, data = chunk.ts, chunk.data
        # A frame shortly before the window still shows the scene at its start.
        first = t_start - stale_after if isinstance(want, FrameInput) else t_start
        inside = ts[(ts >= first) & (ts <= t_end)]
        if len(inside) == 0:
            return InputData(key, Presence.MISSING, None, math.inf, source.spec.name)
        newest = float(inside[-1])
        staleness = max(0.0, t_end - newest)
        # Frames and events are sparse by nature (one frame may stand for its whole
        # window); only sampled streams must actually span the window.
        coverage = 1.0
        if isinstance(want, NumericInput):
            gap_s = continuity_limit(source.spec.nominal_rate, stale_after)
            ts, data = without_bridges(ts, data, t_start, t_end, gap_s)
            coverage = covered_fraction(ts, t_start, t_end, gap_s)
            if coverage < model.min_coverage:
                return InputData(key, Presence.MISSING, None, staleness, source.spec.name, coverage)
        presence = Presence.STALE if staleness > stale_after else Presence.PRESENT
        data = self._shape(want, source.spec, ts, data, t_end)
        if isinstance(want, NumericInput) and not np.isfinite(data).any():
            # a device that sends only NaN (every electrode off) sent nothing to model
            return InputData(key, Presence.MISSING, None, staleness, source.spec.name, coverage)
        return InputData(key, presence, data, staleness, source.spec.name, coverage)

    @staticmethod
    def _shape(
        want: InputSpec, spec: StreamSpec, ts: np.ndarray, data: np.ndarray, t_end: float
    ) -> np.ndarray:
        if isinstance(want, NumericInput):
            if want.channels:
                idx = [spec.channel_names.index(c) for c in want.channels]
                data = data[:, idx]
            grid = target_grid(t_end, want.window_s, want.rate)
            return resample_numeric(ts, data, grid, spec.nominal_rate, want.rate)
        if isinstance(want, FrameInput):
            instants = target_grid(t_end, want.window_s, want.count / want.window_s)
            return sample_frames(ts, data, instants, want.size)
        assert isinstance(want, EventInput)
        ends = target_grid(t_end, want.window_s, want.count / want.window_s)
        sensor = spec.frame_shape or (
            int(spec.metadata.get("height", 0)),
            int(spec.metadata.get("width", 0)),
        )
        if not sensor[0] or not sensor[1]:
            raise BindingError(f"event stream {spec.name!r} does not say its sensor size")
        return bin_events(
            ts, data, ends, want.slice_s, tuple(sensor[:2]), want.size, want.representation
        )

    # ------------------------------------------------------------ scheduling
    def _due(self, model: str, hop: int) -> float:
        m = self.models[model]
        return hop * m.hop_s + m.allowed_lateness_s

    def _latest_hop(self, model: str, now: float) -> int:
        """The newest hop whose ``_due`` time has come: settled by ``_due`` itself, so that
        the two never disagree by a rounding step (at large clock values the division
        below can land one hop short of a due time the loop is already at, and it would
        wait for that hop forever)."""
        m = self.models[model]
        k = math.floor((now - m.allowed_lateness_s) / m.hop_s)
        while self._due(model, k + 1) <= now:
            k += 1
        while self._due(model, k) > now:
            k -= 1
        return k

    def _cut_and_send(self, model: str, t_end: float, on_window: Callable[[Window], None]) -> None:
        """One window to its worker. A window that cannot be cut (data a stream should not
        carry) is counted and logged, and the hop skipped: one bad window must not end
        every model's session, as one that fails in a model does not either."""
        try:
            window = self.cut(model, t_end)
        except Exception:
            stats = self.stats[model]
            stats.cut_errors += 1
            if stats.cut_errors <= 3:
                log.exception("%s: the window ending at %.3f could not be cut", model, t_end)
            return
        on_window(window)

    async def run(self, on_window: Callable[[Window], None], stop: asyncio.Event) -> None:
        """Cut every model's windows at their hops until ``stop`` is set (or a virtual clock
        closes). When the loop wakes more than one hop late, only the newest hop is cut and
        the others are counted as ``late_hops``: the present matters more than a backlog."""
        if not self.models:
            await stop.wait()
            return
        now = self.clock.now()
        next_hop = {name: self._latest_hop(name, now) + 1 for name in self.models}
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if self._resync:
                    self._resync = False
                    now = self.clock.now()
                    next_hop = {name: self._latest_hop(name, now) + 1 for name in self.models}
                due = min(self._due(n, k) for n, k in next_hop.items())
                self.next_due = due
                sleeper = asyncio.ensure_future(self.clock.sleep_until(due))
                await asyncio.wait({sleeper, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not sleeper.done():
                    sleeper.cancel()
                    break
                if self._resync:
                    continue
                now = self.clock.now()
                if now < due:
                    if getattr(self.clock, "closed", False):  # a virtual clock closed: data ended
                        break
                    continue  # woken early (a replay clock paused or changed speed)
                for name, k in next_hop.items():
                    if self._due(name, k) > now:
                        continue
                    latest = self._latest_hop(name, now)
                    stats = self.stats[name]
                    hop_s = self.models[name].hop_s
                    if self.catch_up:
                        for hop in range(k, latest + 1):
                            self._cut_and_send(name, hop * hop_s, on_window)
                    else:
                        stats.late_hops += latest - k
                        self._cut_and_send(name, latest * hop_s, on_window)
                    stats.max_wake_delay_s = max(
                        stats.max_wake_delay_s, now - self._due(name, latest)
                    )
                    next_hop[name] = latest + 1
        finally:
            self.next_due = math.inf
            stop_wait.cancel()


#: a regular stream's samples further apart than this many periods leave a gap
GAP_PERIODS = 4.0
#: ... but never count steps this short as gaps: devices that stamp on arrival stamp in
#: bursts (BLE packets ~0.1 s apart, senders pushing a block sample by sample)
MIN_GAP_S = 0.25


def continuity_limit(nominal_rate: float, stale_after_s: float) -> float:
    """The longest step between neighbouring samples that still counts as continuous data.

    Beyond it the stream dropped out (or a replay jumped), and the samples on either side
    say nothing about the time between them. An irregular stream has no period to go
    by; it holds its value for the model's ``stale_after_s``.
    """
    if nominal_rate > 0:
        return max(MIN_GAP_S, GAP_PERIODS / nominal_rate)
    return stale_after_s


def without_bridges(
    ts: np.ndarray, data: np.ndarray, t_start: float, t_end: float, gap_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Drop the edge neighbours read for interpolation when a gap separates them from the
    window's data: a sample from before a dropout would otherwise be drawn as a ramp
    across it into the window; without it the window's own edge value is held."""
    lo, hi = 0, len(ts)
    if hi - lo >= 2 and ts[lo] < t_start and ts[lo + 1] - ts[lo] > gap_s:
        lo += 1
    if hi - lo >= 2 and ts[hi - 1] >= t_end and ts[hi - 1] - ts[hi - 2] > gap_s:
        hi -= 1
    return ts[lo:hi], data[lo:hi]


def covered_fraction(ts: np.ndarray, t_start: float, t_end: float, gap_s: float) -> float:
    """The fraction of ``[t_start, t_end]`` the samples ``ts`` cover: from the first sample
    (or the window's start) to the end, less every step longer than ``gap_s``.

    The time after the newest sample counts as covered; whether it is too long is the
    staleness check's business.
    """
    if len(ts) == 0 or t_end <= t_start:
        return 0.0
    span = t_end - max(t_start, float(ts[0]))
    steps = np.diff(ts)
    holes = steps > gap_s
    if holes.any():
        lo = np.clip(ts[:-1][holes], t_start, t_end)
        hi = np.clip(ts[1:][holes], t_start, t_end)
        span -= float((hi - lo).sum())
    return min(1.0, max(0.0, span / (t_end - t_start)))
