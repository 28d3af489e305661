"""What a stream carries: the StreamSpec every driver publishes and every ring is sized from.

A spec is plain, immutable data so it can be copied into manifests, XDF headers
and LSL stream infos without losing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Modality(StrEnum):
    """What a stream measures. The names are the LSL/XDF stream types we read and write."""

    EEG = "EEG"
    ECG = "ECG"
    EDA = "EDA"
    PPG = "PPG"
    RESP = "RESP"
    EMG = "EMG"
    EOG = "EOG"
    TEMP = "TEMP"
    IMU = "IMU"
    EVENTS = "EVENTS"
    FRAMES = "FRAMES"
    TRIGGERS = "TRIGGERS"
    REGION = "REGION"  # a tracked image region (x, y, w, h, status), e.g. the eye in a webcam
    MARKERS = "MARKERS"
    RATINGS = "RATINGS"
    PREDICTIONS = "PREDICTIONS"


class RingKind(StrEnum):
    """The three ring layouts of DESIGN.md."""

    NUMERIC = "numeric"
    EVENTS = "events"
    FRAMES = "frames"


#: One DVS event as kept in an event ring. Timestamps live beside it (float64,
#: one clock), so the record itself only holds pixel and polarity.
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("polarity", np.int8)])


@dataclass(frozen=True)
class StreamSpec:
    """A stream's identity and shape.

    ``nominal_rate`` is in Hz; 0 means irregular (events, markers, frames of a
    camera that drops). ``channel_names``/``units`` describe numeric streams;
    ``frame_shape`` (H, W) or (H, W, C) describes frame streams. ``source``
    says where the data came from (a driver and device) for manifests and the GUI.
    """

    name: str
    modality: Modality
    nominal_rate: float
    channel_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    dtype: str = "float32"
    frame_shape: tuple[int, ...] | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("StreamSpec.name must not be empty")
        object.__setattr__(self, "modality", Modality(self.modality))
        object.__setattr__(self, "channel_names", tuple(self.channel_names))
        if self.units and len(self.units) != len(self.channel_names):
            raise ValueError(
                f"stream {self.name!r}: {len(self.units)} units for "
                f"{len(self.channel_names)} channels"
            )
        object.__setattr__(self, "units", tuple(self.units))
        if self.kind is RingKind.FRAMES:
            if not self.frame_shape or len(self.frame_shape) not in (2, 3):
                raise ValueError(f"stream {self.name!r}: frames need frame_shape (H, W[, C])")
            object.__setattr__(self, "frame_shape", tuple(int(s) for s in self.frame_shape))
        if self.nominal_rate < 0:
            raise ValueError(f"stream {self.name!r}: nominal_rate must be >= 0")

    @property
    def kind(self) -> RingKind:
        if self.modality is Modality.EVENTS:
            return RingKind.EVENTS
        if self.modality is Modality.FRAMES:
            return RingKind.FRAMES
        return RingKind.NUMERIC

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for manifests and stats files."""
        return {
            "name": self.name,
            "modality": str(self.modality),
            "nominal_rate": self.nominal_rate,
            "channel_names": list(self.channel_names),
            "units": list(self.units),
            "dtype": self.dtype,
            "frame_shape": list(self.frame_shape) if self.frame_shape else None,
            "source": self.source,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamSpec:
        return cls(
            name=d["name"],
            modality=Modality(d["modality"]),
            nominal_rate=float(d["nominal_rate"]),
            channel_names=tuple(d.get("channel_names") or ()),
            units=tuple(d.get("units") or ()),
            dtype=d.get("dtype", "float32"),
            frame_shape=tuple(d["frame_shape"]) if d.get("frame_shape") else None,
            source=d.get("source", ""),
            metadata=dict(d.get("metadata") or {}),
        )
