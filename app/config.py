"""Session configuration: a TOML file naming sources, models and sinks.

Parsing is strict on purpose: a typo in a lab session config should stop the
session before it starts, with a message that names the key and what is wrong
with it, rather than silently running without a sensor.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config problem, phrased for the person who wrote the file."""


SOURCE_KINDS = ("simulated", "lsl", "brainflow", "webcam", "davis")
SINK_KINDS = ("predictions", "lsl", "console")


@dataclass
class SourceConfig:
    kind: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str  # a shipped model name or a path to a .safetensors file
    device: str = "auto"
    bindings: dict[str, str] = field(default_factory=dict)  # input key -> stream name


@dataclass
class SinkConfig:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SessionConfig:
    name: str = "session"
    duration: float = 0.0  # seconds; 0 runs until interrupted
    health_period: float = 5.0
    sources: list[SourceConfig] = field(default_factory=list)
    models: list[ModelConfig] = field(default_factory=list)
    sinks: list[SinkConfig] = field(default_factory=list)
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the parsed TOML, for manifests


def _expect(value: Any, kind: type | tuple[type, ...], key: str, what: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"{key}: expected {what}, got a boolean ({value!r})")
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: expected {what}, got {type(value).__name__} {value!r}")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def parse_config(data: dict[str, Any], path: Path | None = None) -> SessionConfig:
    """Validate a parsed TOML document into a SessionConfig."""
    _check_keys(data, {"session", "sources", "models", "sinks"}, "top level")
    cfg = SessionConfig(path=path, raw=data)

    session = _expect(data.get("session", {}), dict, "session", "a table [session]")
    _check_keys(session, {"name", "duration", "health_period"}, "session")
    cfg.name = _expect(session.get("name", cfg.name), str, "session.name", "a string")
    cfg.duration = float(
        _expect(
            session.get("duration", 0.0), (int, float), "session.duration", "seconds (a number)"
        )
    )
    if cfg.duration < 0:
        raise ConfigError(f"session.duration: must be >= 0 seconds, got {cfg.duration}")
    cfg.health_period = float(
        _expect(session.get("health_period", 5.0), (int, float), "session.health_period", "seconds")
    )
    if cfg.health_period <= 0:
        raise ConfigError(f"session.health_period: must be > 0 seconds, got {cfg.health_period}")

    sources = _expect(data.get("sources", []), list, "sources", "an array of tables [[sources]]")
    names: set[str] = set()
    for i, table in enumerate(sources):
        where = f"sources[{i}]"
        _expect(table, dict, where, "a table")
        kind = _expect(table.get("kind"), str, f"{where}.kind", f"one of {', '.join(SOURCE_KINDS)}")
        if kind not in SOURCE_KINDS:
            raise ConfigError(
                f"{where}.kind: unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}"
            )
        name = _expect(table.get("name", f"{kind}{i}"), str, f"{where}.name", "a string")
        if name in names:
            raise ConfigError(f"{where}.name: {name!r} is used by another source")
        names.add(name)
        options = {k: v for k, v in table.items() if k not in ("kind", "name")}
        cfg.sources.append(SourceConfig(kind=kind, name=name, options=options))
    if not cfg.sources:
        raise ConfigError("sources: no [[sources]] table; a session needs at least one source")

    models = _expect(data.get("models", []), list, "models", "an array of tables [[models]]")
    for i, table in enumerate(models):
        where = f"models[{i}]"
        _expect(table, dict, where, "a table")
        _check_keys(table, {"name", "device", "bindings"}, where)
        name = _expect(
            table.get("name"), str, f"{where}.name", "a model name or a .safetensors path"
        )
        device = _expect(table.get("device", "auto"), str, f"{where}.device", "auto, cpu or cuda")
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ConfigError(f"{where}.device: expected auto, cpu or cuda, got {device!r}")
        bindings = _expect(
            table.get("bindings", {}), dict, f"{where}.bindings", "a table input = stream"
        )
        for key, stream in bindings.items():
            _expect(stream, str, f"{where}.bindings.{key}", "a stream name")
        cfg.models.append(ModelConfig(name=name, device=device, bindings=dict(bindings)))

    sinks = _expect(data.get("sinks", []), list, "sinks", "an array of tables [[sinks]]")
    for i, table in enumerate(sinks):
        where = f"sinks[{i}]"
        _expect(table, dict, where, "a table")
        kind = _expect(table.get("kind"), str, f"{where}.kind", f"one of {', '.join(SINK_KINDS)}")
        if kind not in SINK_KINDS:
            raise ConfigError(
                f"{where}.kind: unknown sink kind {kind!r}; expected one of {', '.join(SINK_KINDS)}"
            )
        if kind == "predictions":
            _check_keys(table, {"kind", "path"}, where)
            _expect(
                table.get("path"), str, f"{where}.path", "a file path (.csv, .jsonl or .parquet)"
            )
        options = {k: v for k, v in table.items() if k != "kind"}
        cfg.sinks.append(SinkConfig(kind=kind, options=options))
    return cfg


def load_config(path: str | Path) -> SessionConfig:
    """Read and validate a session TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(data, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def shipped_config(name: str) -> Path:
    """Path of a config shipped in app/configs/ (e.g. 'demo')."""
    path = Path(__file__).parent / "configs" / f"{name}.toml"
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.toml"))
        raise ConfigError(f"no shipped config {name!r}; available: {', '.join(available)}")
    return path
