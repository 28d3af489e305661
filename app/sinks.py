"""Turn [[sinks]] tables into sink objects on the bus."""

from __future__ import annotations

from pathlib import Path

from app.config import SessionConfig, SinkConfig
from core.bus import Sink
from core.prediction import prediction_columns
from core.sinks.console import ConsoleHealth
from core.sinks.lsl_outlet import DEFAULT_NAME, LslPredictionOutlet
from core.sinks.prediction_log import PredictionLog
from core.worker import ModelRunner


def build_sinks(
    configs: list[SinkConfig], runners: list[ModelRunner], session: SessionConfig
) -> list[Sink]:
    """The sinks of ``configs``. Their options were checked by ``app.config.parse_config``
    (and ``--predictions`` by the command line): by now the sources and the models are up, too
    late for a mistake to stop the session with a line naming the key."""
    sinks: list[Sink] = []
    outputs = [c for r in runners for c in r.outputs]
    input_keys = [k for r in runners for k in r.inputs.inputs]
    for cfg in configs:
        if cfg.kind == "predictions":
            columns = prediction_columns(outputs, input_keys)
            sinks.append(PredictionLog(Path(cfg.options["path"]), columns=columns))
        elif cfg.kind == "lsl":
            base = cfg.options.get("name", DEFAULT_NAME)
            for i, runner in enumerate(runners):
                sinks.append(
                    LslPredictionOutlet(
                        model=runner.name,
                        channels=list(runner.outputs),
                        hop_s=runner.inputs.hop_s,
                        name=base if i == 0 else f"{base}-{runner.name}",
                    )
                )
        elif cfg.kind == "console":
            sinks.append(ConsoleHealth(period_s=_console_period(cfg, session)))
    return sinks


def _console_period(cfg: SinkConfig, session: SessionConfig) -> float:
    return float(cfg.options.get("period", session.health_period))


def health_period(session: SessionConfig) -> float:
    """Seconds between health publications: ``session.health_period``, or a console
    sink's shorter ``period`` (a sink can only thin out what is published)."""
    periods = [_console_period(c, session) for c in session.sinks if c.kind == "console"]
    return min([session.health_period, *periods])
