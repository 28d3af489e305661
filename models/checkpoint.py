"""A trained model on disk: ``NAME.safetensors`` plus ``NAME.json`` beside it.

The safetensors file holds the weights and, in its metadata, the format, the model's
name in ``models.zoo`` and its config as JSON; the JSON sibling holds the same plus
the data kind, protocol, fold, seed, recipe and metrics of the run that made it.
Loading rebuilds the model from its config through the zoo and never unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from models.datasets import UsageError
from models.errors import ModelLoadError
from models.serving.base import load_tensors
from models.zoo import build_model

FORMAT = "affectlab-checkpoint/1"


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
    jpath.write_text(json.dumps(doc, indent=2, sort_keys=True, default=json_default))
    return jpath


def json_default(obj: Any) -> Any:
    """``json.dumps``' ``default`` for what runs write (arrays, numpy scalars, paths)."""
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
