"""Turn [[sources]] tables into drivers.

Each source kind declares the options it takes; an unknown option or a value
of the wrong kind stops the session before it starts, naming the key.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from app.config import ConfigError, SourceConfig
from drivers.base import Driver, OptionError


def _number(where: str, lo: float, hi: float) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ConfigError(f"{where}: expected a number from {lo:g} to {hi:g}, got {v!r}")
        return float(v)

    return check


def _simulated(cfg: SourceConfig, where: str) -> list[Driver]:
    from drivers.simulated.catalog import PHYSIOLOGY_STREAMS
    from drivers.simulated.drivers import VirtualSession
    from drivers.simulated.lighting import LIGHTING_CONDITIONS

    allowed = {
        "seed",
        "lighting",
        "eeg_rate",
        "streams",
        "camera",
        "events",
        "mean_dwell_s",
        "prefix",
        "ring_seconds",
    }
    unknown = sorted(set(cfg.options) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown option of a simulated source; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    o = cfg.options
    seed = o.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}.seed: expected a non-negative integer, got {seed!r}")
    lighting = o.get("lighting", "normal")
    if lighting not in LIGHTING_CONDITIONS:
        raise ConfigError(
            f"{where}.lighting: expected one of {', '.join(LIGHTING_CONDITIONS)}, got {lighting!r}"
        )
    streams = o.get("streams", list(PHYSIOLOGY_STREAMS))
    if not isinstance(streams, list) or any(s not in PHYSIOLOGY_STREAMS for s in streams):
        raise ConfigError(
            f"{where}.streams: expected a list drawn from {', '.join(PHYSIOLOGY_STREAMS)}, "
            f"got {streams!r}"
        )
    for flag in ("camera", "events"):
        if not isinstance(o.get(flag, True), bool):
            raise ConfigError(f"{where}.{flag}: expected true or false, got {o[flag]!r}")
    if not streams and not o.get("camera", True):
        raise ConfigError(
            f"{where}.streams: nothing to simulate: no physiology streams and camera = false"
        )
    prefix = o.get("prefix", "sim")
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"{where}.prefix: expected a non-empty string, got {prefix!r}")
    session = VirtualSession(
        seed=seed,
        lighting=lighting,
        eeg_rate=_number(f"{where}.eeg_rate", 128, 256)(o.get("eeg_rate", 128)),
        mean_dwell_s=_number(f"{where}.mean_dwell_s", 1, 3600)(o.get("mean_dwell_s", 20.0)),
        physiology=streams,
        camera=o.get("camera", True),
        events=o.get("events", True),
        name_prefix=prefix,
        ring_seconds=(
            _number(f"{where}.ring_seconds", 1, 86400)(o["ring_seconds"])
            if "ring_seconds" in o
            else None
        ),
    )
    return session.drivers


def _driver_module(module: str) -> Callable[[SourceConfig, str], list[Driver]]:
    """A builder for a driver module with ``from_config(options) -> list[Driver]``."""

    def build(cfg: SourceConfig, where: str) -> list[Driver]:
        from_config = importlib.import_module(module).from_config
        try:
            return from_config({"name": cfg.name, **cfg.options})
        except OptionError as exc:
            raise ConfigError(f"{where}.{exc.key}: {exc.message}") from None

    return build


SOURCE_BUILDERS: dict[str, Callable[[SourceConfig, str], list[Driver]]] = {
    "simulated": _simulated,
    "lsl": _driver_module("drivers.lsl_config"),
    "brainflow": _driver_module("drivers.brainflow"),
    "webcam": _driver_module("drivers.webcam"),
    "davis": _driver_module("drivers.davis_config"),
}


def build_sources(configs: list[SourceConfig]) -> list[Driver]:
    drivers: list[Driver] = []
    for i, cfg in enumerate(configs):
        builder = SOURCE_BUILDERS.get(cfg.kind)
        if builder is None:
            raise ConfigError(f"sources[{i}].kind: no driver for source kind {cfg.kind!r}")
        drivers.extend(builder(cfg, f"sources[{i}]"))
    return drivers
