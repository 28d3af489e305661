"""Every trainable model by name: which data it takes, its recipe, how to build, save and load it.

Names (the ``affectlab train`` MODEL argument):

- ``mco-e-net`` / ``mco-e-net-lite``: SEE clips -> 7 expression logits (``models.mco_e_net``).
- ``hi-moe``: DEAP / DREAMER windows -> ratings and high/low (``models.hi_moe``).
- ``late-fusion``: one regressor per modality, averaged over those present (``models.late_fusion``).
- ``concat-fusion``: concatenation fusion with branch heads (``models.concat_regressor``).
- ``ensemble``: validation-weighted average of independently trained models (``models.ensemble``).

The signal models share one call, ``model(inputs, present) -> output`` with
``output.regression`` (B, D) and ``output.binary_logits`` (B, D) or None, so
training, evaluation and the ensemble treat them alike.

A checkpoint is ``NAME.safetensors`` (weights; metadata: format, model name,
config JSON) and ``NAME.json`` beside it (the same plus data kind, protocol,
fold, seed, recipe and metrics). Loading rebuilds from the config and never
unpickles.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from models.baselines import FusionConfig, InputLayout
from models.concat_regressor import ConcatRegressor, ConcatRegressorConfig, concat_regressor_loss
from models.datasets import SignalData, UsageError
from models.ensemble import Ensemble
from models.errors import ModelLoadError
from models.hi_moe import HiMoE, HiMoEConfig
from models.late_fusion import LateFusion, LateFusionConfig, late_fusion_loss
from models.mco_e_net import MCOENet, MCOENetConfig
from models.serving.base import load_tensors

FORMAT = "affectlab-checkpoint/1"
SEE_MODELS: tuple[str, ...] = ("mco-e-net", "mco-e-net-lite")
SIGNAL_MODELS: tuple[str, ...] = ("hi-moe", "late-fusion", "concat-fusion", "ensemble")
MODELS: tuple[str, ...] = SEE_MODELS + SIGNAL_MODELS
DEFAULT_MEMBERS: tuple[str, ...] = ("late-fusion", "concat-fusion")


def data_kinds(model: str) -> tuple[str, ...]:
    return ("see",) if model in SEE_MODELS else ("deap", "dreamer")


def check_model(model: str, kind: str | None = None) -> None:
    """Refuse unknown models and model / data-kind pairs that do not go together."""
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    if kind is not None and kind not in data_kinds(model):
        raise UsageError(
            f"model {model!r} trains on {' or '.join(data_kinds(model))} data, not {kind!r} "
            f"(SEE is eye frames and events; DEAP and DREAMER are physiological signals)"
        )


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
RECIPES: dict[str, Recipe] = {
    "hi-moe": _HI_MOE,
    "late-fusion": replace(
        _HI_MOE, source="as Hi-MoE's, so the comparison differs only in the model"
    ),
    "concat-fusion": Recipe(
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
    ),  # fmt: skip
    "mco-e-net": _MCO,
    "mco-e-net-lite": _MCO,
}


# --------------------------------------------------------------------------- configs
#: config fields ``affectlab train`` takes from the data set (its windows' inputs and its
#: labels): a ``--set`` that would change one is refused before the data is read
DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "hi-moe": ("modalities", "outputs", "output_range"),
    "late-fusion": ("layouts", "outputs", "output_range"),
    "concat-fusion": ("layouts", "n_affect", "n_classes", "outputs", "output_range"),
    "mco-e-net": ("n_classes",),
    "mco-e-net-lite": ("n_classes",),
}
FROM_THE_DATA = "cannot change: the data set decides it (its inputs and its labels)"


def _kind(value: Any) -> str:
    """What a JSON value is, in the words of a ``--set`` error."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return "an object"


def _fits(value: Any, default: Any) -> bool:
    """Whether ``value`` may stand where the config's ``default`` does: a bool for a bool,
    an int for an int, a number for a float, a string for a string, a list (of what the
    default list holds) for a list, an object for an object; None takes anything."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            return False
        kinds = {_kind(v) for v in default}
        if len(kinds) == 1 and default[0] is not None:  # a homogeneous list: each item fits
            return all(_fits(v, default[0]) for v in value)
        return True
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _wanted(default: Any) -> str:
    """What a field takes, for the error: "a number" for a float field (an int will do)."""
    if isinstance(default, float) and not isinstance(default, bool):
        return "a number"
    if isinstance(default, list | tuple) and default and default[0] is not None:
        if isinstance(default[0], bool):
            return "a list of true or false"
        return f"a list of {_wanted(default[0]).removeprefix('a ').removeprefix('an ')}s"
    return _kind(default)


def _checked(model: str, key: str, value: Any, default: Any) -> Any:
    """``value`` if it is of the kind of the field's ``default`` (an int made a float for
    a float field), else a ``UsageError`` naming the field and what it takes."""
    if not _fits(value, default):
        raise UsageError(
            f"{model}: --set {key}={json.dumps(value)}: {key} takes {_wanted(default)} "
            f"(default {json.dumps(default)}), not {_kind(value)}"
        )
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    return value


def apply_overrides(
    d: dict[str, Any],
    overrides: dict[str, Any],
    model: str,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A config dict with ``--set`` overrides applied (a copy).

    Fields of concat fusion's nested ``fusion`` config may be named bare, so one
    ``--set d_model=32`` reaches it. An unknown field is a ``UsageError`` that
    lists the fields there are, since a typo would otherwise train the default;
    so is a value of another kind than the field's default (a string or a float
    for an integer, a list for a number), and a change to a field of ``fixed``
    (field -> why it cannot change), which the data or the caller decides. The
    ranges of the values are the config's own to check (``configure``).
    """
    d = dict(d)
    fixed = fixed or {}
    for key, value in overrides.items():
        if key in d:
            target = d
        elif isinstance(d.get("fusion"), dict) and key in d["fusion"]:
            d["fusion"] = target = dict(d["fusion"])
        else:
            nested = d["fusion"] if isinstance(d.get("fusion"), dict) else {}
            keys = sorted(k for k in d if not (k == "fusion" and nested)) + sorted(nested)
            raise UsageError(f"{model}: no config field {key!r}; fields: {', '.join(keys)}")
        if key in fixed and value != target[key]:
            raise UsageError(f"{model}: --set {key}: {fixed[key]}")
        target[key] = _checked(model, key, value, target[key])
    return d


def _normalised(model: str, d: dict[str, Any]) -> dict[str, Any]:
    """The config dict as the model's config class reads and writes it (validated)."""
    if model in SEE_MODELS:
        return json.loads(MCOENetConfig(**d).to_json())
    if model == "hi-moe":
        return HiMoEConfig.from_dict(d).to_dict()
    if model == "late-fusion":
        return LateFusionConfig.from_dict(d).to_dict()
    if model == "concat-fusion":
        return ConcatRegressorConfig.from_dict(d).to_dict()
    raise UsageError(f"{model}: no single config (an ensemble is built from its members)")


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
    d = apply_overrides(base, overrides, model, fixed)
    if not overrides:
        return _normalised(model, d)
    try:
        config = _normalised(model, d)
        # an operation the meta device lacks is not the config's fault: the model builds
        with torch.device("meta"), contextlib.suppress(NotImplementedError):
            build_model(model, config)
    except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, RuntimeError) as exc:
        items = " ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
        raise UsageError(f"{model}: --set {items}: {exc}") from exc
    return config


def _signal_base(
    model: str,
    kind: str,
    window_s: float,
    shapes: dict[str, tuple[int, ...]],
    names: tuple[str, ...],
    rng: tuple[float, float],
) -> dict[str, Any]:
    """A signal model's default config dict for windows of these shapes and labels."""
    if model == "hi-moe":
        preset = HiMoEConfig.deap if kind == "deap" else HiMoEConfig.dreamer
        cfg = preset(window_s=window_s, outputs=names, output_range=rng)
        got = {m.name: m.input_shape for m in cfg.modalities}
        if got != shapes:
            raise UsageError(f"hi-moe preset {kind} expects {got}, the data gives {shapes}")
        return cfg.to_dict()
    layouts = tuple(InputLayout(m, "numeric", s) for m, s in shapes.items())
    if model == "late-fusion":
        return LateFusionConfig(layouts, outputs=names, output_range=rng).to_dict()
    if model == "concat-fusion":
        fusion = FusionConfig(layouts, n_affect=len(names), n_classes=0)
        return ConcatRegressorConfig(fusion, names, rng).to_dict()
    raise UsageError(f"{model}: no single config (an ensemble is built from its members)")


def _see_base(model: str) -> dict[str, Any]:
    if model == "mco-e-net":  # as released: RGB-read JPEGs, 3-channel event frames
        cfg = MCOENetConfig.paper(event_input="intensity", event_channels=3)
    else:  # grey frames and grey SEE event frames, 1 channel each
        cfg = MCOENetConfig.lite(event_input="intensity", event_channels=1)
    return asdict(cfg)


def _data_fixed(model: str) -> dict[str, str]:
    return {k: FROM_THE_DATA for k in DATA_FIELDS.get(model, ())}


def default_config(
    model: str, data: Any, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The model's config (JSON-ready) for this data set, with ``overrides`` applied."""
    overrides = dict(overrides or {})
    if model in SEE_MODELS:
        return configure(model, _see_base(model), overrides, _data_fixed(model))
    if not isinstance(data, SignalData):
        raise UsageError(f"{model} needs DEAP or DREAMER windows")
    base = _signal_base(
        model, data.kind, data.window_s, data.shapes(), tuple(data.label_names), data.output_range
    )
    return configure(model, base, overrides, _data_fixed(model))


def check_overrides(
    model: str, kind: str, overrides: dict[str, Any], window_s: float = 4.0
) -> None:
    """Refuse bad ``--set`` items before any data is read: applied to the config the data
    set of ``kind`` will give (its preset's inputs and labels), as ``default_config`` will."""
    if not overrides:
        return
    if model in SEE_MODELS:
        default_config(model, None, overrides)
        return
    preset = HiMoEConfig.deap(window_s) if kind == "deap" else HiMoEConfig.dreamer(window_s)
    shapes = {m.name: m.input_shape for m in preset.modalities}
    base = _signal_base(model, kind, window_s, shapes, preset.outputs, preset.output_range)
    configure(model, base, overrides, _data_fixed(model))


def build_model(model: str, config: dict[str, Any]) -> nn.Module:
    """A fresh model (random initialisation from torch's global generator) from its config."""
    if model in SEE_MODELS:
        return MCOENet(MCOENetConfig.from_json(json.dumps(config)))
    if model == "hi-moe":
        return HiMoE(HiMoEConfig.from_dict(config))
    if model == "late-fusion":
        return LateFusion(LateFusionConfig.from_dict(config))
    if model == "concat-fusion":
        return ConcatRegressor(ConcatRegressorConfig.from_dict(config))
    if model == "ensemble":
        members = [build_model(m["model"], m["config"]) for m in config["members"]]
        return Ensemble(
            members,
            [m["weight"] for m in config["members"]],
            [m.get("name", m["model"]) for m in config["members"]],
            tuple(config["output_range"]),
        )
    raise UsageError(f"unknown model {model!r}")


# --------------------------------------------------------------------------- losses
def signal_loss(
    model_name: str, model: nn.Module, output: Any, targets: torch.Tensor, recipe: Recipe
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss of each signal model, as its paper (or its card) defines it."""
    if model_name == "hi-moe":
        assert isinstance(model, HiMoE)
        return model.loss(output, targets)
    if model_name == "late-fusion":
        return late_fusion_loss(output, targets)
    if model_name == "concat-fusion":
        return concat_regressor_loss(output, targets, recipe.aux_weight)
    raise UsageError(f"{model_name}: no training loss (ensembles train their members)")


def see_loss(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain cross-entropy, as released (no load-balancing term)."""
    ce = F.cross_entropy(logits, labels)
    return ce, {"ce": ce}


# --------------------------------------------------------------------------- files
def save_checkpoint(
    path: str | Path,
    model_name: str,
    model: nn.Module,
    config: dict[str, Any],
    info: dict[str, Any],
) -> Path:
    """``path`` (.safetensors) and its ``.json`` sibling; returns the JSON path."""
    path = Path(path)
    meta = {"format": FORMAT, "model": model_name, "config": json.dumps(config, sort_keys=True)}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)
    doc = {"format": FORMAT, "model": model_name, "config": config, **info}
    jpath = path.with_suffix(".json")
    jpath.write_text(json.dumps(doc, indent=2, sort_keys=True, default=_json_default))
    return jpath


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_info(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON (or, without it, what the safetensors metadata says)."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    jpath = path.with_suffix(".json")
    if jpath.is_file():
        try:
            doc = json.loads(jpath.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{jpath}: not readable as JSON ({exc})") from exc
        if isinstance(doc, dict) and "family" in doc and doc.get("format") != FORMAT:
            raise UsageError(
                f"{jpath}: describes the served model {doc.get('model')!r}, not a checkpoint "
                "of `affectlab train`; evaluate takes train's run folders and checkpoints"
            )
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise UsageError(f"{jpath}: not an affectlab checkpoint description")
        if not isinstance(doc.get("model"), str) or not isinstance(doc.get("config"), dict):
            raise UsageError(f"{jpath}: names no model and config")
        return doc
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise UsageError(f"{path}: not a readable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT or "model" not in meta or "config" not in meta:
        raise UsageError(f"{path}: not an affectlab checkpoint (format {meta.get('format')!r})")
    try:
        config = json.loads(meta["config"])
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: its config metadata is not JSON ({exc})") from exc
    return {"format": FORMAT, "model": meta["model"], "config": config}


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights (safetensors only); eval mode."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    info = read_info(path)
    name, config = info["model"], info["config"]
    try:
        model = build_model(name, config)
    except (KeyError, TypeError, ValueError) as exc:  # a config of another model, edited
        raise UsageError(f"{path}: its config does not describe a {name} model ({exc})") from exc
    if not path.is_file():
        raise UsageError(f"{path}: weights missing beside {path.with_suffix('.json')}")
    try:
        load_tensors(model, path)
    except ModelLoadError as exc:
        raise UsageError(str(exc)) from exc
    return model.to(device).eval(), info
