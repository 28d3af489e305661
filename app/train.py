"""Train a published model or a baseline on DEAP, DREAMER or SEE, with the papers' protocols.

    affectlab train MODEL --data KIND:PATH --out DIR [--protocol kfold|loso|holdout]
                    [--folds 10] [--epochs N] [--missing-rate R] [--seed S] [--resume] ...
    python -m app.train ...

MODEL: a name of the registry ``models.zoo.ZOO`` (``--help`` lists them; ``see_models()``
train on SEE, ``signal_models()`` on DEAP and DREAMER). Default protocol: kfold (10 folds,
subject-dependent) for DEAP / DREAMER, holdout (SEE's own training / testing
split) for SEE.

Output::

    DIR/run.json                    what was asked, and the test metrics of every fold
    DIR/<fold>/model.safetensors    best weights (safetensors) ...
    DIR/<fold>/model.json           ... and config, data, protocol, fold, seed, recipe, metrics
    DIR/<fold>/last.safetensors     resumable state (weights, EMA, optimiser), state.json beside
    DIR/<fold>/members/<name>/      ensemble members, each a full run of its own

Ctrl-C (or ``--stop-after N``) leaves every finished epoch on disk; run the
same command with ``--resume`` to continue where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.arguments import positive_float, positive_int, threads
from app.outputs import unwritable
from app.train_run import check_same_run, headline, write_run

DEFAULT_PROTOCOL = {"deap": "kfold", "dreamer": "kfold", "see": "holdout"}


def build_parser() -> argparse.ArgumentParser:
    from models.zoo import DEFAULT_MEMBERS, model_names, see_models, signal_models

    p = argparse.ArgumentParser(
        prog="affectlab train",
        description="Train a model on DEAP, DREAMER or SEE files with the papers' protocols.",
    )
    p.add_argument("model", metavar="MODEL", help=f"one of {', '.join(model_names())}")
    p.add_argument(
        "--data",
        required=True,
        metavar="KIND:PATH",
        help="deap:FOLDER, dreamer:DREAMER.mat or see:FOLDER",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    p.add_argument(
        "--protocol",
        choices=("kfold", "loso", "holdout"),
        default=None,
        help="default: kfold for deap/dreamer, holdout (the official split) for see",
    )
    p.add_argument("--folds", type=int, default=10, metavar="K", help="k of kfold (default 10)")
    p.add_argument(
        "--fold",
        type=int,
        default=None,
        metavar="I",
        help="train only fold I (0-based) of the protocol",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help="maximum epochs (default: the recipe's)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        metavar="P",
        help="early stopping: epochs without a better validation score (default: the recipe's)",
    )
    p.add_argument(
        "--batch-size", type=int, default=None, metavar="B", help="default: the recipe's"
    )
    p.add_argument(
        "--lr", type=positive_float, default=None, help="learning rate (default: the recipe's)"
    )
    p.add_argument(
        "--weight-decay", type=float, default=None, metavar="WD", help="default: the recipe's"
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=None,
        metavar="D",
        help="keep an exponential moving average of the weights (e.g. 0.998; 0 = off; "
        "default: the recipe's)",
    )
    p.add_argument(
        "--missing-rate",
        type=float,
        default=0.0,
        metavar="R",
        help=f"{', '.join(signal_models())}: drop each modality of each "
        "window with probability R in training and validation (default 0)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default 0)")
    p.add_argument(
        "--max-subjects",
        type=positive_int,
        default=None,
        metavar="N",
        help="use the first N subjects only",
    )
    p.add_argument(
        "--window-s", type=float, default=4.0, metavar="S", help="deap/dreamer window (default 4)"
    )
    p.add_argument(
        "--hop-s", type=float, default=2.0, metavar="S", help="deap/dreamer hop (default 2)"
    )
    p.add_argument(
        "--members",
        default=None,
        metavar="A,B",
        help=f"ensemble: member models, among {', '.join(member_models())} "
        f"(default {','.join(DEFAULT_MEMBERS)})",
    )
    p.add_argument(
        "--frames-only",
        action="store_true",
        help=f"{', '.join(see_models())}: the frames-only ablation",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model config field (VALUE as JSON, e.g. d_model=32); repeatable",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument(
        "--stop-after",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop (resumably) after N epochs of this invocation",
    )
    p.add_argument("--threads", type=threads, default=None, metavar="T", help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    return p  # fmt: skip


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as a dict; VALUE is read as JSON where it parses (so
    ``d_model=32`` is an int and ``fusion=attention-concat`` stays a string)."""
    from models.datasets import UsageError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# --------------------------------------------------------------------------- one fold
def _test_metrics(model: Any, fold: Any, data: Any) -> dict[str, Any]:
    """Test-split figures at missing rate 0, as written into model.json."""
    from models.datasets import SignalData
    from models.evaluation import classification_metrics, regression_metrics
    from models.tasks import predict_see, predict_signals

    idx = fold.test
    if isinstance(data, SignalData):
        reg, prob = predict_signals(model, data, idx)
        return regression_metrics(data.y[idx], reg, data.label_names, data.threshold, prob)
    probs = predict_see(model, data, idx)
    res = classification_metrics(
        data.labels[idx], probs.argmax(1), data.lightings[idx], len(data.class_names)
    )
    return {"lighting": res["groups"], "confusion": res["confusion"].tolist()}


def _train_one(
    name: str, config: dict[str, Any], data: Any, fold: Any, recipe: Any, args: argparse.Namespace,
    out: Path, seed: int, fingerprint: dict[str, Any], desc: str,
) -> tuple[Any, Any] | None:  # fmt: skip
    """Build under ``seed``, train, return (model, result), or None if stopped before the end."""
    from models.datasets import SignalData
    from models.tasks import SeeTask, SignalTask
    from models.training import check_resume, fit, seed_everything
    from models.zoo import build_model

    fingerprint = {**fingerprint, "model": name, "config": config}
    if args.resume:
        check_resume(out, seed, recipe.to_dict(), fingerprint)
    seed_everything(seed)
    model = build_model(name, config)
    if isinstance(data, SignalData):
        task: Any = SignalTask(name, data, fold, recipe, args.missing_rate)
    else:
        task = SeeTask(data, fold, recipe, len(data.class_names))
    result = fit(
        model, task, recipe, out, seed, resume=args.resume, stop_after=args.stop_after,
        progress=not args.quiet, log=None if args.quiet else print,
        fingerprint=fingerprint, desc=desc,
    )  # fmt: skip
    if not result.finished:
        return None
    return model, result


def train_fold(
    args: argparse.Namespace, data: Any, fold: Any, base: dict[str, Any]
) -> dict[str, Any] | None:
    """Train (or resume) one fold and write its checkpoint; None if stopped early by request."""
    from models.checkpoint import save_checkpoint
    from models.ensemble import Ensemble, validation_weights
    from models.tasks import SignalTask
    from models.zoo import default_config, recipe_of

    name = args.model
    fdir = args.out / fold.name
    fdir.mkdir(parents=True, exist_ok=True)
    overrides = overrides_of(args)
    fingerprint = {k: base[k] for k in ("data", "protocol", "folds", "missing_rate")}
    fingerprint["fold"] = fold.name
    info: dict[str, Any] = {**base, "fold": fold.describe()}
    t0 = time.perf_counter()
    if name != "ensemble":
        recipe = _recipe(recipe_of(name), args)
        config = default_config(name, data, overrides)
        done = _train_one(
            name,
            config,
            data,
            fold,
            recipe,
            args,
            fdir,
            args.seed,
            fingerprint,
            f"{name} {fold.name}",
        )
        if done is None:
            return None
        model, result = done
        info.update(recipe=recipe.to_dict(), training=result.to_dict(),
                    metrics={"val": result.best_metrics})  # fmt: skip
    else:
        members = _members(args.members)
        trained, entries = [], []
        for i, m in enumerate(members):
            recipe = _recipe(recipe_of(m), args)
            config = default_config(m, data, overrides)
            mdir = fdir / "members" / m
            done = _train_one(m, config, data, fold, recipe, args, mdir, args.seed + 1000 * (i + 1),
                              fingerprint, f"ensemble/{m} {fold.name}")  # fmt: skip
            if done is None:
                return None
            model_m, res = done
            trained.append(model_m)
            entries.append({"model": m, "name": m, "config": config, "val_score": res.best_score,
                            "recipe": recipe.to_dict(), "epochs_run": res.epochs_run})  # fmt: skip
        weights = validation_weights([e["val_score"] for e in entries])
        for e, w in zip(entries, weights, strict=True):
            e["weight"] = w
        config = {
            "members": [
                {k: e[k] for k in ("model", "name", "config", "weight", "val_score")}
                for e in entries
            ],
            "output_range": list(data.output_range),
        }
        model = Ensemble(trained, weights, [e["name"] for e in entries], data.output_range).eval()
        val = SignalTask(
            "ensemble", data, fold, _recipe(recipe_of(members[0]), args), args.missing_rate
        )
        info.update(members=entries, metrics={"val": val.validate(model)},
                    training={"seconds": time.perf_counter() - t0})  # fmt: skip
    info["metrics"]["test"] = _test_metrics(model, fold, data)
    info["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    save_checkpoint(fdir / "model.safetensors", name, model, config, info)
    return info


def _recipe(recipe: Any, args: argparse.Namespace) -> Any:
    return recipe.with_(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        weight_decay=args.weight_decay,
        ema_decay=args.ema_decay,
    )


def member_models() -> list[str]:
    """The models an ensemble can hold: every signal model of the zoo but the ensemble, read
    from ``models.zoo`` each time so help and errors follow the registry."""
    from models.zoo import signal_models

    return [m for m in signal_models() if m != "ensemble"]


def _members(text: str | None) -> list[str]:
    from models.datasets import UsageError
    from models.zoo import DEFAULT_MEMBERS

    members = [m.strip() for m in text.split(",") if m.strip()] if text else list(DEFAULT_MEMBERS)
    allowed = member_models()
    if not members or any(m not in allowed for m in members):
        raise UsageError(f"--members {text!r}: members must be among {', '.join(allowed)}")
    if len(set(members)) != len(members):
        raise UsageError(f"--members {text!r}: a member is listed twice")
    return members


# --------------------------------------------------------------------------- the run
def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides of the command line: ``--set`` items and ``--frames-only``."""
    overrides = parse_overrides(args.set)
    if args.frames_only:
        overrides["frames_only"] = True
    return overrides


def check_set(args: argparse.Namespace, kind: str) -> None:
    """Refuse ``--set`` items the model (or an ensemble member) cannot take, before any data
    is read: unknown fields, values of the wrong kind or out of range, fields the data fixes."""
    from models.zoo import check_overrides

    overrides = overrides_of(args)
    models = _members(args.members) if args.model == "ensemble" else [args.model]
    for model in models:
        check_overrides(model, kind, overrides, args.window_s)


def load_data(ref: Any, model: str, args: argparse.Namespace) -> Any:
    from models.datasets import load_see, load_signals
    from models.mco_e_net import MCOENetConfig
    from models.zoo import default_config

    if ref.kind == "see":
        cfg = MCOENetConfig.from_json(json.dumps(default_config(model, None, overrides_of(args))))
        return load_see(
            ref, cfg.frame_channels, cfg.image_size, cfg.frames, cfg.frame_stride, args.max_subjects
        )
    return load_signals(ref, args.window_s, args.hop_s, args.max_subjects)


def run(args: argparse.Namespace) -> int:
    from models.datasets import UsageError, make_folds, parse_data_ref
    from models.zoo import check_model, recipe_of, see_models, signal_models

    check_model(args.model)
    ref = parse_data_ref(args.data)
    check_model(args.model, ref.kind)
    if args.missing_rate and args.model not in signal_models():
        raise UsageError(
            f"--missing-rate applies to {', '.join(signal_models())}, not {args.model}"
        )
    if not 0.0 <= args.missing_rate < 1.0:
        raise UsageError(f"--missing-rate {args.missing_rate}: must lie in [0, 1)")
    if args.frames_only and args.model not in see_models():
        raise UsageError(f"--frames-only applies to {' and '.join(see_models())}")
    if args.members and args.model != "ensemble":
        raise UsageError("--members applies to the ensemble only")
    for flag in ("epochs", "batch_size", "folds", "patience"):
        v = getattr(args, flag)
        if v is not None and v < (2 if flag == "folds" else 1):
            raise UsageError(f"--{flag.replace('_', '-')} {v}: too small")
    if args.weight_decay is not None and args.weight_decay < 0:
        raise UsageError(f"--weight-decay {args.weight_decay}: must be >= 0")
    if args.ema_decay is not None and not 0.0 <= args.ema_decay < 1.0:
        raise UsageError(f"--ema-decay {args.ema_decay}: must lie in [0, 1)")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a file; name a folder for the run")
    if why := unwritable(args.out / "run.json"):
        raise UsageError(f"--out {args.out}: {why}")
    if args.out.exists() and not args.resume and any(p.is_file() for p in args.out.rglob("*")):
        raise UsageError(
            f"{args.out}: exists and is not empty; pass --resume to continue it or choose another --out"
        )
    if args.threads:
        from models.training import set_threads

        set_threads(args.threads)
    check_set(args, ref.kind)
    protocol = args.protocol or DEFAULT_PROTOCOL[ref.kind]
    check_same_run(args.out, run_settings(args, ref, protocol))
    data = load_data(ref, args.model, args)
    folds = make_folds(data, protocol, args.folds, args.seed)
    every_fold = [f.name for f in folds]
    if args.fold is not None:
        if not 0 <= args.fold < len(folds):
            raise UsageError(f"--fold {args.fold}: the protocol has folds 0..{len(folds) - 1}")
        folds = [folds[args.fold]]
    for m in _members(args.members) if args.model == "ensemble" else [args.model]:
        _recipe(recipe_of(m), args)
    for fold in folds:
        check_fold_writable(args, args.out / fold.name)
    fresh = not args.out.exists()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        return _run_folds(args, ref, data, protocol, folds, every_fold)
    except BaseException:
        if fresh:  # a run that failed before writing anything leaves no folders behind
            _remove_empty_folders(args.out)
        raise


def run_settings(args: argparse.Namespace, ref: Any, protocol: str) -> dict[str, Any]:
    """What decides a run's split and its models, as written into ``run.json``: every fold of
    one run must share them, or its mean over folds mixes different experiments."""
    from models.zoo import recipe_of

    models = _members(args.members) if args.model == "ensemble" else [args.model]
    settings = {
        "model": args.model,
        "data": {"kind": ref.kind, "path": str(ref.path.resolve()), "window_s": args.window_s,
                 "hop_s": args.hop_s, "max_subjects": args.max_subjects},
        "protocol": protocol,
        "folds": args.folds if protocol == "kfold" else None,
        "seed": args.seed,
        "missing_rate": args.missing_rate,
        "overrides": overrides_of(args),
        "members": models if args.model == "ensemble" else None,
        "recipes": {m: _recipe(recipe_of(m), args).to_dict() for m in models},
    }  # fmt: skip
    return json.loads(json.dumps(settings))  # as read back from run.json


def check_fold_writable(args: argparse.Namespace, fdir: Path) -> None:
    """Refuse a fold folder (or an ensemble member's) that cannot take its files, before any
    fold is trained: a writable --out can hold a read-only fold folder, which failed only
    when the first epoch's weights were saved, with a safetensors traceback."""
    from models.datasets import UsageError

    folders = [fdir]
    if args.model == "ensemble":
        folders += [fdir / "members" / m for m in _members(args.members)]
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: is a file, where the run keeps a fold; remove it")
        if why := unwritable(folder / "model.safetensors"):
            raise UsageError(f"{folder}: {why}; make it writable or choose another --out")


def _remove_empty_folders(top: Path) -> None:
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(top.iterdir()):
        top.rmdir()


def _run_folds(
    args: argparse.Namespace, ref: Any, data: Any, protocol: str, folds: list[Any],
    every_fold: list[str],
) -> int:  # fmt: skip
    command = "affectlab train " + shlex.join(sys.argv[1:] if args.argv is None else args.argv)
    settings = {**run_settings(args, ref, protocol), "command": command}
    # what each fold's model.json records of the run
    base = {
        k: settings[k] for k in ("data", "protocol", "folds", "seed", "missing_rate", "command")
    }
    if not args.quiet:
        print(f"{args.model} on {ref}: {len(data)} {'windows' if ref.kind != 'see' else 'sequences'}, "
              f"protocol {protocol}, {len(folds)} fold(s)")  # fmt: skip
    for fold in folds:
        info = train_fold(args, data, fold, base)
        if info is None:
            print(f"stopped in {fold.name}; run again with --resume to continue")
            write_run(args.out, settings, every_fold)
            return 0
        write_run(args.out, settings, every_fold)  # the settings are on disk from fold one
        if not args.quiet:
            print(f"{fold.name}: test {headline(info['metrics']['test'])}")
    done, summary = write_run(args.out, settings, every_fold)
    print(f"{args.model}: {done} of {len(every_fold)} fold(s) in {args.out}; test {summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pickle import UnpicklingError

    from models.data.windows import DataSetError
    from models.datasets import UsageError
    from models.training import ResumeError

    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return run(args)
    except (UsageError, DataSetError, ResumeError, ValueError, UnpicklingError) as exc:
        # ValueError: data that cannot be cut as asked (a window longer than a trial, one
        # subject for leave-one-subject-out)
        print(f"affectlab train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\naffectlab train: interrupted; finished epochs are saved, --resume continues",
              file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
