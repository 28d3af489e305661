"""The papers' evaluation tables and plots, from predictions (no model code here).

Tables (CSV for machines, Markdown for reading):

- per dimension: CCC, PCC, MAE, RMSE on the rating scale, and ACC / F1 of
  high vs low (rating above the scale's midpoint), as Hi-MoE's tables 2-4;
- CCC against the missing rate (mean and std over seeds), as its figure 3;
- WAR and UAR per lighting condition, as the SEE / MCO-E Net tables.

Plots (PNG, matplotlib's Agg backend, no display needed): the missing-rate
curve, confusion matrices, predicted against true rating trajectories.

Conventions: fold metrics are computed per fold and averaged (the papers'
k-fold and LOSO figures are fold means), std is over folds; the missing-rate
curve's std is over seeds (of the fold-averaged CCC), sample std (ddof 1).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.metrics import (
    binary_f1,
    ccc,
    confusion_matrix,
    grouped_classification,
    mae,
    pearson,
    rmse,
)

REGRESSION_KEYS: tuple[str, ...] = ("ccc", "pcc", "mae", "rmse", "acc", "f1")


# --------------------------------------------------------------------------- metrics
def regression_metrics(
    y: np.ndarray,
    pred: np.ndarray,
    names: Sequence[str],
    threshold: float,
    prob: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Per dimension (and ``"mean"``): CCC, PCC, MAE, RMSE and binary ACC / F1.

    High/low truth is ``y > threshold``; the prediction is ``prob > 0.5`` when
    the model has high/low heads, else ``pred > threshold``.
    """
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    if y.shape != pred.shape or y.ndim != 2 or y.shape[1] != len(names):
        raise ValueError(f"y {y.shape} and pred {pred.shape} must be (N, {len(names)})")
    out: dict[str, dict[str, float]] = {}
    for d, name in enumerate(names):
        bt = (y[:, d] > threshold).astype(np.int64)
        bp = ((prob[:, d] > 0.5) if prob is not None else (pred[:, d] > threshold)).astype(np.int64)
        out[name] = {
            "ccc": ccc(y[:, d], pred[:, d]),
            "pcc": pearson(y[:, d], pred[:, d]),
            "mae": mae(y[:, d], pred[:, d]),
            "rmse": rmse(y[:, d], pred[:, d]),
            "acc": float(np.mean(bt == bp)),
            "f1": binary_f1(bt, bp),
        }
    out["mean"] = {k: float(np.mean([out[n][k] for n in names])) for k in REGRESSION_KEYS}
    return out


def binary_confusions(
    y: np.ndarray,
    pred: np.ndarray,
    names: Sequence[str],
    threshold: float,
    prob: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """2 x 2 high/low confusion matrix per dimension (rows truth, columns prediction; 0 low, 1 high)."""
    out = {}
    for d, name in enumerate(names):
        bt = (y[:, d] > threshold).astype(np.int64)
        bp = ((prob[:, d] > 0.5) if prob is not None else (pred[:, d] > threshold)).astype(np.int64)
        out[name] = confusion_matrix(bt, bp, 2)
    return out


def classification_metrics(
    labels: np.ndarray, pred: np.ndarray, groups: np.ndarray, n_classes: int
) -> dict[str, Any]:
    """WAR / UAR / n per group and overall (``"all"``), and the confusion matrix."""
    return {
        "groups": grouped_classification(labels, pred, groups, n_classes),
        "confusion": confusion_matrix(labels, pred, n_classes),
    }


def fold_mean(per_fold: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean and std (``<key>_std``, over folds, ddof 0) of nested ``{row: {metric: value}}``."""
    if not per_fold:
        raise ValueError("no folds to average")
    out: dict[str, dict[str, float]] = {}
    for row in per_fold[0]:
        out[row] = {}
        for k in per_fold[0][row]:
            vals = np.array([f[row][k] for f in per_fold], dtype=np.float64)
            out[row][k] = float(np.mean(vals))
            out[row][f"{k}_std"] = float(np.std(vals))
    return out


def summarise_curve(rates: Sequence[float], values: np.ndarray) -> dict[str, float | None]:
    """Level and fall of a CCC-vs-rate curve: ``values`` (rates, seeds) -> at 0, at max, drop, slope.

    ``slope`` is the least-squares slope of the seed-mean CCC per 0.1 of missing
    rate; ``relative_drop`` is the drop as a fraction of the CCC at the lowest rate,
    None (JSON null, an empty CSV cell, n/a in Markdown) when that CCC is <= 0: a fraction
    of it means nothing then, and a NaN would make summary.json invalid JSON.
    """
    r = np.asarray(rates, np.float64)
    m = np.asarray(values, np.float64).mean(axis=1)
    slope = float(np.polyfit(r, m, 1)[0] * 0.1) if len(r) > 1 else 0.0
    drop = float(m[0] - m[-1])
    return {
        "ccc_first": float(m[0]),
        "ccc_last": float(m[-1]),
        "drop": drop,
        "relative_drop": float(drop / m[0]) if m[0] > 0 else None,
        "slope_per_0.1": slope,
    }


#: the most missing rates one evaluation takes (each is a pass over the test set per seed)
MAX_RATES = 101


def parse_rates(text: str) -> list[float]:
    """``start:stop:step`` (stop included) or a comma list, each in [0, 1]; sorted and
    without repeats, since the summary reads the curve's ends as the lowest and highest
    rate and the plot joins the points in order."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"missing rates {text!r}: expected start:stop:step")
        start, stop, step = (float(p) for p in parts)
        if not all(math.isfinite(v) for v in (start, stop, step)):
            raise ValueError(f"missing rates {text!r}: each must lie in [0, 1]")
        if step <= 0 or stop < start:
            raise ValueError(f"missing rates {text!r}: need step > 0 and stop >= start")
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
        if n > MAX_RATES:
            raise ValueError(
                f"missing rates {text!r}: {n} rates; at most {MAX_RATES} (a larger step)"
            )
        rates = [round(start + i * step, 10) for i in range(n)]
    else:
        rates = [float(p) for p in text.split(",") if p.strip()]
    if not rates or any(not 0.0 <= r <= 1.0 for r in rates):
        raise ValueError(f"missing rates {text!r}: each must lie in [0, 1]")
    return sorted(set(rates))


# --------------------------------------------------------------------------- tables
def _csv_value(v: Any) -> Any:
    """Floats at full precision, numpy's as plain Python floats (numpy 2's repr of its own
    floats is ``np.float64(...)``, which no CSV reader parses)."""
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return v


def _fmt(v: Any, digits: int) -> str:
    if v is None:  # a figure that does not exist (the note under the table says why)
        return "n/a"
    if isinstance(v, float | np.floating):
        v = float(v)
        if math.isnan(v):
            return "nan"
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 4
) -> str:
    cols = list(columns or (rows[0].keys() if rows else []))
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, ""), digits) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    rows: Sequence[Mapping[str, Any]],
    stem: str | Path,
    title: str = "",
    note: str = "",
    columns: Sequence[str] | None = None,
    digits: int = 4,
) -> tuple[Path, Path]:
    """``stem.csv`` (full precision) and ``stem.md`` (rounded, with title and note)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    cols = list(columns or (rows[0].keys() if rows else []))
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: _csv_value(v) for c, v in r.items()})
    parts = [
        f"# {title}\n" if title else "",
        f"{note}\n" if note else "",
        markdown_table(rows, cols, digits),
    ]
    md_path.write_text("\n".join(p for p in parts if p))
    return csv_path, md_path


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """A CSV written by ``write_table``, numbers parsed back to float."""
    out = []
    with Path(path).open(newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in r.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    row[k] = v
            out.append(row)
    return out


# --------------------------------------------------------------------------- plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path, title: str = "") -> Path:
    """Title the figure, lay it out, write it and free it (pyplot keeps every open figure)."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return Path(path)


def plot_missing_rate(
    curves: Mapping[str, tuple[Sequence[float], np.ndarray]], path: str | Path, title: str = ""
) -> Path:
    """CCC (mean over dimensions) against missing rate; band = +-1 std over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
    for label, (rates, values) in curves.items():
        v = np.asarray(values, np.float64)
        m = v.mean(1)
        s = v.std(1, ddof=1) if v.shape[1] > 1 else np.zeros_like(m)
        ax.plot(rates, m, marker="o", ms=3, label=label)
        ax.fill_between(rates, m - s, m + s, alpha=0.2)
    ax.set_xlabel("missing rate r")
    ax.set_ylabel("CCC (mean over dimensions)")
    ax.set_title(title or "CCC against missing rate")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_confusions(
    matrices: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """One panel per matrix (rows truth, columns prediction), counts and row-normalised colour."""
    plt = _pyplot()
    n = len(matrices)
    size = 1.0 + 0.45 * len(class_names)
    fig, axes = plt.subplots(
        1, n, figsize=(max(3.2, size) * n, max(3.0, size)), dpi=110, squeeze=False
    )
    for ax, (name, cm) in zip(axes[0], matrices.items(), strict=True):
        cm = np.asarray(cm)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
        ticks = range(len(class_names))
        ax.set_xticks(list(ticks), class_names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(list(ticks), class_names, fontsize=7)
        for i in ticks:
            for j in ticks:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize=9)
    return _save(fig, path, title)


def plot_trajectories(
    series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    names: Sequence[str],
    path: str | Path,
    output_range: tuple[float, float],
    title: str = "",
) -> Path:
    """Rows: ``(label, t, true (n, D), pred (n, D))`` per trial; columns: dimensions."""
    plt = _pyplot()
    rows, cols = max(1, len(series)), len(names)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.8 * rows + 0.6), dpi=100,
                             squeeze=False, sharex="row")  # fmt: skip
    for r, (label, t, true, pred) in enumerate(series):
        for d, name in enumerate(names):
            ax = axes[r][d]
            ax.plot(t, true[:, d], color="black", lw=1.5, label="true")
            ax.plot(t, pred[:, d], color="tab:red", lw=1.0, marker=".", ms=3, label="predicted")
            ax.set_ylim(output_range[0] - 0.2, output_range[1] + 0.2)
            if r == 0:
                ax.set_title(name, fontsize=9)
            if d == 0:
                ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("window start (s)", fontsize=8)
    return _save(fig, path, title)


def rows_from_nested(
    label: str,
    nested: Mapping[str, Mapping[str, float]],
    order: Iterable[str],
    key: str = "dimension",
) -> list[dict[str, Any]]:
    """Flatten ``{row: {metric: v}}`` into table rows, with the model label first."""
    return [{"model": label, key: name, **nested[name]} for name in order if name in nested]
