"""Render a whole simulated session without waiting for the clock: training data.

The same sensors, camera and emulator as the live drivers, so a model trained
on ``render_session`` output sees what it will see live (timestamps here are
seconds since the session's t = 0 instead of LSL seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.streams import EVENT_DTYPE, StreamSpec
from drivers.simulated.catalog import PHYSIOLOGY_STREAMS, build_sensors
from drivers.simulated.drivers import event_spec
from drivers.simulated.events import EventEmulator
from drivers.simulated.eye_camera import DAVIS346_SIZE, VirtualEyeCamera
from drivers.simulated.participant import AffectState, VirtualParticipant

ALL_STREAMS: tuple[str, ...] = (*PHYSIOLOGY_STREAMS, "frames", "events")


@dataclass
class RenderedStream:
    """One stream of a rendered session: data and stamps (seconds since t = 0)."""

    spec: StreamSpec
    data: np.ndarray
    ts: np.ndarray


@dataclass
class RenderedSession:
    """Every requested stream plus the truth, sampled at ``truth_t`` (seconds since t = 0)."""

    seed: int
    duration_s: float
    participant: VirtualParticipant
    streams: dict[str, RenderedStream] = field(
        default_factory=dict
    )  # keyed "eeg", ..., "frames", "events"
    truth_t: np.ndarray = field(default_factory=lambda: np.empty(0))
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, key: str) -> RenderedStream:
        return self.streams[key]

    def truth_at(self, t: float) -> AffectState:
        return self.participant.state_at(t)


def render_session(
    seed: int = 0,
    duration_s: float = 60.0,
    *,
    lighting: str = "normal",
    lighting_severity: float = 1.0,
    eeg_rate: float = 128.0,
    streams: Iterable[str] = ALL_STREAMS,
    frame_size: tuple[int, int] = DAVIS346_SIZE,
    fps: float = 30.0,
    rates: Mapping[str, float] | None = None,
    mean_dwell_s: float = 20.0,
    truth_rate: float = 10.0,
    emulator: Mapping[str, Any] | None = None,
    name_prefix: str = "sim",
    participant: VirtualParticipant | None = None,
    chunk_s: float = 30.0,
) -> RenderedSession:
    """All samples with stamps in [0, duration_s) of the chosen streams.

    ``streams`` names physiology keys ("eeg", "ecg", "eda", "ppg", "resp",
    "temp") and "frames" / "events" (events need frames to be rendered, but
    frames are only kept when asked for). Frames at the DAVIS size take 90 kB
    each: pass ``frame_size=(100, 100)`` for long training sessions.
    """
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    streams = tuple(streams)
    unknown = set(streams) - set(ALL_STREAMS)
    if unknown:
        raise ValueError(
            f"unknown streams {sorted(unknown)}; expected some of {', '.join(ALL_STREAMS)}"
        )
    p = (
        participant
        if participant is not None
        else VirtualParticipant(seed, mean_dwell_s=mean_dwell_s)
    )
    out = RenderedSession(seed=p.seed, duration_s=float(duration_s), participant=p)

    physio = [k for k in streams if k in PHYSIOLOGY_STREAMS]
    for key, sensor in build_sensors(p, physio, eeg_rate, rates).items():
        n = math.ceil(duration_s * sensor.rate)
        step = max(1, int(chunk_s * sensor.rate))
        data = np.concatenate([sensor.render(k, min(step, n - k)) for k in range(0, n, step)])
        out.streams[key] = RenderedStream(
            sensor.spec(name_prefix), data, np.arange(n) / sensor.rate
        )

    if "frames" in streams or "events" in streams:
        cam = VirtualEyeCamera(
            p, size=frame_size, fps=fps, lighting=lighting, severity=lighting_severity
        )
        n = math.ceil(duration_s * cam.fps)
        frame_ts = np.arange(n) / cam.fps
        keep_frames = "frames" in streams
        frames = np.empty((n if keep_frames else 0, *cam.size), dtype=np.uint8)
        emu = (
            EventEmulator(cam.size, seed=p.seed, **dict(emulator or {}))
            if "events" in streams
            else None
        )
        ev_parts: list[np.ndarray] = []
        ts_parts: list[np.ndarray] = []
        step = max(1, int(chunk_s * cam.fps))
        for k in range(0, n, step):
            block, irradiance = cam.render_pair(k, min(step, n - k))
            if keep_frames:
                frames[k : k + len(block)] = block
            if emu is not None:
                for i, frame in enumerate(irradiance):
                    ev, ts = emu.emulate(frame, float(frame_ts[k + i]))
                    ev_parts.append(ev)
                    ts_parts.append(ts)
        if keep_frames:
            out.streams["frames"] = RenderedStream(cam.spec(name_prefix), frames, frame_ts)
        if emu is not None:
            events = np.concatenate(ev_parts) if ev_parts else np.empty(0, EVENT_DTYPE)
            ts = np.concatenate(ts_parts) if ts_parts else np.empty(0)
            out.streams["events"] = RenderedStream(event_spec(cam, name_prefix), events, ts)

    out.truth_t = np.arange(math.ceil(duration_s * truth_rate)) / truth_rate
    out.truth = p.states(out.truth_t)
    return out
