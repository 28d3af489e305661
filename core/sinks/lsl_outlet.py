"""Predictions as an LSL stream, for LabRecorder and any other LSL tool.

One outlet per model: name ``affectlab-predictions`` (suffixed with the model
name when a session runs several), type ``Emotion``, one float32 channel per
output with its label, unit and type in the stream header (the XDF
``desc/channels`` convention). Samples are stamped with the window's end time
on the one clock, so a recording lines predictions up with the data they came from.

The stream is declared irregular (nominal rate 0), as affectlab's own XDF has it:
windows come every hop, but a window the worker skips (latest wins) is a hole, and
a tool that trusts a nominal rate re-stamps across holes (pyxdf's de-jitter moved
predictions by up to 0.48 s). The hop goes in the header as ``desc/hop_s``.
"""

from __future__ import annotations

import math

import pylsl

from core.health import StreamHealth
from core.prediction import AFFECT_DIMENSIONS, Prediction

STREAM_TYPE = "Emotion"
DEFAULT_NAME = "affectlab-predictions"


def channel_meta(channel: str) -> tuple[str, str]:
    """(unit, type) of an output column."""
    if channel in AFFECT_DIMENSIONS:
        return "SAM 1-9", channel
    if channel.startswith("p_"):
        return "probability", "expression"
    return "", channel


class LslPredictionOutlet:
    """Pushes each prediction of ``model`` as one sample; other models' predictions are ignored."""

    def __init__(self, model: str, channels: list[str], hop_s: float, name: str = DEFAULT_NAME):
        if not channels:
            raise ValueError(f"model {model!r} declares no outputs to publish")
        self.model = model
        self.channels = list(channels)
        self.name = name
        info = pylsl.StreamInfo(
            name,
            STREAM_TYPE,
            len(self.channels),
            pylsl.IRREGULAR_RATE,
            pylsl.cf_float32,
            f"affectlab-{model}-{name}",
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "affectlab")
        desc.append_child_value("model", model)
        desc.append_child_value("hop_s", repr(float(hop_s)))
        chans = desc.append_child("channels")
        for ch in self.channels:
            unit, kind = channel_meta(ch)
            c = chans.append_child("channel")
            c.append_child_value("label", ch)
            c.append_child_value("unit", unit)
            c.append_child_value("type", kind)
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        self.pushed = 0

    def on_prediction(self, prediction: Prediction) -> None:
        if prediction.model != self.model or self._outlet is None:
            return
        row = prediction.flat()
        sample = [_number(row.get(ch)) for ch in self.channels]
        self._outlet.push_sample(sample, prediction.t_end)
        self.pushed += 1

    def on_health(self, health: dict[str, StreamHealth], now: float) -> None:
        """Health is not published on LSL."""

    def close(self) -> None:
        self._outlet = None  # pylsl closes the outlet when the object goes


def _number(v: object) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    return math.nan
