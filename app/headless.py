"""Headless mode: run a configured session, log predictions, write statistics."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.config import SessionConfig, SinkConfig, load_config, shipped_config
from app.interrupts import ending_signals, uninterruptible


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


def next_free_path(path: Path) -> Path:
    """``path``, or the first of ``stem-2.ext``, ``stem-3.ext``, ... that does not exist."""
    n = 2
    free = path
    while free.exists():
        free = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return free


def with_fresh_logs(cfg: SessionConfig) -> SessionConfig:
    """``cfg`` with each predictions log moved to a name not taken yet: a session started
    again in the dashboard logs beside the one before it (a log is never overwritten)."""
    sinks = [
        SinkConfig(s.kind, {**s.options, "path": str(next_free_path(Path(s.options["path"])))})
        if s.kind == "predictions"
        else s
        for s in cfg.sinks
    ]
    return replace(cfg, sinks=sinks)


def refused_record_folder(args: argparse.Namespace) -> bool:
    """Check ``--record``'s folder before anything is opened (logs, outlets, devices), so that
    a refused folder leaves nothing behind and the corrected command runs; say why."""
    if getattr(args, "record", None) is None:
        return False
    from recordings.disk import check_folder
    from recordings.errors import RecordingError

    try:
        check_folder(args.record)
    except RecordingError as exc:
        print(f"affectlab: {exc}", file=sys.stderr)
        return True
    return False


def run_session_command(args: argparse.Namespace, cfg: SessionConfig | None = None) -> int:
    """`demo` / `run`: ``cfg`` is the command's config when the caller built it already."""
    from app.session import Session, SessionFailed  # loads torch and the drivers
    from recordings.errors import RecordingError

    cfg = config_from_args(args) if cfg is None else cfg
    if refused_record_folder(args):
        return 2  # a mistake in the command, caught before anything starts (as config errors)
    if not args.headless:
        return run_dashboard_command(args, cfg)
    if getattr(args, "record", None) is not None:
        # dv-processing loads here, not under ending_signals: an import a signal cuts short
        # leaves the module half-initialised (an ImportError, not a clean end)
        import recordings.aedat  # noqa: F401
    session = recorder = None
    failure: SessionFailed | None = None
    # from before the first file is opened: Ctrl-C or SIGTERM at any moment ends it cleanly
    with ending_signals() as ending:
        session = Session(cfg)
        _announce(session, cfg)
        if getattr(args, "record", None) is not None:
            try:
                session.start_recording(args.record)  # before the sources: from the first sample
            except RecordingError as exc:
                print(f"affectlab: {exc}", file=sys.stderr)
                session.abandon()  # the log and outlets it opened
                return 1
            recorder = session.recording
            print(f"affectlab: recording to {recorder.folder}", file=sys.stderr)
        try:
            session.run_for(cfg.duration or None)
        except SessionFailed as exc:
            failure = exc
    if session is None:  # interrupted while the models loaded: nothing was opened yet
        return ending.exit_code
    if not session.started_at:  # interrupted before it ran: nothing left to block the rerun
        with uninterruptible():
            session.abandon()
        return ending.exit_code
    with uninterruptible("writing statistics"):
        if recorder is not None:
            report_recording(recorder)
        end_report(session.stats().to_dict(), args.stats, "affectlab")
    if failure is not None:
        print(f"affectlab: {failure}", file=sys.stderr)
        return 1
    return ending.exit_code


def _announce(session: Any, cfg: SessionConfig) -> None:
    streams = ", ".join(session.sources)
    models = ", ".join(f"{r.name} on {r.device}" for r in session.runners) or "none"
    duration = f"{cfg.duration:g} s" if cfg.duration else "until Ctrl-C"
    print(
        f"affectlab: session {cfg.name!r}: streams {streams}; models {models}; {duration}",
        file=sys.stderr,
    )


def end_report(stats: dict, path: Path | None, command: str) -> None:
    """The statistics file (when asked for) and a line per model on the console."""
    if path is not None:
        write_stats(path, stats)
    for name, m in stats["models"].items():
        not_cut = m.get("aligner", {}).get("cut_errors", 0)
        print(
            f"{command}: {name}: {m['windows']} windows, {m['inferred']} inferred, "
            f"{m['skipped']} skipped, {m['errors']} errors"
            + (f", {not_cut} windows that could not be cut (see the log)" if not_cut else ""),
            file=sys.stderr,
        )


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


class DashboardSessions:
    """The dashboard's sessions from one config: the first as configured, each later one
    (Start after Stop) with its predictions log beside the one before (``-2``, ``-3``, ...:
    a log is never overwritten, and the same name would refuse to start). Keeps only the
    last session that ended, for ``--stats``, not every one the window ran."""

    def __init__(self, cfg: SessionConfig, make: Callable[[SessionConfig], Any] | None = None):
        self.cfg = cfg
        #: builds a session from its config (a replay wraps its recording around it)
        self.make = make
        self.built = 0
        self.last_ended = None

    def build(self):
        from app.session import Session

        cfg = with_fresh_logs(self.cfg) if self.built else self.cfg
        if self.built:
            for sink in cfg.sinks:
                if sink.kind == "predictions":
                    print(f"affectlab: predictions go to {sink.options['path']}", file=sys.stderr)
        session = (self.make or Session)(cfg)
        self.built += 1
        return session

    def ended(self, session) -> None:
        self.last_ended = session


def run_dashboard_command(args: argparse.Namespace, cfg: SessionConfig) -> int:
    """`demo` / `run` without --headless: the session in the dashboard window."""
    from app.gui import run_dashboard  # loads Qt
    from recordings.errors import RecordingError

    sessions = DashboardSessions(cfg)
    try:
        code = run_dashboard(
            sessions.build,
            duration=cfg.duration or None,
            screenshot=getattr(args, "screenshot", None),
            title="affectlab",
            on_session_end=sessions.ended,
            record_at_start=getattr(args, "record", None),
        )
    except RecordingError as exc:
        print(f"affectlab: {exc}", file=sys.stderr)
        return 1
    if args.stats is not None and sessions.last_ended is not None:
        write_stats(args.stats, sessions.last_ended.stats().to_dict())
    return code
