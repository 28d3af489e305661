"""Every trainable model by name: which data it takes, its recipe, how to configure and build it.

``ZOO`` is the registry: one ``ZooModel`` per name of the ``affectlab train`` MODEL
argument, in the order help and errors list them.

- ``mco-e-net`` / ``mco-e-net-lite``: SEE clips -> 7 expression logits (``models.mco_e_net``).
- ``hi-moe``: DEAP / DREAMER windows -> ratings and high/low (``models.hi_moe``).
- ``late-fusion``: one regressor per modality, averaged over those present (``models.late_fusion``).
- ``concat-fusion``: concatenation fusion with branch heads (``models.concat_regressor``).
- ``ensemble``: validation-weighted average of independently trained models (``models.ensemble``).

A new trainable model is one entry here: train, evaluate, the ensemble's ``--members``
and the CLI's help and errors all read the registry. (To run live it also needs a
serving family, ``models.serving``.)

The signal models share one call, ``model(inputs, present) -> output`` with
``output.regression`` (B, D) and ``output.binary_logits`` (B, D) or None, so
training, evaluation and the ensemble treat them alike. Their files are
``models.checkpoint``'s.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.baselines import FusionConfig, InputLayout
from models.concat_regressor import ConcatRegressor, ConcatRegressorConfig, concat_regressor_loss
from models.config_overrides import apply_overrides
from models.datasets import SignalData, UsageError
from models.ensemble import Ensemble
from models.hi_moe import HiMoE, HiMoEConfig
from models.late_fusion import LateFusion, LateFusionConfig, late_fusion_loss
from models.mco_e_net import MCOENet, MCOENetConfig

DEFAULT_MEMBERS: tuple[str, ...] = ("late-fusion", "concat-fusion")
SIGNAL_KINDS: tuple[str, ...] = ("deap", "dreamer")


# --------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """Optimiser, schedule and stopping: the papers' where they say, ours where they do not."""

    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = (
        "cosine"  # cosine (over the run, per epoch) | step (StepLR(1, gamma)) | constant
    )
    step_gamma: float = 0.94
    batch_size: int = 32
    epochs: int = 75
    patience: int = 10  # epochs without a better validation score before stopping
    ema_decay: float = 0.0  # > 0: exponential moving average of the weights (what is kept)
    aux_weight: float = 0.0  # concat-fusion: weight of the branch losses
    grad_clip: float = 0.0  # > 0: clip the gradient norm
    source: str = ""

    def with_(self, **changes: Any) -> Recipe:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


_HI_MOE = Recipe(
    "adam", 1e-3, 0.0, "cosine", batch_size=32, epochs=75, patience=10,
    source="Hi-MoE paper: Adam, cosine annealing, 75 epochs, batch 32, early stopping (models/cards/hi_moe.md)",
)  # fmt: skip
_MCO = Recipe(
    "adamw", 3e-4, 1e-3, "step", 0.94, batch_size=64, epochs=100, patience=15,
    source="MCO-E Net release: AdamW lr 3e-4 wd 1e-3, StepLR(1, 0.94), 100 epochs, batch 64 (REFERENCE 1)",
)  # fmt: skip
_CONCAT = Recipe(
    "adamw",
    1e-3,
    0.05,
    "cosine",
    batch_size=32,
    epochs=75,
    patience=10,
    ema_decay=0.998,
    aux_weight=0.3,
    source="ABAW EMI concat fusion: MSE + (1 - Pearson), auxiliary branch losses, EMA of "
    "weights; AdamW / cosine / decay 0.05 and EMA 0.998 as the demo model (models/cards/concat_fusion_sim.md)",
)  # fmt: skip


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class SignalShape:
    """What a DEAP or DREAMER data set gives a signal model: the model's default config is
    cut to it (its inputs and its labels)."""

    kind: str
    window_s: float
    shapes: dict[str, tuple[int, ...]]
    outputs: tuple[str, ...]
    output_range: tuple[float, float]

    @classmethod
    def of(cls, data: SignalData) -> SignalShape:
        return cls(
            data.kind, data.window_s, data.shapes(), tuple(data.label_names), data.output_range
        )

    @classmethod
    def preset(cls, kind: str, window_s: float = 4.0) -> SignalShape:
        """What a data set of ``kind`` will give, known before it is read (Hi-MoE's preset)."""
        cfg = HiMoEConfig.deap(window_s) if kind == "deap" else HiMoEConfig.dreamer(window_s)
        shapes = {m.name: m.input_shape for m in cfg.modalities}
        return cls(kind, window_s, shapes, cfg.outputs, cfg.output_range)

    def layouts(self) -> tuple[InputLayout, ...]:
        return tuple(InputLayout(m, "numeric", s) for m, s in self.shapes.items())


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ZooModel:
    """One trainable model: everything ``affectlab train`` and ``evaluate`` need to know.

    ``base`` gives the default config dict (a signal model's for the data's ``SignalShape``,
    a SEE model's for None); ``normalise`` reads it through the config class (validating
    it); ``data_fields`` are the config fields the data decides, which ``--set`` may not
    change; ``loss`` is a signal model's training loss (SEE models train on
    ``see_loss``). The ensemble has no recipe, base or loss of its own: its members do.
    """

    name: str
    data_kinds: tuple[str, ...]
    build: Callable[[dict[str, Any]], nn.Module]
    recipe: Recipe | None = None
    base: Callable[[SignalShape | None], dict[str, Any]] | None = None
    normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    loss: Callable[[nn.Module, Any, torch.Tensor, Recipe], tuple[torch.Tensor, dict]] | None = None
    data_fields: tuple[str, ...] = ()


def _signal(shape: SignalShape | None) -> SignalShape:
    if shape is None:
        raise UsageError("a signal model is configured for DEAP or DREAMER windows")
    return shape


def _hi_moe_base(shape: SignalShape | None) -> dict[str, Any]:
    s = _signal(shape)
    preset = HiMoEConfig.deap if s.kind == "deap" else HiMoEConfig.dreamer
    cfg = preset(window_s=s.window_s, outputs=s.outputs, output_range=s.output_range)
    got = {m.name: m.input_shape for m in cfg.modalities}
    if got != s.shapes:
        raise UsageError(f"hi-moe preset {s.kind} expects {got}, the data gives {s.shapes}")
    return cfg.to_dict()


def _late_fusion_base(shape: SignalShape | None) -> dict[str, Any]:
    s = _signal(shape)
    return LateFusionConfig(s.layouts(), outputs=s.outputs, output_range=s.output_range).to_dict()


def _concat_fusion_base(shape: SignalShape | None) -> dict[str, Any]:
    s = _signal(shape)
    fusion = FusionConfig(s.layouts(), n_affect=len(s.outputs), n_classes=0)
    return ConcatRegressorConfig(fusion, s.outputs, s.output_range).to_dict()


def _mco_paper_base(_: SignalShape | None) -> dict[str, Any]:
    """As released: RGB-read JPEGs, 3-channel event frames."""
    return asdict(MCOENetConfig.paper(event_input="intensity", event_channels=3))


def _mco_lite_base(_: SignalShape | None) -> dict[str, Any]:
    """Grey frames and grey SEE event frames, 1 channel each."""
    return asdict(MCOENetConfig.lite(event_input="intensity", event_channels=1))


def _mco_normalise(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(MCOENetConfig(**d).to_json())


def _build_mco(config: dict[str, Any]) -> nn.Module:
    return MCOENet(MCOENetConfig.from_json(json.dumps(config)))


def _build_ensemble(config: dict[str, Any]) -> nn.Module:
    members = config["members"]
    return Ensemble(
        [build_model(m["model"], m["config"]) for m in members],
        [m["weight"] for m in members],
        [m.get("name", m["model"]) for m in members],
        tuple(config["output_range"]),
    )


def _hi_moe_loss(
    model: nn.Module, output: Any, targets: torch.Tensor, recipe: Recipe
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    assert isinstance(model, HiMoE)
    return model.loss(output, targets)


_MCO_COMMON = {"recipe": _MCO, "normalise": _mco_normalise, "data_fields": ("n_classes",)}
_OUTPUTS = ("outputs", "output_range")

ZOO: dict[str, ZooModel] = {
    z.name: z
    for z in (
        ZooModel("mco-e-net", ("see",), _build_mco, base=_mco_paper_base, **_MCO_COMMON),
        ZooModel("mco-e-net-lite", ("see",), _build_mco, base=_mco_lite_base, **_MCO_COMMON),
        ZooModel(
            "hi-moe",
            SIGNAL_KINDS,
            build=lambda c: HiMoE(HiMoEConfig.from_dict(c)),
            recipe=_HI_MOE,
            base=_hi_moe_base,
            normalise=lambda d: HiMoEConfig.from_dict(d).to_dict(),
            loss=_hi_moe_loss,
            data_fields=("modalities", *_OUTPUTS),
        ),
        ZooModel(
            "late-fusion",
            SIGNAL_KINDS,
            build=lambda c: LateFusion(LateFusionConfig.from_dict(c)),
            recipe=replace(
                _HI_MOE, source="as Hi-MoE's, so the comparison differs only in the model"
            ),
            base=_late_fusion_base,
            normalise=lambda d: LateFusionConfig.from_dict(d).to_dict(),
            loss=lambda model, output, targets, recipe: late_fusion_loss(output, targets),
            data_fields=("layouts", *_OUTPUTS),
        ),
        ZooModel(
            "concat-fusion",
            SIGNAL_KINDS,
            build=lambda c: ConcatRegressor(ConcatRegressorConfig.from_dict(c)),
            recipe=_CONCAT,
            base=_concat_fusion_base,
            normalise=lambda d: ConcatRegressorConfig.from_dict(d).to_dict(),
            loss=lambda model, output, targets, recipe: concat_regressor_loss(
                output, targets, recipe.aux_weight
            ),
            data_fields=("layouts", "n_affect", "n_classes", *_OUTPUTS),
        ),
        ZooModel("ensemble", SIGNAL_KINDS, build=_build_ensemble),
    )
}
FROM_THE_DATA = "cannot change: the data set decides it (its inputs and its labels)"


def model_names() -> tuple[str, ...]:
    return tuple(ZOO)


def see_models() -> tuple[str, ...]:
    """The models that train on SEE (eye frames and events)."""
    return tuple(n for n, z in ZOO.items() if "see" in z.data_kinds)


def signal_models() -> tuple[str, ...]:
    """The models that train on DEAP and DREAMER (physiological signals)."""
    return tuple(n for n, z in ZOO.items() if "see" not in z.data_kinds)


def _entry(model: str) -> ZooModel:
    try:
        return ZOO[model]
    except KeyError:
        raise UsageError(
            f"unknown model {model!r}; expected one of {', '.join(model_names())}"
        ) from None


def data_kinds(model: str) -> tuple[str, ...]:
    return _entry(model).data_kinds


def recipe_of(model: str) -> Recipe:
    """The model's training recipe (an ensemble's members each have their own)."""
    r = _entry(model).recipe
    if r is None:
        raise UsageError(f"{model}: no recipe of its own (an ensemble trains its members)")
    return r


def check_model(model: str, kind: str | None = None) -> None:
    """Refuse unknown models and model / data-kind pairs that do not go together."""
    kinds = data_kinds(model)
    if kind is not None and kind not in kinds:
        raise UsageError(
            f"model {model!r} trains on {' or '.join(kinds)} data, not {kind!r} "
            f"(SEE is eye frames and events; DEAP and DREAMER are physiological signals)"
        )


# --------------------------------------------------------------------------- configs
def _single(model: str) -> ZooModel:
    z = _entry(model)
    if z.base is None or z.normalise is None:
        raise UsageError(f"{model}: no single config (an ensemble is built from its members)")
    return z


def configure(
    model: str,
    base: dict[str, Any],
    overrides: dict[str, Any],
    fixed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``base`` with ``overrides`` applied (``apply_overrides``), validated by the config
    class and by building the model on the meta device (no memory, no data), so a value out
    of range is a ``UsageError`` naming the ``--set`` items, not a traceback after the data
    is read."""
    normalise = _single(model).normalise
    assert normalise is not None
    d = apply_overrides(base, overrides, model, fixed)
    if not overrides:
        return normalise(d)
    try:
        config = normalise(d)
        # an operation the meta device lacks is not the config's fault: the model builds
        with torch.device("meta"), contextlib.suppress(NotImplementedError):
            build_model(model, config)
    except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, RuntimeError) as exc:
        items = " ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
        raise UsageError(f"{model}: --set {items}: {exc}") from exc
    return config


def _configured(model: str, shape: SignalShape | None, overrides: dict[str, Any]) -> dict:
    z = _single(model)
    assert z.base is not None
    fixed = dict.fromkeys(z.data_fields, FROM_THE_DATA)
    return configure(model, z.base(shape), overrides, fixed)


def default_config(
    model: str, data: Any, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The model's config (JSON-ready) for this data set, with ``overrides`` applied."""
    if model in see_models():
        return _configured(model, None, dict(overrides or {}))
    if not isinstance(data, SignalData):
        raise UsageError(f"{model} needs DEAP or DREAMER windows")
    return _configured(model, SignalShape.of(data), dict(overrides or {}))


def check_overrides(
    model: str, kind: str, overrides: dict[str, Any], window_s: float = 4.0
) -> None:
    """Refuse bad ``--set`` items before any data is read: applied to the config the data
    set of ``kind`` will give (its preset's inputs and labels), as ``default_config`` will."""
    if not overrides:
        return
    shape = None if model in see_models() else SignalShape.preset(kind, window_s)
    _configured(model, shape, overrides)


def build_model(model: str, config: dict[str, Any]) -> nn.Module:
    """A fresh model (random initialisation from torch's global generator) from its config."""
    return _entry(model).build(config)


# --------------------------------------------------------------------------- losses
def signal_loss(
    model_name: str, model: nn.Module, output: Any, targets: torch.Tensor, recipe: Recipe
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss of each signal model, as its paper (or its card) defines it."""
    loss = _entry(model_name).loss
    if loss is None:
        raise UsageError(f"{model_name}: no training loss (ensembles train their members)")
    return loss(model, output, targets, recipe)


def see_loss(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain cross-entropy, as released (no load-balancing term)."""
    ce = F.cross_entropy(logits, labels)
    return ce, {"ce": ce}
