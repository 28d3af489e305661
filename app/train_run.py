"""A training run's folder: ``run.json`` (the run's settings, every trained fold's test
metrics and their mean) and the check before folds are added to it.

``app.train`` trains the folds; this keeps one run folder one experiment, whichever
commands (``--fold``, ``--resume``) filled it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def differences(was: Any, now: Any, where: str) -> list[str]:
    """``key is OLD in the run, NEW now`` for every leaf that differs, nested keys dotted.
    Settings an older ``run.json`` does not record at all are not compared, nor the recipe of
    a model only one side has (the model or member difference says it in fewer words)."""
    if isinstance(was, dict) and isinstance(now, dict):
        found = []
        for key in sorted(set(now) | set(was)) if where else now:
            if where or key in was:
                found += differences(was.get(key), now.get(key), f"{where}{key}.")
        return found
    if was == now or (None in (was, now) and isinstance(was or now, dict)):
        return []
    return [f"{where[:-1]} is {was!r} in the run, {now!r} now"]


def check_same_run(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to add folds to a run in ``out`` (``--resume``, ``--fold``) made with other
    run-level settings, before any data is read: the per-fold resume check only sees the
    fold it is about to train, so folds of other splits, seeds or models would otherwise sit
    side by side and ``run.json`` would claim the last command's settings for all of them."""
    from models.datasets import UsageError

    path = out / "run.json"
    if not path.is_file():
        return
    try:
        was = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable ({exc}); choose another --out") from exc
    was = was if isinstance(was, dict) else {}
    if was.get("model", settings["model"]) != settings["model"]:
        raise UsageError(
            f"{out}: holds a {was['model']} run, not {settings['model']}; choose another --out"
        )
    found = differences(was, settings, "")
    if found:
        raise UsageError(
            f"{out}: holds a run made with other settings ({'; '.join(found)}); "
            "give the same options or choose another --out"
        )


def headline(metrics: dict[str, Any]) -> str:
    if "mean" in metrics:
        m = metrics["mean"]
        return f"CCC {m['ccc']:.3f}, PCC {m['pcc']:.3f}, MAE {m['mae']:.3f}, ACC {m['acc']:.3f}, F1 {m['f1']:.3f}"
    a = metrics["lighting"]["all"]
    return f"WAR {a['war']:.3f}, UAR {a['uar']:.3f}"


def fold_results(out: Path, folds: list[str]) -> dict[str, Any]:
    """The test metrics of every fold trained in ``out`` so far, by this command or an earlier
    one (``--fold``, ``--resume``): each fold folder's ``model.json`` holds them."""
    results = {}
    for name in folds:
        path = out / name / "model.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())["metrics"]["test"]
    return results


def write_run(out: Path, settings: dict[str, Any], folds: list[str]) -> tuple[int, str]:
    """``run.json``: the run's settings, every trained fold's test metrics and their mean,
    finished once every fold of the protocol is trained. Returns the folds done and a
    headline of the mean."""
    import numpy as np

    results = fold_results(out, folds)
    finished = len(results) == len(folds)
    headline = ""
    doc: dict[str, Any] = {**settings, "fold_names": folds, "finished": finished, "test": results}
    if results:
        first = next(iter(results.values()))
        if "mean" in first:
            keys = ("ccc", "pcc", "mae", "acc", "f1")
            mean = {k: float(np.mean([r["mean"][k] for r in results.values()])) for k in keys}
        else:
            keys = ("war", "uar")
            mean = {
                k: float(np.mean([r["lighting"]["all"][k] for r in results.values()])) for k in keys
            }
        doc["test_mean_over_folds"] = mean
        headline = ", ".join(f"{k.upper()} {v:.3f}" for k, v in mean.items())
    (out / "run.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
    return len(results), headline
