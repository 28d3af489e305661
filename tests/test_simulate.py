"""`affectlab simulate`: each format is written from virtual participants and read back by the loaders."""

from __future__ import annotations

import hashlib
import json
import pickletools
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from app.simulate import main
from core.prediction import EXPRESSIONS
from models.data import SeeDataset, load_deap, load_dreamer, loso_splits
from models.data.see import LIGHTINGS, SequenceName

ROOT = Path(__file__).resolve().parents[1]


def _globals(path: Path) -> set[str]:
    return {str(arg) for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"}


def test_simulate_deap(tmp_path):
    args = ["deap", "--out", str(tmp_path), "--subjects", "2", "--trials", "5",
            "--trial-seconds", "8", "--seed", "3", "--quiet"]  # fmt: skip
    assert main(args) == 0
    folder = tmp_path / "data_preprocessed_python"
    assert sorted(p.name for p in folder.iterdir()) == ["s01.dat", "s02.dat"]
    # Only what DEAP's own Python 2 pickles name: safe_pickle admits it
    assert _globals(folder / "s01.dat") == {
        "numpy._core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
    }  # fmt: skip
    w = load_deap(tmp_path, window_s=2.0, hop_s=2.0, dtype=np.float64)
    assert len(w) == 2 * 5 * 4
    assert {m: v.shape[1:] for m, v in w.x.items()} == {
        "eeg": (32, 256), "eog": (2, 256), "emg": (2, 256), "gsr": (1, 256),
        "resp": (1, 256), "ppg": (1, 256), "temp": (1, 256),
    }  # fmt: skip
    trial_labels = w.y[w.start_s == 0]
    assert trial_labels.shape == (10, 4)
    assert (trial_labels >= 1).all() and (trial_labels <= 9).all()
    assert trial_labels.std(axis=0).min() > 0.3  # labels vary across trials, every dimension
    assert len(np.unique(trial_labels[:, 0])) >= 8
    for m, x in w.x.items():
        assert np.isfinite(x).all() and x.std() > 0, m
    # same seed, same bytes; another seed, other people
    again = tmp_path / "again"
    main([*args[:2], str(again), *args[3:]])
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (folder / "s01.dat",
              again / "data_preprocessed_python" / "s01.dat")]  # fmt: skip
    assert digest[0] == digest[1]
    for _, train, test in loso_splits(w.subject):
        assert not set(w.subject[train]) & set(w.subject[test])


def test_simulate_dreamer(tmp_path):
    args = ["dreamer", "--out", str(tmp_path), "--subjects", "2", "--trials", "4",
            "--trial-seconds", "6", "--baseline-seconds", "3", "--quiet"]  # fmt: skip
    assert main(args) == 0
    mat = loadmat(str(tmp_path / "DREAMER.mat"))
    top = mat["DREAMER"][0, 0]
    subj = top["Data"][0, 1]
    assert subj["EEG"][0, 0]["baseline"][0, 0][3, 0].shape == (3 * 128, 14)
    assert subj["ECG"][0, 0]["baseline"][0, 0][3, 0].shape == (3 * 256, 2)
    films = [subj["EEG"][0, 0]["stimuli"][0, 0][k, 0].shape[0] / 128 for k in range(4)]
    assert all(6 <= f <= 9 for f in films)
    assert (
        float(top["EEG_SamplingRate"][0, 0]) == 128 and float(top["ECG_SamplingRate"][0, 0]) == 256
    )
    w = load_dreamer(tmp_path, window_s=2.0, hop_s=1.0)
    assert w.x["eeg"].shape[1:] == (14, 256) and w.x["ecg"].shape[1:] == (2, 512)
    assert set(w.subject.tolist()) == {1, 2}
    scores = w.y[w.start_s == 0]
    assert scores.shape == (8, 3)
    assert set(np.unique(scores)) <= {1, 2, 3, 4, 5}
    assert len({tuple(r) for r in scores.tolist()}) > 1  # scores vary across films
    # Emotiv's DC level is there in the raw file and gone after baseline removal
    raw = subj["EEG"][0, 0]["stimuli"][0, 0][0, 0]
    assert 3500 < raw.mean() < 5000
    assert abs(float(w.x["eeg"].mean())) < 50


def test_simulate_see(tmp_path):
    args = ["see", "--out", str(tmp_path), "--subjects", "1", "--trial-seconds", "1.5",
            "--frame-size", "64x48", "--seed", "2", "--quiet"]  # fmt: skip
    assert main(args) == 0
    doc = json.loads((tmp_path / "emotion.json").read_text())
    assert doc["labels"] == list(EXPRESSIONS)
    assert (tmp_path / "frame" / "neutraL").is_dir() and not (
        tmp_path / "frame" / "neutral"
    ).exists()
    names = list(doc["database"])
    assert len(names) == len(EXPRESSIONS) * len(LIGHTINGS)
    cells = Counter((SequenceName.parse(n).lighting, SequenceName.parse(n).emotion) for n in names)
    assert set(cells.values()) == {1} and len(cells) == 28  # every lighting x emotion once
    for n, entry in doc["database"].items():
        info = SequenceName.parse(n)
        assert info.emotion == entry["annotations"]["label"]
        assert entry["annotations"]["segment"] == [0, info.length] and 18 <= info.length <= 131
        folder = "neutraL" if info.emotion == "neutral" else info.emotion
        assert len(list((tmp_path / "frame" / folder / n).iterdir())) == info.length
    train, test = SeeDataset(tmp_path, "training"), SeeDataset(tmp_path, "testing")
    assert len(train) + len(test) == 28 and len(test) >= 8
    everything = SeeDataset(tmp_path, None, size=(48, 64), channels=1)
    assert set(everything.label_indices.tolist()) == set(range(7))
    assert set(everything.lighting_names.tolist()) == set(LIGHTINGS)
    brightness = {}
    for i, seq in enumerate(everything.sequences):
        clip = everything[i]
        assert clip.frames.shape == (1, 4, 48, 64) and clip.events.shape == (1, 4, 48, 64)
        brightness.setdefault(seq.lighting, []).append(clip.frames.mean())
        assert clip.label == EXPRESSIONS.index(seq.label)
    mean = {k: float(np.mean(v)) for k, v in brightness.items()}
    assert mean["low_light"] < mean["normal"] < mean["overexposure"]
    # the eye moves: some event frames depart from the grey 128 of "no events"
    ev = np.stack([everything[i].events for i in range(len(everything))])
    assert (np.abs(ev.astype(int) - 128) > 40).mean() > 1e-4


def test_bad_arguments_and_module_entry_point(tmp_path, capsys):
    assert main(["deap", "--out", str(tmp_path), "--subjects", "0", "--quiet"]) == 2
    assert "--subjects must be >= 1" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    for kind in ("deap", "dreamer", "see"):
        assert main([kind, "--out", str(tmp_path / "afile"), "--quiet"]) == 2
        assert "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eeglab", "--out", str(tmp_path)])
    out = subprocess.run(
        [sys.executable, "-m", "app.simulate", "dreamer", "--out", str(tmp_path / "d"),
         "--subjects", "1", "--trials", "2", "--trial-seconds", "2", "--baseline-seconds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "wrote simulated dreamer" in out.stdout
    # stderr is a pipe, as under nohup: progress comes as plain lines, no bar redraws
    # (text mode reads a carriage return as a line break, so redraws would show here)
    lines = out.stderr.splitlines()
    assert lines[-1].startswith("simulate dreamer: 1/1 subject (100 %), ")
    assert all(re.fullmatch(r"simulate dreamer: [01]/1 subject \(\d+ %\), .+ elapsed, .+ left", line)
               for line in lines), lines  # fmt: skip
    assert (tmp_path / "d" / "DREAMER.mat").is_file()


def test_simulate_never_overwrites_a_data_set(tmp_path, capsys):
    """Real participant data under --out is refused before anything is written (rc 2)."""
    deap = tmp_path / "real" / "data_preprocessed_python"
    deap.mkdir(parents=True)
    (deap / "s01.dat").write_text("REAL")
    (tmp_path / "dr").mkdir()
    (tmp_path / "dr" / "DREAMER.mat").write_text("REAL")
    (tmp_path / "see").mkdir()
    (tmp_path / "see" / "emotion.json").write_text("REAL")
    for kind, out in (("deap", "real"), ("dreamer", "dr"), ("see", "see")):
        before = sorted(p.name for p in (tmp_path / out).rglob("*"))
        args = [kind, "--out", str(tmp_path / out), "--subjects", "1", "--trials", "1", "--quiet"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "already exists" in err and len(err.strip().splitlines()) == 1
        assert sorted(p.name for p in (tmp_path / out).rglob("*")) == before
    assert (deap / "s01.dat").read_text() == "REAL"
    assert (tmp_path / "dr" / "DREAMER.mat").read_text() == "REAL"


def test_simulate_unwritable_out_is_one_line(capsys):
    assert main(["deap", "--out", "/proc/affectlab-no/out", "--subjects", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("affectlab simulate: --out /proc/affectlab-no/out: cannot write")
