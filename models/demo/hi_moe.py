"""Hi-MoE on the demo's cut physiology windows (hi-moe-sim): the task and its figures.

Missing modalities as in the paper, but at a rate drawn per batch from the
paper's grid (r = 0 .. 0.40) on top of what the aligner marked missing, so one
model serves every rate live. Validation averages the mean CCC at r = 0, 0.2
and 0.4 with fixed masks, the same every epoch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.prediction import AFFECT_DIMENSIONS
from models.demo.windows import CutWindows, input_tensors, presence_dict
from models.hi_moe_loss import sample_missing
from models.metrics import regression_report, rmse
from models.tasks import batch_order, count_batches, mean_ccc

#: the paper's missing-rate grid (r = 0 .. 0.40 step 0.05)
MISSING_RATES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(9))
VAL_RATES: tuple[float, ...] = (0.0, 0.2, 0.4)
SWEEP_RATES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)
MASK_SEED = 20_240_917
EEG_ONLY = ("eeg",)
PERIPHERAL = ("ecg", "ppg", "eda", "resp", "temp")


def predict(
    model: nn.Module,
    data: CutWindows,
    rate: float = 0.0,
    seed: int = MASK_SEED,
    keep: Collection[str] | None = None,
) -> np.ndarray:
    """Regression (N, 4) on 1-9; with ``rate`` > 0 modalities dropped at that rate (fixed
    masks for a seed), with ``keep`` only those modalities present."""
    model.eval()
    idx_all = np.arange(len(data))
    present = presence_dict(data, idx_all)
    if keep is not None:
        present = {k: v & (k in keep) for k, v in present.items()}
    if rate > 0:
        present = sample_missing(present, rate, torch.Generator().manual_seed(seed))
    out = []
    with torch.inference_mode():
        for s in range(0, len(data), 256):
            idx = idx_all[s : s + 256]
            p = {k: v[idx] for k, v in present.items()}
            out.append(model(input_tensors(data, idx), p).regression.numpy())
    return np.concatenate(out)


@dataclass
class HiMoEWindowsTask:
    """``models.training.Task`` over cut windows, with the paper's random missing modalities."""

    train: CutWindows
    val: CutWindows
    batch_size: int

    def n_batches(self) -> int:
        return count_batches(len(self.train), self.batch_size)

    def prepare(self, model: nn.Module, seed: int, max_windows: int = 4096) -> None:
        """Fit the encoders' input standardisation on training windows where present."""
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(self.train), min(len(self.train), max_windows), False))
        model.fit_input_stats(input_tensors(self.train, idx), presence_dict(self.train, idx))

    def batches(self, epoch_seed: int) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng(epoch_seed)
        gen = torch.Generator().manual_seed(epoch_seed + 1)
        for part in batch_order(len(self.train), self.batch_size, rng):
            idx = np.sort(part)
            rate = float(rng.choice(MISSING_RATES))
            present = sample_missing(presence_dict(self.train, idx), rate, gen)
            yield {
                "inputs": input_tensors(self.train, idx),
                "present": present,
                "y": torch.from_numpy(self.train.affect[idx]),
            }

    def loss(
        self, model: nn.Module, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = model(batch["inputs"], batch["present"])
        return model.loss(out, batch["y"])

    def validate(self, model: nn.Module) -> dict[str, float]:
        scores = {
            f"ccc_r{r:g}": mean_ccc(self.val.affect, predict(model, self.val, r)) for r in VAL_RATES
        }
        return {"score": float(np.mean(list(scores.values()))), **scores}


def evaluate(model: nn.Module, data: CutWindows, train_mean: np.ndarray) -> dict[str, Any]:
    """All inputs (per dimension), the missing-rate sweep, device subsets, a constant."""

    def report(pred: np.ndarray) -> dict[str, Any]:
        per = {
            k: regression_report(data.affect[:, i], pred[:, i])
            for i, k in enumerate(AFFECT_DIMENSIONS)
        }
        return {**per, "mean_ccc": float(np.mean([per[k]["ccc"] for k in AFFECT_DIMENSIONS]))}

    out: dict[str, Any] = {"n_windows": len(data), "all_inputs": report(predict(model, data))}
    out["missing_rate"] = {
        f"{r:g}": float(
            np.mean(
                [mean_ccc(data.affect, predict(model, data, r, MASK_SEED + s)) for s in range(3)]
            )
        )
        for r in SWEEP_RATES
    }
    out["eeg_only"] = report(predict(model, data, keep=EEG_ONLY))
    out["peripheral_only"] = report(predict(model, data, keep=PERIPHERAL))
    out["constant_train_mean"] = {
        "ccc": 0.0,
        "rmse": {
            k: rmse(data.affect[:, i], np.full(len(data), train_mean[i]))
            for i, k in enumerate(AFFECT_DIMENSIONS)
        },
    }
    return out


def summary(m: dict[str, Any]) -> str:
    cccs = " ".join(f"{k[:3]} {m['all_inputs'][k]['ccc']:+.3f}" for k in AFFECT_DIMENSIONS)
    sweep = " ".join(f"r{r} {v:.3f}" for r, v in m["missing_rate"].items())
    return f"CCC {cccs} | mean CCC by missing rate: {sweep}"
