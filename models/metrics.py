"""Evaluation metrics for continuous affect and expression classes, in plain numpy.

Written out from their definitions (no sklearn) so the figures on a model card
can be checked by hand:

- CCC (Lin's concordance): ``2 cov(x, y) / (var x + var y + (mean x - mean y)^2)``
  with population (1/n) moments; it punishes bias and scale, unlike Pearson r.
- UAR: the mean of per-class recalls over the classes that occur in the truth
  (a class with no true samples has no recall to average).
- macro-F1: the mean of per-class F1 over the classes that occur in the truth
  or the predictions; a class predicted but never true scores 0.
"""

from __future__ import annotations

import numpy as np


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values, y_pred {p.size}")
    if t.size == 0:
        raise ValueError("metrics need at least one value")
    return t, p


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient; 0 when both sides are constant and differ."""
    t, p = _pair(y_true, y_pred)
    mt, mp = t.mean(), p.mean()
    vt, vp = t.var(), p.var()
    cov = ((t - mt) * (p - mp)).mean()
    denom = vt + vp + (mt - mp) ** 2
    if denom == 0.0:
        return 1.0  # identical constants agree perfectly
    return float(2.0 * cov / denom)


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson r; 0 when either side is constant (no linear association to measure)."""
    t, p = _pair(y_true, y_pred)
    dt, dp = t - t.mean(), p - p.mean()
    denom = np.sqrt((dt * dt).sum() * (dp * dp).sum())
    if denom == 0.0:
        return 0.0
    return float((dt * dp).sum() / denom)


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def _labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if t.size == 0:
        raise ValueError("metrics need at least one label")
    return t, p


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts; rows are the truth, columns the prediction."""
    t, p = _labels(y_true, y_pred)
    if t.min() < 0 or p.min() < 0 or t.max() >= n_classes or p.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Overall accuracy (WAR in the SEE papers): correct over all."""
    t, p = _labels(y_true, y_pred)
    return float(np.mean(t == p))


def uar(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted average recall over the classes present in the truth."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean per-class F1 over the classes seen in the truth or the predictions."""
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    seen = (support + predicted) > 0
    f1 = 2.0 * tp[seen] / (support[seen] + predicted[seen])
    return float(np.mean(f1))


def regression_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Every regression metric for one dimension."""
    return {
        "ccc": ccc(y_true, y_pred),
        "pearson": pearson(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
    }


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> dict[str, float | list[list[int]]]:
    """Accuracy, UAR, macro-F1 and the confusion matrix (as nested lists, JSON-ready)."""
    return {
        "accuracy": accuracy(y_true, y_pred),
        "uar": uar(y_true, y_pred, n_classes),
        "macro_f1": macro_f1(y_true, y_pred, n_classes),
        "confusion": confusion_matrix(y_true, y_pred, n_classes).tolist(),
    }


def war(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Weighted average recall: recalls weighted by class support, which is plain accuracy.

    The SEE and MCO-E Net papers report WAR beside UAR; the name says how it
    relates to UAR (support-weighted vs unweighted mean of per-class recalls).
    """
    return accuracy(y_true, y_pred)


def binary_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 of the positive ("high") class of a 0/1 labelling, as DEAP's high/low tables report.

    0 when the positive class is neither true nor predicted anywhere (no
    positive to find, none found: precision and recall are undefined).
    """
    t, p = _labels(y_true, y_pred)
    if t.min() < 0 or p.min() < 0 or t.max() > 1 or p.max() > 1:
        raise ValueError("binary_f1 needs labels 0 and 1")
    tp = float(np.sum((t == 1) & (p == 1)))
    denom = float(np.sum(t == 1) + np.sum(p == 1))
    return 0.0 if denom == 0.0 else 2.0 * tp / denom


def grouped_classification(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, n_classes: int
) -> dict[str, dict[str, float]]:
    """WAR, UAR and count per group (e.g. SEE's lighting condition), plus ``"all"``."""
    t, p = _labels(y_true, y_pred)
    g = np.asarray(groups).reshape(-1)
    if g.shape != t.shape:
        raise ValueError(f"groups has {g.size} entries, labels {t.size}")
    out: dict[str, dict[str, float]] = {}
    for name in [*sorted({str(x) for x in g}), "all"]:
        sel = np.ones_like(t, dtype=bool) if name == "all" else g.astype(str) == name
        out[name] = {
            "n": float(sel.sum()),
            "war": war(t[sel], p[sel]),
            "uar": uar(t[sel], p[sel], n_classes),
        }
    return out
