"""Which modalities a signal model leans on: test CCC with each modality removed, and each alone.

The missing-rate curve says how fast a model falls; this says why. A model
that combines modalities (valence from EEG *and* EMG, say) loses the
combination whenever either is missing, so its curve falls faster than that of
a model which never combined them. To first order, the expected fall at
missing rate r is ``r * sum(drop when m is removed)``, so the "without" rows
predict the curve's slope and let two models' slopes be compared fairly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from models.datasets import SignalData
from models.metrics import ccc
from models.tasks import mean_ccc, predict_signals

ALL = "all"


def conditions(modalities: Sequence[str]) -> list[tuple[str, dict[str, bool]]]:
    """``all``, then ``without <m>`` and ``only <m>`` for every modality, as presence maps.

    With two modalities "only a" is "without b", so the "only" rows are left out.
    """
    out = [(ALL, {m: True for m in modalities})]
    out += [(f"without {m}", {n: n != m for n in modalities}) for m in modalities]
    if len(modalities) > 2:
        out += [(f"only {m}", {n: n == m for n in modalities}) for m in modalities]
    return out


def modality_ablation(
    model: nn.Module, data: SignalData, index: np.ndarray, progress: Any = None
) -> dict[str, list[float]]:
    """Condition -> CCC per label dimension (in ``data.label_names`` order) plus their mean.

    ``progress``: a tqdm bar; its total grows by the passes this makes and it
    advances one per pass.
    """
    y = data.y[index]
    todo = conditions(data.modalities)
    if progress is not None:
        progress.total += len(todo)
        progress.refresh()
    out: dict[str, list[float]] = {}
    for name, present in todo:
        pred, _ = predict_signals(model, data, index, present=present)
        per_dim = [ccc(y[:, d], pred[:, d]) for d in range(y.shape[1])]
        out[name] = [*per_dim, mean_ccc(y, pred)]
        if progress is not None:
            progress.update(1)
    return out


def first_order_drop(table: dict[str, list[float]], rate: float) -> float:
    """``rate * sum`` of the mean-CCC drops when each modality alone is removed."""
    base = table[ALL][-1]
    drops = [base - v[-1] for k, v in table.items() if k.startswith("without ")]
    return float(rate * sum(drops))
