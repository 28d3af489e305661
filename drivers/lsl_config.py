"""A ``[[sources]]`` table of kind "lsl" -> ``LslDriver``s, every option checked.

Kept apart from the driver (as ``drivers.davis_config`` is): a wrong option
must be an ``OptionError`` naming the key before anything is resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.streams import Modality
from drivers.base import Driver, OptionError
from drivers.lsl import LslDriver, expected_summary
from drivers.lsl_streams import FORMAT_NAMES, LslQuery, StreamSummary

QUERY_KEYS = ("lsl_name", "type", "source_id", "hostname")
PER_INLET = (*QUERY_KEYS, "stream", "modality", "expect")
#: keys of an ``expect`` table (a declared layout: the source may start before its stream)
EXPECT_KEYS = ("channels", "rate", "format", "labels", "units")
COMMON = (
    "name",
    "resolve_timeout",
    "max_buffered",
    "dejitter",
    "stall_timeout",
    "reconnect_interval",
    "poll_interval",
    "ring_seconds",
)
OPTIONS = {*PER_INLET, *COMMON, "inlets"}
NUMBERS: dict[str, tuple[float, float]] = {
    "resolve_timeout": (0.05, 600.0),
    "max_buffered": (1.0, 3600.0),
    "stall_timeout": (0.0, 3600.0),
    "reconnect_interval": (0.1, 60.0),
    "poll_interval": (0.0, 1.0),
    "ring_seconds": (1.0, 3600.0),
}
NUMERIC_MODALITIES = tuple(str(m) for m in Modality if m not in (Modality.EVENTS, Modality.FRAMES))


def _inlet_args(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Query, stream name and modality of one inlet; ``where`` prefixes keys in errors."""
    for key in PER_INLET:
        if key == "expect":
            continue
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise OptionError(f"{where}{key}", f"expected a non-empty string, got {table[key]!r}")
    if not any(k in table for k in ("lsl_name", "type", "source_id")):
        raise OptionError(
            f"{where}lsl_name",
            "say which LSL stream to read: lsl_name, type or source_id (at least one); "
            "`affectlab streams` lists what is on the network",
        )
    modality = table.get("modality")
    if modality is not None:
        match = [m for m in NUMERIC_MODALITIES if m.lower() == modality.lower()]
        if not match:
            raise OptionError(
                f"{where}modality",
                f"expected one of {', '.join(NUMERIC_MODALITIES)}, got {modality!r}",
            )
        modality = match[0]
    query = LslQuery(
        name=table.get("lsl_name"),
        type=table.get("type"),
        source_id=table.get("source_id"),
        hostname=table.get("hostname"),
    )
    expect = None
    if "expect" in table:
        if modality is None and query.type is None:
            raise OptionError(
                f"{where}expect",
                "a declared stream needs a modality or a type "
                "(the ring is made before the stream is seen)",
            )
        expect = _expect_args(query, table["expect"], f"{where}expect")
    return {"query": query, "stream": table.get("stream"), "modality": modality, "expect": expect}


def _expect_args(query: LslQuery, table: Any, where: str) -> StreamSummary:
    """``expect = { channels = 32, rate = 256.0, format = "float32", labels = [...], units = [...] }``"""
    if not isinstance(table, Mapping):
        raise OptionError(
            where, f"expected a table like {{ channels = 32, rate = 256.0 }}, got {table!r}"
        )
    bad = sorted(set(table) - set(EXPECT_KEYS))
    if bad:
        raise OptionError(f"{where}.{bad[0]}", f"unknown key; allowed: {', '.join(EXPECT_KEYS)}")
    for key in ("channels", "rate"):
        if key not in table:
            raise OptionError(
                f"{where}.{key}", "needed: the ring is made before the stream is seen"
            )
    channels, rate = table["channels"], table["rate"]
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise OptionError(f"{where}.channels", f"expected a whole number >= 1, got {channels!r}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
        raise OptionError(f"{where}.rate", f"expected Hz >= 0 (0: irregular), got {rate!r}")
    fmt = table.get("format", "float32")
    if fmt not in FORMAT_NAMES.values():
        raise OptionError(
            f"{where}.format", f"expected one of {', '.join(FORMAT_NAMES.values())}, got {fmt!r}"
        )
    names: dict[str, tuple[str, ...]] = {}
    for key in ("labels", "units"):
        v = table.get(key, [])
        if (
            not isinstance(v, list)
            or not all(isinstance(x, str) for x in v)
            or (v and len(v) != channels)
        ):
            raise OptionError(f"{where}.{key}", f"expected {channels} strings, got {v!r}")
        names[key] = tuple(v)
    return expected_summary(query, channels, float(rate), fmt, names["labels"], names["units"])


def from_config(options: Mapping[str, Any]) -> list[Driver]:
    """LslDrivers from a ``[[sources]]`` table of kind "lsl".

    One stream: ``lsl_name`` / ``type`` / ``source_id`` (at least one; ``hostname``
    pins a host), ``stream`` (the ring's name, default the LSL name) and
    ``modality`` (default from the LSL type). Several: ``inlets`` = a list of
    tables with those keys. Shared: ``name`` (the source's name; a session config's default is "lsl<index>"),
    ``resolve_timeout`` (s, 5), ``max_buffered`` (s, 60), ``dejitter`` (true),
    ``stall_timeout`` (s; 0 = off), ``reconnect_interval`` (s, 1), ``poll_interval``
    (s, 0.005: shortest time between pulls) and ``ring_seconds``.
    (``name`` is the source's own name in every [[sources]] table, so the LSL
    stream name is ``lsl_name``.) The streams are resolved here: a missing one
    raises DriverError listing what the network offers, unless the inlet declares
    its layout (``expect = { channels, rate[, format, labels, units] }``): then the
    source starts and waits for it.
    """
    o = dict(options)
    unknown = sorted(set(o) - OPTIONS)
    if unknown:
        raise OptionError(
            unknown[0], f"unknown option of an lsl source; allowed: {', '.join(sorted(OPTIONS))}"
        )
    name = o.get("name", "lsl")
    if not isinstance(name, str) or not name:
        raise OptionError("name", f"expected a non-empty string, got {name!r}")
    common: dict[str, Any] = {}
    for key, (lo, hi) in NUMBERS.items():
        if key in o:
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise OptionError(key, f"expected a number from {lo:g} to {hi:g}, got {v!r}")
            common[key] = float(v)
    if "dejitter" in o:
        if not isinstance(o["dejitter"], bool):
            raise OptionError("dejitter", f"expected true or false, got {o['dejitter']!r}")
        common["dejitter"] = o["dejitter"]

    if "inlets" in o:
        clash = sorted(set(o) & set(PER_INLET))
        if clash:
            raise OptionError(clash[0], "give it inside each of the inlets tables, not beside them")
        tables = o["inlets"]
        if (
            not isinstance(tables, list)
            or not tables
            or not all(isinstance(t, dict) for t in tables)
        ):
            raise OptionError("inlets", f"expected a list of tables, got {tables!r}")
        plans = []
        for i, table in enumerate(tables):
            bad = sorted(set(table) - set(PER_INLET))
            if bad:
                raise OptionError(
                    f"inlets[{i}].{bad[0]}",
                    f"unknown option of an inlet; allowed: {', '.join(PER_INLET)}",
                )
            plans.append(_inlet_args(table, f"inlets[{i}]."))
        given = [p["stream"] for p in plans if p["stream"]]
        if len(set(given)) != len(given):
            raise OptionError("inlets", f"two inlets share a stream name: {given}")
        drivers: list[Driver] = [
            LslDriver(name=f"{name}-{i}", **plan, **common) for i, plan in enumerate(plans)
        ]
        streams = [d.specs[0].name for d in drivers]
        if len(set(streams)) != len(streams):
            raise OptionError(
                "inlets", f"two inlets give the same stream name {streams}; set stream"
            )
        return drivers
    return [LslDriver(name=name, **_inlet_args(o, ""), **common)]
