"""Headless mode: run a configured session, log predictions, write statistics."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from app.config import SessionConfig, SinkConfig, load_config, shipped_config


def config_from_args(args: argparse.Namespace) -> SessionConfig:
    """The session config of a `demo` or `run` command, with its command-line overrides."""
    if args.command == "demo":
        cfg = load_config(shipped_config("demo"))
        for src in cfg.sources:
            if src.kind == "simulated":
                if args.seed is not None:
                    src.options["seed"] = args.seed
                if args.lighting is not None:
                    src.options["lighting"] = args.lighting
    else:
        cfg = load_config(args.config)
    sinks = list(cfg.sinks)
    if args.predictions is not None:
        sinks = [s for s in sinks if s.kind != "predictions"]
        sinks.append(SinkConfig("predictions", {"path": str(args.predictions)}))
    if args.no_lsl:
        sinks = [s for s in sinks if s.kind != "lsl"]
    if args.quiet:
        sinks = [s for s in sinks if s.kind != "console"]
    duration = cfg.duration if args.duration is None else args.duration
    return replace(cfg, sinks=sinks, duration=duration)


def write_stats(path: Path, stats: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(stats, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


def run_session_command(args: argparse.Namespace) -> int:
    from app.session import Session  # loads torch and the drivers

    cfg = config_from_args(args)
    if not args.headless:
        return run_dashboard_command(args, cfg)
    session = Session(cfg)
    streams = ", ".join(session.sources)
    models = ", ".join(f"{r.name} on {r.device}" for r in session.runners)
    duration = f"{cfg.duration:g} s" if cfg.duration else "until Ctrl-C"
    print(
        f"affectlab: session {cfg.name!r}: streams {streams}; models {models}; {duration}",
        file=sys.stderr,
    )
    recorder = None
    if getattr(args, "record", None) is not None:
        from recordings.errors import RecordingError

        try:
            session.start_recording(args.record)  # before the sources start: from the first sample
        except RecordingError as exc:
            print(f"affectlab: {exc}", file=sys.stderr)
            return 1
        recorder = session.recording
        print(f"affectlab: recording to {recorder.folder}", file=sys.stderr)
    interrupted = False
    try:
        session.run_for(cfg.duration or None)
    except KeyboardInterrupt:
        interrupted = True
    if recorder is not None:
        report_recording(recorder)
    stats = session.stats().to_dict()
    if args.stats is not None:
        write_stats(args.stats, stats)
    for name, m in stats["models"].items():
        print(
            f"affectlab: {name}: {m['windows']} windows, {m['inferred']} inferred, "
            f"{m['skipped']} skipped, {m['errors']} errors",
            file=sys.stderr,
        )
    return 130 if interrupted else 0


def report_recording(recorder) -> None:
    """The end-of-session lines about a recording: where, what, and anything that went wrong."""
    counts = recorder.counts()
    listing = ", ".join(f"{name} {n}" for name, n in counts.items())
    print(f"affectlab: recorded {recorder.folder}: {listing}", file=sys.stderr)
    lost = {k: v for k, v in recorder.lost().items() if v}
    if lost:
        print(f"affectlab: recording LOST items (ring overwritten): {lost}", file=sys.stderr)
    if recorder.error:
        print(
            f"affectlab: {recorder.error}; what was written before stays readable", file=sys.stderr
        )


def run_dashboard_command(args: argparse.Namespace, cfg: SessionConfig) -> int:
    """`demo` / `run` without --headless: the session in the dashboard window."""
    from app.gui import run_dashboard  # loads Qt
    from app.session import Session
    from recordings.errors import RecordingError

    ended: list = []
    try:
        code = run_dashboard(
            lambda: Session(cfg),
            duration=cfg.duration or None,
            screenshot=getattr(args, "screenshot", None),
            title="affectlab",
            on_session_end=ended.append,
            record_at_start=getattr(args, "record", None),
        )
    except RecordingError as exc:
        print(f"affectlab: {exc}", file=sys.stderr)
        return 1
    if args.stats is not None and ended:
        write_stats(args.stats, ended[-1].stats().to_dict())
    return code
