"""`affectlab replay PATH`: a recorded session, XDF or AEDAT4 file through the live pipeline.

The replay drivers fill the same rings as live drivers, so the same aligner,
models and sinks run. ``--speed max`` (the default headless) is deterministic:
two runs give the same predictions. Models: ``--model`` (repeatable), else
those named in the session's manifest, else the demo models whose inputs the
recording can feed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.arguments import seconds
from app.interrupts import Ending, ending_signals, uninterruptible

DEMO_MODELS = ("hi-moe-sim", "mco-e-net-lite-sim")


def _speed(text: str) -> float | None:
    if text.lower() in ("max", "fast", "inf"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1, N or max, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):  # NaN too
        raise argparse.ArgumentTypeError(f"speed must be a number > 0, or max; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectlab replay",
        description="Replay a session folder, an XDF file (e.g. from LabRecorder) or an AEDAT4 "
        "file through the same pipeline as a live session.",
    )
    p.add_argument("path", type=Path, help="session folder, .xdf or .aedat4 file")
    p.add_argument(
        "--speed",
        type=_speed,
        default=False,
        metavar="1|N|max",
        help="1 = recorded pace, N = N times faster, max = as fast as possible and "
        "deterministic (default: max headless, 1 in the dashboard)",
    )
    p.add_argument(
        "--from",
        dest="from_s",
        type=float,
        default=0.0,
        metavar="S",
        help="start S seconds after the recording's start",
    )
    p.add_argument(
        "--to",
        dest="to_s",
        type=float,
        default=None,
        metavar="S",
        help="stop S seconds after the recording's start",
    )
    p.add_argument("--headless", action="store_true", help="no window: log and exit at the end")
    p.add_argument("--predictions", type=Path, help="write predictions (.csv, .jsonl or .parquet)")
    p.add_argument("--stats", type=Path, help="write run statistics as JSON")
    p.add_argument(
        "--lsl",
        action="store_true",
        help="re-publish the replayed streams as LSL outlets with their original headers",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="run this model instead of the recorded ones (repeatable); "
        "'none' replays the streams only",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--quiet", action="store_true", help="no periodic health line")
    p.add_argument(
        "--screenshot",
        type=Path,
        metavar="FILE",
        help="(dashboard) save a PNG of the window when --duration ends, then exit",
    )
    p.add_argument(
        "--duration",
        type=seconds,
        default=None,
        metavar="S",
        help="(dashboard) close the window after S seconds",
    )
    return p


def fitting_models(recording: Any, device: str = "auto") -> list[str]:
    """Demo models with at least one input the recording's streams can feed, and whose
    every input the session would bind (the first stream of its modality) can take that
    stream's channels; the others are named on stderr with the reason."""
    from core.scheduler import channel_problem, default_stream
    from core.window import NumericInput
    from models.runtime import load_runner

    out = []
    for name in DEMO_MODELS:
        runner = load_runner(name, device=device)
        fed, problems = False, []
        for key, want in runner.inputs.inputs.items():
            stream = default_stream(want, (t.spec for t in recording.tracks))
            if stream is None:
                continue
            problem = (
                channel_problem(name, key, want, stream) if isinstance(want, NumericInput) else None
            )
            if problem is None:
                fed = True
            else:
                problems.append(problem)
        if problems:
            print(f"affectlab replay: not running {name}: {problems[0]}", file=sys.stderr)
        elif fed:
            out.append(name)
    return out


def replay_config(recording: Any, args: argparse.Namespace) -> Any:
    """The SessionConfig of a replay: the recorded models (and their bindings) or ``--model``."""
    from app.config import ConfigError, ModelConfig, SessionConfig, SinkConfig, parse_config

    models: list[ModelConfig] = []
    name = recording.path.stem or "replay"
    if args.model and [m.lower() for m in args.model] == ["none"]:
        models = []
    elif args.model:
        models = [ModelConfig(m, args.device) for m in args.model]
    elif recording.manifest is not None:
        # only its models matter here: the sinks it had (logs, outlets) are not replayed
        recorded = {
            k: v for k, v in (recording.manifest.get("config") or {}).items() if k != "sinks"
        }
        try:
            cfg = parse_config(recorded) if recorded else None
        except (ConfigError, KeyError, TypeError):
            cfg = None
        if cfg is not None and cfg.models:
            models = [ModelConfig(m.name, args.device, dict(m.bindings)) for m in cfg.models]
            name = cfg.name
        else:
            models = [ModelConfig(m, args.device) for m in recording.models]
    if not models and not args.model:
        models = [ModelConfig(m, args.device) for m in fitting_models(recording, args.device)]
    sinks = []
    if args.predictions is not None:
        sinks.append(SinkConfig("predictions", {"path": str(args.predictions)}))
    if not args.quiet and args.headless:
        sinks.append(SinkConfig("console", {}))
    return SessionConfig(name=f"replay of {name}", models=models, sinks=sinks)


def make_replay_session(
    recording: Any, args: argparse.Namespace, speed: float | None, cfg: Any = None
):
    """A Session of ``cfg`` (default: ``replay_config``) around a fresh ReplayControl (one
    per session the dashboard starts)."""
    from app.session import Session
    from recordings.replay import ReplayControl

    control = ReplayControl(recording, speed=speed, from_s=args.from_s, to_s=args.to_s)
    session = Session(
        replay_config(recording, args) if cfg is None else cfg,
        clock=control.clock,
        drivers=[control.driver],
        replay=control,
    )
    if args.lsl:
        from recordings.republish import Republisher

        publisher = Republisher(control.driver.specs, control.clock)
        control.driver.listeners.append(publisher)
        for note in publisher.skipped:
            print(f"affectlab replay: {note}", file=sys.stderr)
    return session


def run_headless(make_session: Callable[[], Any], args: argparse.Namespace) -> int:
    """Replay in the terminal; the session is built here, so that Ctrl-C or SIGTERM while
    its models load ends the command as cleanly as later (130/143, nothing left)."""
    from app.session import SessionFailed

    session = None
    failure: SessionFailed | None = None
    with ending_signals() as ending:  # Ctrl-C or SIGTERM, while starting too: a clean stop
        session = make_session()
        control = session.replay
        try:
            session.start()
            limit = args.duration
            waited = 0.0
            while not control.wait_finished(0.1):
                waited += 0.1
                if session.engine_error is not None:
                    raise SessionFailed(f"engine failed: {session.engine_error}")
                if control.driver.error is not None:
                    raise SessionFailed(f"replay failed: {control.driver.error}")
                if limit is not None and waited >= limit:
                    break
        except SessionFailed as exc:
            failure = exc
        finally:
            with uninterruptible():
                session.stop()
    if session is None:  # interrupted while the models loaded: nothing was opened yet
        return ending.exit_code
    if not session.started_at:  # interrupted before it ran: no empty log left behind
        with uninterruptible():
            session.abandon()
        return ending.exit_code
    with uninterruptible("writing statistics"):
        code = _finish(session, args, ending)
    if failure is not None:
        print(f"affectlab replay: {failure}", file=sys.stderr)
        return 1
    return code


def _finish(session: Any, args: argparse.Namespace, ending: Ending) -> int:
    from app.headless import end_report

    control = session.replay
    stats = session.stats().to_dict()
    stats["replay"] = {
        "path": str(control.recording.path),
        "speed": control.speed if control.speed is not None else "max",
        "from_s": control.from_s,
        "to_s": control.to_s,
        "pushed": dict(control.driver.pushed),
        "finished": control.finished,
    }
    end_report(stats, args.stats, "affectlab replay")
    return ending.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.to_s is not None and args.to_s <= args.from_s:
        parser.error(f"--to {args.to_s:g} must be after --from {args.from_s:g}")
    if args.screenshot is not None and (args.headless or not args.duration):
        parser.error("--screenshot: a picture of the dashboard when --duration ends; give "
                     "--duration S, and not --headless")  # fmt: skip
    os.environ.setdefault("LSLAPICFG", str(Path(__file__).parent / "configs" / "lsl_api.cfg"))
    from app.config import ConfigError, check_output_options
    from core.scheduler import BindingError
    from drivers.base import DriverError
    from recordings.sources import SourceError, open_recording

    try:
        check_output_options(args.predictions, args.stats)
    except ConfigError as exc:
        print(f"affectlab replay: {exc}", file=sys.stderr)
        return 2
    try:
        recording = open_recording(args.path)
    except SourceError as exc:
        print(f"affectlab replay: {exc}", file=sys.stderr)
        return 1
    for line in recording.skipped:
        print(f"affectlab replay: {line}", file=sys.stderr)
    for line in recording.problems:
        print(f"affectlab replay: warning: {line}", file=sys.stderr)
    names = ", ".join(t.spec.name for t in recording.tracks)
    print(
        f"affectlab replay: {recording.path}: {recording.duration:.3f} s; streams {names}",
        file=sys.stderr,
    )
    speed = args.speed if args.speed is not False else (None if args.headless else 1.0)
    try:
        if args.headless:
            return run_headless(lambda: make_replay_session(recording, args, speed), args)
        try:
            from app.gui import run_dashboard
        except ImportError as exc:
            print(
                f"affectlab replay: the dashboard is not available ({exc}); running headless",
                file=sys.stderr,
            )
            args.headless = True
            return run_headless(lambda: make_replay_session(recording, args, speed), args)
        from app.headless import DashboardSessions, write_stats

        # Start after Stop: the new session's log goes beside the last one's
        sessions = DashboardSessions(
            replay_config(recording, args),
            make=lambda cfg: make_replay_session(recording, args, speed, cfg),
        )
        code = run_dashboard(
            sessions.build,
            duration=args.duration,
            screenshot=args.screenshot,
            title=f"affectlab replay: {recording.path.name}",
            on_session_end=sessions.ended,
        )
        if args.stats is not None and sessions.last_ended is not None:
            write_stats(args.stats, sessions.last_ended.stats().to_dict())
        return code
    except (ConfigError, ValueError, DriverError, BindingError) as exc:
        # ValueError: ModelLoadError too (a model that cannot be served, a GPU not there)
        print(f"affectlab replay: {exc}", file=sys.stderr)
        return 1
    finally:
        recording.close()


if __name__ == "__main__":
    sys.exit(main())
