"""`affectlab train-demo` (concat-fusion-sim, the interim model): the saved file is the
scored one.

A real (tiny) run: three 30 s simulated sessions (eye camera and physiology)
rendered and cut by the live sensors and aligner, one epoch, the weights written
as safetensors and loaded back by the runtime the demo uses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.demo_data import SessionPlan, build_dataset
from app.train_demo import main as train_demo
from core.prediction import AFFECT_DIMENSIONS
from models.demo.concat_fusion import evaluate
from models.registry import concat_fusion_sim_inputs
from models.runtime import load_model


def test_the_file_holds_the_scored_ema_weights(tmp_path) -> None:
    out = tmp_path / "concat.safetensors"
    args = [
        "--seeds", "2", "--val-seeds", "1", "--test-seeds", "1", "--minutes", "0.5",
        "--epochs", "1", "--workers", "1", "--no-progress",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
    ]  # fmt: skip
    assert train_demo(args) == 0
    figures = json.loads(out.with_suffix(".json").read_text())
    model, inputs, meta = load_model(out)
    assert inputs == concat_fusion_sim_inputs()
    assert meta["torch"] == torch.__version__  # save_model records who wrote the weights
    assert meta["training_command"].startswith("affectlab train-demo --seeds 2")
    assert figures["history"][0]["epoch"] == 1

    # the file's predictions on the cached test windows give the figures it was saved with
    test = build_dataset(
        [SessionPlan.for_seed(0, 0.5)], concat_fusion_sim_inputs(), tmp_path / "cache", 1, False
    )
    shipped = figures["test"]["all_inputs"]
    assert len(test) == shipped["n_windows"] > 0
    again = evaluate(model, test)
    for dim in AFFECT_DIMENSIONS:
        assert again[dim]["ccc"] == pytest.approx(shipped[dim]["ccc"], abs=1e-5)
    assert np.array_equal(again["expression"]["confusion"], shipped["expression"]["confusion"])


@pytest.mark.parametrize(
    ("option", "value"),
    [("--batch-size", "0"), ("--lr", "-1"), ("--dropout", "2"), ("--minutes", "nan"),
     ("--epochs", "0")],
)  # fmt: skip
def test_bad_numbers_are_refused_by_argparse(tmp_path, capsys, option, value) -> None:
    with pytest.raises(SystemExit) as exc:
        train_demo([option, value, "--cache-dir", str(tmp_path), "--out", str(tmp_path / "w")])
    assert exc.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["concat-fusion", "hi-moe", "mco-e-net-lite"])
def test_unwritable_outputs_are_refused_before_training(tmp_path, capsys, model) -> None:
    """--out (a folder too) and --cache-dir are asked at the start: one line, rc 2."""
    ok = ["--model", model, "--no-progress"]
    cache = ["--cache-dir", str(tmp_path / "cache")]
    for args, flag in (
        ([*cache, "--out", "/proc/affectlab-no/out"], "--out"),
        ([*cache, "--out", str(tmp_path)], "--out"),
        (["--cache-dir", "/proc/affectlab-no/cache", "--out", str(tmp_path / "w")], "--cache-dir"),
    ):
        assert train_demo([*ok, *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"train-demo: {flag} ") and len(err.strip().splitlines()) == 1
