"""`affectlab info PATH`: what a session folder, XDF or AEDAT4 file holds.

Per stream: modality, file, count, span, nominal and effective rate and the
gaps (stretches without data longer than a few sample periods); then the first
markers with their times, the recorded predictions, anything skipped and any
damage found. Times are seconds from the recording's start.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: a regular stream has a gap where no sample came for this many sample periods
GAP_PERIODS = 3.0
#: ... and never for less than this (seconds)
MIN_GAP_S = 0.25
MARKERS_SHOWN = 10


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectlab info",
        description="Show what a session folder, an XDF file or an AEDAT4 file holds: streams, "
        "durations, rates, counts, gaps and markers.",
    )
    p.add_argument("path", type=Path, help="session folder, .xdf or .aedat4 file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--markers",
        type=int,
        default=MARKERS_SHOWN,
        metavar="N",
        help=f"markers to list (default {MARKERS_SHOWN})",
    )
    return p


def find_gaps(ts: np.ndarray, nominal_rate: float) -> list[tuple[float, float]]:
    """(start, length) of every stretch without samples in a regular stream."""
    if nominal_rate <= 0 or len(ts) < 2:
        return []
    limit = max(GAP_PERIODS / nominal_rate, MIN_GAP_S)
    d = np.diff(ts)
    idx = np.flatnonzero(d > limit)
    return [(float(ts[i]), float(d[i])) for i in idx]


def describe(recording: Any, markers: int = MARKERS_SHOWN) -> dict[str, Any]:
    from recordings.tracks import effective_rate

    t0 = recording.start
    streams = []
    marker_list: list[dict[str, Any]] = []
    for t in recording.tracks:
        spec = t.spec
        gaps = find_gaps(t.ts, spec.nominal_rate) if spec.nominal_rate > 0 else []
        entry = {
            "name": spec.name,
            "modality": str(spec.modality),
            "kind": str(spec.kind),
            "file": t.file.name,
            "channels": list(spec.channel_names),
            "frame_shape": list(spec.frame_shape) if spec.frame_shape else None,
            "count": t.count,
            "first_s": t.first - t0 if t.count else None,
            "last_s": t.last - t0 if t.count else None,
            "duration_s": t.last - t.first if t.count else 0.0,
            "nominal_rate": spec.nominal_rate,
            "effective_rate": _num(effective_rate(t)),
            "gaps": len(gaps),
            "gap_s": float(sum(g for _, g in gaps)),
            "longest_gap_s": float(max((g for _, g in gaps), default=0.0)),
        }
        streams.append(entry)
        if spec.dtype == "object" and t.data is not None:
            for ts, row in zip(t.ts[:markers].tolist(), t.data[:markers].tolist(), strict=True):
                marker_list.append(
                    {"stream": spec.name, "t_s": ts - t0, "value": " | ".join(map(str, row))}
                )
    marker_list.sort(key=lambda m: m["t_s"])
    preds = [
        {
            "model": p.model,
            "count": len(p.ts),
            "columns": p.columns,
            "first_s": float(p.ts[0] - t0) if len(p.ts) else None,
            "last_s": float(p.ts[-1] - t0) if len(p.ts) else None,
        }
        for p in recording.predictions
    ]
    out: dict[str, Any] = {
        "path": str(recording.path),
        "kind": recording.kind,
        "duration_s": recording.duration,
        "start_lsl": t0,
        "streams": streams,
        "markers": marker_list[:markers],
        "predictions": preds,
        "skipped": list(recording.skipped),
        "problems": list(recording.problems),
    }
    m = recording.manifest
    if m is not None:
        out["session"] = {
            "name": m.get("name"),
            "created": m.get("created"),
            "stopped_cleanly": m.get("stop_lsl") is not None,
            "models": [x.get("name") for x in m.get("models") or []],
            "files": m.get("files"),
            "error": m.get("error"),
        }
    return out


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def render(info: dict[str, Any]) -> str:
    lines = [f"{info['path']} ({info['kind']}): {info['duration_s']:.3f} s"]
    s = info.get("session")
    if s:
        state = "stopped cleanly" if s["stopped_cleanly"] else "did NOT stop cleanly"
        lines.append(
            f"session {s['name']!r}, created {s['created']}, {state}; "
            f"models: {', '.join(s['models']) or 'none'}"
        )
        if s.get("error"):
            lines.append(f"recording error: {s['error']}")
    header = [
        "STREAM",
        "MODALITY",
        "FILE",
        "COUNT",
        "START",
        "DURATION",
        "RATE",
        "EFFECTIVE",
        "GAPS",
    ]
    rows = [header]
    for e in info["streams"]:
        gaps = (
            "-"
            if not e["gaps"]
            else f"{e['gaps']} ({e['gap_s']:.3f} s, longest {e['longest_gap_s']:.3f} s)"
        )
        rows.append(
            [
                e["name"],
                e["modality"],
                e["file"],
                str(e["count"]),
                "-" if e["first_s"] is None else f"{e['first_s']:.3f}",
                f"{e['duration_s']:.3f}",
                "irregular" if not e["nominal_rate"] else _rate(e["nominal_rate"]),
                _rate(e["effective_rate"]),
                gaps,
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if info["predictions"]:
        lines.append("recorded predictions:")
        for p in info["predictions"]:
            lines.append(
                f"  {p['model']}: {p['count']} ({', '.join(p['columns'][:6])}"
                f"{', ...' if len(p['columns']) > 6 else ''})"
            )
    if info["markers"]:
        lines.append("markers:")
        for m in info["markers"]:
            lines.append(f"  {m['t_s']:10.3f} s  {m['value']}  ({m['stream']})")
    for why in info["skipped"]:
        lines.append(f"skipped: {why}")
    for what in info["problems"]:
        lines.append(f"problem: {what}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    from recordings.sources import SourceError, open_recording

    try:
        recording = open_recording(args.path)
    except SourceError as exc:
        print(f"affectlab info: {exc}", file=sys.stderr)
        return 1
    try:
        info = describe(recording, max(0, args.markers))
    finally:
        recording.close()
    print(json.dumps(info, indent=2, default=str) if args.json else render(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
