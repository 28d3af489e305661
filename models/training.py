"""The training loop: epochs, validation, early stopping, EMA, resumable checkpoints.

Model-agnostic: a ``Task`` gives batches, a loss and a validation score
(``models.tasks``), a ``Recipe`` the optimiser and schedule (``models.zoo``).

Determinism: the weights are initialised by the caller (under its seed); every
epoch reseeds torch's global generator (dropout) and the task's generators
(shuffling, missing-modality masks, clip sampling) from ``(seed, epoch)``.
So a run is a function of its seed, and a run interrupted after any epoch and
resumed from ``last.safetensors`` ends with the very weights of one that was
never interrupted (tested).

Files in the run folder, rewritten atomically after every epoch:

- ``last.safetensors``: the weights (``model.*``), the EMA weights (``ema.*``)
  and every tensor of the optimiser state (``optim.<param>.<name>``), flattened
  so that nothing is pickled;
- ``best.safetensors``: the weights that scored best on validation so far
  (the EMA's when EMA is on);
- ``state.json``: epoch, best score, patience counter, history, the
  optimiser's non-tensor state (param groups) and the scheduler's state.

The state also travels inside ``last.safetensors`` (its metadata), and resuming reads
it from there: two files each replaced atomically are not replaced together, and a
run stopped between the two would resume with one epoch's weights beside another's
state and train that epoch twice. ``state.json`` is the copy for people (and for runs
written before the state moved into the weights).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from models.progress import progress_bar
from models.zoo import Recipe

LAST, BEST, STATE = "last.safetensors", "best.safetensors", "state.json"
STATE_FORMAT = "affectlab-train-state/1"


class Task(Protocol):
    def n_batches(self) -> int: ...
    def prepare(self, model: nn.Module, seed: int) -> None: ...
    def batches(self, epoch_seed: int) -> Iterator[Any]: ...
    def loss(
        self, model: nn.Module, batch: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...
    def validate(self, model: nn.Module) -> dict[str, float]: ...


class ResumeError(RuntimeError):
    """A run folder that cannot be resumed as asked (different settings, damaged files)."""


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 31-bit seed per (run seed, epoch)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 0x5EED]).generate_state(1)[0] >> 1)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def set_threads(threads: int) -> None:
    """torch's intra-op threads. One is often faster here: OpenMP spin-waits crawl when
    another process holds a core."""
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- EMA
class EMA:
    """Exponential moving average of the weights, with the usual warm-up:
    decay ``min(d, (1 + n) / (10 + n))`` after ``n`` updates, so a short run
    is not dominated by its random initialisation. Buffers are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)


# --------------------------------------------------------------------------- optimiser
def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"optimizer {recipe.optimizer!r}; expected adam or adamw")


def make_scheduler(
    opt: torch.optim.Optimizer, recipe: Recipe
) -> torch.optim.lr_scheduler.LRScheduler:
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, recipe.epochs))
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=recipe.step_gamma)
    if recipe.schedule == "constant":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=1.0)
    raise ValueError(f"schedule {recipe.schedule!r}; expected cosine, step or constant")


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state as (tensors for safetensors, JSON-ready rest)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("optim."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    for pid, st in rest.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    groups = rest["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_save(
    tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str] | None = None
) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def _weights(model: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {
        prefix + k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()
    }


def _load_prefixed(model: nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    model.load_state_dict(sd, strict=True)


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    epochs_run: int  # epochs completed in total (across resumes)
    best_epoch: int  # 1-based; 0 if never validated
    best_score: float
    best_metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    finished: bool = False  # False: stopped by ``stop_after``; resume to continue
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit(
    model: nn.Module,
    task: Task,
    recipe: Recipe,
    out_dir: str | Path,
    seed: int,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    fingerprint: dict[str, Any] | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` in place; on return it holds the best validation weights (EMA's if on).

    ``resume``: continue from ``out_dir/last.safetensors`` (a finished run
    returns at once with its best weights). ``stop_after``: stop after that many
    epochs of this call, leaving a resumable run (``finished=False``).
    ``fingerprint``: settings that must match on resume (checked).
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _s: None)
    opt = make_optimizer(model, recipe)
    sched = make_scheduler(opt, recipe)
    ema = EMA(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    state: dict[str, Any] = {
        "format": STATE_FORMAT,
        "epoch": 0,
        "best_score": -math.inf,
        "best_epoch": 0,
        "best_metrics": {},
        "since_best": 0,
        "history": [],
        "finished": False,
        "stopped_early": False,
        "seconds": 0.0,
        "seed": seed,
        "recipe": recipe.to_dict(),
        "fingerprint": fingerprint or {},
    }
    eval_model = ema.model if ema is not None else model
    if resume and ((out / LAST).is_file() or (out / STATE).is_file()):
        saved = _saved_state(out)
        for key, want in (
            ("seed", seed),
            ("recipe", recipe.to_dict()),
            ("fingerprint", fingerprint or {}),
        ):
            if saved.get(key) != json.loads(json.dumps(want)):
                raise ResumeError(
                    f"{out}: cannot resume: {key} differs from the interrupted run "
                    f"({saved.get(key)!r} != {want!r})"
                )
        tensors = load_file(str(out / LAST))
        _load_prefixed(model, tensors, "model.")
        if ema is not None:
            _load_prefixed(ema.model, tensors, "ema.")
            ema.updates = int(saved.get("ema_updates", 0))
        unflatten_optimizer(opt, tensors, saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        state.update({k: v for k, v in saved.items() if k not in ("optimizer", "scheduler")})
        state["best_score"] = -math.inf if state["best_score"] is None else state["best_score"]
        if state["finished"]:
            if (out / BEST).is_file():
                _load_prefixed(eval_model, load_file(str(out / BEST)), "model.")
            if eval_model is not model:
                model.load_state_dict(eval_model.state_dict())
            say(f"{desc}: already finished ({state['epoch']} epochs); nothing to resume")
            return _result(state)
        say(f"{desc}: resuming after epoch {state['epoch']}")
    else:
        task.prepare(model, seed)
        if ema is not None:
            ema.model.load_state_dict(model.state_dict())
    run_epochs = 0
    n_batches = task.n_batches()
    while state["epoch"] < recipe.epochs:
        epoch = state["epoch"]
        es = epoch_seed(seed, epoch)
        torch.manual_seed(es)
        model.train()
        total, count = 0.0, 0
        t0 = time.perf_counter()
        with progress_bar(total=n_batches, desc=f"{desc} epoch {epoch + 1}/{recipe.epochs}",
                          enabled=progress, leave=False, unit="batch") as bar:  # fmt: skip
            for batch in task.batches(es):
                loss, _parts = task.loss(model, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{desc}: loss is {loss.item()} at epoch {epoch + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                opt.step()
                if ema is not None:
                    ema.update(model)
                total += float(loss.detach())
                count += 1
                bar.update(1)
                bar.set_postfix(loss=f"{total / count:.4f}")
        sched.step()
        metrics = task.validate(eval_model)
        model.train(False)
        score = float(metrics["score"])
        state["epoch"] = epoch + 1
        improved = score > state["best_score"]
        if improved:
            state.update(best_score=score, best_epoch=epoch + 1, best_metrics=metrics, since_best=0)
            _atomic_save(_weights(eval_model, "model."), out / BEST)
        else:
            state["since_best"] += 1
        row = {"epoch": epoch + 1, "loss": total / max(count, 1), "lr": opt.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0, **{f"val_{k}": v for k, v in metrics.items()}}  # fmt: skip
        state["history"].append(row)
        say(
            f"{desc} epoch {epoch + 1}/{recipe.epochs}: loss {row['loss']:.4f}, "
            f"val score {score:.4f}{' (best)' if improved else ''}, {row['seconds']:.1f} s"
        )
        if state["since_best"] >= recipe.patience:
            state["stopped_early"] = True
            say(f"{desc}: early stop, no better validation score for {recipe.patience} epochs")
        run_epochs += 1
        done = state["stopped_early"] or state["epoch"] >= recipe.epochs
        state["finished"] = done
        state["seconds"] = float(state["seconds"]) + (time.perf_counter() - t0)
        _checkpoint(out, model, ema, opt, sched, state)
        if done:
            break
        if stop_after is not None and run_epochs >= stop_after:
            say(f"{desc}: stopped after {run_epochs} epoch(s) as asked; --resume continues")
            return _result(state)
    if not state["finished"]:  # zero epochs asked
        state["finished"] = True
        _checkpoint(out, model, ema, opt, sched, state)
    if (out / BEST).is_file():
        _load_prefixed(eval_model, load_file(str(out / BEST)), "model.")
    if eval_model is not model:
        model.load_state_dict(eval_model.state_dict())
    model.eval()
    say(f"{desc}: best validation score {state['best_score']:.4f} at epoch {state['best_epoch']}")
    return _result(state)


def _checkpoint(
    out: Path,
    model: nn.Module,
    ema: EMA | None,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> None:
    tensors = _weights(model, "model.")
    if ema is not None:
        tensors.update(_weights(ema.model, "ema."))
        state["ema_updates"] = ema.updates
    opt_tensors, opt_rest = flatten_optimizer(opt)
    tensors.update(opt_tensors)
    doc = dict(state)
    doc["best_score"] = None if not math.isfinite(doc["best_score"]) else doc["best_score"]
    doc["optimizer"] = opt_rest
    doc["scheduler"] = sched.state_dict()
    text = json.dumps(doc, indent=1, sort_keys=True)
    _atomic_save(tensors, out / LAST, {"state": text})  # weights and state: one file, one step
    _atomic_write_text(out / STATE, text)


def _saved_state(out: Path) -> dict[str, Any]:
    """The state that goes with ``last.safetensors``: from its own metadata, else (a run
    written before the state moved there) from ``state.json``."""
    text = None
    if (out / LAST).is_file():
        try:
            with safe_open(str(out / LAST), "pt") as f:
                text = (f.metadata() or {}).get("state")
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own kinds
            raise ResumeError(f"{out / LAST}: damaged ({exc})") from exc
    where = out / LAST
    if text is None:
        where = out / STATE
        if not where.is_file():
            raise ResumeError(f"{out}: cannot resume: {LAST} holds no state and {STATE} is missing")
        text = where.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResumeError(f"{where}: damaged ({exc})") from exc


def _result(state: dict[str, Any]) -> TrainResult:
    best = state["best_score"]
    return TrainResult(
        epochs_run=int(state["epoch"]),
        best_epoch=int(state["best_epoch"]),
        best_score=float(best) if best is not None and math.isfinite(best) else float("nan"),
        best_metrics=dict(state["best_metrics"]),
        history=list(state["history"]),
        stopped_early=bool(state["stopped_early"]),
        finished=bool(state["finished"]),
        seconds=float(state["seconds"]),
    )


def _first_difference(saved: Any, now: Any, where: str) -> tuple[str, Any, Any] | None:
    """``(field, saved value, value now)`` of the first field that differs, dotted into dicts."""
    if isinstance(saved, dict) and isinstance(now, dict):
        for key in [*now, *(k for k in saved if k not in now)]:
            found = _first_difference(saved.get(key), now.get(key), f"{where}.{key}")
            if found:
                return found
        return None
    return None if saved == now else (where, saved, now)


def check_resume(out: Path, seed: int, recipe: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Refuse a ``--resume`` of ``out`` before any work (``fit`` would refuse too, but with
    both whole configs in one line, and a damaged file only once it gets there), naming
    what differs from the run there (its model first, then the first differing field) or
    which file is damaged."""
    if not ((out / LAST).is_file() or (out / STATE).is_file()):
        return
    saved = _saved_state(out)
    before = saved.get("fingerprint") or {}
    if "model" in before and before["model"] != fingerprint["model"]:
        raise ResumeError(
            f"{out}: cannot resume: it holds a {before['model']} run, not {fingerprint['model']}; "
            "choose another --out"
        )
    now = json.loads(json.dumps({"seed": seed, "recipe": recipe, **fingerprint}))
    was = {"seed": saved.get("seed"), "recipe": saved.get("recipe"), **before}
    found = _first_difference(was, now, "")
    if found:
        field, old, new = found
        raise ResumeError(
            f"{out}: cannot resume: {field[1:]} is {old!r} in the interrupted run, {new!r} now"
        )
    for name in (LAST, BEST) if saved.get("finished") else (LAST,):
        if (out / name).is_file():
            try:
                load_file(str(out / name))
            except Exception as exc:  # noqa: BLE001 - safetensors raises its own kinds
                raise ResumeError(f"{out / name}: damaged ({exc})") from exc
