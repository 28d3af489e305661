"""The interim concatenation-fusion demo model (concat-fusion-sim): its training loop.

AdamW, warm-up then cosine learning rate, random modality dropout (missing
inputs are normal live), the ABAW paper's multi-objective (MSE + Pearson for
the four dimensions, label-smoothed cross-entropy for the expression) and an
exponential moving average of the weights, which is what gets saved. It keeps
its own loop rather than ``models.training.fit`` so that the command recorded
in the shipped weights still reproduces them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS
from core.window import ModelInputs
from models.baselines import ConcatFusion, FusionConfig
from models.demo.concat_fusion_config import TrainConfig
from models.demo.windows import CutWindows
from models.losses import mse_pearson_loss, smoothed_cross_entropy
from models.metrics import accuracy, classification_report, macro_f1, regression_report, rmse
from models.progress import progress_bar
from models.serving.concat_fusion import layouts_for

Batch = tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]


def to_batch(data: CutWindows, idx: np.ndarray, device: str = "cpu") -> Batch:
    """Tensors for windows ``idx``: inputs dict, presence (B, n), affect (B, 4), expression (B,)."""
    x = {k: torch.from_numpy(data.x[k][idx].astype(np.float32)).to(device) for k in data.keys}
    present = torch.from_numpy(data.present[idx].astype(np.float32)).to(device)
    affect = torch.from_numpy(data.affect[idx]).to(device)
    expr = torch.from_numpy(data.expression[idx]).to(device)
    return x, present, affect, expr


def modality_dropout(
    present: torch.Tensor,
    keys: Sequence[str],
    cfg: TrainConfig,
    generator: torch.Generator,
    groups: Sequence[Sequence[str]],
) -> torch.Tensor:
    """Randomly hide inputs so the model learns to predict from whatever is there: each
    input with ``cfg.input_dropout``, and each of ``groups`` (the inputs one device
    gives, which go missing together live) as a whole with ``cfg.group_dropout``."""
    b, n = present.shape
    keep = torch.rand(b, n, generator=generator) >= cfg.input_dropout
    for cols in ([i for i, k in enumerate(keys) if k in g] for g in groups):
        if cols:
            gone = torch.rand(b, generator=generator) < cfg.group_dropout
            keep[gone.nonzero(as_tuple=True)[0][:, None], torch.tensor(cols)] = False
    return present * keep.to(present.dtype)


def loss_terms(
    model: nn.Module,
    x: dict[str, torch.Tensor],
    present: torch.Tensor,
    affect: torch.Tensor,
    expr: torch.Tensor,
    cfg: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The multi-objective: (total, regression part, classification part)."""
    out = model(x, present)
    reg = mse_pearson_loss(out.affect, affect, pearson_weight=cfg.pearson_weight, scale=4.0)
    cls = smoothed_cross_entropy(out.logits, expr, cfg.label_smoothing)
    return reg + cfg.class_weight * cls, reg, cls


class StepEMA:
    """Exponential moving average of parameters, decay ``min(d, (1 + s) / (10 + s))`` at
    step ``s`` from 0; buffers are copied. ``models.training.EMA`` counts its updates
    from 1 and so lands on other weights: this one stays so the shipped
    concat-fusion-sim reproduces."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)


def predict(
    model: nn.Module, data: CutWindows, batch_size: int = 256, present: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Affect (N, 4) and class probabilities (N, 7) in eval mode; ``present`` (1, n) masks
    inputs on top of what the aligner marked (a device absent)."""
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


def evaluate(
    model: nn.Module, data: CutWindows, present: np.ndarray | None = None
) -> dict[str, Any]:
    """Per-dimension CCC/r/RMSE/MAE and expression accuracy, UAR, macro-F1, confusion."""
    affect, probs = predict(model, data, present=present)
    out: dict[str, Any] = {
        k: regression_report(data.affect[:, i], affect[:, i])
        for i, k in enumerate(AFFECT_DIMENSIONS)
    }
    out["expression"] = classification_report(data.expression, probs.argmax(1), len(EXPRESSIONS))
    out["n_windows"] = len(data)
    return out


def baseline_figures(train: CutWindows, val: CutWindows) -> dict[str, Any]:
    """What predicting the training mean / majority class scores on ``val``."""
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
    train: CutWindows,
    val: CutWindows | None,
    inputs: ModelInputs,
    cfg: TrainConfig,
    groups: Sequence[Sequence[str]],
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[ConcatFusion, list[dict[str, Any]]]:
    """Fit a ConcatFusion; returns the EMA model and the per-epoch history. ``groups``:
    the inputs that go missing together (see ``modality_dropout``)."""
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
    ema = StepEMA(model, cfg.ema_decay)
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(train))
        run_loss = run_reg = run_cls = 0.0
        bar = progress_bar(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            enabled=progress,
            leave=False,
        )
        for b in bar:
            idx = np.sort(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            x, present, affect, expr = to_batch(train, idx)
            present = modality_dropout(present, train.keys, cfg, gen, groups)
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
