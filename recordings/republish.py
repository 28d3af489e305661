"""``--lsl``: re-publish replayed streams as LSL outlets with their original headers.

Each replayed numeric or marker stream gets an outlet named and typed as it was
recorded (``name``, LSL type, channel count, rate, format, ``source_id``, and
``desc/channels/channel`` with label, unit and type), so other tools (LabRecorder,
viewers) see the replay as if the session were live. Stamps are moved to the
LSL clock: an item the replay clock reached ``d`` replay-seconds ago is stamped
``d / speed`` real seconds ago (at max speed, now). Events and frames have no
LSL form here and are skipped with a note.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.clock import lsl_now
from core.streams import Modality, RingKind, StreamSpec

log = logging.getLogger(__name__)

#: LSL type spelling for modalities whose LSL name differs from ours
LSL_TYPES = {Modality.MARKERS: "Markers", Modality.PREDICTIONS: "Emotion"}
#: numpy dtype name -> pylsl channel format name
LSL_FORMATS = {
    "float32": "float32",
    "float64": "double64",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "int16",
    "uint16": "int32",
    "object": "string",
}


#: pylsl channel format -> the numpy dtype its push_chunk takes without converting
LSL_NUMPY = {
    "float32": np.float32,
    "double64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
}


def lsl_format(spec: StreamSpec) -> str:
    if spec.dtype in ("object", "str", "string"):
        return "string"
    return LSL_FORMATS.get(str(np.dtype(spec.dtype)), "float32")


def stream_info(spec: StreamSpec) -> Any:
    """A ``pylsl.StreamInfo`` carrying a spec's header (channels with label, unit, type).

    A stream that came from an LSL outlet (``drivers.lsl`` keeps its header in the
    spec's metadata) goes out under that outlet's name, type, source_id and channel
    types, so that tools which pick streams by them (LabRecorder's required streams, a
    config's ``source_id``) find the replay as they found the live stream.
    """
    import pylsl

    n = max(1, spec.n_channels)
    meta = spec.metadata or {}
    channel_types = list(meta.get("channel_types") or ())
    if len(channel_types) != n:
        channel_types = [str(spec.modality)] * n
    info = pylsl.StreamInfo(
        meta.get("lsl_name") or spec.name,
        meta.get("lsl_type") or LSL_TYPES.get(spec.modality, str(spec.modality)),
        n,
        spec.nominal_rate,
        lsl_format(spec),
        meta.get("source_id") or spec.source or f"affectlab-replay/{spec.name}",
    )
    chans = info.desc().append_child("channels")
    labels = spec.channel_names or tuple(f"ch{i}" for i in range(n))
    units = spec.units or ("",) * n
    for label, unit, kind in zip(labels, units, channel_types, strict=True):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", kind)
    info.desc().append_child("affectlab").append_child_value("replay", "1")
    return info


class Republisher:
    """A replay driver listener that pushes every replayed item to an LSL outlet."""

    def __init__(self, specs: list[StreamSpec], clock: Any) -> None:
        import pylsl

        self.clock = clock
        self.outlets: dict[str, Any] = {}
        self.skipped: list[str] = []
        self.strings: set[str] = set()
        for spec in specs:
            if spec.kind is not RingKind.NUMERIC:
                self.skipped.append(f"{spec.name} ({spec.modality}): no LSL form, not re-published")
                continue
            self.outlets[spec.name] = pylsl.StreamOutlet(stream_info(spec), 32, 360)
            if lsl_format(spec) == "string":
                self.strings.add(spec.name)

    def __call__(self, spec: StreamSpec, data: np.ndarray, ts: np.ndarray) -> None:
        outlet = self.outlets.get(spec.name)
        if outlet is None or len(ts) == 0:
            return
        ago = np.maximum(0.0, self.clock.now() - np.asarray(ts, np.float64))
        real = lsl_now() - np.array([self.clock.real_seconds(a) for a in ago.tolist()])
        if spec.name in self.strings:
            for row, t in zip(data.tolist(), real.tolist(), strict=True):
                outlet.push_sample([str(v) for v in row], t)
        else:
            values = np.ascontiguousarray(data, dtype=LSL_NUMPY[lsl_format(spec)])
            outlet.push_chunk(values, real.tolist())

    def close(self) -> None:
        self.outlets.clear()
