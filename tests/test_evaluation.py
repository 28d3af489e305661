"""Evaluation: metrics against scipy / scikit-learn / numpy, tables and plots, the evaluate CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from damaged_data import damaged_deap_sets
from PIL import Image
from scipy import stats

from app.evaluate import main as evaluate
from app.simulate import main as simulate
from app.train import main as train
from models.evaluation import (
    fold_mean,
    parse_rates,
    read_table,
    regression_metrics,
    summarise_curve,
    write_table,
)
from models.metrics import (
    accuracy,
    binary_f1,
    ccc,
    confusion_matrix,
    grouped_classification,
    macro_f1,
    mae,
    pearson,
    uar,
    war,
)

DIMS = ["valence", "arousal", "dominance", "liking"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- metrics vs references
def test_pearson_mae_ccc_against_scipy_and_numpy():
    rng = np.random.default_rng(0)
    for n in (5, 50, 500):
        t = rng.normal(5, 2, n)
        p = 0.7 * t + rng.normal(1, 1, n)
        assert pearson(t, p) == pytest.approx(stats.pearsonr(t, p).statistic, rel=1e-10)
        assert mae(t, p) == pytest.approx(np.mean(np.abs(t - p)))
        cov = np.cov(t, p, bias=True)
        want = 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (t.mean() - p.mean()) ** 2)
        assert ccc(t, p) == pytest.approx(want, rel=1e-10)
        # CCC = r * bias correction (Lin 1989): 2 s_t s_p / (s_t^2 + s_p^2 + (m_t - m_p)^2)
        st, sp = t.std(), p.std()
        c_b = 2 * st * sp / (st**2 + sp**2 + (t.mean() - p.mean()) ** 2)
        assert ccc(t, p) == pytest.approx(stats.pearsonr(t, p).statistic * c_b, rel=1e-10)


def test_classification_metrics_against_sklearn():
    import sklearn.metrics as skm  # a dev dependency: the reference implementation

    rng = np.random.default_rng(1)
    t = rng.integers(0, 7, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 7, 300))
    assert war(t, p) == accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    assert uar(t, p, 7) == pytest.approx(skm.balanced_accuracy_score(t, p))
    assert macro_f1(t, p, 7) == pytest.approx(skm.f1_score(t, p, average="macro"))
    assert np.array_equal(confusion_matrix(t, p, 7), skm.confusion_matrix(t, p, labels=range(7)))
    bt, bp = (t > 3).astype(int), (p > 3).astype(int)
    assert binary_f1(bt, bp) == pytest.approx(skm.f1_score(bt, bp))
    assert binary_f1(np.zeros(4, int), np.zeros(4, int)) == 0.0


def test_war_uar_per_group_by_hand():
    t = np.array([0, 0, 1, 1, 1, 1])
    p = np.array([0, 1, 1, 1, 1, 0])
    g = np.array(["low", "low", "low", "hdr", "hdr", "hdr"])
    res = grouped_classification(t, p, g, 2)
    assert res["low"] == {
        "n": 3.0,
        "war": pytest.approx(2 / 3),
        "uar": pytest.approx((1 / 2 + 1) / 2),
    }
    assert res["hdr"]["war"] == pytest.approx(2 / 3) and res["hdr"]["uar"] == pytest.approx(2 / 3)
    assert res["all"]["war"] == pytest.approx(4 / 6)
    assert res["all"]["uar"] == pytest.approx((1 / 2 + 3 / 4) / 2)


def test_regression_metrics_perfect_and_thresholded():
    y = np.array([[2.0, 8.0], [7.0, 3.0], [6.0, 6.0], [1.0, 9.0]])
    m = regression_metrics(y, y, ["valence", "arousal"], 5.0)
    assert m["mean"]["ccc"] == pytest.approx(1.0) and m["mean"]["mae"] == 0.0
    assert m["valence"]["acc"] == 1.0 and m["valence"]["f1"] == 1.0
    prob = np.array([[0.9, 0.1], [0.9, 0.9], [0.9, 0.9], [0.1, 0.9]])  # heads win over thresholding
    m = regression_metrics(y, y, ["valence", "arousal"], 5.0, prob)
    assert m["valence"]["acc"] == pytest.approx(0.75) and m["arousal"]["acc"] == pytest.approx(0.5)
    agg = fold_mean([{"a": {"ccc": 0.2}}, {"a": {"ccc": 0.4}}])
    assert agg["a"]["ccc"] == pytest.approx(0.3) and agg["a"]["ccc_std"] == pytest.approx(0.1)


def test_rates_tables_and_curve_summary(tmp_path):
    assert parse_rates("0:0.4:0.05") == pytest.approx([0.05 * i for i in range(9)])
    assert parse_rates("0,0.2") == [0.0, 0.2]
    assert parse_rates("0.4,0,0.2,0.2") == [0.0, 0.2, 0.4]  # the curve's ends are its ends
    for bad in ("0:0.4", "0.5:0.1:0.1", "0,1.5", "0:inf:0.1", "0:0.4:1e-10"):
        with pytest.raises(ValueError):
            parse_rates(bad)
    rows = [{"model": "m", "rate": 0.1, "ccc_mean": 0.123456789, "drop": np.float64(-0.25)}]
    csv_path, md_path = write_table(rows, tmp_path / "t", "Title", "a note")
    assert read_table(csv_path) == [{**rows[0], "drop": -0.25}]  # full precision back
    assert "| m | 0.1000 | 0.1235 |" in md_path.read_text() and "# Title" in md_path.read_text()
    s = summarise_curve([0.0, 0.1, 0.2], np.array([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7]]))
    assert s["drop"] == pytest.approx(0.2) and s["slope_per_0.1"] == pytest.approx(-0.1)
    assert all(type(v) is float for v in s.values())  # no numpy floats for the CSV


# --------------------------------------------------------------------------- the CLI, end to end
@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny data sets and 1-2 epoch runs of hi-moe, late fusion (DEAP) and mco-e-net-lite (SEE)."""
    root = tmp_path_factory.mktemp("sim_eval")
    torch.set_num_threads(1)
    assert simulate(["deap", "--out", str(root / "deap"), "--subjects", "3", "--trials", "4",
                     "--trial-seconds", "10", "--quiet"]) == 0  # fmt: skip
    assert simulate(["see", "--out", str(root / "see"), "--subjects", "2", "--trials", "1",
                     "--trial-seconds", "0.6", "--frame-size", "100x100", "--quiet"]) == 0  # fmt: skip
    deap = f"deap:{root / 'deap'}"
    common = ["--epochs", "2", "--quiet", "--threads", "1", "--missing-rate", "0.2"]
    assert train(["hi-moe", "--data", deap, "--protocol", "kfold", "--folds", "2",
                  "--out", str(root / "hm"), *common]) == 0  # fmt: skip
    assert train(["late-fusion", "--data", deap, "--protocol", "kfold", "--folds", "2",
                  "--out", str(root / "lf"), *common]) == 0  # fmt: skip
    assert train(["mco-e-net-lite", "--data", f"see:{root / 'see'}", "--epochs", "1",
                  "--batch-size", "16", "--quiet", "--threads", "1", "--out", str(root / "see_run")]) == 0  # fmt: skip
    return {"root": root, "deap": root / "deap", "see": root / "see", "hm": root / "hm",
            "lf": root / "lf", "see_run": root / "see_run"}  # fmt: skip


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_evaluate_deap_tables_and_plots(runs, tmp_path):
    out = tmp_path / "ev"
    rc = evaluate([str(runs["hm"]), str(runs["lf"]), "--data", f"deap:{runs['deap']}",
                   "--missing-rates", "0:0.2:0.1", "--seeds", "3", "--out", str(out), "--quiet",
                   "--threads", "1"])  # fmt: skip
    assert rc == 0
    metrics = read_table(out / "metrics.csv")
    assert [(r["model"], r["dimension"]) for r in metrics] == [
        (m, d) for m in ("hi-moe", "late-fusion") for d in [*DIMS, "mean"]
    ]
    for r in metrics:
        assert -1 <= r["ccc"] <= 1 and -1 <= r["pcc"] <= 1 and r["mae"] >= 0
        assert 0 <= r["acc"] <= 1 and 0 <= r["f1"] <= 1 and r["folds"] == 2
    # the fold mean of evaluate equals the mean of what training wrote for each fold's test split
    folds = sorted(runs["hm"].glob("fold_*/model.json"))
    want = np.mean([json.loads(f.read_text())["metrics"]["test"]["mean"]["ccc"] for f in folds])
    assert metrics[4]["ccc"] == pytest.approx(want, abs=1e-6)
    curve = read_table(out / "missing_rate.csv")
    assert [(r["model"], r["rate"]) for r in curve] == [
        (m, r) for m in ("hi-moe", "late-fusion") for r in (0.0, 0.1, 0.2)
    ]
    assert curve[0]["ccc_mean"] == pytest.approx(want, abs=1e-6) and curve[0]["ccc_std"] == 0.0
    assert all(-1 <= r["ccc_mean"] <= 1 and r["ccc_std"] >= 0 and r["seeds"] == 3 for r in curve)
    assert any(r["ccc_std"] > 0 for r in curve if r["rate"] > 0)  # masks differ between seeds
    summary = read_table(out / "missing_rate_summary.csv")
    assert {r["model"] for r in summary} == {"hi-moe", "late-fusion"}
    for name in ("metrics", "missing_rate", "missing_rate_summary"):
        assert (out / f"{name}.md").read_text().count("| hi-moe |") >= 1
    for png in ("missing_rate", "confusion_hi_moe", "confusion_late_fusion", "trajectories_hi_moe"):
        w, h = _png(out / f"{png}.png")
        assert w > 200 and h > 200
    doc = json.loads((out / "summary.json").read_text())
    assert doc["rates"] == [0.0, 0.1, 0.2]
    cm = np.asarray(doc["models"]["hi-moe"]["binary_confusion"]["valence"])
    n_test = sum(json.loads(f.read_text())["fold"]["n_test"] for f in folds)
    assert cm.shape == (2, 2) and cm.sum() == n_test


def test_same_masks_for_every_model(runs, tmp_path):
    """One checkpoint under two labels: identical curves (masks depend on seed, rate, fold only)."""
    one = runs["hm"] / "fold_00" / "model.safetensors"
    rc = evaluate([str(one), str(one), "--labels", "a,b", "--data", f"deap:{runs['deap']}",
                   "--missing-rates", "0.3", "--seeds", "2", "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert rc == 0
    a, b = read_table(tmp_path / "missing_rate.csv")
    assert (a["model"], b["model"]) == ("a", "b") and a["ccc_mean"] == b["ccc_mean"]
    # labels that differ only in punctuation would share their plots' file names
    rc = evaluate([str(one), str(one), "--labels", "CF 3-fold,CF (3-fold)", "--data",
                   f"deap:{runs['deap']}", "--missing-rates", "0", "--seeds", "1",
                   "--out", str(tmp_path / "slugs"), "--quiet"])  # fmt: skip
    assert rc == 0
    plots = sorted(p.name for p in (tmp_path / "slugs").glob("confusion_*.png"))
    assert plots == ["confusion_cf_3_fold.png", "confusion_cf_3_fold_2.png"]


def test_evaluate_see_per_lighting(runs, tmp_path):
    rc = evaluate(
        [str(runs["see_run"]), "--data", f"see:{runs['see']}", "--out", str(tmp_path), "--quiet"]
    )
    assert rc == 0
    rows = read_table(tmp_path / "lighting.csv")
    assert [r["lighting"] for r in rows] == ["hdr", "low_light", "normal", "overexposure", "all"]
    assert sum(r["n"] for r in rows[:-1]) == rows[-1]["n"]
    info = json.loads((runs["see_run"] / "fold_00" / "model.json").read_text())
    assert rows[-1]["n"] == info["fold"]["n_test"]
    assert rows[-1]["war"] == pytest.approx(info["metrics"]["test"]["lighting"]["all"]["war"])
    assert all(0 <= r["war"] <= 1 and 0 <= r["uar"] <= 1 for r in rows)
    _png(tmp_path / "confusion_mco_e_net_lite.png")


def test_evaluate_errors(runs, tmp_path, capsys):
    assert evaluate([str(runs["hm"]), "--data", f"see:{runs['see']}", "--out", str(tmp_path)]) == 2
    assert "hi-moe is evaluated on deap or dreamer, not see" in capsys.readouterr().err
    assert evaluate([str(runs["see_run"]), "--data", f"see:{runs['see']}", "--modality-ablation",
                     "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "--modality-ablation applies to deap and dreamer" in capsys.readouterr().err
    assert (
        evaluate([str(tmp_path / "none"), "--data", f"deap:{runs['deap']}", "--out", str(tmp_path)])
        == 2
    )
    assert "no such checkpoint" in capsys.readouterr().err
    assert evaluate([str(runs["hm"]), "--data", f"deap:{runs['deap']}", "--missing-rates", "0:2:1",
                     "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "must lie in [0, 1]" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert (
        evaluate(
            [str(tmp_path / "empty"), "--data", f"deap:{runs['deap']}", "--out", str(tmp_path)]
        )
        == 2
    )
    assert "no model.safetensors" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert evaluate([str(runs["hm"]), "--data", f"deap:{runs['deap']}",
                     "--out", str(tmp_path / "afile")]) == 2  # fmt: skip
    assert "is a file" in capsys.readouterr().err


def test_modality_ablation_table(runs, tmp_path):
    """--modality-ablation: all / without m / only m per model, fold means that match the model
    run by hand, and the first-order fall those drops predict over the sweep."""
    from models.checkpoint import load_checkpoint
    from models.datasets import load_signals, parse_data_ref
    from models.metrics import ccc
    from models.tasks import signal_inputs

    rc = evaluate([str(runs["hm"]), "--data", f"deap:{runs['deap']}", "--missing-rates", "0,0.3",
                   "--seeds", "1", "--modality-ablation", "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert rc == 0
    rows = read_table(tmp_path / "modality_ablation.csv")
    data = load_signals(parse_data_ref(f"deap:{runs['deap']}"), 4.0, 2.0)
    mods = data.modalities
    assert [r["condition"] for r in rows] == (
        ["all"] + [f"without {m}" for m in mods] + [f"only {m}" for m in mods]
    )
    metrics = read_table(tmp_path / "metrics.csv")
    assert rows[0]["mean"] == pytest.approx(metrics[-1]["ccc"], abs=1e-9)
    # "without emg", recomputed from the fold checkpoints directly
    want = []
    for f in sorted(runs["hm"].glob("fold_*/model.safetensors")):
        model, info = load_checkpoint(f)
        idx = data.select(info["fold"]["test_keys"])
        n = len(idx)
        present = {m: torch.full((n,), m != "emg") for m in mods}
        with torch.no_grad():
            pred = model.eval()(signal_inputs(data, idx), present).regression.numpy()
        want.append(np.mean([ccc(data.y[idx][:, d], pred[:, d]) for d in range(pred.shape[1])]))
    without_emg = next(r for r in rows if r["condition"] == "without emg")
    assert without_emg["mean"] == pytest.approx(float(np.mean(want)), abs=1e-6)
    assert without_emg["change"] == pytest.approx(without_emg["mean"] - rows[0]["mean"], abs=1e-9)
    drops = sum(rows[0]["mean"] - r["mean"] for r in rows if r["condition"].startswith("without"))
    assert rows[0]["predicted_drop"] == pytest.approx(0.3 * drops, abs=1e-9)
    summary = read_table(tmp_path / "missing_rate_summary.csv")
    assert rows[0]["measured_drop"] == pytest.approx(summary[0]["drop"], abs=1e-9)


def test_ablation_conditions_are_presence_maps():
    from models.ablation import conditions

    three = dict(conditions(["eeg", "ecg", "eda"]))
    assert list(three) == ["all", "without eeg", "without ecg", "without eda",
                           "only eeg", "only ecg", "only eda"]  # fmt: skip
    assert three["without ecg"] == {"eeg": True, "ecg": False, "eda": True}
    assert three["only eda"] == {"eeg": False, "ecg": False, "eda": True}
    # two modalities: "only eeg" would repeat "without ecg"
    assert [c for c, _ in conditions(["eeg", "ecg"])] == ["all", "without eeg", "without ecg"]


def test_damaged_checkpoints_are_one_line_errors(runs, tmp_path, capsys):
    """Edited descriptions and damaged weights name the file and what is wrong (they were
    tracebacks: a missing tensor, another model's name, an unknown config key, garbage)."""
    from safetensors.torch import load_file, save_file

    fold = runs["hm"] / "fold_00"
    doc = json.loads((fold / "model.json").read_text())
    state = load_file(str(fold / "model.safetensors"))
    some = next(iter(state))

    def case(name: str, desc: object, weights: dict | bytes) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        text = desc if isinstance(desc, str) else json.dumps(desc)
        (folder / "model.json").write_text(text)
        if isinstance(weights, bytes):
            (folder / "model.safetensors").write_bytes(weights)
        else:
            save_file(weights, str(folder / "model.safetensors"))
        return folder

    cases = {
        case(
            "other", {**doc, "model": "late-fusion"}, state
        ): "does not describe a late-fusion model",
        case(
            "key", {**doc, "config": {**doc["config"], "nonsense": 1}}, state
        ): "does not describe",
        case("nomodel", {k: v for k, v in doc.items() if k != "model"}, state): "names no model",
        case("json", "{not json", state): "not readable as JSON",
        case(
            "garbage", doc, b"\x80\x04\x95 a pickle, not safetensors"
        ): "not a readable safetensors",
        case("missing", doc, {k: v for k, v in state.items() if k != some}): "do not match",
        case("shape", doc, {**state, some: torch.zeros(3, 3)}): "do not match",
    }
    for folder, problem in cases.items():
        rc = evaluate([str(folder), "--data", f"deap:{runs['deap']}", "--missing-rates", "0",
                       "--seeds", "1", "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and problem in err and str(folder) in err, (folder.name, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err


def test_a_checkpoint_without_its_split_is_scored_on_every_window_and_says_so(
    runs, tmp_path, capsys
):
    fold = runs["hm"] / "fold_00"
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes((fold / "model.safetensors").read_bytes())  # its JSON left behind
    rc = evaluate([str(bare), "--data", f"deap:{runs['deap']}", "--missing-rates", "0",
                   "--seeds", "1", "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert rc == 0
    assert "bare.safetensors has no recorded test split" in capsys.readouterr().err
    title = (tmp_path / "out" / "metrics.md").read_text().splitlines()[0]
    assert "every window of --data" in title and "test folds" not in title


def test_damaged_data_sets_and_unwritable_out_are_one_line_errors(runs, tmp_path, capsys):
    for ref, damaged in damaged_deap_sets(tmp_path, runs["deap"]):
        assert (
            evaluate([str(runs["lf"]), "--data", ref, "--out", str(tmp_path / "o"), "--quiet"]) == 2
        )
        err = capsys.readouterr().err
        assert err.startswith(f"affectlab evaluate: error: {damaged}: not a readable")
        assert len(err.strip().splitlines()) == 1
    assert evaluate([str(runs["lf"]), "--data", f"deap:{runs['deap']}",
                     "--out", "/proc/affectlab-no/out"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("affectlab evaluate: error: --out /proc/affectlab-no/out: cannot write")


def test_a_served_demo_model_is_named_as_such(runs, tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[1] / "models" / "weights" / "hi_moe_sim.safetensors"
    rc = evaluate(
        [str(shipped), "--data", f"deap:{runs['deap']}", "--out", str(tmp_path), "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "describes the served model 'hi-moe-sim', not a checkpoint" in err
