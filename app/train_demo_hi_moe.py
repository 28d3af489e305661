"""Train the demo Hi-MoE (hi-moe-sim) on simulated physiology.

    affectlab train-demo --model hi-moe        # -> models/weights/hi_moe_sim.safetensors

Inputs: ``HiMoEConfig.simulated()`` (EEG 32 ch and ECG at 64 Hz, PPG 32 Hz, EDA
and respiration 8 Hz, temperature 2 Hz, 4 s windows every 0.5 s), EEG channels
named (``models.registry.hi_moe_sim_inputs``). These are exactly the
physiology inputs of concat-fusion-sim, so the windows that model's training
cut and cached are read, not rendered again.

Training follows the paper where it speaks (``models/cards/hi_moe.md``): Adam,
cosine annealing, batch 32, ``L_emo + 0.1 NT-Xent``, early stopping on
validation. Missing modalities: every batch draws a missing rate r from the
paper's grid 0, 0.05, ..., 0.40 and drops each (window, modality)
independently with probability r (``sample_missing``, one kept), on top of
what the aligner already marked missing, so the model copes with devices
dropping out live. The validation score is the mean CCC over the four
dimensions averaged over r = 0, 0.2 and 0.4 (fixed masks). The generic
trainer (``models.training.fit``) keeps resumable checkpoints in ``--run-dir``;
the task and the figures are ``models.demo.hi_moe``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from app.demo_data import (
    INTENDED_USE,
    TRAINED_ON,
    SessionPlan,
    build_dataset,
    say,
)
from app.train_demo import (
    CliDefaults,
    command_line,
    common_parser,
    resume_fingerprint,
    start,
    utc_now,
    write_figures,
)
from core.prediction import AFFECT_DIMENSIONS
from models.registry import (
    WEIGHTS_DIR,
    concat_fusion_sim_inputs,
    hi_moe_sim_config,
    hi_moe_sim_inputs,
)

if TYPE_CHECKING:
    from models.hi_moe import HiMoEConfig

DEFAULTS = CliDefaults(
    model="hi-moe",
    description="Train the demo Hi-MoE (hi-moe-sim) on simulated physiology, with random "
    "missing modalities at the paper's rates.",
    out=WEIGHTS_DIR / "hi_moe_sim.safetensors",
    epochs=10,
    batch_size=32,
    lr=1e-3,
    threads_help="torch threads (1: OpenMP spin-waits crawl when another process holds a core)",
)


#: the start of the error for a ``--set`` of a field the demo fixes
CANNOT_CHANGE = "cannot change in train-demo"


# --------------------------------------------------------------------------- CLI
def build_parser():
    p = common_parser(DEFAULTS)
    p.add_argument("--patience", type=int, default=4, help="epochs without a better validation")
    p.add_argument(
        "--run-dir",
        type=Path,
        default=Path("runs") / "train_demo" / "hi-moe",
        help="resumable checkpoints of the run",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument(
        "--ema-decay",
        type=float,
        default=0.0,
        metavar="D",
        help="keep (and ship) an exponential moving average of the weights, e.g. 0.998 "
        "(default 0: off, as the paper)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of HiMoEConfig.simulated() (VALUE as JSON), e.g. "
        "fusion=attention-concat or pearson_weight=1.0; repeatable. The inputs "
        "(modalities, windows, rates) cannot change: the cached windows are cut for them; "
        "nor can the outputs (outputs, output_range): the simulated ratings are fixed",
    )
    return p


def demo_config(items: Sequence[str]) -> HiMoEConfig:
    """``HiMoEConfig.simulated()`` with ``--set`` overrides, checked against the demo's
    inputs before any data is read, so a typo fails in a second, not after rendering: an
    unknown field, a value of the wrong kind or out of range, or a change to what the demo
    fixes (its inputs and outputs) is one ``UsageError`` naming the field."""
    from app.train import parse_overrides
    from models.hi_moe import HiMoEConfig
    from models.serving.hi_moe import validate
    from models.zoo import configure

    base = hi_moe_sim_config()
    inputs = hi_moe_sim_inputs()
    fixed = {
        "modalities": f"{CANNOT_CHANGE} (its windows are cut and cached for the demo's "
        f"inputs): these modalities do not match declared inputs {list(inputs.inputs)}",
        "outputs": f"{CANNOT_CHANGE} (the simulated participants rate "
        f"{', '.join(base.outputs)}, all of which the demo's figures score)",
        "output_range": f"{CANNOT_CHANGE} (the simulated ratings lie on "
        f"{base.output_range[0]:g}-{base.output_range[1]:g})",
    }
    d = configure("hi-moe", base.to_dict(), parse_overrides(items), fixed)
    config = HiMoEConfig.from_dict(d)
    validate(config.to_json(), inputs)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    parsed = start(build_parser(), argv)
    if parsed is None:
        return 2
    args, splits = parsed
    try:
        if not 0.0 <= args.ema_decay < 1.0:
            raise ValueError(f"--ema-decay {args.ema_decay}: must lie in [0, 1)")
        config = demo_config(args.set)
    except ValueError as e:  # UsageError included
        print(f"affectlab train-demo: {e}", file=sys.stderr)
        return 2
    from models.demo.hi_moe import MISSING_RATES, VAL_RATES, HiMoEWindowsTask, evaluate, summary
    from models.hi_moe import HiMoE
    from models.runtime import save_model
    from models.training import ResumeError, fit, seed_everything
    from models.zoo import recipe_of

    started = time.perf_counter()
    inputs = hi_moe_sim_inputs()
    seeds = splits.train + splits.validation + splits.test
    plans = [SessionPlan.for_seed(s, args.minutes) for s in seeds]
    say(
        f"data: {len(plans)} simulated sessions x {args.minutes:g} min; participants "
        f"{splits.train[0]}-{splits.train[-1]} train, {splits.validation} validation, "
        f"{splits.test} test; cache {args.cache_dir} (concat-fusion-sim's windows serve too)"
    )
    data = build_dataset(
        plans,
        inputs,
        args.cache_dir,
        args.workers,
        not args.no_progress,
        reuse=[concat_fusion_sim_inputs()],
    )
    train, val, test = (data.of_seeds(s) for s in (splits.train, splits.validation, splits.test))
    del data
    t_data = time.perf_counter() - started
    say(f"windows: {len(train)} train, {len(val)} validation, {len(test)} test ({t_data:.0f} s)")

    seed_everything(args.seed)
    model = HiMoE(config)
    recipe = recipe_of("hi-moe").with_(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        ema_decay=args.ema_decay,
    )
    task = HiMoEWindowsTask(train, val, args.batch_size)
    try:
        result = fit(
            model,
            task,
            recipe,
            args.run_dir,
            args.seed,
            resume=args.resume,
            progress=not args.no_progress,
            log=say,
            fingerprint=resume_fingerprint(args),
            desc="hi-moe-sim",
        )
    except ResumeError as exc:  # --resume of a run made with other options
        print(f"affectlab train-demo: {exc}", file=sys.stderr)
        return 2
    t_train = time.perf_counter() - started - t_data

    mean = train.affect.mean(0)
    results = {"validation": evaluate(model, val, mean)}
    if len(test):
        results["test"] = evaluate(model, test, mean)
    for name, m in results.items():
        say(f"{name}: {summary(m)}")

    trained_at = utc_now()
    command = command_line(argv)
    short = {
        name: {f"{k}_ccc": m["all_inputs"][k]["ccc"] for k in AFFECT_DIMENSIONS}
        | {"mean_ccc_by_missing_rate": m["missing_rate"]}
        for name, m in results.items()
    }
    provenance = {
        "trained_on": TRAINED_ON,
        "training_command": command,
        "trained_at": trained_at,
        **splits.to_dict(),
        "minutes_per_session": args.minutes,
        "figures": short,
        "intended_use": INTENDED_USE,
    }
    out = save_model(args.out, model, inputs, provenance)
    figures = {
        "model": inputs.model,
        "family": "hi-moe",
        "weights": out.name,
        "weights_bytes": out.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_on": TRAINED_ON,
        "training_command": command,
        "trained_at": trained_at,
        **splits.to_dict(),
        "sessions": [asdict(p) for p in plans],
        "windows": {"train": len(train), "validation": len(val), "test": len(test)},
        "recipe": recipe.to_dict(),
        "missing_rates_in_training": list(MISSING_RATES),
        "validation_score": f"mean CCC over the 4 dimensions, averaged over r = {list(VAL_RATES)}",
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "runtime_s": {"data": t_data, "train": t_train, "total": time.perf_counter() - started},
        **results,
        "history": result.history,
    }
    write_figures(out, figures, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
