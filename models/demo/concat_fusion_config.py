"""The concat-fusion demo trainer's settings, apart from its loop so that the command
line can show them as defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass


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
    group_dropout: float = 0.1  # a whole group of inputs (one device's) dropped together
    label_smoothing: float = 0.1
    pearson_weight: float = 1.0
    class_weight: float = 1.0
    seed: int = 0
