"""A ``[[sources]]`` table of kind "davis" -> a ``DavisDriver``, every option checked.

Kept apart from the driver: the checks are long, and a wrong option must be an
``OptionError`` naming the key before any camera, socket or file is touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from drivers.base import Driver, OptionError, distinct_choices, number_option
from drivers.davis import (
    DAVIS346_MAX_RATE,
    DEFAULT_PORTS,
    INPUTS,
    KINDS,
    DavisDriver,
    Endpoint,
    Roi,
)

COMMON_OPTIONS = {
    "input",
    "name",
    "streams",
    "noise_filter",
    "noise_filter_ms",
    "roi",
    "exposure_us",
    "frame_interval_us",
    "auto_exposure",
    "max_event_rate",
    "event_ring_seconds",
    "event_ring_max_mb",
    "frame_ring_mb",
    "ring_seconds",
}
INPUT_OPTIONS = {
    "camera": {"serial", "reconnect_interval", "poll_interval"},
    "network": {
        "host",
        "resolution",
        "reconnect_interval",
        "poll_interval",
        *(f"{k}_port" for k in KINDS),
        *(f"{k}_socket" for k in KINDS),
    },
    "file": {"file", "playback", "timestamps"},
}
OPTIONS = COMMON_OPTIONS.union(*INPUT_OPTIONS.values())


def _integer(o: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    v = o.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise OptionError(key, f"expected an integer from {lo} to {hi}, got {v!r}")
    return v


def _flag(o: Mapping[str, Any], key: str) -> bool | None:
    v = o.get(key)
    if v is not None and not isinstance(v, bool):
        raise OptionError(key, f"expected true or false, got {v!r}")
    return v


def _choice(o: Mapping[str, Any], key: str, choices: Sequence[str], default: str) -> str:
    v = o.get(key, default)
    if v not in choices:
        raise OptionError(key, f"expected one of {', '.join(choices)}, got {v!r}")
    return v


def _endpoints(o: Mapping[str, Any]) -> dict[str, Endpoint] | None:
    host = o.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise OptionError("host", f"expected a host name or address, got {host!r}")
    eps: dict[str, Endpoint] = {}
    for kind in KINDS:
        pk, sk = f"{kind}_port", f"{kind}_socket"
        if pk in o and sk in o:
            raise OptionError(sk, f"give either {pk} or {sk}, not both")
        if pk in o:
            eps[kind] = Endpoint(host=host, port=_integer(o, pk, 1, 65535))
        elif sk in o:
            path = o[sk]
            if not isinstance(path, str) or not path:
                raise OptionError(sk, f"expected a UNIX socket path, got {path!r}")
            eps[kind] = Endpoint(socket=path)
    if not eps:
        return {k: Endpoint(host=host, port=p) for k, p in DEFAULT_PORTS.items()}
    return eps


def from_config(options: Mapping[str, Any]) -> list[Driver]:
    """One DavisDriver from a ``[[sources]]`` table of kind "davis".

    ``input`` = "camera" (default; ``serial`` picks one of several), "network"
    (``host`` default 127.0.0.1; ``events_port``, ``frames_port``, ``imu_port``,
    ``triggers_port`` for TCP or ``<kind>_socket`` for UNIX socket paths; with
    none given, events on 7777 and frames on 7778 as ``affectlab serve
    virtual-davis`` serves them; ``resolution`` [w, h] default [346, 260];
    ``reconnect_interval`` s) or "file" (``file``, ``playback`` realtime|fast,
    ``timestamps`` now|recorded). For all: ``name`` (stream prefix; a session
    config's default is "davis<index>"), ``streams`` (camera/file: kinds to publish), ``noise_filter``,
    ``noise_filter_ms``, ``roi`` [x, y, w, h], ``exposure_us``,
    ``frame_interval_us``, ``auto_exposure``, ``max_event_rate``,
    ``event_ring_seconds``, ``event_ring_max_mb``, ``frame_ring_mb``, ``ring_seconds``.
    """
    o = dict(options)
    unknown = sorted(set(o) - OPTIONS)
    if unknown:
        raise OptionError(
            unknown[0], f"unknown option of a davis source; allowed: {', '.join(sorted(OPTIONS))}"
        )
    inp = _choice(o, "input", INPUTS, "camera")
    foreign = sorted(set(o) - COMMON_OPTIONS - INPUT_OPTIONS[inp])
    if foreign:
        owner = next(i for i in INPUTS if foreign[0] in INPUT_OPTIONS[i])
        raise OptionError(foreign[0], f"applies to input = {owner!r} only (this source is {inp!r})")
    name = o.get("name", "davis")
    if not isinstance(name, str) or not name:
        raise OptionError("name", f"expected a non-empty string, got {name!r}")
    streams = o.get("streams")
    if streams is not None:
        if inp == "network":
            raise OptionError("streams", "for network input, choose streams by giving their ports")
        distinct_choices(streams, "streams", KINDS)
    kwargs: dict[str, Any] = {"name": name, "streams": streams}
    roi = o.get("roi")
    if roi is not None:
        if (
            not isinstance(roi, list)
            or len(roi) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
            or roi[0] < 0
            or roi[1] < 0
            or roi[2] < 1
            or roi[3] < 1
        ):
            raise OptionError(
                "roi", f"expected [x, y, width, height] in sensor pixels, got {roi!r}"
            )
        kwargs["roi"] = Roi(*roi)
    kwargs["noise_filter"] = bool(_flag(o, "noise_filter"))
    kwargs["noise_filter_ms"] = number_option(o, "noise_filter_ms", 2.0, 0.001, 10000)
    kwargs["exposure_us"] = _integer(o, "exposure_us", 1, 10_000_000)
    kwargs["frame_interval_us"] = _integer(o, "frame_interval_us", 1, 10_000_000)
    kwargs["auto_exposure"] = _flag(o, "auto_exposure")
    kwargs["max_event_rate"] = number_option(o, "max_event_rate", DAVIS346_MAX_RATE, 1, 1e9)
    kwargs["event_ring_seconds"] = number_option(o, "event_ring_seconds", 1.0, 0.01, 3600)
    kwargs["event_ring_max_mb"] = number_option(o, "event_ring_max_mb", 256.0, 1, 65536)
    kwargs["frame_ring_mb"] = number_option(o, "frame_ring_mb", 128.0, 1, 65536)
    kwargs["ring_seconds"] = number_option(o, "ring_seconds", None, 1, 86400)
    if inp in ("camera", "network"):
        kwargs["reconnect_interval"] = number_option(o, "reconnect_interval", 1.0, 0.05, 3600)
        kwargs["poll_interval"] = number_option(o, "poll_interval", 0.002, 0.0001, 1)
    if inp == "camera":
        serial = o.get("serial")
        if serial is not None and (not isinstance(serial, (str, int)) or isinstance(serial, bool)):
            raise OptionError("serial", f"expected the camera's serial number, got {serial!r}")
        kwargs["serial"] = None if serial is None else str(serial)
    elif inp == "network":
        kwargs["endpoints"] = _endpoints(o)
        res = o.get("resolution")
        if res is not None:
            if (
                not isinstance(res, list)
                or len(res) != 2
                or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8192 for v in res
                )
            ):
                raise OptionError("resolution", f"expected [width, height] in pixels, got {res!r}")
            kwargs["resolution"] = (res[0], res[1])
    else:
        file = o.get("file")
        if not isinstance(file, str) or not file:
            raise OptionError("file", f"expected the path of an AEDAT4 file, got {file!r}")
        kwargs["file"] = file
        kwargs["playback"] = _choice(o, "playback", ("realtime", "fast"), "realtime")
        kwargs["timestamps"] = _choice(o, "timestamps", ("now", "recorded"), "now")
    return [DavisDriver(inp, **kwargs)]
