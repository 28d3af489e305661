"""Session configuration: a TOML file naming sources, models and sinks.

Parsing is strict on purpose: a typo in a lab session config should stop the
session before it starts, with a message that names the key and what is wrong
with it, rather than silently running without a sensor.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.outputs import unwritable


class ConfigError(ValueError):
    """A config problem, phrased for the person who wrote the file."""


SOURCE_KINDS = ("simulated", "lsl", "brainflow", "webcam", "davis")
#: the options of each sink kind besides ``kind``
SINK_OPTIONS: dict[str, tuple[str, ...]] = {
    "predictions": ("path",),
    "lsl": ("name",),
    "console": ("period",),
}
SINK_KINDS = tuple(SINK_OPTIONS)


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
    if not 0 <= cfg.duration < math.inf:  # NaN too
        raise ConfigError(
            f"session.duration: must be a number of seconds >= 0 (0: until Ctrl-C), "
            f"got {cfg.duration}"
        )
    cfg.health_period = float(
        _expect(session.get("health_period", 5.0), (int, float), "session.health_period", "seconds")
    )
    if not 0 < cfg.health_period < math.inf:
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
        cfg.sinks.append(_parse_sink(table, f"sinks[{i}]"))
    _check_distinct_logs(cfg.sinks)
    return cfg


def _parse_sink(table: Any, where: str) -> SinkConfig:
    """One ``[[sinks]]`` table, every option checked here: the sinks are built only after the
    sources and the models are up, too late to stop the session with a line naming the key."""
    _expect(table, dict, where, "a table")
    kind = _expect(table.get("kind"), str, f"{where}.kind", f"one of {', '.join(SINK_KINDS)}")
    if kind not in SINK_KINDS:
        raise ConfigError(
            f"{where}.kind: unknown sink kind {kind!r}; expected one of {', '.join(SINK_KINDS)}"
        )
    allowed = ("kind", *SINK_OPTIONS[kind])
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown option of {kind} sinks; allowed: {', '.join(allowed)}"
        )
    options: dict[str, Any] = {}
    if kind == "predictions":
        options["path"] = predictions_path(table.get("path"), f"{where}.path")
    if kind == "lsl" and "name" in table:
        options["name"] = _stream_name(table["name"], f"{where}.name")
    if kind == "console" and "period" in table:
        options["period"] = _period(table["period"], f"{where}.period")
    return SinkConfig(kind=kind, options=options)


def predictions_path(value: Any, key: str) -> str:
    """A predictions log's path, whose extension picks the format; also for ``--predictions``,
    which never passes through the parser."""
    from core.sinks.prediction_log import FORMATS  # the formats PredictionLog writes

    path = _expect(value, str, key, f"a file path ({', '.join(FORMATS)})")
    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError(f"{key}: expected a file ending in {', '.join(FORMATS)}, got {path!r}")
    return path


def check_new_log(path: str | Path, key: str) -> None:
    """Refuse a predictions log over an existing file. PredictionLog never overwrites one, but
    it refuses only when it is built, after the sources, the models and the LSL outlets: the
    command line calls this first, so that nothing is created or started before the message."""
    if Path(path).exists():
        raise ConfigError(
            f"{key}: predictions file {str(path)!r} already exists; "
            "choose another name or remove it (affectlab never overwrites a log)"
        )
    problem = unwritable(path)
    if problem is not None:
        raise ConfigError(f"{key}: predictions file {str(path)!r}: {problem}")


def check_output_options(predictions: Path | None, stats: Path | None) -> None:
    """A session command's ``--predictions`` and ``--stats``, before anything opens: a log is
    never overwritten, and a file written only at the end must be writable now."""
    if stats is not None and (problem := unwritable(stats)) is not None:
        raise ConfigError(f"--stats: {problem}")
    if predictions is not None:
        check_new_log(predictions_path(str(predictions), "--predictions"), "--predictions")


def _check_distinct_logs(sinks: list[SinkConfig]) -> None:
    """Two predictions sinks on one file: the second would find the first's file and refuse."""
    seen: set[Path] = set()
    for i, sink in enumerate(sinks):
        if sink.kind != "predictions":
            continue
        path = Path(sink.options["path"]).resolve()
        if path in seen:
            raise ConfigError(
                f"sinks[{i}].path: {sink.options['path']!r} is the file of another predictions sink"
            )
        seen.add(path)


def _stream_name(value: Any, key: str) -> str:
    """An LSL stream name: pylsl takes only a string, and an empty name finds nothing."""
    name = _expect(value, str, key, "an LSL stream name (a string)")
    if not name.strip():
        raise ConfigError(f"{key}: expected a non-empty LSL stream name, got {name!r}")
    return name


def _period(value: Any, key: str) -> float:
    """Seconds between console lines: a positive, finite number (inf would print nothing)."""
    period = float(_expect(value, (int, float), key, "seconds (a number > 0)"))
    if not 0 < period < math.inf:
        raise ConfigError(f"{key}: expected seconds (a number > 0), got {value!r}")
    return period


def load_config(path: str | Path) -> SessionConfig:
    """Read and validate a session TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file in UTF-8 (byte {exc.start})") from None
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
