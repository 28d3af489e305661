"""What sources can this machine see right now, and how would affectlab use each?

Backs ``affectlab streams``. Each family is probed with its own library, the
way its driver would open it, and each finding carries the streams affectlab
would publish from it (name, modality, channels, rate) and a ``[[sources]]``
snippet to paste into a session config. A family that cannot be probed (a
library missing, a permission problem) becomes a note, never an exception:
the command is a diagnostic and must always answer.

Families: LSL streams on the network (``resolve_streams``, then each header
for channel labels), BrainFlow boards (the synthetic and playback boards
need no hardware and are always listed; serial adapters that may be boards are
listed as unverified, since BrainFlow cannot identify a board without opening a
session on it), webcams (OpenCV indices 0..3 with an open timeout) and DAVIS
cameras (``dv_processing.io.camera.discover()``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from core.streams import StreamSpec

FAMILIES: tuple[str, ...] = ("lsl", "brainflow", "webcam", "davis")


@dataclass
class Found:
    """One source affectlab could read."""

    family: str  # one of FAMILIES
    device: str  # what to call it on screen
    details: str  # one line for people
    use_as: str  # one line: the streams and modalities it would become
    config: str  # a [[sources]] table to paste into a session config
    available: bool = True  # False: listed as a candidate that could not be verified
    streams: list[dict[str, Any]] = field(default_factory=list)  # what would be published
    info: dict[str, Any] = field(default_factory=dict)  # the family's own details

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Discovery:
    found: list[Found] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # families that could not be probed, hints
    timeout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout,
            "found": [f.to_dict() for f in self.found],
            "notes": list(self.notes),
        }


# ------------------------------------------------------------------ helpers
def toml_str(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(value)


def slug(text: str) -> str:
    s = "".join(c.lower() if c.isalnum() else "-" for c in text).strip("-")
    while "--" in s:
        s = s.replace("--", "-")
    return s or "source"


def sources_table(kind: str, options: dict[str, Any], comments: Sequence[str] = ()) -> str:
    lines = ["[[sources]]", f"kind = {toml_str(kind)}"]
    for key, value in options.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = toml_str(str(value))
        lines.append(f"{key} = {text}")
    lines.extend(f"# {c}" for c in comments)
    return "\n".join(lines)


def stream_row(spec: StreamSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "modality": str(spec.modality),
        "channels": spec.n_channels,
        "nominal_rate": spec.nominal_rate,
        "channel_names": list(spec.channel_names),
        "units": list(spec.units),
    }


def summarize(specs: Sequence[StreamSpec]) -> str:
    """``EEG 16 ch, IMU 3+3 ch, MARKERS @ 250 Hz`` - short enough for one table cell."""
    groups: dict[str, list[int]] = {}
    for s in specs:
        groups.setdefault(str(s.modality), []).append(s.n_channels)
    parts = [
        m if m == "MARKERS" or not any(chs) else f"{m} {'+'.join(map(str, chs))} ch"
        for m, chs in groups.items()
    ]
    rates = sorted({s.nominal_rate for s in specs if s.nominal_rate > 0})
    rate = f" @ {', '.join(f'{r:g}' for r in rates)} Hz" if rates else ""
    return ", ".join(parts) + rate


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Library warnings (pkg_resources, OpenCV probes) are noise in a listing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ------------------------------------------------------------------ LSL
def find_lsl(timeout: float = 2.0) -> tuple[list[Found], list[str]]:
    import pylsl

    from drivers.lsl import spec_from_summary
    from drivers.lsl_streams import StreamSummary

    infos = pylsl.resolve_streams(wait_time=max(0.1, timeout))
    found: list[Found] = []
    notes: list[str] = []
    for info in infos:
        summary = StreamSummary.from_info(info)
        try:  # the channel table is only in the full header, one short request per stream
            inlet = pylsl.StreamInlet(info, max_buflen=1, recover=False)
            summary = StreamSummary.from_info(inlet.info(timeout=min(1.0, timeout)), full=True)
            del inlet
        except Exception as exc:  # noqa: BLE001 - a stream that vanished meanwhile is still listed
            notes.append(f"lsl: header of {summary.name!r} not read ({exc})")
        spec = spec_from_summary(summary)
        options: dict[str, Any] = {"name": slug(summary.name), "lsl_name": summary.name}
        if summary.type:
            options["type"] = summary.type
        if summary.source_id:
            options["source_id"] = summary.source_id
        comments = [f"hostname = {toml_str(summary.hostname)}   (pins the host)"]
        use_as = f"{spec.modality} stream {spec.name!r}"
        if spec.modality == "MARKERS" and summary.type.lower() not in ("markers", "marker"):
            use_as += f" (type {summary.type!r} unknown: recorded, not fed to models)"
            comments.append('modality = "EEG"   (or ECG, EDA, PPG, ... to feed it to a model)')
        labels = ", ".join(summary.channel_names[:6])
        more = ", ..." if len(summary.channel_names) > 6 else ""
        found.append(
            Found(
                family="lsl",
                device=summary.name,
                details=(
                    f"type {summary.type!r}, {summary.channel_count} x {summary.channel_format} "
                    f"@ {summary.rate_text}, host {summary.hostname}"
                    + (f", channels {labels}{more}" if labels else "")
                ),
                use_as=use_as,
                config=sources_table("lsl", options, comments),
                streams=[stream_row(spec)],
                info=summary.to_dict(),
            )
        )
    if not infos:
        notes.append(
            f"lsl: no stream answered within {timeout:g} s (streams on other hosts need "
            "multicast or KnownPeers in lsl_api.cfg)"
        )
    return found, notes


# ------------------------------------------------------------------ BrainFlow
SERIAL_PATTERNS = ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/cu.usbserial*", "/dev/cu.usbmodem*")


def find_brainflow(timeout: float = 2.0) -> tuple[list[Found], list[str]]:
    del timeout  # nothing here waits
    with _quiet():
        from drivers.brainflow import BrainFlowDriver

        synthetic = BrainFlowDriver("synthetic")
    specs = synthetic.specs
    found = [
        Found(
            family="brainflow",
            device="synthetic",
            details="BrainFlow's synthetic board (id -1): generated signals, no hardware",
            use_as=summarize(specs),
            config=sources_table("brainflow", {"name": "board", "board": "synthetic"}),
            streams=[stream_row(s) for s in specs],
            info={"board_id": synthetic.board_id},
        ),
        Found(
            family="brainflow",
            device="playback",
            details="BrainFlow's playback board (id -3): replays a DataFilter.write_file file",
            use_as="the streams of its master board, e.g. " + summarize(specs),
            config=sources_table(
                "brainflow",
                {
                    "name": "board",
                    "board": "playback",
                    "file": "recording.csv",
                    "master_board": "synthetic",
                    "loop": True,
                },
            ),
            streams=[stream_row(s) for s in specs],
            info={"board_id": -3},
        ),
    ]
    for port in sorted(p for pattern in SERIAL_PATTERNS for p in glob.glob(pattern)):
        found.append(
            Found(
                family="brainflow",
                device=port,
                details="serial adapter: may be a board's dongle (Cyton, Ganglion, ...); unverified",
                use_as="EEG and more, depending on the board",
                config=sources_table(
                    "brainflow",
                    {"name": "board", "board": "cyton", "serial_port": port},
                    ["board = the board on this port: cyton, cyton_daisy, ganglion, ..."],
                ),
                available=False,
                info={"serial_port": port},
            )
        )
    return found, []


# ------------------------------------------------------------------ webcams
def find_webcams(
    timeout: float = 2.0, indices: Sequence[int] = range(4)
) -> tuple[list[Found], list[str]]:
    import cv2

    found: list[Found] = []
    probe_ms = int(max(100, min(timeout, 2.0) * 1000))
    linux = sys.platform.startswith("linux")
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        for index in indices:
            if linux and not os.path.exists(f"/dev/video{index}"):
                continue  # asking V4L2 for an absent node only prints warnings
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                probe_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                probe_ms,
            ]
            cap = cv2.VideoCapture(index, cv2.CAP_ANY, params)
            try:
                if not cap.isOpened():
                    continue
                ok, frame = cap.read()
                if not ok or frame is None:
                    continue  # e.g. a V4L2 metadata node next to the real camera
                h, w = frame.shape[:2]
                fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
                backend = cap.getBackendName()
            finally:
                cap.release()
            found.append(
                Found(
                    family="webcam",
                    device=f"camera {index}",
                    details=f"{w} x {h}" + (f" @ {fps:g} fps" if fps > 0 else "") + f" ({backend})",
                    use_as="FRAMES: the eye region cropped for the eye models, and full frames",
                    config=sources_table(
                        "webcam",
                        {"name": "webcam", "device": index, "eye_region": True},
                    ),
                    streams=[
                        {"name": "webcam-eye", "modality": "FRAMES"},
                        {"name": "webcam-frames", "modality": "FRAMES"},
                    ],
                    info={"index": index, "width": w, "height": h, "fps": fps, "backend": backend},
                )
            )
    finally:
        cv2.utils.logging.setLogLevel(previous)
    return found, []


# ------------------------------------------------------------------ DAVIS
def find_davis(timeout: float = 2.0) -> tuple[list[Found], list[str]]:
    del timeout
    import dv_processing as dv

    found: list[Found] = []
    for d in dv.io.camera.discover():
        model = str(d.cameraModel)
        serial = str(d.serialNumber)
        camera = f"{model}_{serial}"
        found.append(
            Found(
                family="davis",
                device=camera,
                details=(
                    f"{model}, serial {serial}, USB bus {d.busNumber} address {d.devAddress}, "
                    f"firmware {d.firmwareVersion}"
                ),
                use_as="EVENTS (DVS), FRAMES (APS), IMU and TRIGGERS streams",
                config=sources_table(
                    "davis", {"name": "davis", "input": "camera", "serial": serial}
                ),
                streams=[
                    {"name": "davis-events", "modality": "EVENTS"},
                    {"name": "davis-frames", "modality": "FRAMES"},
                    {"name": "davis-imu", "modality": "IMU"},
                    {"name": "davis-triggers", "modality": "TRIGGERS"},
                ],
                info={"model": model, "serial": serial},
            )
        )
    notes = []
    if not found:
        notes.append(
            "davis: no camera on USB (a DV network stream or an AEDAT4 file can stand in: "
            "see app/configs/lsl_eeg_davis.toml)"
        )
    return found, notes


PROBES: dict[str, Callable[[float], tuple[list[Found], list[str]]]] = {
    "lsl": find_lsl,
    "brainflow": find_brainflow,
    "webcam": find_webcams,
    "davis": find_davis,
}


def discover(timeout: float = 2.0, families: Sequence[str] = FAMILIES) -> Discovery:
    """Probe the families at once (LSL waits ``timeout``; the others are quick)."""
    unknown = [f for f in families if f not in PROBES]
    if unknown:
        raise ValueError(f"unknown source families {unknown}; known: {', '.join(FAMILIES)}")
    result = Discovery(timeout=timeout)
    with ThreadPoolExecutor(max_workers=len(families) or 1) as pool:
        futures = {f: pool.submit(PROBES[f], timeout) for f in families}
        for family, future in futures.items():
            try:
                found, notes = future.result()
            except Exception as exc:  # noqa: BLE001 - a family that cannot be probed is a note
                result.notes.append(f"{family}: could not probe ({type(exc).__name__}: {exc})")
                continue
            result.found.extend(found)
            result.notes.extend(notes)
    return result
