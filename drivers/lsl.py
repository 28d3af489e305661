"""LSL inlets as affectlab streams: resolved by name, type or source_id, on the one clock.

One ``LslDriver`` reads one LSL stream into one ring. Choices that matter:

- Clock. Inlets run LSL's clock-sync and monotonize, so samples from another
  host land on the local LSL clock, which is affectlab's clock. The first
  clock-sync blocks about 0.6 s (REFERENCE 9); the driver thread takes that hit,
  not the caller, and subscribes to the data first, so samples sent meanwhile
  wait in the inlet instead of being missed. De-jitter (``dejitter``, on by
  default) is ours, not LSL's (``stamp_smoother``): senders that push sample by
  sample as a device hands them blocks stamp in bursts, which it smooths (raw,
  such a stream shows a hole between every two bursts), and unlike LSL's it
  starts afresh after a sender pauses with its outlet alive, so the pause stays
  a hole and the stamps after it stay right.
- Keeping up. LSL hands out the OLDEST buffered data first, so a slow reader
  silently works on old samples (REFERENCE 8). The thread pulls everything that
  is pending into one preallocated array per call (``dest_obj``), stamps the
  arrival, and health shows latency (arrival minus sample time). When that
  latency exceeds ``behind_s`` the health message says so; holes in the
  timeline of a regular stream are counted as gaps and estimated lost samples.
- Outlet loss. Inlets are made with ``recover=False`` so that a vanished outlet
  surfaces as ``LostError`` at once (liblsl's silent recovery would hide the
  gap). The driver then marks the gap in health and re-resolves the stream -
  the same query, pinned to the stream's source_id when it has one - until it
  comes back with the same layout.
- String streams (``cf_string``, e.g. experiment markers) go to a small ring of
  Python ``str`` objects (dtype ``object``), modality MARKERS: they are the
  triggers a recorder or a GUI may want, so they are kept rather than skipped.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from core.clock import lsl_now
from core.streams import Modality, RingKind, StreamSpec
from drivers.base import Driver, DriverError
from drivers.lsl_streams import (
    FORMAT_DTYPES,
    FORMAT_NAMES,
    SOURCE,
    LslQuery,
    StreamSummary,
    modality_for,
    resolve,
)
from drivers.stamp_smoother import StampSmoother

log = logging.getLogger(__name__)

#: how long a pull waits for more of a run of samples that came together (a sender pushes
#: a block or a backlog in microseconds)
RUN_GRACE_S = 0.005
#: the longest a run is held back waiting for its end (it adds that much latency at most)
MAX_HOLD_S = 0.25


# ------------------------------------------------------------------ the driver
def spec_from_summary(
    s: StreamSummary, stream: str | None = None, modality: Modality | str | None = None
) -> StreamSpec:
    """The StreamSpec of an LSL stream (from its full header)."""
    is_string = s.channel_format == "string"
    mod = Modality(modality) if modality is not None else modality_for(s.type)
    if is_string and modality is None:
        mod = Modality.MARKERS
    names = s.channel_names or tuple(f"ch{i + 1}" for i in range(s.channel_count))
    metadata: dict[str, Any] = {
        "lsl_name": s.name,
        "lsl_type": s.type,
        "source_id": s.source_id,
        "hostname": s.hostname,
        "uid": s.uid,
        "channel_format": s.channel_format,
    }
    if s.channel_types:
        metadata["channel_types"] = list(s.channel_types)
    if s.manufacturer:
        metadata["manufacturer"] = s.manufacturer
    if is_string:
        metadata["values"] = "str (LSL string samples)"
    return StreamSpec(
        name=stream or s.name,
        modality=mod,
        nominal_rate=max(0.0, s.nominal_rate),
        channel_names=names,
        units=s.units,
        dtype=FORMAT_DTYPES[_format_code(s.channel_format)],
        source=f"{SOURCE}:{s.name}@{s.hostname}",
        metadata=metadata,
    )


def layout_mismatch(want: StreamSummary, got: StreamSummary) -> str | None:
    """Why stream ``got`` cannot fill a ring made for ``want`` (None when it can): channel
    count, format and rate must match, and channel labels when both declare them."""
    if (got.channel_count, got.channel_format, got.nominal_rate) != (
        want.channel_count,
        want.channel_format,
        want.nominal_rate,
    ):
        return f"this ring holds {want.channel_count} x {want.channel_format} @ {want.rate_text}"
    if want.channel_names and got.channel_names and want.channel_names != got.channel_names:
        return f"its channels are {list(got.channel_names)}, this ring's {list(want.channel_names)}"
    return None


def expected_summary(
    query: LslQuery,
    channels: int,
    rate: float,
    channel_format: str = "float32",
    labels: tuple[str, ...] = (),
    units: tuple[str, ...] = (),
) -> StreamSummary:
    """The header a declared stream will have, as far as the session needs it before it
    appears (``LslDriver(expect=...)``)."""
    if channel_format not in FORMAT_NAMES.values():
        raise ValueError(
            f"channel format {channel_format!r}; expected one of {sorted(FORMAT_NAMES.values())}"
        )
    if channels < 1 or rate < 0:
        raise ValueError(f"expected channels >= 1 and rate >= 0, got {channels} and {rate}")
    for what, names in (("labels", labels), ("units", units)):
        if names and len(names) != channels:
            raise ValueError(f"{len(names)} {what} for {channels} channels")
    return StreamSummary(
        name=query.name or query.type or query.source_id or "",
        type=query.type or "",
        channel_count=int(channels),
        nominal_rate=float(rate),
        channel_format=channel_format,
        source_id=query.source_id or "",
        hostname=query.hostname or "",
        channel_names=tuple(labels),
        units=tuple(units),
    )


def _format_code(name: str) -> int:
    for code, n in FORMAT_NAMES.items():
        if n == name:
            return code
    raise DriverError(f"unsupported LSL channel format {name!r}")


class LslDriver(Driver):
    """One LSL stream read into one ring.

    The stream is resolved in the constructor (``resolve_timeout``); a missing
    stream raises DriverError listing the streams that were found, unless its
    layout is declared (``expect``: channel count, format and rate, optionally
    labels and units). Then the ring is made from that declaration, the
    session starts, and the thread looks for the stream until it appears - a
    stream with another layout is refused with a message and the search goes on.
    A stream that is there at start must match the declaration too. ``stream``
    names the ring (default: the LSL name). ``max_buffered`` is the inlet's
    buffer in seconds: data older than that is dropped by LSL if the driver ever
    falls that far behind. ``poll_interval`` is the shortest time between two
    pulls while data flows: per-pull costs (pylsl's call, the ring write, health)
    are paid at most 1/poll_interval times a second whatever the sample rate,
    for at most that much added latency; the first sample after a quiet spell
    is still picked up at once. ``stall_timeout`` marks a regular stream disconnected
    when its outlet is alive but silent (default: 2 s or 20 sample periods,
    whichever is longer; 0 turns it off; irregular streams never stall).
    """

    #: seconds a pull waits for the first sample; bounds how long stop() takes
    poll_timeout: float = 0.1
    #: seconds between clock-offset refreshes shown in health (clock-sync itself is LSL's)
    clock_refresh_s: float = 5.0
    #: bytes of the preallocated pull buffer at most
    max_pull_bytes: int = 8 << 20

    def __init__(
        self,
        query: LslQuery,
        *,
        stream: str | None = None,
        name: str = "lsl",
        resolve_timeout: float = 5.0,
        max_buffered: float = 60.0,
        dejitter: bool = True,
        modality: Modality | str | None = None,
        stall_timeout: float | None = None,
        reconnect_interval: float = 1.0,
        behind_s: float = 1.0,
        poll_interval: float = 0.005,
        ring_seconds: float | None = None,
        expect: StreamSummary | None = None,
    ) -> None:
        self.query = query
        self.resolve_timeout = float(resolve_timeout)
        self.max_buffered = float(max_buffered)
        self.dejitter = bool(dejitter)
        self.reconnect_interval = float(reconnect_interval)
        self.behind_s = float(behind_s)
        self.poll_interval = float(poll_interval)
        inlet, summary = self._first_inlet(query, expect)
        if summary.channel_count < 1:
            raise DriverError(f"LSL stream {summary.describe()} has no channels")
        spec = spec_from_summary(summary, stream, modality)
        if spec.kind is not RingKind.NUMERIC:
            raise DriverError(
                f"LSL stream {summary.name!r}: modality {spec.modality} needs an event or frame "
                "ring; LSL samples go to numeric modalities only"
            )
        super().__init__(name, [spec], ring_seconds)
        self.spec = spec
        self.stream = spec.name
        self.summary = summary
        self.is_string = summary.channel_format == "string"
        rate = spec.nominal_rate
        if stall_timeout is None:
            stall_timeout = max(2.0, 20.0 / rate) if rate > 0 else 0.0
        self.stall_timeout = float(stall_timeout) if rate > 0 else 0.0
        #: a hole longer than this between consecutive stamps counts as a gap with lost samples
        # (not shorter than the bursts of a sender that stamps blocks sample by sample)
        self.hole_s = max(0.3, 10.0 / rate) if rate > 0 else math.inf
        #: de-jitter of a regular stream's stamps (None: the stamps as LSL hands them over)
        self.smoother = StampSmoother(rate, self.hole_s) if self.dejitter and rate > 0 else None
        # after a loss, look for the very same device again when it declares a source_id
        pinned = dict(query.fields())
        if summary.source_id:
            pinned["source_id"] = summary.source_id
        self.reconnect_query = LslQuery(**pinned)
        #: False while a declared stream has not appeared yet
        self.connected_once = inlet is not None
        self.reconnects = 0
        self.clock_offset = 0.0
        self._inlet: pylsl.StreamInlet | None = inlet
        self._last_ts: float | None = None
        self._behind = False
        item = np.dtype(spec.dtype).itemsize * spec.n_channels
        want = math.ceil(rate * 0.5) if rate > 0 else 1024
        self._cap = max(64, min(want, self.max_pull_bytes // max(1, item)))
        self._buf = (
            None if self.is_string else np.empty((self._cap, spec.n_channels), dtype=spec.dtype)
        )
        self.tracker(self.stream).health.message = (
            f"resolved {summary.describe()}"
            if inlet is not None
            else f"waiting for an LSL stream with {query.describe()} (not on the network yet)"
        )

    # ------------------------------------------------------------ inlets
    def _first_inlet(
        self, query: LslQuery, expect: StreamSummary | None
    ) -> tuple[pylsl.StreamInlet | None, StreamSummary]:
        """The inlet and header of the stream; (None, ``expect``) when it is declared and
        not there yet (the thread waits for it)."""
        if expect is None:
            return self._open(resolve(query, self.resolve_timeout))
        infos = pylsl.resolve_bypred(query.predicate(), 1, min(self.resolve_timeout, 1.0))
        if not infos:
            return None, expect
        inlet, summary = self._open(infos[0])
        problem = layout_mismatch(expect, summary)
        if problem is not None:
            with contextlib.suppress(Exception):
                inlet.close_stream()
            raise DriverError(f"LSL stream {summary.describe()} {problem}")
        return inlet, summary

    def _open(self, info: pylsl.StreamInfo) -> tuple[pylsl.StreamInlet, StreamSummary]:
        """An inlet (recover off: loss must surface) and the stream's full header."""
        buflen = max(1, math.ceil(self.max_buffered))
        inlet = pylsl.StreamInlet(
            info,
            max_buflen=buflen,
            recover=False,
            processing_flags=pylsl.proc_clocksync | pylsl.proc_monotonize,
        )
        try:
            full = inlet.info(timeout=max(1.0, self.resolve_timeout))
        except (LslTimeoutError, LostError) as exc:
            with contextlib.suppress(Exception):
                inlet.close_stream()
            raise DriverError(
                f"LSL stream {StreamSummary.from_info(info).describe()} was found but its "
                f"header could not be read: {exc}"
            ) from exc
        return inlet, StreamSummary.from_info(full, full=True)

    def _incompatible(self, s: StreamSummary) -> str | None:
        """Why a stream that (re)appeared cannot fill this ring (None when it can)."""
        problem = layout_mismatch(self.summary, s)
        if problem is None:
            return None
        how = "is back" if self.connected_once else "appeared"
        return (
            f"a stream matching {self.reconnect_query.describe()} {how} as {s.describe()}, "
            f"but {problem}; not connecting to it"
        )

    # ------------------------------------------------------------ thread
    def _run(self) -> None:
        tracker = self.tracker(self.stream)
        inlet = self._inlet
        while not self.stopping:
            if inlet is None:
                inlet = self._reconnect()
                if inlet is None:
                    break
                self._inlet = inlet
            try:
                inlet.open_stream(timeout=max(1.0, self.resolve_timeout))  # data from now on
                self._sync_clock(inlet)
                self._pump(inlet)
            except (LostError, LslTimeoutError):  # gone, or never answered the subscription
                self._inlet = inlet = None
                self._last_ts = None
                if self.smoother is not None:
                    self.smoother.reset()
                tracker.on_disconnect(
                    f"LSL stream {self.summary.name!r} lost; looking for "
                    f"{self.reconnect_query.describe()} again"
                )
                log.warning("LSL stream %r lost; reconnecting", self.summary.name)

    def _sync_clock(self, inlet: pylsl.StreamInlet) -> None:
        """The first estimate blocks ~0.6 s; it is taken here, before data is expected."""
        health = self.tracker(self.stream).health
        try:
            self.clock_offset = float(inlet.time_correction(timeout=max(2.0, self.resolve_timeout)))
        except LslTimeoutError:
            health.message = "clock sync with the outlet timed out; timestamps may be off"
            return
        health.clock_offset = self.clock_offset
        if health.message.startswith(("resolved", "reconnected")):
            health.message = ""

    def _pump(self, inlet: pylsl.StreamInlet) -> None:
        """Pull until stop; raises LostError when the outlet goes away."""
        tracker = self.tracker(self.stream)
        health = tracker.health
        last_data = lsl_now()
        next_sync = last_data + self.clock_refresh_s
        stalled = False
        # A run of samples that came together (a block, a stalled sender's backlog) is
        # placed by de-jitter from its last stamp, which may be in the next pull (a run
        # longer than a pull; a pull woken by its first sample gets that one alone). Such
        # an open run is held back and the driver reads on, waiting at most RUN_GRACE_S a
        # time, until it ends; what comes before it goes in at once. Held at most
        # MAX_HOLD_S, so a sender whose runs never end cannot delay a stream for longer.
        held: tuple[np.ndarray, np.ndarray] | None = None
        held_since = 0.0
        try:
            while not self.stopping:
                holding = held is not None
                data, ts = self._pull(inlet, RUN_GRACE_S if holding else None)
                now = lsl_now()
                came = len(ts)
                if held is not None:
                    data = np.concatenate([held[0], data])
                    ts = np.concatenate([held[1], ts])
                    held = None
                start = None
                if self.smoother is not None and (came or not holding):  # nothing came: ended
                    start = self.smoother.open_run(ts)
                if start is not None:
                    if not (holding and start == 0):  # a new run opens: hold it from now
                        held_since = now
                    if now - held_since < MAX_HOLD_S:
                        held = (data[start:].copy(), ts[start:].copy())
                        data, ts = data[:start], ts[:start]
                if len(ts):
                    if stalled:
                        stalled = False
                        health.message = ""
                    self._deliver(data, ts, now)
                    last_data = now
                    rest = self.poll_interval - (lsl_now() - now)
                    if held is None and len(ts) < self._cap and rest > 0 and self.wait(rest):
                        break
                elif held is None and (
                    self.stall_timeout and not stalled and now - last_data > self.stall_timeout
                ):
                    stalled = True
                    self._last_ts = None  # the hole is this gap, counted once by on_disconnect
                    if self.smoother is not None:
                        self.smoother.reset()
                    tracker.on_disconnect(
                        f"no data from LSL stream {self.summary.name!r} for "
                        f"{now - last_data:.1f} s (outlet alive but silent)"
                    )
                if now >= next_sync:
                    next_sync = now + self.clock_refresh_s
                    with contextlib.suppress(LslTimeoutError):
                        self.clock_offset = float(inlet.time_correction(timeout=0.5))
                        health.clock_offset = self.clock_offset
        finally:
            if held is not None:  # stopped or lost while reading on: what was read goes in
                self._deliver(*held, lsl_now())

    def _pull(
        self, inlet: pylsl.StreamInlet, timeout: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(data, stamps) of what is pending, waiting up to ``timeout`` (default
        ``poll_timeout``) for a first sample. Numeric data is a view of the pull buffer."""
        timeout = self.poll_timeout if timeout is None else timeout
        if self._buf is not None:
            _, ts = inlet.pull_chunk(
                timeout=timeout,
                max_samples=self._cap,
                dest_obj=self._buf,
                min_samples=1,
                as_numpy=True,
            )
            return self._buf[: len(ts)], np.asarray(ts, dtype=np.float64)
        samples, ts = inlet.pull_chunk(timeout=timeout, max_samples=self._cap, min_samples=1)
        ts = np.asarray(ts, dtype=np.float64)
        data = np.empty((len(ts), self.spec.n_channels), dtype=object)
        if len(ts):
            data[:] = samples
        return data, ts

    def _deliver(self, data: np.ndarray, ts: np.ndarray, now: float) -> None:
        """De-jitter, count holes, write to the ring and check how far behind it is."""
        if self.smoother is not None:
            ts = self.smoother(ts)
        self._account_holes(ts)
        self.push(self.stream, data, ts, now)
        self._check_behind(now - float(ts[-1]))

    def _account_holes(self, ts: np.ndarray) -> None:
        """Count holes in a regular stream's timeline (LSL buffer overflow, a paused sender)."""
        if math.isinf(self.hole_s):
            return
        last = self._last_ts
        self._last_ts = float(ts[-1])
        # stamps are monotonic (proc_monotonize): no step can exceed the whole span
        if ts[-1] - (ts[0] if last is None else last) <= self.hole_s:
            return
        steps = np.diff(ts) if last is None else np.diff(ts, prepend=last)
        holes = steps[steps > self.hole_s]
        if len(holes):
            h = self.tracker(self.stream).health
            h.gaps += len(holes)
            h.lost += int(np.sum(np.maximum(np.rint(holes * self.spec.nominal_rate) - 1, 0)))

    def _check_behind(self, latency: float) -> None:
        health = self.tracker(self.stream).health
        if latency > self.behind_s:
            self._behind = True
            health.message = f"behind: newest sample {latency:.2f} s old on arrival"
        elif self._behind and latency < self.behind_s / 2:
            self._behind = False
            health.message = ""

    def _reconnect(self) -> pylsl.StreamInlet | None:
        """Re-resolve until the stream is back (or stop); None when stopping."""
        health = self.tracker(self.stream).health
        attempt = 0
        while not self.stopping:
            attempt += 1
            infos = pylsl.resolve_bypred(
                self.reconnect_query.predicate(), 1, self.reconnect_interval
            )
            problem = None
            for info in infos:
                try:
                    inlet, summary = self._open(info)
                except DriverError as exc:
                    problem = str(exc)
                    continue
                problem = self._incompatible(summary)
                if problem is None:
                    if self.connected_once:
                        self.reconnects += 1
                        health.message = f"reconnected to {summary.describe()}"
                        log.info("LSL stream %r reconnected", summary.name)
                    else:
                        self._first_seen(summary)
                        health.message = f"resolved {summary.describe()}"
                        log.info("LSL stream %r appeared", summary.name)
                    return inlet
                with contextlib.suppress(Exception):
                    inlet.close_stream()
            health.message = problem or (
                f"LSL stream {self.summary.name!r} lost; looking for "
                f"{self.reconnect_query.describe()} again (attempt {attempt})"
                if self.connected_once
                else f"waiting for an LSL stream with {self.query.describe()} "
                f"(not on the network yet; {attempt} looks)"
            )
            if infos and self.wait(self.reconnect_interval):
                return None
        return None

    def _first_seen(self, summary: StreamSummary) -> None:
        """A declared stream appeared: from now on look for this very device after a loss."""
        self.connected_once = True
        self.summary = summary
        if summary.source_id:
            self.reconnect_query = LslQuery(
                **{**self.query.fields(), "source_id": summary.source_id}
            )

    def _close(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            with contextlib.suppress(Exception):
                inlet.close_stream()
