"""Real-time drivers for the simulated participant: physiology and a virtual DAVIS eye camera.

Each driver thread renders, every ~25 ms, exactly the samples whose time has
come: sample ``k`` of a stream of rate ``r`` is stamped ``t0 + k / r`` and is due
once the LSL clock passes that stamp. The count comes from the clock, not from
the sleeps, so over any run nothing is lost or duplicated and the rate has no
drift; a thread that stalls catches up in bounded steps.

``t0`` is the participant's time zero on the LSL clock. Drivers of one
session share a ``SharedOrigin`` (fixed by whichever starts first) and one
``VirtualParticipant``, so every sensor follows the same person at the same
moment. ``VirtualSession`` wires that up and answers "what was the truth at
LSL time t?" for tests and the GUI.
"""

from __future__ import annotations

import math
import threading
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.clock import lsl_now
from core.ring import Ring, ring_for
from core.streams import EVENT_DTYPE, Modality, StreamSpec
from drivers.base import Driver
from drivers.simulated.catalog import PHYSIOLOGY_STREAMS, build_sensors
from drivers.simulated.events import EventEmulator
from drivers.simulated.eye_camera import DAVIS346_SIZE, VirtualEyeCamera
from drivers.simulated.participant import AffectState, VirtualParticipant
from drivers.simulated.sensor import SOURCE


class SharedOrigin:
    """Session time zero on the LSL clock, fixed once: given, or by the first driver to start."""

    def __init__(self, t0: float | None = None):
        self._t0 = None if t0 is None else float(t0)
        self._lock = threading.Lock()

    @property
    def t0(self) -> float | None:
        return self._t0

    def fix(self) -> float:
        with self._lock:
            if self._t0 is None:
                self._t0 = lsl_now()
            return self._t0


def as_origin(t0: float | SharedOrigin | None) -> SharedOrigin:
    return t0 if isinstance(t0, SharedOrigin) else SharedOrigin(t0)


def due_count(elapsed_s: float, rate: float) -> int:
    """Samples with stamps ``k / rate <= elapsed_s`` (k = 0, 1, ...)."""
    return 0 if elapsed_s < 0 else math.floor(elapsed_s * rate) + 1


class PacedDriver(Driver):
    """A driver that renders simulated streams as the clock makes them due."""

    period_s: float = 0.025
    max_step_s: float = 0.5  # at most this much of a stream per tick when catching up

    def __init__(
        self,
        name: str,
        specs: list[StreamSpec],
        origin: float | SharedOrigin | None,
        ring_seconds: float | None = None,
    ):
        super().__init__(name, specs, ring_seconds)
        self.origin = as_origin(origin)
        self.sent: dict[str, int] = {s.name: 0 for s in specs}  # samples pushed per stream

    def _run(self) -> None:
        t0 = self.origin.fix()
        while not self.stopping:
            behind = self._tick(t0, lsl_now() - t0)
            if self.wait(0.0 if behind else self.period_s):
                break

    @abstractmethod
    def _tick(self, t0: float, elapsed: float) -> bool:
        """Push what is due ``elapsed`` seconds after ``t0``; True when more was due than one step."""

    def _step(self, stream: str, rate: float, elapsed: float) -> tuple[int, int, bool]:
        """The next chunk of one stream: first index, count, and whether more remains due."""
        k0 = self.sent[stream]
        due = due_count(elapsed, rate) - k0
        n = min(due, max(1, int(self.max_step_s * rate)))
        return k0, max(n, 0), due > n


class SimulatedPhysiology(PacedDriver):
    """EEG, ECG, EDA, PPG, respiration and temperature of one participant, one stream each."""

    def __init__(
        self,
        participant: VirtualParticipant,
        t0: float | SharedOrigin | None = None,
        streams: Sequence[str] = PHYSIOLOGY_STREAMS,
        eeg_rate: float = 128.0,
        rates: Mapping[str, float] | None = None,
        name: str = "sim-physiology",
        name_prefix: str = "sim",
        ring_seconds: float | None = None,
    ):
        self.participant = participant
        self.sensors = {
            s.spec(name_prefix).name: s
            for s in build_sensors(participant, streams, eeg_rate, rates).values()
        }
        specs = [s.spec(name_prefix) for s in self.sensors.values()]
        super().__init__(name, specs, t0, ring_seconds)

    def _tick(self, t0: float, elapsed: float) -> bool:
        behind = False
        for stream, sensor in self.sensors.items():
            k0, n, more = self._step(stream, sensor.rate, elapsed)
            behind |= more
            if n == 0:
                continue
            data = sensor.render(k0, n)
            self.push(stream, data, t0 + (k0 + np.arange(n)) / sensor.rate)
            self.sent[stream] = k0 + n
        return behind


def event_spec(camera: VirtualEyeCamera, name_prefix: str = "sim") -> StreamSpec:
    return StreamSpec(
        name=f"{name_prefix}-davis-events",
        modality=Modality.EVENTS,
        nominal_rate=0.0,
        dtype=str(EVENT_DTYPE),
        frame_shape=camera.size,  # sensor resolution (H, W), for consumers that bin events
        source=f"{SOURCE}.EventEmulator",
        metadata={
            "lighting": camera.lighting,
            "participant_seed": camera.seed,
            "width": camera.size[1],
            "height": camera.size[0],
            "polarity": "1 = ON, 0 = OFF",
            "sensor": "virtual DAVIS346 DVS (emulated from the unclipped exposure)",
        },
    )


class SimulatedEyeCamera(PacedDriver):
    """A virtual DAVIS346: APS frames at ``fps`` and DVS events emulated between them."""

    def __init__(
        self,
        participant: VirtualParticipant,
        t0: float | SharedOrigin | None = None,
        lighting: str = "normal",
        size: tuple[int, int] = DAVIS346_SIZE,
        fps: float = 30.0,
        events: bool = True,
        emulator: Mapping[str, Any] | None = None,
        name: str = "sim-davis",
        name_prefix: str = "sim",
        ring_seconds: float | None = None,
        event_capacity: int | None = None,
    ):
        self.participant = participant
        self.camera = VirtualEyeCamera(participant, size=size, fps=fps, lighting=lighting)
        self.frame_stream = f"{name_prefix}-davis-frames"
        self.event_stream = f"{name_prefix}-davis-events" if events else None
        self.emulator = (
            EventEmulator(self.camera.size, seed=participant.seed, **dict(emulator or {}))
            if events
            else None
        )
        self._event_capacity = event_capacity
        specs = [self.camera.spec(name_prefix)]
        if events:
            specs.append(event_spec(self.camera, name_prefix))
        super().__init__(name, specs, t0, ring_seconds)

    def _make_ring(self, spec: StreamSpec, seconds: float) -> Ring:
        if spec.modality is Modality.EVENTS and self._event_capacity:
            return ring_for(spec, seconds, capacity=self._event_capacity)
        return super()._make_ring(spec, seconds)

    def _tick(self, t0: float, elapsed: float) -> bool:
        cam = self.camera
        k0, n, behind = self._step(self.frame_stream, cam.fps, elapsed)
        if n == 0:
            return False
        stamps = t0 + (k0 + np.arange(n)) / cam.fps
        if self.emulator is not None and self.event_stream is not None:
            frames, irradiance = cam.render_pair(k0, n)
            chunks = [
                self.emulator.emulate(frame, float(t))
                for frame, t in zip(irradiance, stamps, strict=True)
            ]
            events = np.concatenate([c[0] for c in chunks])
            ts = np.concatenate([c[1] for c in chunks])
            self.push(self.frame_stream, frames, stamps)
            self.push(self.event_stream, events, ts)
        else:
            self.push(self.frame_stream, cam.render(k0, n), stamps)
        self.sent[self.frame_stream] = k0 + n
        return behind


class VirtualSession:
    """One virtual participant seen by simulated physiology and a virtual eye camera, on one clock.

    ``t0`` is fixed when the first driver starts (or given); ``truth_at`` maps an
    LSL time to the participant's state then.
    """

    def __init__(
        self,
        seed: int = 0,
        lighting: str = "normal",
        eeg_rate: float = 128.0,
        *,
        mean_dwell_s: float = 20.0,
        t0: float | None = None,
        physiology: Sequence[str] | None = PHYSIOLOGY_STREAMS,
        camera: bool = True,
        events: bool = True,
        frame_size: tuple[int, int] = DAVIS346_SIZE,
        fps: float = 30.0,
        rates: Mapping[str, float] | None = None,
        emulator: Mapping[str, Any] | None = None,
        name_prefix: str = "sim",
        ring_seconds: float | None = None,
    ):
        self.participant = VirtualParticipant(seed, mean_dwell_s=mean_dwell_s)
        self.origin = SharedOrigin(t0)
        self.physiology: SimulatedPhysiology | None = None
        self.eye_camera: SimulatedEyeCamera | None = None
        self.drivers: list[Driver] = []
        if physiology:
            self.physiology = SimulatedPhysiology(
                self.participant,
                self.origin,
                streams=physiology,
                eeg_rate=eeg_rate,
                rates=rates,
                name=f"{name_prefix}-physiology",
                name_prefix=name_prefix,
                ring_seconds=ring_seconds,
            )
            self.drivers.append(self.physiology)
        if camera:
            self.eye_camera = SimulatedEyeCamera(
                self.participant,
                self.origin,
                lighting=lighting,
                size=frame_size,
                fps=fps,
                events=events,
                emulator=emulator,
                name=f"{name_prefix}-davis",
                name_prefix=name_prefix,
                ring_seconds=ring_seconds,
            )
            self.drivers.append(self.eye_camera)
        if not self.drivers:
            raise ValueError("a virtual session needs physiology streams or the camera")

    @property
    def seed(self) -> int:
        return self.participant.seed

    @property
    def t0(self) -> float | None:
        return self.origin.t0

    @property
    def specs(self) -> list[StreamSpec]:
        return [s for d in self.drivers for s in d.specs]

    def start(self) -> None:
        self.origin.fix()
        for d in self.drivers:
            d.start()

    def stop(self) -> None:
        for d in self.drivers:
            d.stop()

    def _session_time(self, lsl_time: np.ndarray | float) -> np.ndarray | float:
        if self.origin.t0 is None:
            raise RuntimeError("the virtual session has not started: its t0 is not fixed yet")
        return np.asarray(lsl_time, dtype=np.float64) - self.origin.t0

    def truth_at(self, lsl_time: float) -> AffectState:
        """The participant's state at an LSL time."""
        return self.participant.state_at(float(self._session_time(lsl_time)))

    def truth(self, lsl_times: np.ndarray) -> dict[str, np.ndarray]:
        """Vectorised ``truth_at``: valence, arousal, dominance, liking, expression_index."""
        return self.participant.states(self._session_time(lsl_times))
