"""Train the demo models on simulated sessions: one command, one model per call.

    affectlab train-demo                            # concat-fusion-sim (the default)
    affectlab train-demo --model hi-moe             # hi-moe-sim (app.train_demo_hi_moe)
    affectlab train-demo --model mco-e-net-lite     # mco-e-net-lite-sim (app.train_demo_mco)
    python -m app.train_demo ...                    # the same

``--model`` defaults to ``concat-fusion`` so the command recorded in the
shipped concat-fusion-sim weights (``affectlab train-demo --no-progress``)
still reproduces them, bit for bit.

Every model trains on windows cut by the real aligner from simulated sessions
rendered offline (``app.demo_data``, shared by all three trainers). Splits are
by person, not by window: the last ``--val-seeds`` participants validate every
epoch, and participants 0 .. ``--test-seeds``-1 (the demo's default is 0) are
scored once, at the end, and never used to choose anything.

This module also trains the interim concatenation-fusion model (its loop is
``models.demo.concat_fusion``) and holds what the three command lines share.
The torch side of every demo trainer is under ``models/demo/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.arguments import fraction, positive_float, positive_int, threads
from app.demo_data import (  # noqa: F401 - re-exported: the data helpers' historic home
    DEFAULT_CACHE,
    HALF_DAVIS,
    INTENDED_USE,
    LIGHTINGS,
    PHYSIOLOGY,
    TRAINED_ON,
    VISION,
    SessionPlan,
    Splits,
    WindowSet,
    build_dataset,
    prune_cache,
    say,
    session_windows,
    stack_windows,
    version_dir,
)
from app.outputs import unwritable
from core.prediction import AFFECT_DIMENSIONS
from models.demo.concat_fusion_config import TrainConfig
from models.registry import WEIGHTS_DIR, concat_fusion_sim_inputs

#: --model value -> the module that trains it (each has ``main(argv) -> int``)
DEMO_TRAINERS: dict[str, str] = {
    "concat-fusion": "app.train_demo",
    "hi-moe": "app.train_demo_hi_moe",
    "mco-e-net-lite": "app.train_demo_mco",
}


# --------------------------------------------------------------------------- CLI (shared)
@dataclass(frozen=True)
class CliDefaults:
    """What differs between the demo trainers' command lines."""

    model: str
    description: str
    out: Path
    minutes: float = 4.0
    seeds: int = 40
    val_seeds: int = 4
    test_seeds: int = 4
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    threads_help: str = "torch threads"


def common_parser(d: CliDefaults) -> argparse.ArgumentParser:
    """The options every demo trainer takes (data, splits, optimiser basics, cache, threads)."""
    p = argparse.ArgumentParser(
        prog="affectlab train-demo",
        description=d.description + " Simulated data only: not a model of real people.",
    )
    p.add_argument(
        "--model",
        choices=tuple(DEMO_TRAINERS),
        default="concat-fusion",
        help="which demo model to train (default: concat-fusion, the interim model)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=d.out,
        help="weights file to write (a .json of figures goes beside it)",
    )
    p.add_argument(
        "--minutes", type=positive_float, default=d.minutes, help="minutes per simulated session"
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=d.seeds,
        help="simulated participants (sessions); the last --val-seeds are held out",
    )
    p.add_argument(
        "--val-seeds", type=int, default=d.val_seeds, help="participants held out for validation"
    )
    p.add_argument(
        "--first-seed",
        type=int,
        default=100,
        help="training and validation participants are first-seed, first-seed+1, ...",
    )
    p.add_argument(
        "--test-seeds",
        type=int,
        default=d.test_seeds,
        help="participants 0 .. N-1 (the demo's is 0) are a test set, scored once at the end",
    )
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.lr)
    p.add_argument(
        "--seed", type=int, default=0, help="seed of initialisation, shuffling and dropout"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help="where cut windows are cached as .npz",
    )
    p.add_argument("--workers", type=int, default=2, help="processes rendering sessions")
    p.add_argument("--threads", type=threads, default=1, help=d.threads_help)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--prune-cache",
        action="store_true",
        help="train nothing: delete the cached windows this version never reads (older "
        "simulator versions, interrupted renders, files from before version folders) "
        "from --cache-dir and say what was freed",
    )
    return p


def check_common(args: argparse.Namespace) -> Splits | None:
    """The participants' splits, or None after saying on stderr what is wrong."""
    splits = Splits.from_args(args.first_seed, args.seeds, args.val_seeds, args.test_seeds)
    problem = None
    if args.seeds < 2 or not 1 <= args.val_seeds < args.seeds:
        problem = "need --seeds >= 2 and 1 <= --val-seeds < --seeds"
    elif args.test_seeds < 0 or args.test_seeds > args.first_seed:
        problem = (
            "test participants are seeds 0 .. --test-seeds - 1 and must stay below --first-seed"
        )
    elif args.minutes * 60.0 < 10.0:
        problem = "--minutes must give sessions of at least 10 s"
    else:
        problem = output_problem(args)
    if problem:
        print(f"train-demo: {problem}", file=sys.stderr)
        return None
    return splits


def output_problem(args: argparse.Namespace) -> str | None:
    """Why the weights (and the figures beside them), the window cache or the run folder
    cannot be written, asked before the data is rendered and the model trained."""
    if args.out.is_dir():
        return f"--out {args.out}: is a folder; name the weights file to write"
    for flag, path in (
        ("--out", args.out),
        ("--out", args.out.with_suffix(".json")),
        ("--cache-dir", args.cache_dir / "probe.npz"),
        ("--run-dir", getattr(args, "run_dir", None) and args.run_dir / "last.safetensors"),
    ):
        if path is not None and (why := unwritable(path)):
            return f"{flag} {path}: {why}"
    return None


def start(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, Splits] | None:
    """Parsed arguments and the participants' splits with torch's threads set, or None after
    saying what is wrong: the first steps every demo trainer takes."""
    args = parser.parse_args(list(argv))
    splits = check_common(args)
    if splits is None:
        return None
    set_threads(args.threads)
    return args, splits


#: options that say where things go or how fast, not what a run computes: a resumed run
#: may change them (and ``--resume`` itself)
NOT_IN_FINGERPRINT = frozenset(
    {"resume", "threads", "workers", "no_progress", "cache_dir", "out", "run_dir"}
)


def resume_fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    """The options that decide what a run computes, for ``fit`` to check on ``--resume``.

    Not the command line: that holds ``--resume`` itself, so no interrupted run could be
    continued as the help says, and a changed ``--threads`` would refuse one too.
    """
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in sorted(vars(args).items())
        if key not in NOT_IN_FINGERPRINT
    }


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, for the weights' provenance."""
    return ("affectlab train-demo " + shlex.join(argv)).strip()


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_threads(threads: int) -> None:
    """One torch thread by default: OpenMP spin-waits crawl when another process holds a
    core. The variable goes first so that OpenMP, and the rendering processes, start with it."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from models.training import set_threads as set_torch_threads

    set_torch_threads(threads)


def write_figures(out: Path, figures: dict[str, Any], started: float) -> Path:
    """The JSON of figures beside the weights (the card's tables come from it), and the
    run's last line: what it wrote and how long it took since ``started`` (perf_counter)."""
    from models.checkpoint import json_default  # torch is loaded by now: the run trained

    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(figures, indent=2, default=json_default) + "\n")
    say(
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {json_path}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    return json_path


# --------------------------------------------------------------------------- concat-fusion CLI
CONCAT_DEFAULTS = CliDefaults(
    model="concat-fusion",
    description="Train a demo model on simulated sessions: --model concat-fusion (the "
    "default: the interim concatenation-fusion model, options below), hi-moe or "
    "mco-e-net-lite (`--model M --help` lists M's options).",
    out=WEIGHTS_DIR / "concat_fusion_sim.safetensors",
    epochs=TrainConfig.epochs,
    batch_size=TrainConfig.batch_size,
    lr=TrainConfig.lr,
    threads_help="torch threads (this model's small convs gain nothing from a second one, "
    "and OpenMP spin-waits crawl when another process holds the other core)",
)


def build_parser() -> argparse.ArgumentParser:
    p = common_parser(CONCAT_DEFAULTS)
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    p.add_argument("--dropout", type=fraction, default=TrainConfig.dropout)
    return p


def evaluate_split(model, data: WindowSet) -> dict[str, Any]:
    """All inputs, and the subsets that happen live when a device is absent."""
    from models.demo.concat_fusion import evaluate

    keys = data.keys
    subsets = {
        "physiology_only": [k in PHYSIOLOGY for k in keys],
        "eye_camera_only": [k in VISION for k in keys],
        "frames_only": [k == "frames" for k in keys],
    }
    out = {"all_inputs": evaluate(model, data)}
    for name, mask in subsets.items():
        out[name] = evaluate(model, data, present=np.asarray(mask, dtype=np.float32)[None])
    return out


def _short(m: dict[str, Any]) -> dict[str, float]:
    return {f"{k}_ccc": m[k]["ccc"] for k in AFFECT_DIMENSIONS} | {
        "expression_accuracy": m["expression"]["accuracy"],
        "expression_macro_f1": m["expression"]["macro_f1"],
    }


def prune(cache_dir: Path) -> int:
    """``--prune-cache``: free what no command of this version reads again."""
    pruned = prune_cache(cache_dir)
    for path in pruned.removed:
        say(f"removed {path}")
    kept = version_dir(cache_dir)
    say(
        f"freed {pruned.freed_bytes / 1e6:,.1f} MB in {len(pruned.removed)} entries; "
        f"this version's windows stay in {kept}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``affectlab train-demo [--model M] ...``: hand the arguments to M's trainer."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", choices=tuple(DEMO_TRAINERS), default="concat-fusion")
    pre.add_argument("--prune-cache", action="store_true")
    pre.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    known, _ = pre.parse_known_args(argv)
    if known.prune_cache and not {"-h", "--help"} & set(argv):
        return prune(known.cache_dir)
    if known.model != "concat-fusion":
        return importlib.import_module(DEMO_TRAINERS[known.model]).main(argv)
    return train_concat_fusion(argv)


def train_concat_fusion(argv: list[str]) -> int:
    parsed = start(build_parser(), argv)
    if parsed is None:
        return 2
    args, splits = parsed
    from models.baselines import count_parameters
    from models.demo.concat_fusion import baseline_figures, summary_line, train_model
    from models.runtime import save_model

    started = time.perf_counter()
    inputs = concat_fusion_sim_inputs()
    train_seeds, val_seeds, test_seeds = splits.train, splits.validation, splits.test
    seeds = train_seeds + val_seeds
    plans = [SessionPlan.for_seed(s, args.minutes) for s in seeds + test_seeds]
    say(
        f"data: {len(plans)} simulated sessions x {args.minutes:g} min; participants "
        f"{train_seeds[0]}-{train_seeds[-1]} train, {val_seeds} validation, "
        f"{test_seeds} test; cache {args.cache_dir}"
    )
    data = build_dataset(plans, inputs, args.cache_dir, args.workers, not args.no_progress)
    t_data = time.perf_counter() - started
    split = np.where(
        np.isin(data.seed, val_seeds), 1, np.where(np.isin(data.seed, test_seeds), 2, 0)
    )
    train, val, test = (data.subset(np.flatnonzero(split == k)) for k in range(3))
    del data
    say(
        f"windows: {len(train)} train, {len(val)} validation, {len(test)} test "
        f"({t_data:.0f} s to render, cut and load)"
    )

    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        seed=args.seed,
    )
    model, history = train_model(
        train, val, inputs, cfg, (PHYSIOLOGY, VISION), progress=not args.no_progress, log=say
    )
    t_train = time.perf_counter() - started - t_data

    results = {"validation": evaluate_split(model, val)}
    if len(test):
        results["test"] = evaluate_split(model, test)
    for split_name, res in results.items():
        for subset, m in res.items():
            say(f"{split_name}, {subset.replace('_', ' ')}: {summary_line(m)}")
    baselines = {
        name: baseline_figures(train, d)
        for name, d in (("validation", val), ("test", test))
        if len(d)
    }
    for name, b in baselines.items():
        say(
            f"{name}, constant predictor: CCC 0, majority class ({b['majority_class']}) "
            f"accuracy {b['majority_accuracy']:.3f}"
        )

    trained_at = utc_now()
    command = command_line(argv)
    provenance = {
        "trained_on": TRAINED_ON,
        "training_command": command,
        "trained_at": trained_at,
        "train_seeds": train_seeds,
        "validation_seeds": val_seeds,
        "test_seeds": test_seeds,
        "minutes_per_session": args.minutes,
        "figures": {k: _short(v["all_inputs"]) for k, v in results.items()},
        "intended_use": INTENDED_USE,
    }
    out = save_model(args.out, model, inputs, provenance)
    figures = {
        "model": inputs.model,
        "weights": out.name,
        "weights_bytes": out.stat().st_size,
        "parameters": count_parameters(model),
        "trained_on": TRAINED_ON,
        "training_command": command,
        "trained_at": trained_at,
        "train_seeds": train_seeds,
        "validation_seeds": val_seeds,
        "test_seeds": test_seeds,
        "sessions": [asdict(p) for p in plans],
        "windows": {"train": len(train), "validation": len(val), "test": len(test)},
        "config": asdict(cfg),
        "runtime_s": {"data": t_data, "train": t_train, "total": time.perf_counter() - started},
        **results,
        "constant_baseline": baselines,
        "history": [
            {k: v for k, v in h.items() if k != "val"}
            | ({"validation": _short(h["val"])} if "val" in h else {})
            for h in history
        ],
    }
    write_figures(out, figures, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
