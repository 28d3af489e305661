"""What the recorder keeps per recorded stream (a tap) and how streams are described on disk.

A ``StreamTap`` is one ring being recorded: its reader, its file, its counts
and its ``manifest.json`` entry; a ``PredictionTap`` is one model's
predictions. The helpers name XDF types and channels the way LabRecorder and
pyxdf expect them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.ring import RingReader
from core.streams import Modality, RingKind, StreamSpec
from recordings.manifest import XDF_FILE

PREDICTION_STREAM_PREFIX = "affectlab-predictions"
PREDICTION_TYPE = "Emotion"
FRAME_TIMES_SUFFIX = "-frame-times"

#: XDF stream types for our modalities where LSL's usual spelling differs
XDF_TYPES = {Modality.MARKERS: "Markers", Modality.PREDICTIONS: PREDICTION_TYPE}


def xdf_type(modality: Modality) -> str:
    return XDF_TYPES.get(modality, str(modality))


@dataclass
class StreamTap:
    """One recorded stream: where its items come from and where they go."""

    spec: StreamSpec
    reader: RingReader
    kind: str  # numeric | events | frames | markers
    file: str
    start: int = 0  # ring index of the first item recorded
    xdf_id: int | None = None
    aedat: Any = None  # recordings.aedat.AedatStreams
    video: Any = None  # recordings.video.VideoStream
    count: int = 0
    lost: int = 0
    first_t: float = math.nan
    last_t: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    def account(self, ts: np.ndarray) -> None:
        if len(ts):
            if self.count == 0:
                self.first_t = float(ts[0])
            self.count += len(ts)
            self.last_t = float(ts[-1])

    def manifest_entry(self) -> dict[str, Any]:
        """This stream's entry in ``manifest.json`` "streams"."""
        spec = self.spec
        entry = {
            "name": spec.name,
            "modality": str(spec.modality),
            "kind": self.kind,
            "file": self.file,
            "xdf_stream_id": self.xdf_id,
            "channels": list(spec.channel_names),
            "units": list(spec.units),
            "nominal_rate": spec.nominal_rate,
            "dtype": spec.dtype,
            "frame_shape": list(spec.frame_shape) if spec.frame_shape else None,
            "source": spec.source,
            "metadata": dict(spec.metadata),
            "count": self.count,
            "lost": self.lost,
            "first_t": self.first_t,
            "last_t": self.last_t,
        }
        entry.update(self.extra)
        return entry


@dataclass
class PredictionTap:
    """One model's predictions, recorded as an XDF stream of type ``Emotion``."""

    model: str
    channels: list[str]
    xdf_id: int
    count: int = 0
    first_t: float = math.nan
    last_t: float = math.nan

    def manifest_entry(self, name: str) -> dict[str, Any]:
        """This model's entry in ``manifest.json`` "streams", as the stream ``name``."""
        return {
            "name": name,
            "modality": str(Modality.PREDICTIONS),
            "kind": "numeric",
            "file": XDF_FILE,
            "xdf_stream_id": self.xdf_id,
            "channels": list(self.channels),
            "units": [prediction_channel(c)["unit"] for c in self.channels],
            "nominal_rate": 0.0,
            "dtype": "float64",
            "frame_shape": None,
            "source": f"model:{self.model}",
            "metadata": {"model": self.model},
            "count": self.count,
            "lost": 0,
            "first_t": self.first_t,
            "last_t": self.last_t,
        }


def stream_kind(spec: StreamSpec) -> str:
    """The manifest's kind: numeric, events, frames or markers (string values)."""
    if spec.kind is RingKind.EVENTS:
        return "events"
    if spec.kind is RingKind.FRAMES:
        return "frames"
    if spec.modality is Modality.MARKERS or np.dtype(spec.dtype) == np.dtype(object):
        return "markers"
    return "numeric"


def is_string(spec: StreamSpec) -> bool:
    return spec.dtype in ("object", "str", "string") or np.dtype(spec.dtype) == np.dtype(object)


def spec_fields(spec: StreamSpec) -> dict[str, Any]:
    """The StreamSpec for an XDF header's desc/affectlab (metadata as JSON text)."""
    import json

    d = spec.to_dict()
    return {
        "name": d["name"],
        "modality": d["modality"],
        "nominal_rate": d["nominal_rate"],
        "dtype": d["dtype"],
        "frame_shape": json.dumps(d["frame_shape"]),
        "source": d["source"],
        "metadata": json.dumps(d["metadata"], default=str),
    }


def prediction_channel(column: str) -> dict[str, str]:
    if column.startswith("p_"):
        return {"label": column, "unit": "probability", "type": "expression"}
    if column in ("valence", "arousal", "dominance", "liking"):
        return {"label": column, "unit": "SAM 1-9", "type": column}
    return {"label": column, "unit": "", "type": column}
