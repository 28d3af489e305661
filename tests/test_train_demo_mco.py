"""`affectlab train-demo --model mco-e-net-lite` (mco-e-net-lite-sim): deterministic, and
the saved file is the scored one.

A real (tiny) run: 30 s simulated eye-camera sessions and one 15 s test participant under
the four lightings, rendered by the virtual DAVIS and cut by the live aligner; two epochs.
The model card says the shipped weights are what the recorded command gives: the same
command twice gives the same tensors here.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from safetensors.torch import load_file

from app.demo_data import SessionPlan, build_dataset
from app.train_demo_mco import LIGHTINGS
from app.train_demo_mco import main as train_mco
from models.demo.mco import predict
from models.demo.windows import per_lighting
from models.registry import mco_e_net_lite_sim_inputs
from models.runtime import load_model


def test_same_command_same_weights_and_the_file_gives_its_figures(tmp_path) -> None:
    cache = tmp_path / "cache"
    common = [
        "--model", "mco-e-net-lite", "--seeds", "3", "--val-seeds", "1", "--minutes", "0.5",
        "--test-seeds", "1", "--test-minutes", "0.25", "--epochs", "2", "--workers", "1",
        "--no-progress", "--cache-dir", str(cache),
    ]  # fmt: skip
    outs = []
    for run in ("a", "b"):  # the second run reads the windows the first one cached
        out = tmp_path / f"{run}.safetensors"
        assert train_mco([*common, "--run-dir", str(tmp_path / run), "--out", str(out)]) == 0
        outs.append(out)

    first, second = (load_file(str(o)) for o in outs)
    assert first.keys() == second.keys() and len(first) > 300
    assert all(torch.equal(first[k], second[k]) for k in first)
    figures = [json.loads(o.with_suffix(".json").read_text()) for o in outs]
    assert figures[0]["test"] == figures[1]["test"]
    assert figures[0]["windows"] == figures[1]["windows"]
    assert figures[0]["epochs_run"] == 2

    model, inputs, meta = load_model(outs[0])
    assert inputs == mco_e_net_lite_sim_inputs()
    assert meta["torch"] == torch.__version__
    assert meta["training_command"].startswith("affectlab train-demo --model mco-e-net-lite")

    # the file's predictions on the cached test windows give the confusion it was saved with
    plans = [SessionPlan.for_seed(0, 0.25).under(light) for light in LIGHTINGS]
    test = build_dataset(plans, inputs, cache, 1, False, 4, [mco_e_net_lite_sim_inputs()])
    test = test.subset(np.flatnonzero(test.present[:, list(inputs.inputs).index("frames")]))
    saved = figures[0]["test"]["all_inputs"]
    assert len(test) == saved["all"]["n"] > 0
    again = per_lighting(test, predict(model, test, frames_only=False).argmax(1), LIGHTINGS)
    for light in ("all", *LIGHTINGS):
        assert np.array_equal(again[light]["confusion"], saved[light]["confusion"]), light


def test_score_demo_refuses_bad_numbers_and_unwritable_json(tmp_path, capsys) -> None:
    import pytest

    from app.score_demo_mco import main as score_demo

    for option in ("--test-seeds", "--stride"):
        with pytest.raises(SystemExit) as exc:
            score_demo(["mco-e-net-lite-sim", option, "0"])
        assert exc.value.code == 2
        assert f"argument {option}:" in capsys.readouterr().err
    assert score_demo(["mco-e-net-lite-sim", "--json", "/proc/affectlab-no/out.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("affectlab score-demo: --json ") and len(err.strip().splitlines()) == 1
