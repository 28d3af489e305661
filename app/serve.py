"""`affectlab serve virtual-davis`: a virtual DAVIS346 on DV network streams (try DAVIS setups).

    affectlab serve virtual-davis [--port 7777] [--host 127.0.0.1] [--seed S]
                                  [--lighting normal|overexposure|low_light|hdr]
                                  [--video FILE | --webcam INDEX] [--fps F]
                                  [--time-bin-us N] [--duration S]
    python -m app.serve virtual-davis ...

Events are served on ``--port`` and APS frames on ``--port + 1`` (one DV
stream per port, as DV does); a session reads them with a davis source of
``input = "network"`` (its default ports are 7777 and 7778). Frames come from
the virtual participant, or from a video file (looped) or a webcam, with
events emulated from that real video. Ctrl-C stops the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from drivers.simulated.lighting import LIGHTING_CONDITIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="affectlab serve", description="Serve simulated sources over the network."
    )
    sub = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = sub.add_parser(
        "virtual-davis",
        help="a virtual DAVIS346 (events and APS frames) as DV network streams",
        description=__doc__.split("\n\n")[2] if __doc__ else None,
    )
    p.add_argument(
        "--port", type=int, default=7777, help="events port; frames on port + 1 (default 7777)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)",
    )
    p.add_argument("--seed", type=int, default=0, help="virtual participant's seed (default 0)")
    p.add_argument(
        "--lighting",
        choices=LIGHTING_CONDITIONS,
        default="normal",
        help="lighting of the virtual eye camera (default normal)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--video",
        type=Path,
        default=None,
        metavar="FILE",
        help="take frames from a video file (looped) instead of the virtual participant",
    )
    src.add_argument(
        "--webcam",
        type=int,
        default=None,
        metavar="INDEX",
        help="take frames from a webcam instead of the virtual participant",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate (default 30 for the virtual participant, the video's own otherwise)",
    )
    p.add_argument(
        "--time-bin-us",
        type=int,
        default=0,
        metavar="N",
        help="pack events in N-microsecond bins (fast for very busy scenes); "
        "0 keeps every event's stamp (default)",
    )
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser  # fmt: skip


def serve_virtual_davis(args: argparse.Namespace) -> int:
    from drivers.davis_server import VideoFrames, VirtualDavisServer, VirtualEyeFrames

    say = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    if not 1 <= args.port <= 65534:
        print(
            "affectlab serve: --port must be from 1 to 65534 (frames use port + 1)", file=sys.stderr
        )
        return 2
    if args.fps is not None and not 0 < args.fps <= 1000:
        print("affectlab serve: --fps must be in (0, 1000]", file=sys.stderr)
        return 2
    if args.time_bin_us < 0:
        print("affectlab serve: --time-bin-us must be >= 0", file=sys.stderr)
        return 2
    try:
        if args.video is not None:
            source = VideoFrames(args.video, fps=args.fps)
        elif args.webcam is not None:
            source = VideoFrames(int(args.webcam), fps=args.fps)
        else:
            source = VirtualEyeFrames(args.seed, args.lighting, fps=args.fps or 30.0)
    except OSError as exc:
        print(f"affectlab serve: {exc}", file=sys.stderr)
        return 1
    try:
        server = VirtualDavisServer(
            source, args.host, args.port, seed=args.seed, time_bin_us=args.time_bin_us, log=say
        )
    except RuntimeError as exc:
        source.close()
        print(
            f"affectlab serve: cannot listen on {args.host}:{args.port} and {args.port + 1}: "
            f"{str(exc).split(' [', 1)[0]}",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ends = server.endpoints
    say(
        f"virtual DAVIS346 serving events on {ends['events']} and frames on {ends['frames']} "
        f"from {source.description} at {source.fps:g} fps"
    )
    try:
        stats = server.serve(args.duration, stop)
    finally:
        server.close()
    say(stats.summary())
    # dv-processing 2.0.4's NetworkWriter destructor can hang (always while a client is
    # connected), holding the GIL: leave without running it; the OS closes the sockets.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """Returns an exit code on bad input; a server that ran ends the process itself (os._exit)."""
    args = build_parser().parse_args(argv)
    if args.what == "virtual-davis":
        return serve_virtual_davis(args)
    return 2  # pragma: no cover - argparse only lets known commands through


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
