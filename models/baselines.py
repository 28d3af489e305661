"""A concatenation-fusion baseline: one small encoder per input, features concatenated.

The ABAW EMI paper (``abaw-emi-concat-fusion``) found that plain feature
concatenation with a shared regression head beat fancier fusion on its
features; this is that design scaled down to run a window in a few
milliseconds on a CPU, so the headless pipeline has a real trained model
before the published ones land.

Each input gets its own encoder producing a ``dim``-wide feature: a 1-D conv
stack for numeric ``(channels, T)`` windows, small 2-D conv stacks for frames
``(count, H, W)`` and event tensors ``(count, 2, H, W)``. A missing input
contributes zeros plus a learned "missing" embedding, chosen by a per-input
presence mask, so the head always sees the same width and learns what absence
means. The head regresses valence, arousal, dominance and liking on the 1-9 SAM
scale (``5 + 4 tanh``) and classifies the 7 expressions.

Normalisation happens inside ``forward`` (``normalise_*``), so training and
serving cannot drift apart: numeric windows are centred per channel and divided
by one scale pooled over channels (relative power between channels, e.g.
frontal alpha asymmetry, survives); the per-channel means and log standard
deviations go in as a second, standardised feature so absolute levels (tonic
EDA, temperature) are not lost. Frames are standardised per window (robust to
the four lighting conditions); event counts are divided by their window mean
and log-compressed (robust to sensor resolution and event rate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.prediction import AFFECT_DIMENSIONS, EXPRESSIONS
from models.config_checks import check_fractions, check_sizes

NUMERIC, FRAMES, EVENTS = "numeric", "frames", "events"
KINDS = (NUMERIC, FRAMES, EVENTS)


@dataclass(frozen=True)
class InputLayout:
    """What one encoder eats: its kind and the per-sample tensor shape (no batch axis)."""

    key: str
    kind: str  # numeric | frames | events
    shape: tuple[int, ...]  # (channels, T) | (count, H, W) | (count, 2, H, W)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"input {self.key!r}: kind {self.kind!r} is not one of {KINDS}")
        want = {NUMERIC: 2, FRAMES: 3, EVENTS: 4}[self.kind]
        if len(self.shape) != want:
            raise ValueError(
                f"input {self.key!r}: a {self.kind} input needs a {want}-D shape, got {self.shape}"
            )
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def check(self, x: torch.Tensor) -> None:
        """A batch of this input must have the shape the encoder was built for: another
        window length would be encoded without complaint and mean nothing."""
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"modality {self.key!r}: expected (B, {', '.join(map(str, self.shape))}), "
                f"got {tuple(x.shape)}"
            )


@dataclass(frozen=True)
class FusionConfig:
    """Architecture hyperparameters; with the layouts, enough to rebuild the model."""

    layouts: tuple[InputLayout, ...]
    dim: int = 48  # feature width per input
    hidden: int = 128  # fusion MLP width
    conv_width: int = 24  # channels of the 1-D conv stacks
    image_widths: tuple[int, ...] = (16, 24, 32, 32)  # channels of the 2-D conv stages
    dropout: float = 0.2
    n_affect: int = len(AFFECT_DIMENSIONS)
    n_classes: int = len(EXPRESSIONS)

    def __post_init__(self) -> None:
        # n_affect or n_classes 0: no head of that kind (a regressor, a classifier)
        check_sizes(self, {"dim": 1, "hidden": 1, "conv_width": 1, "n_affect": 0, "n_classes": 0})
        check_fractions(self, ("dropout",))
        if not self.image_widths or min(self.image_widths) < 1:
            raise ValueError(f"image_widths must be integers >= 1, got {list(self.image_widths)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layouts"] = [
            {"key": lay.key, "kind": lay.kind, "shape": list(lay.shape)} for lay in self.layouts
        ]
        d["image_widths"] = list(self.image_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionConfig:
        d = dict(d)
        d["layouts"] = tuple(
            InputLayout(x["key"], x["kind"], tuple(x["shape"])) for x in d["layouts"]
        )
        d["image_widths"] = tuple(d.get("image_widths", cls.image_widths))
        return cls(**d)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(lay.key for lay in self.layouts)


# --------------------------------------------------------------------------- normalisation
def batch_size_of(
    owner: str,
    keys: Sequence[str],
    inputs: Mapping[str, torch.Tensor | None],
    present: Mapping[str, torch.Tensor],
) -> int:
    """The batch size of a ``model(inputs, present)`` call, after refusing inputs the model lacks.

    Every signal model takes a modality missing for the whole batch as absent
    (or None), so the size comes from whichever input or mask is there.
    """
    unknown = set(inputs) - set(keys)
    if unknown:
        raise ValueError(f"unknown inputs {sorted(unknown)}; {owner} has {list(keys)}")
    for t in (*present.values(), *inputs.values()):
        if t is not None:
            return int(t.shape[0])
    raise ValueError(f"{owner}.forward needs at least one input or presence mask to know the batch")


def normalise_numeric(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, T) raw -> (centred shape scaled by the channel-pooled std, per-channel stats (B, 2C)).

    The stats are the per-channel mean and log standard deviation.
    """
    x = torch.nan_to_num(x.float())
    mu = x.mean(dim=-1, keepdim=True)
    centred = x - mu
    var = centred.pow(2).mean(dim=-1)  # (B, C)
    pooled = var.mean(dim=-1, keepdim=True).sqrt().unsqueeze(-1)  # (B, 1, 1)
    shape = (centred / (pooled + 1e-6)).clamp(-8.0, 8.0)
    stats = torch.cat([mu.squeeze(-1), 0.5 * torch.log(var + 1e-8)], dim=-1)
    return shape, stats


def normalise_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, count, H, W) in [0, 1] -> standardised over each window (lighting-robust)."""
    x = torch.nan_to_num(x.float())
    mu = x.mean(dim=(1, 2, 3), keepdim=True)
    sd = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    return (x - mu) / (sd + 0.02)


def normalise_events(x: torch.Tensor) -> torch.Tensor:
    """(B, count, 2, H, W) counts -> (B, 2 count, H, W), mean-scaled and log-compressed."""
    x = torch.nan_to_num(x.float()).clamp_min(0.0)
    x = x.flatten(1, 2)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return torch.log1p(x / (mean + 1e-3))


# --------------------------------------------------------------------------- encoders
class NumericEncoder(nn.Module):
    """1-D convs over a (C, T) window, mean + log-energy pooling, plus a stats branch."""

    def __init__(self, channels: int, length: int, dim: int, width: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(channels, width, 7, stride=2, padding=3),
            nn.GELU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2),
        )
        self.pool_proj = nn.Linear(2 * width, dim)
        self.stats_proj = nn.Linear(2 * channels, dim)
        self.norm = nn.LayerNorm(dim)
        # Standardisation of the per-channel stats, fitted on training data (fit_stats).
        self.register_buffer("stat_mean", torch.zeros(2 * channels))
        self.register_buffer("stat_std", torch.ones(2 * channels))
        self.channels, self.length = channels, length

    def fit_stats(self, x: torch.Tensor) -> None:
        _, stats = normalise_numeric(x)
        self.stat_mean.copy_(stats.mean(0))
        self.stat_std.copy_(stats.std(0, unbiased=False).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, stats = normalise_numeric(x)
        h = self.convs(shape)
        pooled = torch.cat([h.mean(-1), torch.log(h.pow(2).mean(-1) + 1e-4)], dim=-1)
        z = ((stats - self.stat_mean) / self.stat_std).clamp(-6.0, 6.0)
        return self.norm(F.gelu(self.pool_proj(pooled) + self.stats_proj(z)))


class ImageEncoder(nn.Module):
    """Strided 3x3 convs, then a flattened coarse map: keeps where on the eye things are."""

    def __init__(self, in_ch: int, size: tuple[int, int], dim: int, widths: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        h, w = size
        for out in widths:
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.GELU()]
            c = out
            h, w = (h + 1) // 2, (w + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Linear(c * h * w, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.proj(self.convs(x).flatten(1))))


class FrameEncoder(ImageEncoder):
    def __init__(self, shape: tuple[int, ...], dim: int, widths: tuple[int, ...]):
        count, h, w = shape
        super().__init__(count, (h, w), dim, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(normalise_frames(x))


class EventEncoder(ImageEncoder):
    def __init__(self, shape: tuple[int, ...], dim: int, widths: tuple[int, ...]):
        count, ch, h, w = shape
        super().__init__(count * ch, (h, w), dim, widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(normalise_events(x))


# --------------------------------------------------------------------------- the model
@dataclass
class FusionOutput:
    affect: torch.Tensor  # (B, n_affect) on the 1-9 scale
    logits: torch.Tensor  # (B, n_classes)
    norms: torch.Tensor  # (B, n_inputs): RMS of each input's feature (0 where missing)


class ConcatFusion(nn.Module):
    """Per-input encoders -> concatenation (missing: learned embedding) -> shared heads."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        if not config.layouts:
            raise ValueError("ConcatFusion needs at least one input")
        self.config = config
        self.keys = config.keys
        encoders: dict[str, nn.Module] = {}
        for lay in config.layouts:
            if lay.kind == NUMERIC:
                encoders[lay.key] = NumericEncoder(*lay.shape, config.dim, config.conv_width)
            elif lay.kind == FRAMES:
                encoders[lay.key] = FrameEncoder(lay.shape, config.dim, config.image_widths)
            else:
                encoders[lay.key] = EventEncoder(lay.shape, config.dim, config.image_widths)
        self.encoders = nn.ModuleDict(encoders)
        self.missing = nn.Parameter(torch.zeros(len(self.keys), config.dim))
        width = len(self.keys) * config.dim
        self.trunk = nn.Sequential(
            nn.LayerNorm(width),
            nn.Dropout(config.dropout),
            nn.Linear(width, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
        )
        self.affect_head = nn.Linear(config.hidden, config.n_affect)
        self.class_head = nn.Linear(config.hidden, config.n_classes)

    @torch.no_grad()
    def fit_input_stats(self, batch: dict[str, torch.Tensor]) -> None:
        """Fit the numeric stats standardisation on (a sample of) training windows."""
        for lay in self.config.layouts:
            if lay.kind == NUMERIC and lay.key in batch:
                self.encoders[lay.key].fit_stats(batch[lay.key])

    def forward(
        self, inputs: dict[str, torch.Tensor | None], present: torch.Tensor
    ) -> FusionOutput:
        """``inputs[key]`` is a batch (or None: missing for the whole batch); ``present`` (B, n)."""
        batch = present.shape[0]
        present = present.float()
        feats, norms = [], []
        for i, lay in enumerate(self.config.layouts):
            x = inputs.get(lay.key)
            m = present[:, i : i + 1]
            if x is None:
                f = torch.zeros(batch, self.config.dim, device=present.device)
                m = torch.zeros_like(m)
            else:
                lay.check(x)
                f = self.encoders[lay.key](x) * m
            feats.append(f + (1.0 - m) * self.missing[i])
            norms.append(f.pow(2).mean(-1).sqrt())
        h = self.trunk(torch.cat(feats, dim=-1))
        affect = 5.0 + 4.0 * torch.tanh(self.affect_head(h))
        return FusionOutput(affect, self.class_head(h), torch.stack(norms, dim=-1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
