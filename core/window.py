"""What a model asks for and what the aligner hands it.

A model declares its inputs per modality (``ModelInputs``); at every hop the
aligner cuts a ``Window`` that holds, per input, data already shaped the way
the model asked (resampled numerics, sampled frames, event frames) and a
presence mark. Missing inputs are normal: the window still goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from core.streams import Modality


class Presence(StrEnum):
    PRESENT = "present"
    STALE = "stale"  # data exists but the newest sample is older than allowed
    MISSING = "missing"  # no stream bound, nothing inside the window, or too little of it


class EventRepresentation(StrEnum):
    COUNT = "count"  # 2 channels (OFF, ON): events per pixel in each slice
    BINARY = "binary"  # 2 channels, 1 where any event of that polarity fell
    SIGNED = "signed"  # 1 channel: ON minus OFF counts


@dataclass(frozen=True)
class NumericInput:
    """A sampled stream resampled to ``rate`` Hz over the last ``window_s`` seconds.

    Delivered as float32 ``(channels, round(window_s * rate))``. ``n_channels``
    > 0 is how many channels the model's weights take: binding a stream with
    another count is refused when the session starts, instead of every window
    failing in the worker.
    """

    modality: Modality
    window_s: float
    rate: float
    channels: tuple[str, ...] = ()  # empty: all channels, in stream order
    n_channels: int = 0  # 0: any count


@dataclass(frozen=True)
class FrameInput:
    """``count`` frames spread evenly over the last ``window_s`` seconds, resized to ``size`` (H, W).

    Delivered as float32 in [0, 1], ``(count, H, W)`` (grayscale) or ``(count, H, W, C)``.
    """

    modality: Modality
    window_s: float
    count: int
    size: tuple[int, int]


@dataclass(frozen=True)
class EventInput:
    """``count`` event slices of ``slice_s`` seconds each, ending at evenly spaced
    times over the last ``window_s`` seconds, rendered at ``size`` (H, W).

    Delivered as float32 ``(count, channels, H, W)`` (channels per representation).
    """

    modality: Modality
    window_s: float
    count: int
    slice_s: float
    size: tuple[int, int]
    representation: EventRepresentation = EventRepresentation.COUNT


InputSpec = NumericInput | FrameInput | EventInput


@dataclass(frozen=True)
class ModelInputs:
    """Everything the aligner needs to serve one model."""

    model: str
    inputs: dict[str, InputSpec]  # key (e.g. "eeg", "frames") -> what to deliver
    hop_s: float  # a window every hop
    allowed_lateness_s: float = 0.1  # cut at now - lateness so late samples still make it
    stale_after_s: float = 0.5  # newest sample older than this at the window end -> STALE
    #: an input whose data spans less than this fraction of its window (a stream that just
    #: started or came back) is MISSING rather than padded with its edge value
    min_coverage: float = 0.5


@dataclass
class InputData:
    """One input of one window."""

    key: str
    presence: Presence
    data: np.ndarray | None  # None when missing
    staleness_s: float  # window end minus newest sample time (inf when missing)
    stream: str | None = None  # the stream it came from
    coverage: float = 0.0  # fraction of the window between its first sample and the end


@dataclass
class Window:
    """Aligned inputs ending at ``t_end`` on the one clock."""

    model: str
    index: int
    t_end: float
    inputs: dict[str, InputData]
    stamps: dict[str, float] = field(default_factory=dict)  # stage -> clock time

    def mask(self) -> dict[str, str]:
        return {k: str(v.presence) for k, v in self.inputs.items()}

    def present(self, key: str) -> bool:
        d = self.inputs.get(key)
        return d is not None and d.presence is not Presence.MISSING and d.data is not None

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "index": self.index,
            "t_end": self.t_end,
            "mask": self.mask(),
        }
