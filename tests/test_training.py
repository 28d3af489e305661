"""Training: every model on tiny simulated data sets, determinism, resume, folds, errors.

The data sets are written once per session by ``app.simulate`` in the real
file formats (3 DEAP subjects x 4 trials of 10 s, 3 DREAMER subjects, 2 SEE
subjects) and read by the real loaders; runs are 1-2 epochs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from damaged_data import damaged_deap_sets
from safetensors.torch import load_file

from app.simulate import main as simulate
from app.train import main as train
from models.baselines import InputLayout
from models.checkpoint import load_checkpoint
from models.datasets import SignalData, load_signals, make_folds, parse_data_ref
from models.ensemble import Ensemble, validation_weights
from models.late_fusion import LateFusion, LateFusionConfig, late_fusion_loss
from models.tasks import batch_order, count_batches
from models.training import EMA, flatten_optimizer, unflatten_optimizer


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> dict[str, Path]:
    """Tiny DEAP, DREAMER and SEE data sets in their own formats (written once)."""
    root = tmp_path_factory.mktemp("sim_train")
    common = ["--subjects", "3", "--trials", "4", "--trial-seconds", "10", "--quiet"]
    assert simulate(["deap", "--out", str(root / "deap"), *common]) == 0
    assert (
        simulate(["dreamer", "--out", str(root / "dreamer"), *common, "--baseline-seconds", "2"])
        == 0
    )
    assert simulate(["see", "--out", str(root / "see"), "--subjects", "2", "--trials", "1",
                     "--trial-seconds", "0.6", "--frame-size", "100x100", "--quiet"]) == 0  # fmt: skip
    return {"deap": root / "deap", "dreamer": root / "dreamer" / "DREAMER.mat", "see": root / "see"}


def _run(model: str, data: str, out: Path, *extra: str) -> int:
    return train([model, "--data", data, "--out", str(out), "--quiet", "--threads", "1", *extra])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


# --------------------------------------------------------------------------- every model
@pytest.mark.parametrize("model", ["hi-moe", "late-fusion", "concat-fusion", "ensemble"])
def test_each_signal_model_trains_on_deap(sim, tmp_path, model):
    out = tmp_path / model
    rc = _run(model, f"deap:{sim['deap']}", out, "--protocol", "holdout", "--epochs", "2",
              "--missing-rate", "0.2", "--seed", "3")  # fmt: skip
    assert rc == 0
    info = json.loads((out / "fold_00" / "model.json").read_text())
    assert info["model"] == model
    assert info["data"]["kind"] == "deap" and info["protocol"] == "holdout" and info["seed"] == 3
    assert info["missing_rate"] == 0.2
    assert info["fold"]["n_test"] > 0 and info["fold"]["test_keys"]
    test = info["metrics"]["test"]
    assert set(test) == {"valence", "arousal", "dominance", "liking", "mean"}
    for k in ("ccc", "pcc", "mae", "acc", "f1"):
        assert np.isfinite(test["mean"][k])
    assert -1.0 <= test["mean"]["ccc"] <= 1.0 and 0.0 <= test["mean"]["acc"] <= 1.0
    if model == "ensemble":
        members = info["config"]["members"]
        assert [m["model"] for m in members] == ["late-fusion", "concat-fusion"]
        assert sum(m["weight"] for m in members) == pytest.approx(1.0)
        for m in members:  # each member is a run of its own, resumable
            assert (out / "fold_00" / "members" / m["model"] / "state.json").exists()
    else:
        assert info["training"]["epochs_run"] == 2
        assert len(info["training"]["history"]) == 2
    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and "fold_00" in run["test"]
    # the saved file rebuilds and predicts on the rating scale
    net, meta = load_checkpoint(out / "fold_00" / "model.safetensors")
    data = load_signals(parse_data_ref(f"deap:{sim['deap']}"))
    x = {m: torch.from_numpy(v[:5]) for m, v in data.x.items()}
    with torch.no_grad():
        reg = net(x, None).regression
    assert reg.shape == (5, 4) and bool(((reg >= 1) & (reg <= 9)).all())
    assert meta["config"] == info["config"]


def test_folds_trained_one_at_a_time_add_up_in_run_json(sim, tmp_path):
    out = tmp_path / "dr"
    data, args = f"dreamer:{sim['dreamer']}", ("--protocol", "loso", "--epochs", "1")
    assert _run("late-fusion", data, out, *args, "--fold", "0") == 0
    run = json.loads((out / "run.json").read_text())
    assert list(run["test"]) == ["subject_01"] and not run["finished"]
    assert run["fold_names"] == ["subject_01", "subject_02", "subject_03"]
    assert _run("late-fusion", data, out, *args, "--fold", "2", "--resume") == 0
    run = json.loads((out / "run.json").read_text())
    assert list(run["test"]) == ["subject_01", "subject_03"] and not run["finished"]
    assert _run("late-fusion", data, out, *args, "--resume") == 0  # the one left
    run = json.loads((out / "run.json").read_text())
    assert list(run["test"]) == ["subject_01", "subject_02", "subject_03"] and run["finished"]
    ccc = [run["test"][f]["mean"]["ccc"] for f in run["test"]]
    assert run["test_mean_over_folds"]["ccc"] == pytest.approx(sum(ccc) / 3)


def test_folds_of_other_run_settings_are_refused_before_training(sim, tmp_path, capsys):
    """--resume / --fold into a run refuse options that change its split or its models,
    naming each difference, and leave the run as it was."""
    data = f"deap:{sim['deap']}"
    out = tmp_path / "run"
    args = ("--protocol", "kfold", "--folds", "2", "--epochs", "1", "--seed", "0")
    assert _run("late-fusion", data, out, *args, "--fold", "0") == 0
    before = (out / "run.json").read_text()
    capsys.readouterr()
    for change, problem in [
        (("--protocol", "loso"), "protocol is 'kfold' in the run, 'loso' now; folds is 2"),
        (("--folds", "3", "--fold", "2"), "folds is 2 in the run, 3 now"),
        (("--fold", "1", "--seed", "1"), "seed is 0 in the run, 1 now"),
        (("--fold", "1", "--window-s", "2"), "data.window_s is 4.0 in the run, 2.0 now"),
        (("--fold", "1", "--set", "dim=8"), "overrides.dim is"),
        (("--fold", "1", "--missing-rate", "0.1", "--epochs", "2"),
         "missing_rate is 0.0 in the run, 0.1 now; recipes.late-fusion.epochs is 1"),
    ]:  # fmt: skip
        assert _run("late-fusion", data, out, *args, *change, "--resume") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"affectlab train: error: {out}: holds a run made with other")
        assert problem in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["fold_00", "run.json"]
    assert (out / "run.json").read_text() == before
    assert _run("late-fusion", data, out, *args, "--fold", "1", "--resume") == 0
    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and run["seed"] == 0 and run["recipes"]["late-fusion"]["epochs"] == 1


def test_dreamer_loso_with_late_fusion(sim, tmp_path):
    out = tmp_path / "dr"
    assert (
        _run("late-fusion", f"dreamer:{sim['dreamer']}", out, "--protocol", "loso", "--epochs", "1")
        == 0
    )
    folds = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folds == ["subject_01", "subject_02", "subject_03"]
    for f in folds:
        info = json.loads((out / f / "model.json").read_text())
        assert info["fold"]["held_out"] == int(f[-2:])
        assert {k[0] for k in info["fold"]["test_keys"]} == {int(f[-2:])}
        assert info["config"]["output_range"] == [1.0, 5.0]
        assert set(info["metrics"]["test"]) == {"valence", "arousal", "dominance", "mean"}


def test_mco_e_net_lite_on_see(sim, tmp_path):
    out = tmp_path / "see"
    rc = _run("mco-e-net-lite", f"see:{sim['see']}", out, "--epochs", "2", "--batch-size", "16")
    assert rc == 0
    info = json.loads((out / "fold_00" / "model.json").read_text())
    assert info["protocol"] == "holdout"
    assert info["config"]["name"] == "lite" and info["config"]["event_input"] == "intensity"
    light = info["metrics"]["test"]["lighting"]
    assert set(light) == {"normal", "overexposure", "low_light", "hdr", "all"}
    assert light["all"]["n"] == info["fold"]["n_test"]
    assert 0.0 <= light["all"]["war"] <= 1.0
    assert np.asarray(info["metrics"]["test"]["confusion"]).sum() == info["fold"]["n_test"]
    assert info["recipe"]["optimizer"] == "adamw" and info["recipe"]["schedule"] == "step"


# --------------------------------------------------------------------------- determinism, resume
def test_same_seed_same_weights_other_seed_other_weights(sim, tmp_path):
    args = ("--protocol", "holdout", "--epochs", "2", "--missing-rate", "0.3")
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert _run("hi-moe", f"deap:{sim['deap']}", tmp_path / name, *args, "--seed", seed) == 0
    a, b, c = (_weights(tmp_path / n / "fold_00" / "model.safetensors") for n in "abc")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("model", ["concat-fusion", "hi-moe"])
def test_resume_gives_the_uninterrupted_weights(sim, tmp_path, model):
    """concat-fusion also carries EMA weights and counters through the checkpoint."""
    data = f"deap:{sim['deap']}"
    args = (
        "--protocol",
        "holdout",
        "--epochs",
        "3",
        "--patience",
        "10",
        "--missing-rate",
        "0.2",
        "--seed",
        "1",
    )
    assert _run(model, data, tmp_path / "full", *args) == 0
    assert _run(model, data, tmp_path / "cut", *args, "--stop-after", "1") == 0
    state = json.loads((tmp_path / "cut" / "fold_00" / "state.json").read_text())
    assert state["epoch"] == 1 and not state["finished"]
    assert not (tmp_path / "cut" / "fold_00" / "model.safetensors").exists()
    assert not json.loads((tmp_path / "cut" / "run.json").read_text())["finished"]
    assert _run(model, data, tmp_path / "cut", *args, "--resume") == 0
    full = _weights(tmp_path / "full" / "fold_00" / "model.safetensors")
    cut = _weights(tmp_path / "cut" / "fold_00" / "model.safetensors")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    last_full = _weights(tmp_path / "full" / "fold_00" / "last.safetensors")
    last_cut = _weights(tmp_path / "cut" / "fold_00" / "last.safetensors")
    assert last_full.keys() == last_cut.keys() and any(k.startswith("optim.") for k in last_full)
    assert all(torch.equal(last_full[k], last_cut[k]) for k in last_full)
    # resuming a finished run changes nothing; resuming with another seed is refused
    assert _run(model, data, tmp_path / "cut", *args, "--resume") == 0
    assert _run(model, data, tmp_path / "cut", *args[:-1], "2", "--resume") == 2
    # stopped between writing an epoch's weights and its state.json: the state that goes
    # with the weights is the one inside them, so the epoch is not trained twice
    torn = tmp_path / "torn"
    assert _run(model, data, torn, *args, "--stop-after", "1") == 0
    first = (torn / "fold_00" / "state.json").read_text()
    assert _run(model, data, torn, *args, "--resume", "--stop-after", "1") == 0
    (torn / "fold_00" / "state.json").write_text(first)  # epoch 2's never landed
    assert _run(model, data, torn, *args, "--resume") == 0
    torn_w = _weights(torn / "fold_00" / "model.safetensors")
    assert all(torch.equal(full[k], torn_w[k]) for k in full)


def test_recipe_overrides_weight_decay_and_ema(sim, tmp_path):
    """--weight-decay and --ema-decay change the recipe any model trains with: recorded in
    model.json, EMA weights carried in last.safetensors and kept as the model."""
    data = f"deap:{sim['deap']}"
    args = ("--protocol", "holdout", "--epochs", "1", "--seed", "3")
    assert _run("hi-moe", data, tmp_path / "plain", *args) == 0
    assert _run("hi-moe", data, tmp_path / "ema", *args, "--ema-decay", "0.99",
                "--weight-decay", "0.01") == 0  # fmt: skip
    info = json.loads((tmp_path / "ema" / "fold_00" / "model.json").read_text())
    assert info["recipe"]["ema_decay"] == 0.99 and info["recipe"]["weight_decay"] == 0.01
    last = _weights(tmp_path / "ema" / "fold_00" / "last.safetensors")
    assert any(k.startswith("ema.") for k in last)
    kept = _weights(tmp_path / "ema" / "fold_00" / "model.safetensors")
    assert all(torch.equal(kept[k], last[f"ema.{k}"]) for k in kept)
    plain = _weights(tmp_path / "plain" / "fold_00" / "model.safetensors")
    assert not any(
        k.startswith("ema.") for k in _weights(tmp_path / "plain" / "fold_00" / "last.safetensors")
    )
    assert any(not torch.equal(plain[k], kept[k]) for k in plain)
    assert _run("hi-moe", data, tmp_path / "bad", *args, "--ema-decay", "1.5") == 2


def test_optimizer_state_round_trips_through_flat_tensors():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    tensors, rest = flatten_optimizer(opt)
    rest = json.loads(json.dumps(rest))  # as stored in state.json
    opt2 = torch.optim.AdamW(net.parameters(), lr=1.0)
    unflatten_optimizer(opt2, tensors, rest)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for k, v in a["state"][pid].items():
            assert torch.equal(v, b["state"][pid][k])


def test_ema_warms_up_then_follows_slowly():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, 0.99)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)  # decay min(0.99, 2/11): mostly the new weights
    assert torch.allclose(ema.model.weight, net.weight - 1.0 * 2 / 11)
    assert not ema.model.weight.requires_grad


# --------------------------------------------------------------------------- folds, batches
def test_folds_never_split_a_trial_or_a_subject(sim):
    data = load_signals(parse_data_ref(f"deap:{sim['deap']}"))
    assert isinstance(data, SignalData) and len(data) == 3 * 4 * 4
    w = data.windows

    def pairs(idx: np.ndarray) -> set[tuple[int, int]]:
        return {(int(s), int(t)) for s, t in zip(w.subject[idx], w.trial[idx], strict=True)}

    for protocol, k in (("kfold", 2), ("holdout", 0), ("loso", 0)):
        folds = make_folds(data, protocol, max(k, 2), seed=0)
        for f in folds:
            assert pairs(f.train).isdisjoint(pairs(f.test)) and pairs(f.val).isdisjoint(
                pairs(f.test)
            )
            assert pairs(f.train).isdisjoint(pairs(f.val))
            assert sorted(map(tuple, f.test_keys)) == sorted(pairs(f.test))
            assert np.array_equal(np.sort(data.select(f.test_keys)), np.sort(f.test))
            if protocol == "loso":
                assert set(w.subject[f.test]) == {f.held_out}
                assert f.held_out not in set(w.subject[f.train])
        if protocol == "kfold":  # every window is tested exactly once
            tested = np.concatenate([f.test for f in folds])
            assert np.array_equal(np.sort(tested), np.arange(len(data)))


def test_more_folds_than_can_be_filled_are_refused(sim, tmp_path, capsys):
    """k-fold over whole trials: each fold takes one of every subject's trials at least, so
    --folds beyond the fewest trials of a subject is refused, not quietly cut down."""
    data = load_signals(parse_data_ref(f"deap:{sim['deap']}"))
    assert len(make_folds(data, "kfold", 4)) == 4  # 4 trials per subject
    with pytest.raises(ValueError, match="--folds 5: subject 1 has 4 trials"):
        make_folds(data, "kfold", 5)
    for ref, folds, problem in [
        (f"deap:{sim['deap']}", "40", "at most --folds 4"),
        (f"see:{sim['see']}", "50", "fold(s) would hold no sequence; at most --folds"),
    ]:
        model = "mco-e-net-lite" if ref.startswith("see") else "late-fusion"
        out = tmp_path / "out"
        assert _run(model, ref, out, "--protocol", "kfold", "--folds", folds, "--epochs", "1") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"affectlab train: error: --folds {folds}: "), err
        assert problem in err and len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_batch_order_covers_everything_once():
    rng = np.random.default_rng(0)
    for n, b in ((33, 32), (64, 32), (5, 32), (65, 32)):
        parts = batch_order(n, b, rng)
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))
        assert all(len(p) >= 2 for p in parts)
        assert len(parts) == count_batches(n, b)


# --------------------------------------------------------------------------- the baselines' mechanics
def test_late_fusion_averages_present_modalities_only():
    torch.manual_seed(0)
    cfg = LateFusionConfig((InputLayout("a", "numeric", (2, 32)), InputLayout("b", "numeric", (1, 16))),
                           outputs=("valence", "arousal"))  # fmt: skip
    net = LateFusion(cfg).eval()
    x = {"a": torch.randn(4, 2, 32), "b": torch.randn(4, 1, 16)}
    present = {
        "a": torch.tensor([True, True, False, False]),
        "b": torch.tensor([True, False, True, False]),
    }
    with torch.no_grad():
        out = net(x, present)
        both = net(x, None)
        x_nan = {"a": x["a"].clone(), "b": x["b"]}
        x_nan["a"][2:] = float("nan")  # missing slots may hold anything
        out_nan = net(x_nan, present)
    br = both.branch_regression
    assert torch.allclose(out.regression[0], br[0].mean(0), atol=1e-6)
    assert torch.allclose(out.regression[1], br[1, 0], atol=1e-6)
    assert torch.allclose(out.regression[2], br[2, 1], atol=1e-6)
    assert torch.allclose(out.regression[3], torch.full((2,), 5.0))  # nothing present: the midpoint
    assert torch.equal(out_nan.regression, out.regression)
    loss, parts = late_fusion_loss(out, torch.full((4, 2), 7.0))
    assert torch.isfinite(loss) and set(parts) == {"mse", "bce"}


def test_late_fusion_weighs_modalities_by_their_validation_ccc():
    torch.manual_seed(0)
    cfg = LateFusionConfig((InputLayout("a", "numeric", (2, 32)), InputLayout("b", "numeric", (1, 16))),
                           outputs=("valence", "arousal"))  # fmt: skip
    net = LateFusion(cfg).eval()
    assert torch.equal(net.branch_weights, torch.ones(2, 2))  # untrained: the plain average
    g = torch.Generator().manual_seed(1)
    y = 1 + 8 * torch.rand(200, 2, generator=g)
    good = y + 0.3 * torch.randn(200, 2, generator=g)  # modality a tracks both dimensions
    noise = 1 + 8 * torch.rand(200, 2, generator=g)  # modality b tracks nothing ...
    noise[:, 1] = y[:, 1]  # ... except arousal, exactly
    net.fit_branch_weights(torch.stack([good, noise], 1), y)
    w = net.branch_weights
    assert w[0, 0] > 0.8 and w[1, 0] < 0.01  # valence: a only
    assert w[1, 1] > w[0, 1] > 0.8  # arousal: b (perfect) above a (good)
    x = {"a": torch.randn(3, 2, 32), "b": torch.randn(3, 1, 16)}
    with torch.no_grad():
        out = net(x)
        only_a = net(
            x, {"a": torch.ones(3, dtype=torch.bool), "b": torch.zeros(3, dtype=torch.bool)}
        )
    br = out.branch_regression
    want = (w[None] * br).sum(1) / w.sum(0)
    assert torch.allclose(out.regression, want, atol=1e-5)
    assert torch.allclose(only_a.regression, br[:, 0], atol=1e-5)  # renormalised over present
    # a checkpoint from before the weights existed loads as the plain average
    state = {k: v for k, v in net.state_dict().items() if k != "branch_weights"}
    old = LateFusion(cfg)
    old.load_state_dict(state)
    assert torch.equal(old.branch_weights, torch.ones(2, 2))
    equal = LateFusion(LateFusionConfig(cfg.layouts, outputs=cfg.outputs, weighting="equal"))
    equal.fit_branch_weights(torch.stack([good, noise], 1), y)
    assert torch.equal(equal.branch_weights, torch.ones(2, 2))


def test_ensemble_is_the_validation_weighted_mean():
    assert validation_weights([0.6, 0.2, -0.3]) == pytest.approx([0.75, 0.25, 0.0])
    assert validation_weights([-0.1, 0.0]) == pytest.approx([0.5, 0.5])
    torch.manual_seed(0)
    cfg = LateFusionConfig((InputLayout("a", "numeric", (2, 32)),), outputs=("valence",))
    m1, m2 = LateFusion(cfg).eval(), LateFusion(cfg).eval()
    ens = Ensemble([m1, m2], [0.75, 0.25]).eval()
    x = {"a": torch.randn(3, 2, 32)}
    with torch.no_grad():
        want = 0.75 * m1(x).regression + 0.25 * m2(x).regression
        got = ens(x)
    assert torch.allclose(got.regression, want, atol=1e-6)
    assert got.binary_logits is not None and got.member_regression.shape == (3, 2, 1)


# --------------------------------------------------------------------------- errors
def test_clear_errors(sim, tmp_path, capsys):
    assert _run("resnet", f"deap:{sim['deap']}", tmp_path / "x") == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err
    assert _run("mco-e-net", f"deap:{sim['deap']}", tmp_path / "x") == 2
    err = capsys.readouterr().err
    assert "mco-e-net" in err and "see data, not 'deap'" in err
    assert _run("hi-moe", f"see:{sim['see']}", tmp_path / "x") == 2
    assert "not 'see'" in capsys.readouterr().err
    assert _run("hi-moe", f"deap:{tmp_path / 'nowhere'}", tmp_path / "x") == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert _run("hi-moe", "eeglab:/tmp", tmp_path / "x") == 2
    assert "unknown data kind 'eeglab'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    assert _run("hi-moe", f"deap:{sim['deap']}", tmp_path / "full") == 2
    assert "--resume" in capsys.readouterr().err
    assert _run("hi-moe", f"deap:{sim['deap']}", tmp_path / "y", "--set", "no_such_field=1") == 2
    assert "no config field 'no_such_field'" in capsys.readouterr().err
    # one line each, not a traceback: a file for --out, threads, data that cannot be cut
    (tmp_path / "afile").write_text("x")
    assert _run("hi-moe", f"deap:{sim['deap']}", tmp_path / "afile") == 2
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run("hi-moe", f"deap:{sim['deap']}", tmp_path / "z", "--threads", "-1")
    assert "1 or more threads" in capsys.readouterr().err
    args = ("--max-subjects", "1", "--protocol", "loso")
    assert _run("late-fusion", f"dreamer:{sim['dreamer']}", tmp_path / "z", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("affectlab train: error:") and len(err.strip().splitlines()) == 1


def test_see_data_given_a_file_is_one_line(sim, tmp_path, capsys):
    """SEE is a folder: a file (its emotion.json, an archive) is named, not a traceback."""
    for file in (sim["see"] / "emotion.json", tmp_path / "see.zip"):
        file.touch()
        assert _run("mco-e-net-lite", f"see:{file}", tmp_path / "out", "--epochs", "1") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"affectlab train: error: {file}: is a file; SEE wants its folder")
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()


def test_a_model_added_to_the_zoo_is_one_entry_away_from_training(
    sim, tmp_path, capsys, monkeypatch
):
    """The registry is the one place a trainable model is named: one entry (late fusion under
    a new name) shows in --help and --members errors at once, trains, saves, loads, and an
    ensemble holds it."""
    import models.zoo
    from app.train import build_parser

    entry = replace(models.zoo.ZOO["late-fusion"], name="new-fusion")
    monkeypatch.setitem(models.zoo.ZOO, "new-fusion", entry)
    assert _run("ensemble", f"deap:{tmp_path}", tmp_path / "run", "--members", "resnet") == 2
    err = capsys.readouterr().err
    assert err == (
        "affectlab train: error: --members 'resnet': members must be among "
        "hi-moe, late-fusion, concat-fusion, new-fusion\n"
    )
    text = "".join(build_parser().format_help().split())  # argparse wraps at hyphens too
    assert "--missing-rateRhi-moe,late-fusion,concat-fusion,ensemble,new-fusion:" in text
    assert "amonghi-moe,late-fusion,concat-fusion,new-fusion(defaultlate-fusion,concat" in text

    data, short = f"deap:{sim['deap']}", ("--protocol", "holdout", "--epochs", "1")
    assert _run("new-fusion", data, tmp_path / "new", *short) == 0
    net, info = load_checkpoint(tmp_path / "new" / "fold_00" / "model.safetensors")
    assert info["model"] == "new-fusion" and isinstance(net, LateFusion)
    assert (
        _run("ensemble", data, tmp_path / "ens", *short, "--members", "new-fusion,late-fusion") == 0
    )
    net, info = load_checkpoint(tmp_path / "ens" / "fold_00" / "model.safetensors")
    assert [m["model"] for m in info["config"]["members"]] == ["new-fusion", "late-fusion"]
    assert isinstance(net, Ensemble)


def _no_data(*_args, **_kwargs):
    raise AssertionError("the data was read before the --set values were checked")


@pytest.mark.parametrize(
    "model, kind, item, problem",
    [
        ("hi-moe", "deap", "d_model=abc", 'd_model="abc": d_model takes an integer'),
        ("hi-moe", "deap", "d_model=32.5", "d_model takes an integer (default 64), not a float"),
        ("hi-moe", "dreamer", "dropout=[0.1]", "dropout takes a number"),
        ("hi-moe", "deap", "binary_heads=1", "binary_heads takes true or false"),
        ("hi-moe", "deap", "dropout=2", "dropout must lie in [0, 1)"),
        ("hi-moe", "deap", "temperature=-1", "temperature must be > 0"),
        ("hi-moe", "deap", "heads=0", "heads must be an integer >= 1"),
        ("hi-moe", "deap", 'outputs=["valence"]', "--set outputs: cannot change"),
        ("hi-moe", "dreamer", "output_range=[1, 9]", "--set output_range: cannot change"),
        ("hi-moe", "deap", 'modalities=["eeg"]', "--set modalities: cannot change"),
        ("hi-moe", "deap", "pearson_weight", "expected KEY=VALUE"),
        ("late-fusion", "deap", "dim=1.5", "dim takes an integer"),
        ("late-fusion", "deap", "dropout=2", "--set dropout=2: dropout must lie in [0, 1)"),
        ("late-fusion", "deap", "dim=0", "--set dim=0: dim must be an integer >= 1, got 0"),
        ("concat-fusion", "deap", "hidden=0", "--set hidden=0: hidden must be an integer >= 1"),
        ("late-fusion", "deap", "weighting=equal-ish", "weighting 'equal-ish'"),
        ("concat-fusion", "deap", "dropout=abc", "dropout takes a number"),
        ("concat-fusion", "dreamer", "n_affect=1", "--set n_affect: cannot change"),
        ("ensemble", "deap", "d_model=32", "late-fusion: no config field 'd_model'"),
        ("mco-e-net-lite", "see", "d_model=x", "d_model takes an integer"),
        ("mco-e-net-lite", "see", "fusion_dropout=2", "fusion_dropout must lie in [0, 1)"),
        ("mco-e-net-lite", "see", "d_model=0", "d_model must be an integer >= 1, got 0"),
        ("mco-e-net-lite", "see", "d_state=0", "d_state must be an integer >= 1, got 0"),
        ("mco-e-net-lite", "see", "n_classes=3", "--set n_classes: cannot change"),
    ],
)
def test_wrong_set_values_fail_in_one_line_before_any_data_is_read(
    model, kind, item, problem, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("app.train.load_data", _no_data)
    monkeypatch.setattr("models.datasets.load_see", _no_data)
    assert _run(model, f"{kind}:{tmp_path}", tmp_path / "run", "--set", item) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("affectlab train: error: ") and len(err.splitlines()) == 1
    assert problem in err
    assert not (tmp_path / "run").exists()


def test_hi_moe_config_refuses_out_of_range_values_itself():
    from models.hi_moe import HiMoEConfig

    for change, problem in [
        ({"dropout": 1.0}, "dropout must lie in [0, 1)"),
        ({"dropout": -0.1}, "dropout must lie in [0, 1)"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"lambda_ntxent": -1.0}, "lambda_ntxent must be >= 0"),
        ({"d_model": 0}, "d_model must be an integer >= 1"),
        ({"d_model": "64"}, "d_model must be an integer >= 1"),
        ({"heads": 0}, "heads must be an integer >= 1"),
        ({"n_steps": 0}, "n_steps must be an integer >= 1"),
        ({"router_dim": 2.5}, "router_dim must be an integer >= 1"),
        ({"proj_dim": -1}, "proj_dim must be an integer >= 0"),
        ({"encoder_layers": -1}, "encoder_layers must be an integer >= 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(problem)):
            HiMoEConfig.deap(**change)
    HiMoEConfig.deap(encoder_layers=0, proj_dim=0, dropout=0.0)  # the bounds themselves


def _damaged_data_sets(root: Path, sim: dict[str, Path]) -> list[tuple[str, str]]:
    """(data reference, file the error must name): empty and text .mat, junk and truncated .dat."""
    cases = []
    for name, text in (("empty.mat", b""), ("text.mat", b"hello\n")):
        (root / name).write_bytes(text)
        cases.append((f"dreamer:{root / name}", str(root / name)))
    cases += [(ref, str(file)) for ref, file in damaged_deap_sets(root, sim["deap"])]
    return cases


def test_damaged_data_sets_are_one_line_errors(sim, tmp_path, capsys):
    for ref, path in _damaged_data_sets(tmp_path, sim):
        assert _run("hi-moe", ref, tmp_path / "out") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"affectlab train: error: {path}: not a readable"), err
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("option", "value"), [("--max-subjects", "-2"), ("--max-subjects", "0"),
                          ("--stop-after", "0"), ("--stop-after", "-1"), ("--lr", "-1")],
)  # fmt: skip
def test_bad_numbers_are_refused_by_argparse(sim, tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        _run("hi-moe", f"deap:{sim['deap']}", tmp_path / "out", "--epochs", "1", "--fold", "0",
             option, value)  # fmt: skip
    assert exc.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_one_line(sim, capsys):
    assert _run("hi-moe", f"deap:{sim['deap']}", Path("/proc/affectlab-no/out")) == 2
    err = capsys.readouterr().err
    assert err.startswith("affectlab train: error: --out /proc/affectlab-no/out: cannot write")


@contextlib.contextmanager
def _read_only(folder: Path):
    """``folder`` unwritable even for root (immutable via chattr there), restored after."""
    folder.chmod(0o555)
    immutable = False
    try:
        if os.access(folder, os.W_OK):  # root: permissions do not stop it
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True,
                                       check=False).returncode == 0  # fmt: skip
            if not immutable:
                pytest.skip("cannot make a folder read-only here")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_an_unwritable_fold_folder_is_refused_before_training(sim, tmp_path, capsys):
    data = f"deap:{sim['deap']}"
    out = tmp_path / "run"
    args = ("--folds", "2", "--epochs", "1")
    assert _run("hi-moe", data, out, *args, "--fold", "0") == 0
    (out / "fold_01").write_text("x")
    capsys.readouterr()
    assert _run("hi-moe", data, out, *args, "--resume") == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"affectlab train: error: {out / 'fold_01'}: is a file, where the run keeps a fold; remove it\n"
    )
    (out / "fold_01").unlink()
    before = sorted(p.name for p in (out / "fold_00").iterdir())
    with _read_only(out / "fold_00"):
        assert _run("hi-moe", data, out, *args, "--resume") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"affectlab train: error: {out / 'fold_00'}: cannot write in"), err
    assert "make it writable or choose another --out" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in (out / "fold_00").iterdir()) == before
    assert not (out / "fold_01").exists()  # refused before any fold was trained


def test_a_run_that_fails_leaves_no_folders_behind(sim, tmp_path, monkeypatch):
    """A failure before anything is written leaves no empty fold folder that would make the
    corrected command ask for --resume."""
    import models.training

    def fail(*_args, **_kwargs):
        raise ValueError("Invalid learning rate")

    data = f"deap:{sim['deap']}"
    out = tmp_path / "t8"
    with monkeypatch.context() as m:
        m.setattr(models.training, "make_optimizer", fail)
        assert _run("hi-moe", data, out, "--fold", "0", "--folds", "2", "--epochs", "1") == 2
    assert not out.exists()
    assert _run("hi-moe", data, out, "--fold", "0", "--folds", "2", "--epochs", "1") == 0


def test_resume_refusals_name_the_model_and_the_first_differing_field(sim, tmp_path, capsys):
    data = f"deap:{sim['deap']}"
    args = ("--fold", "0", "--folds", "2", "--epochs", "1", "--set", "d_model=16")
    out = tmp_path / "run"
    assert _run("hi-moe", data, out, *args) == 0
    capsys.readouterr()
    assert _run("late-fusion", data, out, *args[:-2], "--resume") == 2
    err = capsys.readouterr().err
    assert "holds a hi-moe run, not late-fusion" in err and "recipe" not in err
    # the fold's own check, for a run whose run.json was never written (Ctrl-C in fold one)
    (out / "run.json").unlink()
    assert _run("late-fusion", data, out, *args[:-2], "--resume") == 2
    err = capsys.readouterr().err
    assert "holds a hi-moe run, not late-fusion" in err and "recipe" not in err
    assert _run("hi-moe", data, out, *args, "--resume", "--lr", "0.01") == 2
    err = capsys.readouterr().err
    assert "recipe.lr is 0.001 in the interrupted run, 0.01 now" in err and len(err) < 300
    assert _run("hi-moe", data, out, *args[:-2], "--resume") == 2
    err = capsys.readouterr().err
    assert "config.d_model is 16 in the interrupted run, 64 now" in err and len(err) < 300
    best = out / "fold_00" / "best.safetensors"
    best.write_bytes(best.read_bytes()[:500])
    assert _run("hi-moe", data, out, *args, "--resume") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"affectlab train: error: {best}: damaged")
    assert len(err.strip().splitlines()) == 1
