"""The `affectlab` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from app.arguments import seconds
from app.config import ConfigError, SessionConfig, check_new_log, check_output_options
from app.outputs import unwritable
from core.scheduler import BindingError
from core.sinks.prediction_log import PredictionLogError
from drivers.base import DriverError
from models.errors import ModelLoadError


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true", help="no window: log predictions only")
    p.add_argument(
        "--duration",
        type=seconds,
        default=None,
        metavar="S",
        help="stop after S seconds (default: the config's, else until Ctrl-C)",
    )
    p.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="FILE",
        help="log predictions to FILE (.csv, .jsonl or .ndjson, .parquet)",
    )
    p.add_argument(
        "--stats",
        type=Path,
        default=None,
        metavar="FILE",
        help="write session statistics as JSON to FILE at the end",
    )
    p.add_argument(
        "--no-lsl",
        action="store_true",
        help="do not publish predictions as the LSL stream 'affectlab-predictions'",
    )
    p.add_argument("--quiet", action="store_true", help="no periodic health line on the console")
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the session into DIR (a new or empty folder): XDF, AEDAT4, video",
    )
    p.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        metavar="FILE",
        help="(dashboard) save a PNG of the window at the end; use with --duration",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="affectlab",
        description="Live multimodal emotion recognition: sensors on one clock, published models, record and replay.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run a session on the built-in simulated participant")
    _add_run_options(demo)
    demo.add_argument("--seed", type=int, default=None, help="simulated participant's seed")
    demo.add_argument(
        "--lighting",
        choices=("normal", "overexposure", "low_light", "hdr"),
        default=None,
        help="lighting of the virtual eye camera",
    )

    run = sub.add_parser("run", help="run a session from a TOML config")
    run.add_argument("--config", type=Path, required=True, metavar="FILE.toml")
    _add_run_options(run)

    for name, text in PASS_THROUGH_HELP.items():
        sub.add_parser(name, add_help=False, help=text)
    return parser


#: commands with parsers of their own; everything after the command name goes to them
PASS_THROUGH_HELP = {
    "streams": "list the LSL streams, BrainFlow boards, webcams and DAVIS cameras found (streams --help)",
    "train": "train a model on DEAP, DREAMER or SEE (train --help)",
    "evaluate": "evaluate checkpoints: the papers' tables and plots (evaluate --help)",
    "train-demo": "retrain the demo models on simulated data (train-demo --help)",
    "score-demo": "score mco-e-net-lite-sim weights under harsher lighting (score-demo --help)",
    "simulate": "write DEAP, DREAMER or SEE data sets from the virtual participant (simulate --help)",
    "serve": "serve a virtual DAVIS346 as DV network streams (serve virtual-davis --help)",
    "replay": "replay a session folder, XDF or AEDAT4 file through the pipeline (replay --help)",
    "info": "show what a session folder, XDF or AEDAT4 file holds (info --help)",
}


#: the module of each of those commands (``main(argv)``, ``build_parser()``)
PASS_THROUGH_MODULES = {
    "streams": "app.streams",
    "train": "app.train",
    "evaluate": "app.evaluate",
    "train-demo": "app.train_demo",
    "score-demo": "app.score_demo_mco",
    "simulate": "app.simulate",
    "serve": "app.serve",
    "replay": "app.replay",
    "info": "app.info",
}


def _pass_through(command: str, rest: list[str]) -> int:
    """Commands that own their argument parsing; imported only when asked for."""
    import importlib

    return importlib.import_module(PASS_THROUGH_MODULES[command]).main(rest)


def quiet_liblsl() -> None:
    """liblsl logs INFO lines to the console by default; keep them to warnings and errors
    (before pylsl loads, and only when the user has not chosen a config of their own)."""
    os.environ.setdefault("LSLAPICFG", str(Path(__file__).parent / "configs" / "lsl_api.cfg"))


def check_new_logs(args: argparse.Namespace, cfg: SessionConfig) -> None:
    """Refuse, before anything is created or started, a predictions log the session could only
    fail on later: ``--predictions`` never passes through the config parser, and an existing
    file is refused by PredictionLog only after the sources, the models and the LSL outlets
    (in the dashboard, the window) are up. Config errors come first, as they would anyway."""
    check_output_options(args.predictions, args.stats)
    if args.predictions is not None:  # it replaces the config's predictions sinks
        return
    where = f"{cfg.path}: " if cfg.path is not None else ""
    for i, table in enumerate(cfg.raw.get("sinks", [])):
        if table["kind"] == "predictions":
            check_new_log(table["path"], f"{where}sinks[{i}].path")


def check_screenshot(args: argparse.Namespace, cfg: SessionConfig) -> None:
    """A screenshot is taken of the window when the duration ends: without either it was
    silently never taken."""
    if getattr(args, "screenshot", None) is None:
        return
    if args.headless:
        raise ConfigError("--screenshot: a picture of the dashboard; not with --headless")
    if not cfg.duration:
        raise ConfigError("--screenshot: taken when the session ends; give --duration S")
    if (problem := unwritable(args.screenshot)) is not None:
        raise ConfigError(f"--screenshot: {problem}")


def main(argv: list[str] | None = None) -> int:
    """The ``affectlab`` command."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (``affectlab info ... | head``): nothing left to say to it,
        # and Python's own flush at exit must not complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a process ended by SIGPIPE


def _main(argv: list[str] | None) -> int:
    quiet_liblsl()
    argv = sys.argv[1:] if argv is None else list(argv)
    first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if first is not None and argv[first] in PASS_THROUGH_HELP:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return _pass_through(argv[first], argv[first + 1 :])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from app.headless import config_from_args, run_session_command  # keeps --help fast

    cfg: SessionConfig | None = None
    try:
        cfg = config_from_args(args)
        check_screenshot(args, cfg)
        check_new_logs(args, cfg)
        return run_session_command(args, cfg)
    except ConfigError as exc:
        # a source's options are checked as its driver is built, after the file was read:
        # name the file there too, as the file's own errors do
        text = str(exc)
        if cfg is not None and cfg.path is not None and text.startswith("sources["):
            text = f"{cfg.path}: {text}"
        print(f"affectlab: config error: {text}", file=sys.stderr)
        return 2
    except PredictionLogError as exc:  # a log file that appeared after check_new_logs
        print(f"affectlab: {exc}", file=sys.stderr)
        return 2
    except (DriverError, BindingError, ModelLoadError) as exc:
        # a missing device, a stream a model cannot take, a model that cannot be served
        print(f"affectlab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
