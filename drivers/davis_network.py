"""Opening one DV network stream and checking it before anything reads from it.

Reading a stream as the wrong type kills the process inside dv-processing, so
a reader is handed to the driver only once its type (and, for events and
frames, its resolution) is what the config expects; otherwise the driver gets
the reason to show and retries later.
"""

from __future__ import annotations

from typing import Any

from drivers.dv_data import AVAILABLE, Endpoint


def open_network_stream(
    endpoint: Endpoint, kind: str, resolution: tuple[int, int], label: str
) -> tuple[Any | None, str]:
    """(a connected ``NetworkReader``, "") or (None, why it was refused)."""
    reader = endpoint.connect()
    if not getattr(reader, AVAILABLE[kind])():
        sd = reader.getStreamDefinition()
        served = f"a {sd.mTypeIdentifier} stream {sd.mName!r}" if sd is not None else "no stream"
        del reader
        return None, f"{label} serves {served}, not {kind}; will retry"
    if kind in ("events", "frames"):
        res = reader.getEventResolution() if kind == "events" else reader.getFrameResolution()
        if res is not None and tuple(res) != tuple(resolution):
            del reader
            W, H = resolution
            return None, (
                f"{label} is {res[0]} x {res[1]} but the config says {W} x {H}; "
                f"set resolution = [{res[0]}, {res[1]}]"
            )
    return reader, ""
