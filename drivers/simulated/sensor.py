"""What every simulated sampled sensor shares: a rate, a spec and ``render``.

Sample ``k`` of a sensor is taken at ``k / rate`` seconds after session start.
``render(n_start, n)`` must be a pure function of the indices (and the
participant), so a live driver can render whatever has come due and an offline
renderer can render a whole session, and both get the same numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from core.streams import Modality, StreamSpec
from drivers.simulated.participant import VirtualParticipant

SOURCE = "drivers.simulated"


class Sensor(ABC):
    """A simulated sampled stream of one participant."""

    #: short stream key, also the stream name suffix ("eeg" -> "sim-eeg")
    key: str = ""
    modality: Modality = Modality.EEG
    channel_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()

    def __init__(self, participant: VirtualParticipant, rate: float):
        if rate <= 0:
            raise ValueError(f"{type(self).__name__}: rate must be > 0, got {rate}")
        self.participant = participant
        self.rate = float(rate)
        self.seed = participant.seed

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    def spec(self, name_prefix: str = "sim") -> StreamSpec:
        return StreamSpec(
            name=f"{name_prefix}-{self.key}",
            modality=self.modality,
            nominal_rate=self.rate,
            channel_names=self.channel_names,
            units=self.units,
            dtype="float32",
            source=f"{SOURCE}.{type(self).__name__}",
            metadata={"participant_seed": self.seed},
        )

    def times(self, n_start: int, n: int) -> np.ndarray:
        """Seconds since session start of samples ``n_start .. n_start + n - 1``."""
        return (n_start + np.arange(n, dtype=np.float64)) / self.rate

    def render(self, n_start: int, n: int) -> np.ndarray:
        """Samples ``n_start .. n_start + n - 1`` as float32 ``(n, channels)``."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        out = self._render(self.times(n_start, n), n_start)
        return np.asarray(out, dtype=np.float32).reshape(n, self.n_channels)

    @abstractmethod
    def _render(self, t: np.ndarray, n_start: int) -> np.ndarray:
        """Values at times ``t`` (float64, ``(n,)`` or ``(n, channels)``)."""


def lagged_means(
    participant: VirtualParticipant, t: np.ndarray, span_s: float, points: int = 8
) -> dict[str, np.ndarray]:
    """Each dimension averaged over the last ``span_s`` seconds: slow bodily responses lag the affect."""
    lags = np.linspace(0.0, span_s, points)
    grid = (t[:, None] - lags[None, :]).reshape(-1)
    states = participant.states(grid)
    return {
        k: v.reshape(len(t), points).mean(axis=1)
        for k, v in states.items()
        if k != "expression_index"
    }


def lagged_mean(
    participant: VirtualParticipant, t: np.ndarray, key: str, span_s: float, points: int = 8
) -> np.ndarray:
    """One dimension averaged over the last ``span_s`` seconds."""
    return lagged_means(participant, t, span_s, points)[key]
