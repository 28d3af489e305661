"""The streams a DAVIS driver publishes: one StreamSpec per DV kind it reads.

Events, APS frames, IMU and triggers each become a stream of their own (named
``<driver>-<kind>``), described well enough that the recorder, the replay and
the GUI need nothing else: size after the ROI, polarity convention, the event
ring's capacity, IMU channels and units, trigger codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dv_processing as dv

from core.streams import EVENT_DTYPE, Modality, StreamSpec
from drivers.dv_data import IMU_CHANNELS, IMU_UNITS


def stream_specs(
    names: Mapping[str, str],
    src: str,
    meta: Mapping[str, Any],
    shape: tuple[int, int],
    *,
    frame_rate: float,
    noise_filter_ms: float,
    event_capacity: int,
    max_event_rate: float,
) -> list[StreamSpec]:
    """``names`` kind -> stream name, in publishing order; ``shape`` (H, W) after the ROI;
    ``meta`` goes into every spec's metadata (input, camera, sensor size, ROI)."""
    h, w = shape
    specs = []
    for kind, stream in names.items():
        if kind == "events":
            specs.append(
                StreamSpec(
                    name=stream,
                    modality=Modality.EVENTS,
                    nominal_rate=0.0,
                    dtype=str(EVENT_DTYPE),
                    frame_shape=(h, w),
                    source=src,
                    metadata={
                        **meta,
                        "width": w,
                        "height": h,
                        "polarity": "1 = ON, 0 = OFF",
                        "noise_filter_ms": noise_filter_ms,
                        "ring_capacity": event_capacity,
                        "max_event_rate": max_event_rate,
                    },
                )
            )
        elif kind == "frames":
            specs.append(
                StreamSpec(
                    name=stream,
                    modality=Modality.FRAMES,
                    nominal_rate=frame_rate,
                    dtype="uint8",
                    frame_shape=(h, w),
                    source=src,
                    metadata={**meta, "width": w, "height": h, "color": "gray"},
                )
            )
        elif kind == "imu":
            specs.append(
                StreamSpec(
                    name=stream,
                    modality=Modality.IMU,
                    nominal_rate=0.0,
                    channel_names=IMU_CHANNELS,
                    units=IMU_UNITS,
                    dtype="float32",
                    source=src,
                    metadata=meta,
                )
            )
        else:
            specs.append(
                StreamSpec(
                    name=stream,
                    modality=Modality.TRIGGERS,
                    nominal_rate=0.0,
                    channel_names=("type",),
                    dtype="float32",
                    source=src,
                    metadata={
                        **meta,
                        "codes": {t.name: int(t) for t in dv.TriggerType.__members__.values()},
                    },
                )
            )
    return specs
