"""Evaluate trained checkpoints the way the papers report them: tables (CSV, Markdown) and plots.

    affectlab evaluate CHECKPOINT [CHECKPOINT ...] --data KIND:PATH --out DIR
                       [--missing-rates 0:0.4:0.05] [--seeds 5] [--passes 1]
    python -m app.evaluate ...

CHECKPOINT is a run folder of ``affectlab train`` (every fold's test split is
evaluated and the figures averaged over folds), one fold's folder, or one
``.safetensors`` file (with its ``.json`` beside it; without a recorded split
every window of --data is used). Several checkpoints give one row each in
every table, so baselines and published models compare on the same windows
and, for the missing-rate sweep, under the same missing-modality masks.

DEAP / DREAMER: ``metrics`` (per dimension CCC, PCC, MAE, RMSE, high/low ACC
and F1), ``missing_rate`` (CCC against r, mean and std over seeds) and
``missing_rate_summary`` (CCC at the ends, drop, slope), plots
``missing_rate.png``, ``confusion_<model>.png`` (high/low per dimension),
``trajectories_<model>.png``; with ``--modality-ablation`` also
``modality_ablation`` (CCC with each modality removed and each alone, and the
fall over the sweep that those drops predict). SEE: ``lighting`` (WAR, UAR per
lighting condition), ``confusion_<model>.png``. Everything also goes to ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.arguments import threads
from app.outputs import unwritable
from models.progress import progress_bar


@dataclass
class Checkpoint:
    """One evaluated model: its fold checkpoints (weights paths) and what they record."""

    label: str
    model: str
    paths: list[Path]
    infos: list[dict[str, Any]] = field(default_factory=list)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="affectlab evaluate",
        description="Write the papers' evaluation tables and plots for trained checkpoints.",
    )
    p.add_argument(
        "checkpoints",
        nargs="+",
        type=Path,
        metavar="CHECKPOINT",
        help="run folder, fold folder or .safetensors file (several: one row each)",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="KIND:PATH",
        help="the data set the checkpoints were trained on",
    )
    p.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="where tables and plots go"
    )
    p.add_argument(
        "--missing-rates",
        default="0:0.4:0.05",
        metavar="A:B:STEP",
        help="missing-rate sweep, stop included, or a comma list (default 0:0.4:0.05)",
    )
    p.add_argument(
        "--seeds", type=int, default=5, metavar="N", help="mask seeds per missing rate (default 5)"
    )
    p.add_argument(
        "--passes",
        type=int,
        default=1,
        metavar="N",
        help="see: average N randomly sampled clips per sequence (released test: 20; default 1, centred)",
    )
    p.add_argument(
        "--modality-ablation",
        action="store_true",
        help="deap/dreamer: also test with each modality removed and each alone",
    )
    p.add_argument("--labels", default=None, metavar="A,B", help="row labels, one per CHECKPOINT")
    p.add_argument(
        "--trajectories", type=int, default=4, metavar="N", help="trials in the trajectory plot"
    )
    p.add_argument("--threads", type=threads, default=None, metavar="T", help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p  # fmt: skip


def fold_paths(path: Path) -> list[Path]:
    """The weights files a CHECKPOINT argument stands for."""
    from models.datasets import UsageError

    if path.is_file():
        return [path.with_suffix(".safetensors") if path.suffix == ".json" else path]
    if not path.exists():
        raise UsageError(f"{path}: no such checkpoint file or folder")
    if (path / "model.safetensors").is_file():
        return [path / "model.safetensors"]
    found = sorted(
        p / "model.safetensors" for p in path.iterdir() if (p / "model.safetensors").is_file()
    )
    if not found:
        raise UsageError(f"{path}: no model.safetensors in it or in its fold folders")
    return found


def _label(info: dict[str, Any]) -> str:
    cfg = info.get("config", {})
    label = info["model"]
    if isinstance(cfg, dict) and cfg.get("frames_only"):
        label += " (frames only)"
    return label


def _missing_folds(run: dict[str, Any], folder: Path) -> list[str] | None:
    """The folds of an unfinished run with no weights in ``folder``; None when its run.json
    (older than ``fold_names``, not k-fold) does not say which folds the protocol has."""
    names = run.get("fold_names")
    if names is None and run.get("protocol") == "kfold" and isinstance(run.get("folds"), int):
        names = [f"fold_{k:02d}" for k in range(run["folds"])]
    if names is None:
        return None
    return [n for n in names if not (folder / n / "model.safetensors").is_file()]


def warn_unfinished(path: Path) -> None:
    """One warning line for a run folder whose run.json says it is not finished: its figures
    average over the folds trained so far, which is easy to mistake for the whole protocol."""
    try:
        run = json.loads((path / "run.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # not a run folder, or one without a readable run.json: nothing to say
    if not isinstance(run, dict) or run.get("finished", True):
        return
    missing = _missing_folds(run, path)
    if missing == []:
        return  # every fold's weights are there (run.json was not rewritten after the last)
    which = f"folds not trained: {', '.join(missing)}" if missing else "some folds not trained"
    print(
        f"affectlab evaluate: warning: {path} is an unfinished run ({which}); "
        "its figures cover the trained folds only",
        file=sys.stderr,
    )


def resolve(paths: list[Path], labels: str | None) -> list[Checkpoint]:
    from models.checkpoint import read_info
    from models.datasets import UsageError

    names = [s.strip() for s in labels.split(",")] if labels else None
    if names is not None and len(names) != len(paths):
        raise UsageError(f"--labels has {len(names)} names for {len(paths)} checkpoints")
    out: list[Checkpoint] = []
    for i, p in enumerate(paths):
        files = fold_paths(p)
        if p.is_dir():
            warn_unfinished(p)
        infos = [read_info(f) for f in files]
        models = {x["model"] for x in infos}
        if len(models) != 1:
            raise UsageError(f"{p}: folds of different models {sorted(models)}")
        label = names[i] if names else _label(infos[0])
        out.append(Checkpoint(label, infos[0]["model"], files, infos))
    seen: dict[str, int] = {}
    for c in out:  # unique file names: they come from the labels' slugs
        slug = _slug(c.label)
        seen[slug] = seen.get(slug, 0) + 1
        if seen[slug] > 1:
            c.label = f"{c.label} #{seen[slug]}"
    return out


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_").lower()


def _split(cks: list[Checkpoint]) -> str:
    """What the tables were computed on, for their titles."""
    if all((info.get("fold") or {}).get("test_keys") for ck in cks for info in ck.infos):
        return "test folds"
    return "every window of --data: no recorded test split"


def _warn_no_split(path: Path, windows: str) -> None:
    print(
        f"affectlab evaluate: {path} has no recorded test split (no model.json beside it): "
        f"every window of --data is scored, {windows}",
        file=sys.stderr,
    )


# --------------------------------------------------------------------------- signals
def evaluate_signals(
    cks: list[Checkpoint],
    ref: Any,
    rates: list[float],
    seeds: int,
    out: Path,
    n_traj: int,
    quiet: bool,
    ablate: bool = False,
) -> dict[str, Any]:

    from models.ablation import modality_ablation
    from models.checkpoint import load_checkpoint
    from models.datasets import UsageError, load_signals
    from models.evaluation import (
        binary_confusions,
        fold_mean,
        plot_confusions,
        plot_missing_rate,
        plot_trajectories,
        regression_metrics,
        rows_from_nested,
        summarise_curve,
        write_table,
    )
    from models.tasks import mean_ccc, predict_signals

    loaded: dict[tuple[float, float], Any] = {}
    summary: dict[str, Any] = {"rates": rates, "seeds": seeds, "models": {}}
    metric_rows, curve_rows, curve_summary, ablation_rows = [], [], [], []
    curves: dict[str, tuple[list[float], np.ndarray]] = {}
    total = sum(len(c.paths) for c in cks) * (1 + sum(seeds for r in rates if r > 0))
    bar = progress_bar(total=total, desc="evaluate", enabled=not quiet, unit="pass")
    names: tuple[str, ...] = ()
    for ck in cks:
        per_fold, values = [], np.zeros((len(rates), seeds))
        pooled_y, pooled_p, pooled_prob = [], [], []
        traj: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        ablations: list[dict[str, list[float]]] = []
        data = None
        for path, info in zip(ck.paths, ck.infos, strict=True):
            d = info.get("data", {})
            kind = d.get("kind")
            if kind is not None and kind != ref.kind:
                raise UsageError(f"{path}: trained on {kind} data, evaluated on {ref.kind}")
            key = (float(d.get("window_s", 4.0)), float(d.get("hop_s", 2.0)))
            if key not in loaded:
                loaded[key] = load_signals(ref, *key)
            data = loaded[key]
            names = data.label_names
            model, _ = load_checkpoint(path)
            fold = info.get("fold") or {}
            keys = fold.get("test_keys")
            if not keys:
                _warn_no_split(path, f"{key[0]:g} s windows every {key[1]:g} s")
            idx = data.select(keys) if keys else np.arange(len(data))
            if idx.size == 0:
                raise UsageError(f"{path}: its test trials (subject, trial) are not in {ref}")
            y = data.y[idx]
            try:
                reg, prob = predict_signals(model, data, idx)
            except ValueError as exc:  # windows of another length than it was trained on
                raise UsageError(
                    f"{path}: cannot take {key[0]:g} s windows of {ref}: {exc}"
                ) from exc
            bar.update(1)
            if ablate:
                ablations.append(modality_ablation(model, data, idx, progress=bar))
            per_fold.append(regression_metrics(y, reg, names, data.threshold, prob))
            pooled_y.append(y)
            pooled_p.append(reg)
            pooled_prob.append(prob)
            for ri, r in enumerate(rates):
                for s in range(seeds):
                    if r == 0:
                        values[ri, s] += mean_ccc(y, reg)
                        continue
                    mask_seed = 1_000_003 * (s + 1) + 7919 * ri + int(fold.get("index", 0))
                    pr, _ = predict_signals(model, data, idx, r, mask_seed)
                    values[ri, s] += mean_ccc(y, pr)
                    bar.update(1)
            if len(traj) < n_traj:
                subj, trial = data.windows.subject[idx], data.windows.trial[idx]
                for st in sorted({(int(a), int(b)) for a, b in zip(subj, trial, strict=True)}):
                    if len(traj) >= n_traj:
                        break
                    sel = np.flatnonzero((subj == st[0]) & (trial == st[1]))
                    order = np.argsort(data.windows.start_s[idx][sel])
                    sel = sel[order]
                    traj.append(
                        (f"s{st[0]} t{st[1]}", data.windows.start_s[idx][sel], y[sel], reg[sel])
                    )
        assert data is not None
        values /= len(ck.paths)
        agg = fold_mean(per_fold)
        metric_rows += [
            {**r, "folds": len(ck.paths)} for r in rows_from_nested(ck.label, agg, [*names, "mean"])
        ]
        curves[ck.label] = (rates, values)
        for ri, r in enumerate(rates):
            row = {"model": ck.label, "rate": r, "ccc_mean": float(values[ri].mean()),
                   "ccc_std": float(values[ri].std(ddof=1)) if seeds > 1 else 0.0, "seeds": seeds}  # fmt: skip
            curve_rows.append(row)
        cs = {"model": ck.label, **summarise_curve(rates, values)}
        curve_summary.append(cs)
        if ablations:
            span = max(rates) - min(rates)
            ablation_rows += _ablation_rows(ck.label, ablations, names, span, cs["drop"])
        y_all, p_all = np.concatenate(pooled_y), np.concatenate(pooled_p)
        prob_all = None if pooled_prob[0] is None else np.concatenate(pooled_prob)
        cms = binary_confusions(y_all, p_all, names, data.threshold, prob_all)
        plot_confusions({f"{n} (high/low)": cm for n, cm in cms.items()}, ("low", "high"),
                        out / f"confusion_{_slug(ck.label)}.png", f"{ck.label}: high/low, pooled over folds")  # fmt: skip
        if traj:
            plot_trajectories(traj, names, out / f"trajectories_{_slug(ck.label)}.png", data.output_range,
                              f"{ck.label}: predicted vs true ratings (test trials)")  # fmt: skip
        summary["models"][ck.label] = {
            "model": ck.model, "checkpoints": [str(p) for p in ck.paths], "metrics": agg,
            "per_fold": per_fold, "missing_rate": values.tolist(), "missing_rate_summary": cs,
            "binary_confusion": {n: cm.tolist() for n, cm in cms.items()},
        }  # fmt: skip
    bar.close()
    cols = ["model", "dimension", "ccc", "ccc_std", "pcc", "mae", "rmse", "acc", "f1", "folds"]
    write_table(metric_rows, out / "metrics", f"Regression and high/low metrics ({_split(cks)}, mean over folds)",
                "CCC / PCC / MAE / RMSE on the rating scale; ACC / F1: rating above the scale's midpoint "
                "(F1 of 'high'); ccc_std over folds.", cols)  # fmt: skip
    write_table(curve_rows, out / "missing_rate", "CCC (mean over dimensions) against missing rate",
                f"Each modality of each test window dropped with probability r (at least one kept); "
                f"mean and std over {seeds} mask seeds of the fold-averaged CCC; same masks for every model.",
                ["model", "rate", "ccc_mean", "ccc_std", "seeds"])  # fmt: skip
    write_table(curve_summary, out / "missing_rate_summary", "How fast CCC falls with the missing rate",
                "ccc_first / ccc_last: at the lowest / highest rate; drop = first - last; "
                "relative_drop = drop / ccc_first, n/a (empty in the CSV, null in summary.json) "
                "where the CCC at the lowest rate is <= 0; "
                "slope: least-squares CCC change per 0.1 of missing rate.",
                ["model", "ccc_first", "ccc_last", "drop", "relative_drop", "slope_per_0.1"])  # fmt: skip
    if ablation_rows:
        write_table(ablation_rows, out / "modality_ablation", "CCC with each modality removed, and each alone",
                    f"{_split(cks).capitalize()}, fold mean; change: against all modalities present. predicted_drop (all row): "
                    f"{max(rates) - min(rates):g} (the sweep's span of rates) x the sum of the 'without' "
                    f"drops, the first-order fall over the sweep; measured_drop: the curve's drop.",
                    ["model", "condition", *names, "mean", "change", "predicted_drop", "measured_drop"])  # fmt: skip
        summary["modality_ablation"] = ablation_rows
    plot_missing_rate(curves, out / "missing_rate.png", f"CCC against missing rate ({ref.kind})")
    return summary


def _ablation_rows(
    label: str,
    per_fold: list[dict[str, list[float]]],
    names: tuple[str, ...],
    rate: float,
    measured_drop: float,
) -> list[dict[str, Any]]:
    """Fold-mean ablation table rows of one model; the ``all`` row carries the predicted fall."""
    from models.ablation import ALL, first_order_drop

    mean = {k: np.mean([f[k] for f in per_fold], axis=0).tolist() for k in per_fold[0]}
    rows = []
    for cond, vals in mean.items():
        row: dict[str, Any] = {
            "model": label,
            "condition": cond,
            **dict(zip(names, vals, strict=False)),
        }
        row["mean"] = vals[-1]
        row["change"] = vals[-1] - mean[ALL][-1]
        row["predicted_drop"] = first_order_drop(mean, rate) if cond == ALL else ""
        row["measured_drop"] = measured_drop if cond == ALL else ""
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- SEE
def evaluate_see(
    cks: list[Checkpoint], ref: Any, passes: int, out: Path, quiet: bool
) -> dict[str, Any]:

    from models.checkpoint import load_checkpoint
    from models.datasets import UsageError, load_see
    from models.evaluation import classification_metrics, plot_confusions, write_table
    from models.tasks import predict_see

    summary: dict[str, Any] = {"passes": passes, "models": {}}
    loaded: dict[tuple[Any, ...], Any] = {}
    rows = []
    bar = progress_bar(
        total=sum(len(c.paths) for c in cks), desc="evaluate", enabled=not quiet, unit="fold"
    )
    for ck in cks:
        ys, ps, gs = [], [], []
        data = None
        for path, info in zip(ck.paths, ck.infos, strict=True):
            kind = info.get("data", {}).get("kind")
            if kind is not None and kind != "see":
                raise UsageError(f"{path}: trained on {kind} data, evaluated on see")
            model, _ = load_checkpoint(path)
            cfg = model.config
            key = (cfg.frame_channels, tuple(cfg.image_size), cfg.frames, cfg.frame_stride)
            if key not in loaded:
                loaded[key] = load_see(ref, *key)
            data = loaded[key]
            keys = (info.get("fold") or {}).get("test_keys")
            if not keys:
                _warn_no_split(path, "its own frames per sequence")
            idx = data.select(keys) if keys else np.arange(len(data))
            if idx.size == 0:
                raise UsageError(f"{path}: its test sequences are not in {ref}")
            probs = predict_see(model, data, idx, passes)
            ys.append(data.labels[idx])
            ps.append(probs.argmax(1))
            gs.append(data.lightings[idx])
            bar.update(1)
        assert data is not None
        classes = data.class_names
        res = classification_metrics(
            np.concatenate(ys), np.concatenate(ps), np.concatenate(gs), len(classes)
        )
        for g, m in res["groups"].items():
            rows.append(
                {
                    "model": ck.label,
                    "lighting": g,
                    "n": int(m["n"]),
                    "war": m["war"],
                    "uar": m["uar"],
                }
            )
        plot_confusions({ck.label: res["confusion"]}, classes, out / f"confusion_{_slug(ck.label)}.png",
                        "expressions, pooled over test folds")  # fmt: skip
        summary["models"][ck.label] = {
            "model": ck.model, "checkpoints": [str(p) for p in ck.paths],
            "lighting": res["groups"], "confusion": res["confusion"].tolist(), "classes": list(classes),
        }  # fmt: skip
    bar.close()
    write_table(rows, out / "lighting", f"WAR and UAR per lighting condition ({_split(cks)})",
                "WAR = accuracy (support-weighted recall), UAR = mean per-class recall; "
                f"pooled over {_split(cks)} (each sequence is tested once).",
                ["model", "lighting", "n", "war", "uar"])  # fmt: skip
    return summary


# --------------------------------------------------------------------------- main
def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float as None: JSON has no NaN, and strict readers
    (jq, JavaScript, most non-Python parsers) refuse the bare ``NaN`` Python writes."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """``doc`` as strict JSON: figures that do not exist are null."""
    path.write_text(json.dumps(_finite(doc), indent=2, sort_keys=True, allow_nan=False))


def run(args: argparse.Namespace) -> int:
    from models.datasets import UsageError, parse_data_ref
    from models.evaluation import parse_rates

    ref = parse_data_ref(args.data)
    try:
        rates = parse_rates(args.missing_rates)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.seeds < 1 or args.passes < 1:
        raise UsageError("--seeds and --passes must be >= 1")
    if args.modality_ablation and ref.kind == "see":
        raise UsageError(
            "--modality-ablation applies to deap and dreamer (SEE models take one eye stream)"
        )
    cks = resolve(args.checkpoints, args.labels)
    from models.zoo import data_kinds

    for ck in cks:
        if ref.kind not in data_kinds(ck.model):
            raise UsageError(f"{ck.paths[0]}: {ck.model} is evaluated on {' or '.join(data_kinds(ck.model))}, "
                             f"not {ref.kind}")  # fmt: skip
    if args.threads:
        from models.training import set_threads

        set_threads(args.threads)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a file; name a folder for the tables and plots")
    if why := unwritable(args.out / "summary.json"):
        raise UsageError(f"--out {args.out}: {why}")
    args.out.mkdir(parents=True, exist_ok=True)
    if ref.kind == "see":
        summary = evaluate_see(cks, ref, args.passes, args.out, args.quiet)
    else:
        summary = evaluate_signals(
            cks, ref, rates, args.seeds, args.out, args.trajectories, args.quiet,
            args.modality_ablation,
        )  # fmt: skip
    summary["data"] = str(ref)
    write_json(args.out / "summary.json", summary)
    for md in sorted(args.out.glob("*.md")):
        if not args.quiet:
            print(md.read_text())
    print(f"wrote tables and plots to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pickle import UnpicklingError

    from models.data.windows import DataSetError
    from models.datasets import UsageError

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (UsageError, DataSetError, ValueError, UnpicklingError) as exc:
        # ValueError: missing rates or data the checkpoints cannot take (a bare file
        # trained on other inputs)
        print(f"affectlab evaluate: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
