"""`affectlab train-demo --model hi-moe`: config overrides and EMA reach the shipped file.

A real (tiny) run: three 30 s simulated sessions rendered and cut by the live
sensors and aligner, one epoch, weights written as safetensors and loaded back
by the runtime the demo uses.
"""

from __future__ import annotations

import json

import pytest

from app.demo_data import SessionPlan, build_dataset
from app.train_demo_hi_moe import main as train_hi_moe
from models.demo.hi_moe import predict
from models.registry import hi_moe_sim_config, hi_moe_sim_inputs
from models.runtime import load_runner
from models.tasks import mean_ccc

#: a config whose inputs differ from the cached windows' (EEG only)
EEG_ONLY = hi_moe_sim_config().to_dict()["modalities"][:1]


def test_set_and_ema_decay_train_the_model_they_name(tmp_path, capsys) -> None:
    out = tmp_path / "hi_moe_cat.safetensors"
    args = [
        "--seeds", "2", "--val-seeds", "1", "--test-seeds", "1", "--minutes", "0.5",
        "--epochs", "1", "--workers", "1", "--no-progress",
        "--cache-dir", str(tmp_path / "cache"), "--run-dir", str(tmp_path / "run"),
        "--out", str(out),
        "--set", "fusion=attention-concat", "--set", "pearson_weight=1.0",
        "--ema-decay", "0.99",
    ]  # fmt: skip
    assert train_hi_moe(args) == 0
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["recipe"]["ema_decay"] == 0.99
    assert "--set fusion=attention-concat" in figures["training_command"]

    runner = load_runner(str(out))
    config = runner.model.config
    assert (config.fusion, config.pearson_weight) == ("attention-concat", 1.0)
    assert set(runner.inputs.inputs) == {"eeg", "ecg", "ppg", "eda", "resp", "temp"}
    # the file holds the weights that were scored (the EMA's, not the last step's):
    # its predictions on the cached test windows give the figures it was shipped with
    test = build_dataset(
        [SessionPlan.for_seed(0, 0.5)], hi_moe_sim_inputs(), tmp_path / "cache", 1, False
    )
    assert len(test) == figures["test"]["n_windows"] > 0
    ccc = mean_ccc(test.affect, predict(runner.model, test))
    assert ccc == pytest.approx(figures["test"]["all_inputs"]["mean_ccc"], abs=1e-5)

    # --resume continues (here: finds finished) the run, though the command line now
    # says --resume and runs with other workers and threads
    again = tmp_path / "again.safetensors"
    resumed = [*args[: args.index("--out")], "--out", str(again), *args[args.index("--set") :]]
    resumed = [a if a != "--workers" else "--threads" for a in resumed] + ["--resume"]
    assert train_hi_moe(resumed) == 0
    assert json.loads(again.with_suffix(".json").read_text())["test"] == figures["test"]
    # ... but not with options that change what it computes: one line, exit code 2
    capsys.readouterr()
    assert train_hi_moe([*resumed, "--lr", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("affectlab train-demo: ") and "cannot resume" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--set", "fusion=attention-conca"], "is not one of"),
        (["--set", "no_such_field=1"], "no config field 'no_such_field'; fields: "),
        (["--set", "pearson_weight"], "expected KEY=VALUE"),
        (["--set", "modalities=" + json.dumps(EEG_ONLY)], "do not match declared inputs"),
        (["--ema-decay", "1"], "must lie in [0, 1)"),
    ],
)
def test_bad_overrides_fail_before_any_data_is_read(args, problem, tmp_path, capsys) -> None:
    cache = tmp_path / "cache"
    assert train_hi_moe([*args, "--cache-dir", str(cache), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert problem in err
    assert "fusion, heads" in err or "fields" not in err  # Hi-MoE's fusion is a field
    assert not cache.exists()


def _no_data(*_args, **_kwargs):
    raise AssertionError("the data was read before the --set values were checked")


@pytest.mark.parametrize(
    "item, problem",
    [
        ("d_model=abc", 'd_model="abc": d_model takes an integer (default 64), not a string'),
        ("d_model=32.5", "d_model takes an integer (default 64), not a float"),
        ("dropout=[0.1]", "dropout takes a number (default 0.1), not a list"),
        ("fusion=3", "fusion takes a string"),
        ("mask_missing_in_fusion=0", "mask_missing_in_fusion takes true or false"),
        ("dropout=2", "dropout must lie in [0, 1)"),
        ("temperature=-1", "temperature must be > 0"),
        ("heads=0", "heads must be an integer >= 1"),
        ('outputs=["valence"]', "--set outputs: cannot change in train-demo"),
        ("output_range=[1, 5]", "--set output_range: cannot change in train-demo"),
        ('modalities=["eeg"]', "--set modalities: cannot change in train-demo"),
    ],
)
def test_wrong_values_fail_in_one_line_before_any_data_is_read(
    item, problem, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("app.train_demo_hi_moe.build_dataset", _no_data)
    cache = tmp_path / "cache"
    args = ["--set", item, "--cache-dir", str(cache), "--out", str(tmp_path / "w.safetensors"),
            "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert train_hi_moe(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("affectlab train-demo: hi-moe: --set ") and len(err.splitlines()) == 1
    assert problem in err
    assert not cache.exists()


def test_fixed_fields_may_be_restated_unchanged() -> None:
    """``--set`` of a fixed field to the value it has anyway is no change, so no error."""
    from app.train_demo_hi_moe import demo_config

    base = hi_moe_sim_config()
    same = [
        "outputs=" + json.dumps(list(base.outputs)),
        "output_range=" + json.dumps(list(base.output_range)),
        "modalities=" + json.dumps(base.to_dict()["modalities"]),
        "dropout=0",
    ]
    config = demo_config(same)
    assert config.outputs == base.outputs and config.modalities == base.modalities
    assert config.dropout == 0.0 and isinstance(config.dropout, float)
