"""Train the demo models on simulated sessions: one command, one model per call.

    affectlab train-demo                            # concat-fusion-sim (the default)
    affectlab train-demo --model hi-moe             # hi-moe-sim (app.train_demo_hi_moe)
    affectlab train-demo --model mco-e-net-lite     # mco-e-net-lite-sim (app.train_demo_mco)
    python -m app.train_demo ...                    # the same

``--model`` defaults to ``concat-fusion`` so the command recorded in the
shipped concat-fusion-sim weights (``affectlab train-demo``) still reproduces them.

Every model trains on windows cut by the real aligner from simulated sessions
rendered offline (``app.demo_data``, shared by all three trainers). Splits are
by person, not by window: the last ``--val-seeds`` participants validate every
epoch, and participants 0 .. ``--test-seeds``-1 (the demo's default is 0) are
scored once, at the end, and never used to choose anything.

This module also trains the interim concatenation-fusion model: AdamW, cosine
learning rate, random modality dropout (missing inputs are normal live), the
ABAW paper's multi-objective (MSE + Pearson for the four dimensions,
label-smoothed cross-entropy for the expression), and an exponential moving
average of the weights, which is what gets saved.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
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
    say,
    session_windows,
    stack_windows,
)
from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS
from core.window import ModelInputs
from models.registry import WEIGHTS_DIR, concat_fusion_sim_inputs

#: --model value -> the module that trains it (each has ``main(argv) -> int``)
DEMO_TRAINERS: dict[str, str] = {
    "concat-fusion": "app.train_demo",
    "hi-moe": "app.train_demo_hi_moe",
    "mco-e-net-lite": "app.train_demo_mco",
}


# --------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-2
    dropout: float = 0.3  # in the fusion trunk
    warmup_steps: int = 100
    ema_decay: float = 0.998
    input_dropout: float = 0.15  # each input dropped independently
    group_dropout: float = 0.1  # all physiology, or both eye-camera inputs, dropped together
    label_smoothing: float = 0.1
    pearson_weight: float = 1.0
    class_weight: float = 1.0
    seed: int = 0


def to_batch(data: WindowSet, idx: np.ndarray, device: str = "cpu"):
    """Tensors for windows ``idx``: inputs dict, presence (B, n), affect (B, 4), expression (B,)."""
    import torch

    x = {k: torch.from_numpy(data.x[k][idx].astype(np.float32)).to(device) for k in data.keys}
    present = torch.from_numpy(data.present[idx].astype(np.float32)).to(device)
    affect = torch.from_numpy(data.affect[idx]).to(device)
    expr = torch.from_numpy(data.expression[idx]).to(device)
    return x, present, affect, expr


def modality_dropout(
    present, keys: Sequence[str], cfg: TrainConfig, generator
):  # (B, n) tensor -> (B, n) tensor
    """Randomly hide inputs so the model learns to predict from whatever is there."""
    import torch

    b, n = present.shape
    keep = torch.rand(b, n, generator=generator) >= cfg.input_dropout
    groups = [[i for i, k in enumerate(keys) if k in g] for g in (PHYSIOLOGY, VISION)]
    for cols in groups:
        if cols:
            gone = torch.rand(b, generator=generator) < cfg.group_dropout
            keep[gone.nonzero(as_tuple=True)[0][:, None], torch.tensor(cols)] = False
    return present * keep.to(present.dtype)


def loss_terms(model, x, present, affect, expr, cfg: TrainConfig):
    """The multi-objective: (total, regression part, classification part)."""
    from models.losses import mse_pearson_loss, smoothed_cross_entropy

    out = model(x, present)
    reg = mse_pearson_loss(out.affect, affect, pearson_weight=cfg.pearson_weight, scale=4.0)
    cls = smoothed_cross_entropy(out.logits, expr, cfg.label_smoothing)
    return reg + cfg.class_weight * cls, reg, cls


class EMA:
    """Exponential moving average of parameters; buffers are copied (they are not learned)."""

    def __init__(self, model, decay: float) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, model, step: int) -> None:
        import torch

        d = min(self.decay, (1.0 + step) / (10.0 + step))  # warm start
        with torch.no_grad():
            for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
                e.lerp_(p.detach(), 1.0 - d)
            for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
                e.copy_(b)


def predict(
    model, data: WindowSet, batch_size: int = 256, present=None
) -> tuple[np.ndarray, np.ndarray]:
    """Affect (N, 4) and class probabilities (N, 7) in eval mode."""
    import torch

    model.eval()
    affects, probs = [], []
    with torch.inference_mode():
        for s in range(0, len(data), batch_size):
            idx = np.arange(s, min(s + batch_size, len(data)))
            x, p, _, _ = to_batch(data, idx)
            if present is not None:
                p = p * torch.as_tensor(present, dtype=p.dtype)
            out = model(x, p)
            affects.append(out.affect.numpy())
            probs.append(torch.softmax(out.logits, -1).numpy())
    return np.concatenate(affects), np.concatenate(probs)


def evaluate(model, data: WindowSet, present=None) -> dict[str, Any]:
    """Per-dimension CCC/r/RMSE/MAE and expression accuracy, UAR, macro-F1, confusion."""
    from models.metrics import classification_report, regression_report

    affect, probs = predict(model, data, present=present)
    out: dict[str, Any] = {
        k: regression_report(data.affect[:, i], affect[:, i])
        for i, k in enumerate(AFFECT_DIMENSIONS)
    }
    out["expression"] = classification_report(data.expression, probs.argmax(1), len(EXPRESSIONS))
    out["n_windows"] = len(data)
    return out


def baseline_figures(train: WindowSet, val: WindowSet) -> dict[str, Any]:
    """What predicting the training mean / majority class scores on validation."""
    from models.metrics import accuracy, macro_f1, rmse

    mean = train.affect.mean(0)
    major = int(np.bincount(train.expression, minlength=len(EXPRESSIONS)).argmax())
    return {
        "constant_mean_rmse": {
            k: rmse(val.affect[:, i], np.full(len(val), mean[i]))
            for i, k in enumerate(AFFECT_DIMENSIONS)
        },
        "constant_mean_ccc": 0.0,
        "majority_class": EXPRESSIONS[major],
        "majority_accuracy": accuracy(val.expression, np.full(len(val), major)),
        "majority_macro_f1": macro_f1(val.expression, np.full(len(val), major), len(EXPRESSIONS)),
    }


def summary_line(m: dict[str, Any]) -> str:
    cccs = " ".join(f"{k[:3]} {m[k]['ccc']:+.3f}" for k in AFFECT_DIMENSIONS)
    e = m["expression"]
    return (
        f"CCC {cccs} | expr acc {e['accuracy']:.3f} macro-F1 {e['macro_f1']:.3f} UAR {e['uar']:.3f}"
    )


def train_model(
    train: WindowSet,
    val: WindowSet | None,
    inputs: ModelInputs,
    cfg: TrainConfig,
    progress: bool = True,
    log=None,
):
    """Fit a ConcatFusion; returns the EMA model and the per-epoch history."""
    import torch
    from tqdm import tqdm

    from models.baselines import ConcatFusion, FusionConfig
    from models.runtime import layouts_for

    log = log or say
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    channels = {k: v.shape[1] for k, v in train.x.items() if v.ndim == 3}
    model = ConcatFusion(FusionConfig(layouts_for(inputs, channels), dropout=cfg.dropout))
    sample = rng.choice(len(train), size=min(len(train), 2048), replace=False)
    model.fit_input_stats(to_batch(train, np.sort(sample))[0])
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or name == "missing" else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = EMA(model, cfg.ema_decay)
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(train))
        run_loss = run_reg = run_cls = 0.0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress,
            leave=False,
        )
        for b in bar:
            idx = np.sort(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            x, present, affect, expr = to_batch(train, idx)
            present = modality_dropout(present, train.keys, cfg, gen)
            loss, reg, cls = loss_terms(model, x, present, affect, expr, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            sched.step()
            ema.update(model, step)
            step += 1
            run_loss += float(loss.detach())
            run_reg += float(reg.detach())
            run_cls += float(cls.detach())
            if b % 10 == 0:
                bar.set_postfix(loss=f"{run_loss / (b + 1):.3f}")
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": run_loss / steps_per_epoch,
            "regression_loss": run_reg / steps_per_epoch,
            "class_loss": run_cls / steps_per_epoch,
        }
        if val is not None and len(val):
            entry["val"] = evaluate(ema.model, val)
            val_line = summary_line(entry["val"])
            log(f"epoch {epoch + 1:2d} loss {entry['loss']:.3f} | val (EMA) {val_line}")
        else:
            log(f"epoch {epoch + 1:2d} loss {entry['loss']:.3f}")
        history.append(entry)
    return ema.model, history


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
    p.add_argument("--minutes", type=float, default=d.minutes, help="minutes per simulated session")
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
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
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
    p.add_argument("--threads", type=int, default=1, help=d.threads_help)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
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
    if problem:
        print(f"train-demo: {problem}", file=sys.stderr)
        return None
    return splits


def start(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.Namespace, Splits] | None:
    """Parsed arguments and the participants' splits with torch's threads set, or None after
    saying what is wrong: the first steps every demo trainer takes."""
    args = parser.parse_args(list(argv))
    splits = check_common(args)
    if splits is None:
        return None
    set_threads(args.threads)
    return args, splits


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, for the weights' provenance."""
    return ("affectlab train-demo " + shlex.join(argv)).strip()


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_threads(threads: int) -> None:
    """One torch thread by default: OpenMP spin-waits crawl when another process holds a core."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


def write_figures(out: Path, figures: dict[str, Any]) -> Path:
    """The JSON of figures beside the weights (the card's tables come from it)."""
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(figures, indent=2, default=json_default) + "\n")
    return json_path


def json_default(obj: Any) -> Any:
    """``json.dumps``' ``default`` for the figures demo runs write (arrays, numpy scalars, paths)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


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
    p.add_argument("--dropout", type=float, default=TrainConfig.dropout)
    return p


def evaluate_split(model, data: WindowSet) -> dict[str, Any]:
    """All inputs, and the subsets that happen live when a device is absent."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """``affectlab train-demo [--model M] ...``: hand the arguments to M's trainer."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", choices=tuple(DEMO_TRAINERS), default="concat-fusion")
    known, _ = pre.parse_known_args(argv)
    if known.model != "concat-fusion":
        return importlib.import_module(DEMO_TRAINERS[known.model]).main(argv)
    return train_concat_fusion(argv)


def train_concat_fusion(argv: list[str]) -> int:
    parsed = start(build_parser(), argv)
    if parsed is None:
        return 2
    args, splits = parsed
    import torch

    from models.baselines import count_parameters
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
    model, history = train_model(train, val, inputs, cfg, progress=not args.no_progress)
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
        "torch": torch.__version__,
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
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    say(
        f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and {json_path}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
