"""The session folder's ``manifest.json``: what was recorded, where, with what.

Written when recording starts (``stop_lsl`` null), refreshed while it runs,
and rewritten with the final counts at stop; every write goes to a temporary
file that is fsync-ed and renamed over the old one, so a crash leaves either
the previous manifest or the new one, never half of one. A manifest whose
``stop_lsl`` is null belongs to a recording that did not stop cleanly.

Layout (see the contract in DESIGN.md "Sessions on disk"): ``format``,
``version``, ``name``, ``created``, ``start_lsl``, ``stop_lsl``, ``clock``,
``software``, ``config``, ``models``, ``streams``, ``files``, ``error`` (null, or why
the recording stopped early).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

FORMAT = "affectlab-session"
VERSION = 1
MANIFEST = "manifest.json"
XDF_FILE = "streams.xdf"

#: distributions whose versions a manifest records (those present)
SOFTWARE = (
    "affectlab",
    "numpy",
    "pylsl",
    "pyxdf",
    "dv-processing",
    "opencv-python-headless",
    "opencv-python",
    "torch",
    "brainflow",
    "PySide6-Essentials",
)


def software_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in SOFTWARE:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_entry(runner: Any) -> dict[str, Any]:
    """Name, family, architecture, weights file and its sha256, device, outputs of a runner."""
    meta = dict(getattr(runner, "metadata", None) or {})
    entry: dict[str, Any] = {
        "name": runner.name,
        "family": meta.get("family", ""),
        "architecture": meta.get("architecture", ""),
        "device": getattr(runner, "device", ""),
        "outputs": list(getattr(runner, "outputs", ())),
    }
    inputs = getattr(runner, "inputs", None)
    if inputs is not None and hasattr(inputs, "hop_s"):
        entry["hop_s"] = inputs.hop_s
        entry["inputs"] = list(getattr(inputs, "inputs", {}))
    path = getattr(runner, "path", None)
    if path is not None and Path(path).is_file():
        entry["path"] = str(path)
        entry["sha256"] = file_sha256(Path(path))
    for key in ("version", "trained_on", "created"):
        if key in meta:
            entry[key] = meta[key]
    return entry


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Atomically (re)write ``folder/manifest.json``; OSError when the disk refuses."""
    path = Path(folder) / MANIFEST
    tmp = path.with_name(MANIFEST + ".tmp")
    text = json.dumps(_json_safe(manifest), indent=2, default=str, allow_nan=False)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
