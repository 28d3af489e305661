"""evaluate: what it refuses or warns about, each in one line, and what it writes for a
figure that does not exist, on tiny simulated runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import models.ablation  # noqa: F401 - binds the real mean_ccc before a test patches it
from app.evaluate import main as evaluate
from app.simulate import main as simulate
from app.train import main as train
from models.evaluation import summarise_curve


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny DEAP and SEE sets, a 1-epoch SEE run and one fold of a 2-fold DEAP run."""
    root = tmp_path_factory.mktemp("eval_refusals")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    assert simulate(["deap", "--out", str(root / "deap"), "--subjects", "3", "--trials", "4",
                     "--trial-seconds", "10", "--quiet"]) == 0  # fmt: skip
    assert simulate(["see", "--out", str(root / "see"), "--subjects", "2", "--trials", "1",
                     "--trial-seconds", "0.6", "--frame-size", "100x100", "--quiet"]) == 0  # fmt: skip
    common = ["--epochs", "1", "--quiet", "--threads", "1"]
    assert train(["mco-e-net-lite", "--data", f"see:{root / 'see'}", "--batch-size", "16",
                  "--out", str(root / "see_run"), *common]) == 0  # fmt: skip
    assert train(["late-fusion", "--data", f"deap:{root / 'deap'}", "--folds", "2", "--fold", "0",
                  "--out", str(root / "half"), *common]) == 0  # fmt: skip
    torch.set_num_threads(before)
    return {"deap": root / "deap", "see": root / "see", "see_run": root / "see_run",
            "half": root / "half"}  # fmt: skip


def test_see_data_given_a_file_is_one_line(runs, tmp_path, capsys):
    file = runs["see"] / "emotion.json"
    rc = evaluate([str(runs["see_run"]), "--data", f"see:{file}", "--out", str(tmp_path / "e"),
                   "--quiet"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith(f"affectlab evaluate: error: {file}: is a file; SEE wants its folder")
    assert len(err.strip().splitlines()) == 1


def _no_nan(text: str) -> None:
    raise AssertionError(f"{text} in summary.json: not valid JSON")


def test_relative_drop_of_a_curve_starting_at_or_below_zero_is_null(runs, tmp_path, monkeypatch):
    """No NaN in summary.json (strict JSON has none); the Markdown says why the cell is empty."""
    assert summarise_curve([0.0, 0.2], np.array([[0.0], [-0.1]]))["relative_drop"] is None
    fell = summarise_curve([0.0, 0.2], np.array([[0.5], [0.4]]))
    assert fell["relative_drop"] == pytest.approx(0.2)
    monkeypatch.setattr("models.tasks.mean_ccc", lambda y, p: -0.05)
    out = tmp_path / "e"
    rc = evaluate([str(runs["half"]), "--data", f"deap:{runs['deap']}", "--out", str(out),
                   "--missing-rates", "0,0.2", "--seeds", "1", "--quiet"])  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text(), parse_constant=_no_nan)
    (curve,) = [m["missing_rate_summary"] for m in summary["models"].values()]
    assert curve["ccc_first"] == -0.05 and curve["relative_drop"] is None
    md = (out / "missing_rate_summary.md").read_text()
    assert "| n/a |" in md and "n/a (empty in the CSV, null in summary.json) where the CCC" in md
    assert "None" not in md and "nan" not in md


def test_an_unfinished_run_is_evaluated_with_one_warning_naming_its_missing_folds(
    runs, tmp_path, capsys
):
    half = tmp_path / "half"
    shutil.copytree(runs["half"], half)
    args = ["--data", f"deap:{runs['deap']}", "--missing-rates", "0", "--seeds", "1", "--quiet"]
    warning = (
        f"affectlab evaluate: warning: {half} is an unfinished run (folds not trained: "
        "fold_01); its figures cover the trained folds only\n"
    )
    assert evaluate([str(half), "--out", str(tmp_path / "e1"), *args]) == 0
    assert capsys.readouterr().err == warning
    run = json.loads((half / "run.json").read_text())
    del run["fold_names"]  # a run.json of before: k-fold names the folds all the same
    (half / "run.json").write_text(json.dumps(run))
    assert evaluate([str(half), "--out", str(tmp_path / "e2"), *args]) == 0
    assert capsys.readouterr().err == warning
    assert evaluate([str(half / "fold_00"), "--out", str(tmp_path / "e3"), *args]) == 0
    assert capsys.readouterr().err == ""  # one fold asked for: nothing is missing
