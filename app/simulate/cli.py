"""``affectlab simulate``: checks what it is asked, refuses to write over anything, and runs
the writer of the data set's format with a progress bar."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from app.outputs import unwritable
from app.simulate.physiology import DREAMER_BASELINE_S, write_deap, write_dreamer
from app.simulate.see import SEE_MIN_FRAMES, write_see
from core.prediction import EXPRESSIONS
from drivers.simulated.eye_camera import DAVIS346_SIZE
from models.data import deap as deap_format
from models.data import dreamer as dreamer_format
from models.data import see as see_format
from models.progress import progress_bar

KINDS = ("deap", "dreamer", "see")
DEFAULTS: dict[str, dict[str, float]] = {
    "deap": {"subjects": 4, "trials": 40, "trial_seconds": 60.0},
    "dreamer": {"subjects": 4, "trials": 18, "trial_seconds": 60.0},
    "see": {"subjects": 3, "trials": 1, "trial_seconds": 2.0},
}


# ------------------------------------------------------------------ CLI
def output_files(kind: str, out: Path, subjects: int) -> list[Path]:
    """What ``simulate kind --out out`` would write, for the refusal to overwrite: DEAP's
    subject files, DREAMER's one file; for SEE the annotation and the ``frame`` and
    ``event`` trees (sequence names depend on the simulation, so any existing tree counts)."""
    if kind == "deap":
        folder = out / deap_format.FOLDER
        return [folder / f"s{s:02d}.dat" for s in range(1, subjects + 1)]
    if kind == "dreamer":
        return [out / dreamer_format.FILE]
    return [out / see_format.ANNOTATION, out / "frame", out / "event"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 346x260, got {text!r}") from exc
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("frames must be at least 16x16")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectlab simulate",
        description="Write a DEAP, DREAMER or SEE data set, in its own file format, "
        "from virtual participants (one per subject).",
    )
    p.add_argument("kind", choices=KINDS, help="which data set format to write")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--subjects",
        type=int,
        default=None,
        metavar="N",
        help="virtual participants (default: deap 4, dreamer 4, see 3)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="T",
        help="trials per subject (default: deap 40, dreamer 18); "
        "see: takes per emotion and lighting (default 1)",
    )
    p.add_argument(
        "--trial-seconds",
        type=float,
        default=None,
        metavar="S",
        help="trial length (default 60; dreamer films are 1-1.5x this); "
        "see: mean sequence length (default 2)",
    )
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=DREAMER_BASELINE_S,
        metavar="S",
        help="dreamer: neutral baseline before each film (default 61)",
    )
    p.add_argument(
        "--frame-size",
        type=_size,
        default=DAVIS346_SIZE,
        metavar="WxH",
        help="see: frame size (default 346x260, the DAVIS346)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    d = DEFAULTS[args.kind]
    subjects = int(args.subjects if args.subjects is not None else d["subjects"])
    trials = int(args.trials if args.trials is not None else d["trials"])
    seconds = float(args.trial_seconds if args.trial_seconds is not None else d["trial_seconds"])
    problems = []
    if subjects < 1:
        problems.append("--subjects must be >= 1")
    if trials < 1:
        problems.append("--trials must be >= 1")
    min_seconds = {"deap": 1.0, "dreamer": 1.0, "see": SEE_MIN_FRAMES / 30.0}[args.kind]
    if not seconds >= min_seconds:
        problems.append(f"--trial-seconds must be >= {min_seconds:g} for {args.kind}")
    if args.kind == "dreamer" and not args.baseline_seconds >= 1.0:
        problems.append("--baseline-seconds must be >= 1")
    if args.out.exists() and not args.out.is_dir():
        problems.append(f"--out {args.out}: is a file; name a folder for the data set")
    elif subjects >= 1:
        targets = output_files(args.kind, args.out, subjects)
        there = [t for t in targets if t.exists()]
        if there:
            problems.append(
                f"--out {args.out}: {there[0]} already exists; simulate never overwrites a data "
                "set, choose another --out"
            )
        elif why := unwritable(targets[0]):
            problems.append(f"--out {args.out}: {why}")
    if problems:
        print(f"affectlab simulate: {'; '.join(problems)}", file=sys.stderr)
        return 2
    total = subjects * (len(EXPRESSIONS) * len(see_format.LIGHTINGS) * trials
                        if args.kind == "see" else 1)  # fmt: skip
    unit = "sequence" if args.kind == "see" else "subject"
    t0 = time.perf_counter()
    with progress_bar(
        total=total, unit=unit, desc=f"simulate {args.kind}", enabled=not args.quiet
    ) as bar:
        if args.kind == "deap":
            files = write_deap(args.out, subjects, args.seed, trials, seconds, bar.update)
            where = files[0].parent
        elif args.kind == "dreamer":
            where = write_dreamer(
                args.out, subjects, args.seed, trials, seconds, args.baseline_seconds, bar.update
            )
        else:
            where = write_see(
                args.out, subjects, args.seed, trials, seconds, args.frame_size,
                progress=bar.update,
            ).parent  # fmt: skip
    print(f"wrote simulated {args.kind} ({subjects} subjects) to {where} "
          f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
