"""Which simulated sampled streams exist, their default rates, and how to build them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from drivers.simulated.eeg import EEG
from drivers.simulated.participant import VirtualParticipant
from drivers.simulated.physiology import ECG, EDA, PPG, Respiration, Temperature
from drivers.simulated.sensor import Sensor

SENSOR_TYPES: dict[str, type[Sensor]] = {
    "eeg": EEG,
    "ecg": ECG,
    "eda": EDA,
    "ppg": PPG,
    "resp": Respiration,
    "temp": Temperature,
}
PHYSIOLOGY_STREAMS: tuple[str, ...] = tuple(SENSOR_TYPES)
DEFAULT_RATES: dict[str, float] = {
    "eeg": 128.0,
    "ecg": 256.0,
    "eda": 32.0,
    "ppg": 64.0,
    "resp": 32.0,
    "temp": 4.0,
}


def build_sensors(
    participant: VirtualParticipant,
    streams: Iterable[str] = PHYSIOLOGY_STREAMS,
    eeg_rate: float = 128.0,
    rates: Mapping[str, float] | None = None,
) -> dict[str, Sensor]:
    """Sensors keyed by stream key, in the order asked; ``rates`` overrides defaults (``eeg_rate`` for EEG)."""
    chosen = dict(DEFAULT_RATES, eeg=float(eeg_rate))
    chosen.update(rates or {})
    out: dict[str, Sensor] = {}
    for key in streams:
        if key not in SENSOR_TYPES:
            raise ValueError(
                f"unknown simulated stream {key!r}; expected some of {', '.join(SENSOR_TYPES)}"
            )
        out[key] = SENSOR_TYPES[key](participant, rate=chosen[key])
    return out
