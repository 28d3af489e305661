"""A running session: sources -> rings -> aligner -> workers -> bus -> sinks.

The session owns the wiring and the lifecycle, nothing else. The asyncio
aligner runs on an engine thread of its own so the caller's thread (the
headless main loop or the Qt event loop) is never blocked by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import SessionConfig
from app.interrupts import uninterruptible
from app.sinks import build_sinks, health_period
from app.sources import build_sources
from core.bus import Bus
from core.clock import Clock, RealClock
from core.health import StreamHealth
from core.scheduler import Aligner, StreamSource
from core.window import Window
from core.worker import InferenceWorker
from drivers.base import Driver
from drivers.session_inputs import SESSION_INPUT_STREAMS, SessionInputs
from recordings.errors import RecordingError
from recordings.recorder import SessionRecorder

log = logging.getLogger(__name__)


class SessionFailed(RuntimeError):
    """A running session could not go on: its engine failed, or every source did."""


@dataclass
class SessionStats:
    """What --stats writes: per stream, per model, and the session's span."""

    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: float = 0.0
    stopped_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.stopped_at - self.started_at,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "streams": self.streams,
            "models": self.models,
        }


def config_document(cfg: SessionConfig) -> dict[str, Any]:
    """The config as the TOML document ``app.config.parse_config`` reads, with every command-line
    override applied (seed, duration, sinks): what a manifest records as the session's config."""
    return {
        "session": {"name": cfg.name, "duration": cfg.duration, "health_period": cfg.health_period},
        "sources": [{"kind": s.kind, "name": s.name, **s.options} for s in cfg.sources],
        "models": [
            {"name": m.name, "device": m.device, "bindings": dict(m.bindings)} for m in cfg.models
        ],
        "sinks": [{"kind": k.kind, **k.options} for k in cfg.sinks],
    }


class Session:
    """Builds everything a config names and runs it until stopped."""

    def __init__(
        self,
        config: SessionConfig,
        clock: Clock | None = None,
        drivers: list[Driver] | None = None,
        replay: Any = None,
    ) -> None:
        """``drivers`` replace the config's sources (a replay passes its own, with its clock);
        ``replay`` is the ``recordings.replay.ReplayControl`` steering them, if any."""
        from models.runtime import load_runner, set_inference_threads  # torch loads here

        self.config = config
        self.clock = clock or RealClock()
        self.drivers: list[Driver] = (
            list(drivers) if drivers is not None else build_sources(config.sources)
        )
        # Markers and self-reports are streams of every session (unless a source, e.g. a
        # replay of a recorded session, already publishes them).
        published = {s.name for d in self.drivers for s in d.specs}
        self.inputs: SessionInputs | None = None
        if not published & set(SESSION_INPUT_STREAMS):
            self.inputs = SessionInputs(self.clock.now)
            self.drivers.append(self.inputs)
        self.recording: SessionRecorder | None = None
        #: the last recording this session closed: its folder and items written per stream
        self.recorded: tuple[Path, dict[str, int]] | None = None
        self.sources: dict[str, StreamSource] = {}
        for driver in self.drivers:
            for spec in driver.specs:
                if spec.name in self.sources:
                    raise ValueError(f"two sources publish a stream named {spec.name!r}")
                self.sources[spec.name] = StreamSource(spec, driver.rings[spec.name])
        self.inference_threads = set_inference_threads()
        self.runners = [load_runner(m.name, device=m.device) for m in config.models]
        bindings = {r.name: m.bindings for r, m in zip(self.runners, config.models, strict=True)}
        self.aligner = Aligner([r.inputs for r in self.runners], self.sources, self.clock, bindings)
        self.bus = Bus()
        self.workers = {
            r.name: InferenceWorker(r, self.bus.publish, self.clock) for r in self.runners
        }
        #: None live; a ``recordings.replay.ReplayControl`` in a replay
        self.replay = replay
        if replay is not None:
            replay.attach(self.aligner, list(self.workers.values()))
        # last: files and outlets are opened only once nothing slow (models) is left to build
        for sink in build_sinks(config.sinks, self.runners, config):
            self.bus.add(sink)
        self._engine: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_async: asyncio.Event | None = None
        self._ready = threading.Event()
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._stopped = False
        self.engine_error: BaseException | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start workers, sources and the engine. A source that cannot start (a device that
        is not there) stops what already started, and the recording and sinks are closed,
        before its error reaches the caller: nothing is left running or half-written.
        A session runs once (its sinks are closed when it stops): build a new one to run again."""
        if self._stopped:
            raise RuntimeError("this session has stopped; build a new Session to run again")
        try:
            for worker in self.workers.values():
                worker.start()
            for driver in self.drivers:
                driver.start()
        except BaseException:
            self.abandon()
            raise
        # after the sources: a replay's clock is set to its start only as its driver starts
        self.started_at = self.clock.now()
        self._engine = threading.Thread(target=self._engine_main, name="engine", daemon=True)
        self._engine.start()
        self._ready.wait(5.0)

    def abandon(self) -> None:
        """Close a session that never ran (its start failed or was interrupted, or the window
        closed while it was being built): stop what was started and leave no empty prediction
        log nor header-only recording behind to block the rerun. A session that ran is only
        stopped: what it wrote stays."""
        recorder = self.recording
        ran = bool(self.started_at)
        self.stop()
        if ran:
            return
        if recorder is not None:
            recorder.discard()
        for sink in self.bus.sinks:
            discard = getattr(sink, "discard", None)  # a sink that writes a file (core.bus.Sink)
            if discard is not None:
                discard()

    def stop(self) -> None:
        """Stop in data-flow order so nothing in flight is dropped on the floor. Safe to call
        again, and after the engine failed (its event loop is closed then)."""
        if self._stopped:
            return
        self._stopped = True
        for driver in self.drivers:
            driver.stop()
        loop = self._loop
        if loop is not None and self._stop_async is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(self._stop_async.set)
        if self._engine is not None:
            self._engine.join(10.0)
            self._engine = None
        for worker in self.workers.values():
            worker.stop()
        self.stop_recording()  # after the drivers and workers: the last items go in too
        self.stopped_at = self.clock.now()
        self.bus.publish_health(self.health(), self.stopped_at)
        self.bus.close()

    def time_origin(self) -> float:
        """The clock time the session's own time counts from: its start, or for a replay the
        moment the replayed part begins on the replay clock."""
        if self.replay is not None:
            return self.replay.origin
        return self.started_at or self.clock.now()

    def run_for(self, duration: float | None) -> None:
        """Run until ``duration`` seconds have passed (None: until KeyboardInterrupt), then
        stop, however it ends (an interrupt while it starts included). SessionFailed when the
        engine or every source failed on the way."""
        try:
            self.start()  # stops what it started if it fails
            end = None if not duration else time.monotonic() + duration
            while end is None or time.monotonic() < end:
                time.sleep(0.05 if end is None else max(0.0, min(0.05, end - time.monotonic())))
                sensors = [d for d in self.drivers if d is not self.inputs]
                failed = [d for d in sensors if d.error is not None]
                if self.engine_error is not None:
                    raise SessionFailed(
                        f"engine failed: {self.engine_error}"
                    ) from self.engine_error
                if failed and len(failed) == len(sensors):
                    raise SessionFailed(
                        f"every source failed; first: {failed[0].name}: {failed[0].error}"
                    )
        finally:
            with uninterruptible():
                self.stop()

    # ------------------------------------------------------------ recording
    def start_recording(self, folder: Path) -> None:
        """Record every stream from now on, and the predictions, into ``folder``.

        RecordingError (a message for a person) when it cannot start: nothing is recorded then.
        """
        if self.recording is not None and self.recording.running:
            raise RecordingError(f"already recording to {self.recording.folder}")
        self.stop_recording()  # a recorder that stopped by itself (its error stays readable till now)
        recorder = SessionRecorder(
            Path(folder),
            self.drivers,
            self.runners,
            config=config_document(self.config),
            name=self.config.name,
            now=self.clock.now,
        )
        recorder.start()
        self.recording = recorder
        self.bus.add(recorder)

    def stop_recording(self) -> dict[str, int] | None:
        """Stop recording, close the files; items written per stream (None when not recording)."""
        recorder = self.recording
        if recorder is None:
            return None
        counts = recorder.stop()
        self.bus.remove(recorder)
        self.recording = None
        self.recorded = (recorder.folder, counts)
        return counts

    def add_marker(self, label: str) -> None:
        """A sample on ``affectlab-markers`` stamped now on the session clock."""
        self._session_inputs().add_marker(label)

    def add_self_report(self, valence: float, arousal: float) -> None:
        """A (valence, arousal) rating, 1-9 each, on ``affectlab-self-report`` stamped now."""
        self._session_inputs().add_self_report(valence, arousal)

    def _session_inputs(self) -> SessionInputs:
        if self.inputs is None:
            raise RuntimeError(
                "this session's markers and self-reports come from its sources (a replay): "
                "new ones cannot be added"
            )
        return self.inputs

    # ------------------------------------------------------------ engine
    def _engine_main(self) -> None:
        try:
            asyncio.run(self._engine_async())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller by run_for
            self.engine_error = exc
            log.exception("engine thread failed")
            self._ready.set()

    async def _engine_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_async = asyncio.Event()
        self._ready.set()
        health_task = asyncio.create_task(self._health_loop(self._stop_async))
        await self.aligner.run(self._on_window, self._stop_async)
        await health_task

    def _on_window(self, window: Window) -> None:
        self.workers[window.model].submit(window)

    async def _health_loop(self, stop: asyncio.Event) -> None:
        period = health_period(self.config)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=period)
            except TimeoutError:
                self.bus.publish_health(self.health(), self.clock.now())

    # ------------------------------------------------------------ state
    def health(self) -> dict[str, StreamHealth]:
        out: dict[str, StreamHealth] = {}
        for driver in self.drivers:
            out.update(driver.health())
        return out

    def stats(self) -> SessionStats:
        stats = SessionStats(
            started_at=self.started_at, stopped_at=self.stopped_at or self.clock.now()
        )
        now = self.clock.now()
        for name, h in self.health().items():
            ring = self.sources[name].ring
            entry = h.to_dict(now)
            entry["kind"] = str(self.sources[name].spec.kind)
            entry["ring_written"] = ring.head
            entry["ring_nonmonotonic"] = ring.nonmonotonic
            stats.streams[name] = entry
        for name, worker in self.workers.items():
            entry = {"device": worker.runner.device, **worker.stats.to_dict()}
            entry["inputs"] = dict(self.aligner.bound[name])  # which stream fed each input
            entry["aligner"] = self.aligner.stats[name].to_dict()
            stats.models[name] = entry
        return stats
