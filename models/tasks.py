"""What the training loop needs from a model and a fold: batches, a loss, a validation score.

``SignalTask`` (Hi-MoE, late fusion, concatenation fusion on DEAP / DREAMER)
and ``SeeTask`` (MCO-E Net on SEE). Everything random is drawn from
generators seeded by the epoch's seed, so an epoch is the same whether the run
was interrupted before it or not.

Missing modalities in training follow the Hi-MoE paper: every (window,
modality) is dropped independently with probability ``missing_rate``
(``models.hi_moe.sample_missing``, at least one modality kept). Validation
uses the same rate with a fixed generator, so the score that stops training
measures the condition the model was trained for, the same way every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from models.datasets import Fold, SeeData, SignalData
from models.hi_moe_loss import sample_missing
from models.metrics import accuracy, ccc, uar
from models.zoo import Recipe, see_loss, signal_loss

VAL_MASK_SEED = 20_240_917
EVAL_BATCH = 128


def batch_order(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A shuffled partition into batches; a last batch of one sample joins the one before
    (correlation losses and NT-Xent need two)."""
    order = rng.permutation(n)
    parts = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(parts) > 1 and len(parts[-1]) < 2:
        last = parts.pop()
        parts[-1] = np.concatenate([parts[-1], last])
    return parts


def count_batches(n: int, batch_size: int) -> int:
    """How many batches ``batch_order`` makes of ``n`` samples."""
    full = -(-n // batch_size)
    return max(1, full - (1 if n > batch_size and n % batch_size == 1 else 0))


# --------------------------------------------------------------------------- signals
def signal_inputs(data: SignalData, index: np.ndarray) -> dict[str, torch.Tensor]:
    return {m: torch.from_numpy(np.ascontiguousarray(v[index])) for m, v in data.x.items()}


def all_present(data: SignalData, n: int) -> dict[str, torch.Tensor]:
    return {m: torch.ones(n, dtype=torch.bool) for m in data.modalities}


@torch.no_grad()
def predict_signals(
    model: nn.Module,
    data: SignalData,
    index: np.ndarray,
    missing_rate: float = 0.0,
    generator: torch.Generator | int | None = None,
    batch_size: int = EVAL_BATCH,
    present: dict[str, bool] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Regression (N, D) and high probability (N, D) or None, in ``index`` order.

    The missing-modality masks are drawn for the whole of ``index`` at once from
    ``generator`` (or a generator seeded with it; before batching), so every
    model evaluated with the same seed sees exactly the same masks. ``present``
    fixes which modalities every window has instead (modalities not named are
    present); ``missing_rate`` then drops among those.
    """
    model.eval()
    n = len(index)
    fixed = present or {}
    unknown = set(fixed) - set(data.modalities)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; the data has {data.modalities}")
    masks = {m: torch.full((n,), bool(fixed.get(m, True))) for m in data.modalities}
    if missing_rate > 0:
        if isinstance(generator, int):
            generator = torch.Generator().manual_seed(generator)
        masks = sample_missing(masks, missing_rate, generator)
    regs, probs = [], []
    for i in range(0, len(index), batch_size):
        sl = slice(i, i + batch_size)
        out = model(signal_inputs(data, index[sl]), {m: p[sl] for m, p in masks.items()})
        regs.append(out.regression.float().numpy())
        lg = getattr(out, "binary_logits", None)
        if lg is not None:
            probs.append(torch.sigmoid(lg).float().numpy())
    reg = np.concatenate(regs) if regs else np.zeros((0, data.y.shape[1]), np.float32)
    return reg, (np.concatenate(probs) if probs else None)


@torch.no_grad()
def branch_predictions(
    model: nn.Module, data: SignalData, index: np.ndarray, batch_size: int = EVAL_BATCH
) -> torch.Tensor:
    """Each modality's own regression (N, M, D) with every modality present (late fusion)."""
    model.eval()
    outs = [
        model(signal_inputs(data, index[i : i + batch_size])).branch_regression
        for i in range(0, len(index), batch_size)
    ]
    return torch.cat(outs) if outs else torch.zeros(0)


def mean_ccc(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([ccc(y[:, d], pred[:, d]) for d in range(y.shape[1])]))


@dataclass
class SignalTask:
    model_name: str
    data: SignalData
    fold: Fold
    recipe: Recipe
    missing_rate: float = 0.0

    def n_batches(self) -> int:
        return count_batches(len(self.fold.train), self.recipe.batch_size)

    def prepare(self, model: nn.Module, seed: int, max_windows: int = 4096) -> None:
        """Fit the encoders' input standardisation on (a seeded sample of) training windows."""
        fit = getattr(model, "fit_input_stats", None)
        if fit is None:
            return
        rng = np.random.default_rng(seed)
        idx = self.fold.train
        if len(idx) > max_windows:
            idx = np.sort(rng.choice(idx, max_windows, replace=False))
        fit(signal_inputs(self.data, idx), all_present(self.data, len(idx)))

    def batches(self, epoch_seed: int) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng(epoch_seed)
        gen = torch.Generator().manual_seed(epoch_seed + 1)
        for part in batch_order(len(self.fold.train), self.recipe.batch_size, rng):
            idx = self.fold.train[part]
            present = all_present(self.data, len(idx))
            if self.missing_rate > 0:
                present = sample_missing(present, self.missing_rate, gen)
            yield {
                "inputs": signal_inputs(self.data, idx),
                "present": present,
                "y": torch.from_numpy(self.data.y[idx]),
            }

    def loss(
        self, model: nn.Module, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch["inputs"], batch["present"])
        return signal_loss(self.model_name, model, out, batch["y"], self.recipe)

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Mean CCC over the dimensions on the validation windows (the score), and MSE."""
        gen = torch.Generator().manual_seed(VAL_MASK_SEED)
        idx = self.fold.val
        fit_weights = getattr(model, "fit_branch_weights", None)
        if fit_weights is not None:  # late fusion: weigh modalities by their validation CCC
            fit_weights(
                branch_predictions(model, self.data, idx), torch.from_numpy(self.data.y[idx])
            )
        pred, _ = predict_signals(model, self.data, idx, self.missing_rate, gen)
        y = self.data.y[idx]
        return {
            "score": mean_ccc(y, pred),
            "ccc": mean_ccc(y, pred),
            "mse": float(np.mean((pred - y) ** 2)),
        }


# --------------------------------------------------------------------------- SEE
def see_tensors(frames: np.ndarray, events: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(frames), torch.from_numpy(events)


@torch.no_grad()
def predict_see(
    model: nn.Module,
    data: SeeData,
    index: np.ndarray,
    passes: int = 1,
    seed: int = 0,
    batch_size: int = 32,
) -> np.ndarray:
    """Class probabilities (N, C): one centred clip per sequence, or the mean over
    ``passes`` randomly sampled clips (the released test protocol uses 20)."""
    model.eval()
    total = None
    for k in range(passes):
        rng = None if passes == 1 else np.random.default_rng([seed, k])
        probs = []
        for i in range(0, len(index), batch_size):
            f, e = see_tensors(*data.clips(index[i : i + batch_size], rng))
            probs.append(torch.softmax(model(f, e).logits.float(), -1).numpy())
        p = np.concatenate(probs)
        total = p if total is None else total + p
    assert total is not None
    return total / passes


@dataclass
class SeeTask:
    data: SeeData
    fold: Fold
    recipe: Recipe
    n_classes: int = 7

    def n_batches(self) -> int:
        return count_batches(len(self.fold.train), self.recipe.batch_size)

    def prepare(self, model: nn.Module, seed: int) -> None:
        """Nothing to fit: MCO-E Net standardises its inputs with fixed statistics."""

    def batches(self, epoch_seed: int) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng(epoch_seed)
        clip_rng = np.random.default_rng(epoch_seed + 1)
        for part in batch_order(len(self.fold.train), self.recipe.batch_size, rng):
            idx = self.fold.train[part]
            f, e = see_tensors(*self.data.clips(idx, clip_rng))  # random offsets, as released
            yield {"frames": f, "events": e, "labels": torch.from_numpy(self.data.labels[idx])}

    def loss(
        self, model: nn.Module, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return see_loss(model(batch["frames"], batch["events"]).logits, batch["labels"])

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Accuracy (WAR, the score) and UAR on the validation sequences, centred clips."""
        idx = self.fold.val
        pred = predict_see(model, self.data, idx).argmax(1)
        y = self.data.labels[idx]
        return {
            "score": accuracy(y, pred),
            "war": accuracy(y, pred),
            "uar": uar(y, pred, self.n_classes),
        }
