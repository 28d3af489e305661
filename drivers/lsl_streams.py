"""LSL streams on the network: stream types as modalities, queries, header channels,
listing and resolving. Shared by the LSL driver (``drivers.lsl``), discovery
(``affectlab streams``) and anything else that looks streams up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pylsl

from core.streams import Modality
from drivers.base import DriverError

log = logging.getLogger(__name__)

SOURCE = "drivers.lsl"

#: LSL channel formats -> numpy dtype names of the ring. Strings are kept as ``str`` objects.
FORMAT_DTYPES: dict[int, str] = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "float64",
    pylsl.cf_int8: "int8",
    pylsl.cf_int16: "int16",
    pylsl.cf_int32: "int32",
    pylsl.cf_int64: "int64",
    pylsl.cf_string: "object",
}
FORMAT_NAMES: dict[int, str] = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "double64",
    pylsl.cf_int8: "int8",
    pylsl.cf_int16: "int16",
    pylsl.cf_int32: "int32",
    pylsl.cf_int64: "int64",
    pylsl.cf_string: "string",
}

#: LSL stream types (case-insensitive; the XDF/LSL conventions and common synonyms) -> modality.
#: EVENTS and FRAMES are never inferred: those rings hold DVS events and images, which an LSL
#: stream's n x channels samples are not.
TYPE_MODALITIES: dict[str, Modality] = {
    "eeg": Modality.EEG,
    "ecg": Modality.ECG,
    "ekg": Modality.ECG,
    "eda": Modality.EDA,
    "gsr": Modality.EDA,
    "scr": Modality.EDA,
    "ppg": Modality.PPG,
    "bvp": Modality.PPG,
    "resp": Modality.RESP,
    "respiration": Modality.RESP,
    "emg": Modality.EMG,
    "eog": Modality.EOG,
    "temp": Modality.TEMP,
    "temperature": Modality.TEMP,
    "skt": Modality.TEMP,
    "imu": Modality.IMU,
    "acc": Modality.IMU,
    "accelerometer": Modality.IMU,
    "gyro": Modality.IMU,
    "gyroscope": Modality.IMU,
    "markers": Modality.MARKERS,
    "marker": Modality.MARKERS,
    "triggers": Modality.TRIGGERS,
    "trigger": Modality.TRIGGERS,
    "ratings": Modality.RATINGS,
    "rating": Modality.RATINGS,
    "emotion": Modality.PREDICTIONS,
    "predictions": Modality.PREDICTIONS,
}


def modality_for(lsl_type: str) -> Modality:
    """The modality of an LSL stream type.

    Unknown types become MARKERS: the aligner binds model inputs by modality, and
    a stream whose meaning we do not know must never be fed to a model as, say,
    EEG. MARKERS is the one modality no model consumes, so the stream is still
    shown and recorded (with its LSL type in the metadata) but not interpreted;
    the ``modality`` option overrides this.
    """
    return TYPE_MODALITIES.get(lsl_type.strip().lower(), Modality.MARKERS)


# ------------------------------------------------------------------ queries
def xpath_literal(value: str) -> str:
    """``value`` quoted for an XPath predicate (liblsl resolves with pugixml XPath 1.0)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = value.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


@dataclass(frozen=True)
class LslQuery:
    """Which LSL stream to read: any of name, type, source_id (plus hostname to pin a host)."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    hostname: str | None = None

    def __post_init__(self) -> None:
        if not (self.name or self.type or self.source_id):
            raise ValueError("an LSL query needs a name, a type or a source_id")
        for key, value in self.fields().items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"LSL {key} must be a non-empty string, got {value!r}")

    def fields(self) -> dict[str, str]:
        """The constraints that are set, in LSL's property names."""
        d = {
            "name": self.name,
            "type": self.type,
            "source_id": self.source_id,
            "hostname": self.hostname,
        }
        return {k: v for k, v in d.items() if v is not None}

    def predicate(self) -> str:
        return " and ".join(f"{k}={xpath_literal(v)}" for k, v in self.fields().items())

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.fields().items())


@dataclass(frozen=True)
class StreamSummary:
    """What an LSL stream declares, in plain data (for messages, discovery and metadata)."""

    name: str
    type: str
    channel_count: int
    nominal_rate: float
    channel_format: str
    source_id: str
    hostname: str
    uid: str = ""
    created_at: float = 0.0
    channel_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    channel_types: tuple[str, ...] = ()
    manufacturer: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo, full: bool = False) -> StreamSummary:
        """``full`` reads the channel table of a full header (``inlet.info()``); resolved
        infos have an empty description."""
        names: tuple[str, ...] = ()
        units: tuple[str, ...] = ()
        types: tuple[str, ...] = ()
        manufacturer = ""
        if full:
            names, units, types = read_channels(info)
            manufacturer = info.desc().child_value("manufacturer")
        return cls(
            name=info.name(),
            type=info.type(),
            channel_count=int(info.channel_count()),
            nominal_rate=float(info.nominal_srate()),
            channel_format=FORMAT_NAMES.get(info.channel_format(), str(info.channel_format())),
            source_id=info.source_id(),
            hostname=info.hostname(),
            uid=info.uid(),
            created_at=float(info.created_at()),
            channel_names=names,
            units=units,
            channel_types=types,
            manufacturer=manufacturer,
        )

    @property
    def rate_text(self) -> str:
        return "irregular" if self.nominal_rate <= 0 else f"{self.nominal_rate:g} Hz"

    def describe(self) -> str:
        sid = f", source_id {self.source_id!r}" if self.source_id else ""
        return (
            f"{self.name!r} (type {self.type!r}, {self.channel_count} x {self.channel_format} "
            f"@ {self.rate_text}{sid}, host {self.hostname!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "channel_count": self.channel_count,
            "nominal_rate": self.nominal_rate,
            "channel_format": self.channel_format,
            "source_id": self.source_id,
            "hostname": self.hostname,
            "uid": self.uid,
            "channel_names": list(self.channel_names),
            "units": list(self.units),
            "channel_types": list(self.channel_types),
            "manufacturer": self.manufacturer,
        }


def read_channels(
    info: pylsl.StreamInfo,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Labels, units and types from ``desc/channels/channel`` (the XDF meta-data convention).

    Missing labels become ``ch1, ch2, ...``; units and types are empty tuples when no
    channel declares one. A table whose length disagrees with the channel count is
    ignored (it cannot be matched to the data columns).
    """
    n = int(info.channel_count())
    labels: list[str] = []
    units: list[str] = []
    types: list[str] = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label").strip() or ch.child_value("name").strip())
        units.append(ch.child_value("unit").strip())
        types.append(ch.child_value("type").strip())
        ch = ch.next_sibling("channel")
    if len(labels) != n:
        if labels:
            log.warning(
                "LSL stream %r describes %d channels but has %d; channel labels ignored",
                info.name(),
                len(labels),
                n,
            )
        labels, units, types = [""] * n, [""] * n, [""] * n
    names = tuple(label or f"ch{i + 1}" for i, label in enumerate(labels))
    return (
        names,
        tuple(units) if any(units) else (),
        tuple(types) if any(types) else (),
    )


# ------------------------------------------------------------------ resolving
def list_streams(wait: float = 1.0) -> list[StreamSummary]:
    """Every LSL stream that answers within ``wait`` seconds (header only, no channel table)."""
    return [StreamSummary.from_info(i) for i in pylsl.resolve_streams(wait_time=max(0.05, wait))]


def _found_text(wait: float) -> str:
    found = list_streams(wait)
    if not found:
        return (
            "no LSL stream answered at all (is the outlet running? on another host, does "
            "multicast reach this one, or is it listed under KnownPeers in lsl_api.cfg?)"
        )
    return "streams on the network: " + "; ".join(s.describe() for s in found)


def resolve(query: LslQuery, timeout: float = 5.0) -> pylsl.StreamInfo:
    """The first stream matching ``query`` within ``timeout`` s; DriverError naming what was
    looked for and what was found otherwise."""
    infos = pylsl.resolve_bypred(query.predicate(), 1, max(0.05, timeout))
    if not infos:
        listing = _found_text(max(0.5, min(2.0, timeout)))
        raise DriverError(f"no LSL stream with {query.describe()} within {timeout:g} s; {listing}")
    if len(infos) > 1:
        others = "; ".join(StreamSummary.from_info(i).describe() for i in infos)
        log.warning("several LSL streams match %s (%s); using the first", query.describe(), others)
    return infos[0]
