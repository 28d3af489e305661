"""Loading a model file and serving it to the inference worker.

A model file is one safetensors file whose metadata names its family
("concat-fusion", "hi-moe", "mco-e-net"), the architecture's hyperparameters,
the ``ModelInputs`` the aligner must serve, the output columns and provenance
(``models.serving.base``). ``load_runner`` rebuilds the model from that alone
(nothing of the training run is imported, nothing is unpickled) and wraps it in
its family's runner, the adapter of ``core.worker.ModelRunner``: Window ->
tensors (``prepare``) -> ``ModelOutput`` (``infer``). Each family lives in
``models/serving/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.window import ModelInputs
from models.checkpoint import FORMAT as CHECKPOINT_FORMAT
from models.registry import RETRAIN, SHIPPED, shipped_path
from models.serving import FAMILIES, FAMILY_OF_ARCHITECTURE
from models.serving.base import (  # noqa: F401 - the public names of serving
    FORMAT,
    REQUIRED_METADATA,
    Family,
    ModelLoadError,
    Runner,
    inputs_from_json,
    inputs_to_json,
    load_tensors,
    present_for_model,
    read_safetensors_metadata,
)
from models.serving.concat_fusion import OUTPUTS, Prepared, TorchRunner, layouts_for  # noqa: F401
from models.serving.hi_moe import HiMoERunner  # noqa: F401
from models.serving.mco_e_net import MCOENetRunner  # noqa: F401

#: architecture names this version can rebuild (kept for callers of the one-family runtime)
ARCHITECTURES: dict[str, type[nn.Module]] = {
    f.architecture: f.model_type for f in FAMILIES.values()
}


def pick_device(requested: str = "auto") -> str:
    """``auto`` -> cuda when torch sees a GPU, else cpu. Asking for cuda without one is an error."""
    requested = (requested or "auto").lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested != "cpu" and not re.fullmatch(r"cuda(:\d+)?", requested):
        raise ModelLoadError(f"device {requested!r}: expected auto, cpu, cuda or cuda:N")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {requested!r} was asked for but torch sees no CUDA device; use 'auto' or 'cpu'"
        )
    return requested


def family_for_model(model: nn.Module) -> Family:
    for family in FAMILIES.values():
        if isinstance(model, family.model_type):
            return family
    raise ValueError(
        f"no served family for {type(model).__name__}; "
        f"served: {', '.join(f.architecture for f in FAMILIES.values())}"
    )


# --------------------------------------------------------------------------- files
def save_model(
    path: str | Path,
    model: nn.Module,
    inputs: ModelInputs,
    provenance: dict[str, Any],
) -> Path:
    """Write tensors and metadata; ``provenance`` holds trained_on, command, date, metrics."""
    from safetensors.torch import save_file

    if "trained_on" not in provenance:
        raise ValueError("provenance must say what the model was trained on ('trained_on')")
    family = family_for_model(model)
    config = family.config_json(model)
    family.validate(config, inputs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": FORMAT,
        "family": family.name,
        "architecture": family.architecture,
        "name": inputs.model,
        "config": config,
        "inputs": inputs_to_json(inputs),
        "outputs": json.dumps(list(family.outputs(model))),
    }
    for k, v in provenance.items():
        metadata[k] = v if isinstance(v, str) else json.dumps(v)
    metadata.setdefault("torch", torch.__version__)  # the version that wrote the weights
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    path.chmod(0o644)  # safetensors writes 0600; shipped weights must be readable by all
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a model file, checked for the keys a runner needs.

    A file written before families were named gets ``family`` from its architecture.
    """
    path = Path(path)
    meta = read_safetensors_metadata(path)
    if meta.get("format") == CHECKPOINT_FORMAT:
        raise ModelLoadError(
            f"model file {path} is a checkpoint of `affectlab train` "
            f"({meta.get('model', 'a model')} on a data set's windows), which `affectlab evaluate` "
            "reads; a session runs models written for serving (the shipped ones, "
            "`affectlab train-demo`'s): a data set's windows are preprocessed (baseline removal, "
            "its filters) in ways a live stream is not"
        )
    absent = [k for k in REQUIRED_METADATA if k not in meta]
    if absent:
        raise ModelLoadError(
            f"model file {path} lacks metadata {', '.join(absent)}; "
            "it was not written by affectlab's save_model"
        )
    if meta["format"] != FORMAT:
        raise ModelLoadError(
            f"model file {path} has format {meta['format']!r}, expected {FORMAT!r}"
        )
    family = meta.get("family") or FAMILY_OF_ARCHITECTURE.get(meta["architecture"])
    if family not in FAMILIES:
        raise ModelLoadError(
            f"model file {path} needs model family {family or meta['architecture']!r}; "
            f"this version serves {', '.join(FAMILIES)}"
        )
    if FAMILIES[family].architecture != meta["architecture"]:
        raise ModelLoadError(
            f"model file {path}: family {family!r} has no architecture {meta['architecture']!r}"
        )
    meta["family"] = family
    return meta


def load_model(
    path: str | Path, device: str = "cpu"
) -> tuple[nn.Module, ModelInputs, dict[str, str]]:
    """Rebuild the model from a file's metadata and load its tensors (no pickle)."""
    path = Path(path)
    meta = read_metadata(path)
    family = FAMILIES[meta["family"]]
    try:
        inputs = inputs_from_json(meta["inputs"])
        outputs = tuple(json.loads(meta["outputs"]))
        model = family.build(meta["config"], inputs)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"model file {path} has malformed metadata: {exc}") from exc
    if outputs != family.outputs(model):
        raise ModelLoadError(
            f"model file {path}: outputs {list(outputs)} are not {list(family.outputs(model))}"
        )
    load_tensors(model, path)
    model.to(device).eval()
    return model, inputs, meta


def resolve(name_or_path: str) -> Path:
    """A shipped model name or a path to a ``.safetensors`` file -> the file."""
    if name_or_path in SHIPPED:
        path = shipped_path(name_or_path)
        if not path.is_file():
            raise ModelLoadError(
                f"the weights of shipped model {name_or_path!r} are missing ({path}); "
                f"retrain them with `{RETRAIN[name_or_path]}`"
            )
        return path
    path = Path(name_or_path).expanduser()
    if path.suffix == ".safetensors" or path.exists():
        if path.is_dir():
            raise ModelLoadError(f"model file {path} is a folder, not a .safetensors file")
        if not path.is_file():
            raise ModelLoadError(f"model file {path} does not exist")
        return path
    raise ModelLoadError(
        f"unknown model {name_or_path!r}; shipped models: {', '.join(sorted(SHIPPED))} "
        "(or give the path of a .safetensors file)"
    )


# --------------------------------------------------------------------------- runners
def load_runner(name_or_path: str, device: str = "auto") -> Runner:
    """A runner for a shipped model name ("hi-moe-sim") or a .safetensors path."""
    path = resolve(name_or_path)
    chosen = pick_device(device)
    model, inputs, meta = load_model(path, chosen)
    return FAMILIES[meta["family"]].runner(model, inputs, chosen, meta, path)


def set_inference_threads(threads: int | None = None) -> int:
    """Size torch's CPU thread pool for live inference and return the size chosen.

    The drivers and the aligner need a core of their own: with every core in
    torch's pool, OpenMP workers spin against the driver threads and a few-ms
    model stretches into seconds (measured on two cores). Default: all cores
    but one. Process-wide, so the session calls it once.
    """
    import os

    import torch

    n = threads if threads else max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(n)
    return n
