"""DEAP, DREAMER and SEE loaders on tiny files written here by hand in each format.

The files are made independently of ``app.simulate``: DEAP as the opcodes of
a Python 2 cPickle (protocol 2, ``numpy.core.multiarray``), DREAMER with
``savemat`` in the nested cell/struct layout that code in the wild indexes,
SEE as JPEG folders plus emotion.json.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat, savemat

from models.data import (
    DataSetError,
    SeeDataset,
    UnsafePickleError,
    kfold_splits,
    load_deap,
    load_dreamer,
    loso_splits,
    safe_load,
)
from models.data import deap as D
from models.data import dreamer as R
from models.data.see import SequenceName, normalize, temporal_indices
from models.data.windows import (
    TrialSignals,
    WindowedSignals,
    remove_baseline,
    window_starts,
    window_trials,
)


# ------------------------------------------------------------------ Python 2 pickles by hand
def _str(b: bytes) -> bytes:
    """A Python 2 ``str`` opcode: SHORT_BINSTRING or BINSTRING."""
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<i", len(b)) + b


def _py2_array(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype="<f8")
    shape = b"(" + b"".join(b"J" + struct.pack("<i", d) for d in a.shape) + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        b"cnumpy\nndarray\n" + b"K\x00\x85" + _str(b"b") + b"\x87R"
        + b"(K\x01" + shape
        + b"cnumpy\ndtype\n" + _str(b"f8") + b"K\x00K\x01\x87R"
        + b"(K\x03" + _str(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89" + _str(a.tobytes()) + b"tb"
    )  # fmt: skip


def py2_pickle(arrays: dict[str, np.ndarray]) -> bytes:
    """What Python 2's cPickle.dump(d, f, 2) wrote for a dict of float64 arrays (DEAP's files)."""
    body = b"".join(_str(k.encode()) + _py2_array(v) for k, v in arrays.items())
    return b"\x80\x02}(" + body + b"u."


def write_deap_subject(folder: Path, subject: int, data: np.ndarray, labels: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"s{subject:02d}.dat"
    path.write_bytes(py2_pickle({"labels": labels, "data": data}))
    return path


def coded_deap(subject: int, trials: int = 3, seconds: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Every sample says where it is: 1e4 x subject + 100 x channel + trial + sample / 1e4."""
    n = D.BASELINE_SAMPLES + seconds * 128
    k = np.arange(trials)[:, None, None]
    c = np.arange(40)[None, :, None]
    s = np.arange(n)[None, None, :]
    data = 1e4 * subject + 100.0 * c + k + s / 1e4
    labels = np.array([[1.0 + 2 * t, 5.0, 9.0 - t, 5.01] for t in range(trials)])
    return data, labels


# ------------------------------------------------------------------ safe_pickle
class _RunsCommand:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("how", ["os.system", "builtins.exec"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    if how == "os.system":
        evil = _RunsCommand(os.system, f"touch {marker}")
        global_name = f"{os.system.__module__}.system"
    else:
        evil = _RunsCommand(exec, f"open({str(marker)!r}, 'w').write('x')")
        global_name = "builtin__.exec"  # protocol 2 writes Python 2's module name
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"labels": evil, "data": [1.0]}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        safe_load(path)
    assert str(path) in str(err.value) and global_name in str(err.value)
    assert not marker.exists()
    with pytest.raises(UnsafePickleError):
        load_deap(tmp_path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is live: a plain unpickler runs it
    assert marker.exists()


def test_refused_after_valid_arrays_and_getattr_gadgets(tmp_path):
    marker = tmp_path / "pwned"
    body = _str(b"data") + _py2_array(np.zeros(3))
    # builtins.getattr(os, "system") is a classic gadget; it must be refused outright
    body += _str(b"x") + b"cbuiltins\ngetattr\n" + b"cos\n_exit\n" + _str(b"x") + b"\x86R"
    path = tmp_path / "s02.dat"
    path.write_bytes(b"\x80\x02}(" + body + b"u.")
    with pytest.raises(UnsafePickleError, match="builtins.getattr"):
        safe_load(path)
    assert not marker.exists()


class _ForgedDtype:
    """Pickles as ``np.dtype(base)`` followed by a state of the file's choosing."""

    def __init__(self, base: str, state: tuple):
        self.base, self.state = base, state

    def __reduce__(self):
        return (np.dtype, (self.base, False, True), self.state)


class _ArrayOf:
    """Pickles as an array of ``raw`` bytes under a (forged) dtype."""

    def __init__(self, dtype: _ForgedDtype, shape: tuple, raw: bytes):
        self.dtype, self.shape, self.raw = dtype, shape, raw

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (
            _reconstruct,
            (np.ndarray, (0,), b"b"),
            (1, self.shape, self.dtype, False, self.raw),
        )


def _cleared_flags(dt: np.dtype) -> tuple:
    state = list(dt.__reduce__()[2])
    state[-1] = 0  # no "holds references" flags: the raw bytes become object pointers
    return tuple(state)


@pytest.mark.parametrize(
    "forged",
    [
        _ForgedDtype("f8", _cleared_flags(np.dtype([("a", "O")]))),  # "floats" with a pointer field
        _ForgedDtype("O8", _cleared_flags(np.dtype("O"))),  # objects from the file's bytes
        _ForgedDtype("V8", (3, "|", None, ("a",), {"a": (np.dtype("f8"), 1 << 20)}, 8, 1, 0)),
    ],
    ids=["pointer-field", "object", "field-past-the-end"],
)
def test_arrays_of_forged_dtypes_are_refused(tmp_path, forged):
    """Only allowed globals, yet the dtype's state would make reading an element
    dereference a pointer from the file or read a megabyte past the buffer."""
    path = tmp_path / "s01.dat"
    raw = b"\x41" * 8 * 40
    path.write_bytes(
        pickle.dumps({"data": _ArrayOf(forged, (1, 40), raw), "labels": np.ones((1, 4))}, 4)
    )
    with pytest.raises(UnsafePickleError, match="holds an array of dtype"):
        safe_load(path)
    with pytest.raises(UnsafePickleError):
        load_deap(tmp_path)


def test_py2_deap_pickle_loads_and_damaged_file_is_named(tmp_path):
    data, labels = coded_deap(1, trials=2, seconds=1)
    path = write_deap_subject(tmp_path, 1, data, labels)
    obj = safe_load(path)
    assert set(obj) == {"data", "labels"}
    np.testing.assert_array_equal(obj["data"], data)
    np.testing.assert_array_equal(obj["labels"], labels)
    # Python 3 protocols 3/4 rebuild arrays from bytes with the same globals: also fine
    p3 = tmp_path / "p3.pkl"
    p3.write_bytes(pickle.dumps({"a": data, "s": {1, 2}, "t": (1, [2])}, protocol=4))
    assert np.array_equal(safe_load(p3)["a"], data)
    broken = tmp_path / "s03.dat"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(pickle.UnpicklingError, match=str(broken)):
        safe_load(broken)


# ------------------------------------------------------------------ windows
def test_remove_baseline_modes():
    rate = 4.0
    t_base = np.arange(12)
    pattern = np.array([1.0, 2.0, 3.0, 4.0])
    baseline = np.stack([np.tile(pattern, 3) + np.repeat([0.0, 3.0, 6.0], 4), 10.0 + 0 * t_base])
    sig = np.arange(18.0).reshape(2, 9)
    template = np.stack([pattern + 3.0, np.full(4, 10.0)])  # mean of the three 1 s segments
    seg = remove_baseline(sig, baseline, rate, "segment")
    np.testing.assert_allclose(seg, sig - np.tile(template, (1, 3))[:, :9])
    mean = remove_baseline(sig, baseline, rate, "mean")
    np.testing.assert_allclose(mean, sig - baseline.mean(axis=1, keepdims=True))
    np.testing.assert_array_equal(remove_baseline(sig, baseline, rate, "none"), sig)
    with pytest.raises(ValueError, match="at least 1 s"):
        remove_baseline(sig, baseline[:, :3], rate, "segment")
    with pytest.raises(ValueError):
        remove_baseline(sig, baseline, rate, "median")


def test_window_starts():
    assert len(window_starts(60.0, 1.0, 1.0)) == 60
    np.testing.assert_allclose(window_starts(10.0, 4.0, 2.0), [0, 2, 4, 6])
    assert len(window_starts(3.0, 4.0, 2.0)) == 0
    np.testing.assert_array_equal(window_starts(7.5, None, None), [0.0])


# ------------------------------------------------------------------ DEAP
@pytest.fixture
def deap_root(tmp_path):
    folder = tmp_path / "data_preprocessed_python"
    for s in (1, 2, 5):
        write_deap_subject(folder, s, *coded_deap(s))
    return tmp_path


def test_deap_channels_windows_labels(deap_root):
    w = load_deap(deap_root, modalities=("eeg", "gsr", "ppg", "eog"), window_s=2.0, hop_s=1.0,
                  baseline="none", dtype=np.float64)  # fmt: skip
    assert w.modalities == ("eeg", "gsr", "ppg", "eog")
    per_trial = 5  # 6 s trials, 2 s windows every 1 s
    assert len(w) == 3 * 3 * per_trial
    assert w.x["eeg"].shape == (len(w), 32, 256) and w.x["gsr"].shape == (len(w), 1, 256)
    assert w.channel_names["eog"] == ("hEOG", "vEOG") and w.channel_names["gsr"] == ("GSR",)
    assert w.channel_names["eeg"][:3] == ("Fp1", "AF3", "F3") and w.channel_names["eeg"][-1] == "O2"
    assert sorted(set(w.subject.tolist())) == [1, 2, 5]
    for i in range(len(w)):
        s, k, start = w.subject[i], w.trial[i], w.start_s[i]
        first = D.BASELINE_SAMPLES + int(start * 128)
        want = 1e4 * s + k + (first + np.arange(256)) / 1e4
        np.testing.assert_allclose(w.x["gsr"][i, 0], want + 100 * 36)
        np.testing.assert_allclose(w.x["ppg"][i, 0], want + 100 * 38)
        np.testing.assert_allclose(w.x["eog"][i, 1], want + 100 * 33)
        np.testing.assert_allclose(w.x["eeg"][i, 31], want + 100 * 31)
        np.testing.assert_array_equal(w.y[i], coded_deap(s)[1][k].astype(np.float32))
    # high/low at > 5: 5.0 is low, 5.01 is high
    b = w.binary()
    assert (b[:, 1] == 0).all() and (b[:, 3] == 1).all()
    assert set(np.unique(w.start_s)) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_deap_baseline_removal_numbers(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(2, 40, D.BASELINE_SAMPLES + 4 * 128)) + 50.0
    labels = np.full((2, 4), 5.0)
    write_deap_subject(tmp_path, 7, data, labels)
    seg = load_deap(tmp_path, modalities=("temp",), window_s=None, baseline="segment",
                    dtype=np.float64)  # fmt: skip
    template = data[:, 39, :384].reshape(2, 3, 128).mean(axis=1)
    want = data[:, 39, 384:] - np.tile(template, (1, 4))
    np.testing.assert_allclose(seg.x["temp"][:, 0], want)
    mean = load_deap(tmp_path, modalities=("emg",), window_s=None, baseline="mean",
                     dtype=np.float64)  # fmt: skip
    want = data[:, 34:36, 384:] - data[:, 34:36, :384].mean(axis=2, keepdims=True)
    np.testing.assert_allclose(mean.x["emg"], want)
    assert abs(mean.x["emg"].mean()) < 0.2  # the 50 offset is gone


def test_deap_subject_selection_and_splits(deap_root):
    w = load_deap(deap_root, subjects=[2, 5], modalities=("resp",), window_s=3.0, hop_s=3.0)
    assert sorted(set(w.subject.tolist())) == [2, 5]
    w = load_deap(deap_root, modalities=("resp",), window_s=3.0, hop_s=3.0)
    folds = list(loso_splits(w.subject))
    assert [f[0] for f in folds] == [1, 2, 5]
    for held, train, test in folds:
        assert set(w.subject[test]) == {held} and held not in set(w.subject[train])
        assert len(train) + len(test) == len(w)
    splits = kfold_splits(w.subject, w.trial, k=3, seed=1)
    assert len(splits) == 3
    seen = np.concatenate([te for _, te in splits])
    assert sorted(seen.tolist()) == list(range(len(w)))  # every window tested exactly once
    for train, test in splits:
        tr = set(zip(w.subject[train].tolist(), w.trial[train].tolist(), strict=True))
        te = set(zip(w.subject[test].tolist(), w.trial[test].tolist(), strict=True))
        assert not tr & te  # no trial on both sides
        assert set(w.subject[test]) == {1, 2, 5}  # every subject in every fold (3 trials, k=3)
    with pytest.raises(ValueError):
        next(loso_splits(np.ones(4)))


def test_deap_errors_name_the_file(tmp_path):
    data, labels = coded_deap(1, trials=2, seconds=1)
    path = tmp_path / "s01.dat"
    path.write_bytes(py2_pickle({"data": data}))
    with pytest.raises(DataSetError, match=r"s01\.dat: missing key 'labels'"):
        load_deap(tmp_path)
    path.write_bytes(py2_pickle({"data": data[:, :39], "labels": labels}))
    with pytest.raises(DataSetError, match=r"s01\.dat: 'data' has shape \(2, 39, 512\)"):
        load_deap(tmp_path)
    path.write_bytes(py2_pickle({"data": data, "labels": labels[:, :3]}))
    with pytest.raises(DataSetError, match=r"s01\.dat: 'labels' has shape \(2, 3\)"):
        load_deap(tmp_path)
    with pytest.raises(DataSetError, match="no file for subject"):
        load_deap(tmp_path, subjects=[9])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSetError, match="empty: no DEAP subject files"):
        load_deap(tmp_path / "empty")
    with pytest.raises(ValueError, match="modalities"):
        load_deap(tmp_path, modalities=("ecg",))


# ------------------------------------------------------------------ DREAMER
def _cells(arrays):
    cell = np.empty((len(arrays), 1), dtype=object)
    for i, a in enumerate(arrays):
        cell[i, 0] = a
    return cell


def dreamer_subject(s: int, lengths=(5, 7, 6), base_s=2, rng=None):
    """EEG value = 1000 x subject + 10 x channel + trial + sample / 1e4; ECG likewise at 256 Hz."""
    eeg_st, eeg_b, ecg_st, ecg_b = [], [], [], []
    for k, sec in enumerate(lengths):
        for rate, nch, st, bl in ((128, 14, eeg_st, eeg_b), (256, 2, ecg_st, ecg_b)):
            n = sec * rate
            st.append(1000.0 * s + 10.0 * np.arange(nch)[None] + k + np.arange(n)[:, None] / 1e4)
            bl.append(rng.normal(size=(base_s * rate, nch)) + 7.0 * k)
    scores = np.array([[1.0 + k, 3.0, 5.0 - k] for k in range(len(lengths))])
    return {
        "Age": "25", "Gender": "female" if s % 2 else "male",
        "EEG": {"baseline": _cells(eeg_b), "stimuli": _cells(eeg_st)},
        "ECG": {"baseline": _cells(ecg_b), "stimuli": _cells(ecg_st)},
        "ScoreValence": scores[:, [0]], "ScoreArousal": scores[:, [1]],
        "ScoreDominance": scores[:, [2]],
    }  # fmt: skip


def write_dreamer_mat(path: Path, subjects: list[dict]) -> None:
    data = np.empty((1, len(subjects)), dtype=object)
    for i, s in enumerate(subjects):
        data[0, i] = s
    electrodes = np.empty((1, 14), dtype=object)
    electrodes[0, :] = list(R.EEG_CHANNELS)
    savemat(str(path), {"DREAMER": {
        "Data": data, "EEG_SamplingRate": 128.0, "ECG_SamplingRate": 256.0,
        "EEG_Electrodes": electrodes, "noOfSubjects": float(len(subjects)),
        "noOfVideoSequences": 3.0,
    }})  # fmt: skip


@pytest.fixture
def dreamer_path(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "DREAMER.mat"
    write_dreamer_mat(path, [dreamer_subject(s, rng=rng) for s in (1, 2)])
    return path


def test_dreamer_layout_matches_the_wild(dreamer_path):
    # The indexing used by published DREAMER loaders works on our hand-made file.
    mat = loadmat(str(dreamer_path))
    subj = mat["DREAMER"][0, 0]["Data"][0, 1]
    assert subj["EEG"][0, 0]["stimuli"][0, 0][2, 0].shape == (6 * 128, 14)
    assert subj["ECG"][0, 0]["baseline"][0, 0][0, 0].shape == (2 * 256, 2)
    assert subj["ScoreValence"][0, 0][1, 0] == 2.0


def test_dreamer_windows_labels_and_modalities(dreamer_path):
    w = load_dreamer(dreamer_path.parent, window_s=2.0, hop_s=1.0, baseline="none",
                     dtype=np.float64)  # fmt: skip
    assert w.rates == {"eeg": 128.0, "ecg": 256.0}
    assert w.channel_names["eeg"] == R.EEG_CHANNELS and len(w.channel_names["ecg"]) == 2
    assert len(w) == 2 * (4 + 6 + 5)
    assert w.x["eeg"].shape == (len(w), 14, 256) and w.x["ecg"].shape == (len(w), 2, 512)
    assert sorted(set(w.subject.tolist())) == [1, 2]
    for i in range(len(w)):
        s, k, t0 = w.subject[i], w.trial[i], w.start_s[i]
        e0, c0 = int(t0 * 128), int(t0 * 256)
        np.testing.assert_allclose(
            w.x["eeg"][i, 3], 1000 * s + 30 + k + (e0 + np.arange(256)) / 1e4
        )
        np.testing.assert_allclose(
            w.x["ecg"][i, 1], 1000 * s + 10 + k + (c0 + np.arange(512)) / 1e4
        )
        np.testing.assert_array_equal(w.y[i], [1 + k, 3, 5 - k])
    b = w.binary()  # > 3 is high
    assert set(b[:, 1]) == {0} and set(b[w.trial == 0, 2]) == {1} and set(b[w.trial == 2, 2]) == {0}
    eeg_only = load_dreamer(dreamer_path, modalities=("eeg",), subjects=[2], window_s=5.0,
                            hop_s=5.0)  # fmt: skip
    assert eeg_only.modalities == ("eeg",) and set(eeg_only.subject.tolist()) == {2}
    assert len(eeg_only) == 3  # one 5 s window per film (5, 7, 6 s)
    assert eeg_only.meta["gender"] == {2: "male"}


def test_dreamer_baseline_removal_and_last_seconds(dreamer_path):
    mat = loadmat(str(dreamer_path))
    subj = mat["DREAMER"][0, 0]["Data"][0, 0]
    base = subj["ECG"][0, 0]["baseline"][0, 0][1, 0].T  # film 2 of subject 1
    stim = subj["ECG"][0, 0]["stimuli"][0, 0][1, 0].T
    w = load_dreamer(dreamer_path, subjects=[1], modalities=("ecg",), window_s=None,
                     baseline="segment", last_s=4.0, dtype=np.float64)  # fmt: skip
    template = base.reshape(2, 2, 256).mean(axis=1)
    want = stim[:, -4 * 256 :] - np.tile(template, (1, 4))
    np.testing.assert_allclose(w.x["ecg"][w.trial == 1][0], want)
    assert w.x["ecg"].shape == (3, 2, 4 * 256)


def test_dreamer_errors_name_the_file(tmp_path):
    rng = np.random.default_rng(0)
    bad = dreamer_subject(1, rng=rng)
    del bad["ScoreArousal"]
    path = tmp_path / "DREAMER.mat"
    write_dreamer_mat(path, [bad])
    with pytest.raises(
        DataSetError, match=r"DREAMER\.mat: DREAMER\.Data\{1\} has no field 'ScoreArousal'"
    ):
        load_dreamer(path)
    bad = dreamer_subject(1, rng=rng)
    bad["EEG"]["stimuli"][1, 0] = np.zeros((128, 13))
    write_dreamer_mat(path, [bad])
    with pytest.raises(DataSetError, match=r"EEG\.stimuli\{2\} has shape \(128, 13\)"):
        load_dreamer(path)
    savemat(str(path), {"other": 1.0})
    with pytest.raises(DataSetError, match="missing variable 'DREAMER'"):
        load_dreamer(path)
    with pytest.raises(DataSetError, match="no such DREAMER file"):
        load_dreamer(tmp_path / "nope.mat")


# ------------------------------------------------------------------ SEE
SEE_SEQS = [
    # (seq, subject, lighting token, emotion, length, take, subset)
    (1, 1, "normal", "angry", 20, 0, "training"),
    (2, 1, "normal", "neutral", 9, 0, "training"),
    (3, 1, "Overexposed", "angry", 30, 1, "testing"),
    (4, 2, "Low", "surprise", 25, 0, "training"),
    (5, 2, "HDR", "neutral", 18, 1, "testing"),
]


def write_see(root: Path, seqs=SEE_SEQS) -> None:
    db = {}
    for seq, subj, light, emo, n, take, subset in seqs:
        name = f"{seq}_{subj:03d}_man_24_Master_{light}_{emo}_{n}_take{take:03d}"
        folder = "neutraL" if emo == "neutral" else emo
        for kind, base in (("frame", 0), ("event", 100)):
            d = root / kind / folder / name
            d.mkdir(parents=True)
            for i in range(n):
                img = np.full((26, 34), base + 5 * i, dtype=np.uint8)  # the value says which frame
                Image.fromarray(img, "L").save(d / f"{i:05d}.jpg", quality=95)
        db[name] = {"subset": subset, "annotations": {"label": emo, "segment": [0, n]}}
    labels = ["angry", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
    (root / "emotion.json").write_text(json.dumps({"labels": labels, "database": db}))


def test_see_index_labels_lighting_subjects(tmp_path):
    write_see(tmp_path)
    train = SeeDataset(tmp_path, "training")
    test = SeeDataset(tmp_path, "testing")
    assert len(train) == 3 and len(test) == 2
    assert train.label_indices.tolist() == [0, 4, 6]  # label order of emotion.json
    assert train.lighting_names.tolist() == ["normal", "normal", "low_light"]
    assert test.lighting_names.tolist() == ["overexposure", "hdr"]
    assert train.subject_ids.tolist() == [1, 1, 2]
    assert train.sequences[1].frame_dir.parent.name == "neutraL"
    assert len(SeeDataset(tmp_path, None, lightings=["normal"], subjects=[1])) == 2


def test_see_clips(tmp_path):
    write_see(tmp_path)
    ds = SeeDataset(tmp_path, "testing", size=(100, 100))
    clip = ds[0]  # 30 frames: every 4th -> 8, centred crop of 4
    assert clip.frames.shape == (3, 4, 100, 100) and clip.events.shape == (3, 4, 100, 100)
    assert clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(clip.indices, [8, 12, 16, 20])
    got = clip.frames[0].reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(got, 5 * clip.indices, atol=2)
    np.testing.assert_allclose(
        clip.events[1].reshape(4, -1).mean(axis=1), 100 + 5 * clip.indices, atol=2
    )
    assert (clip.label, clip.subject, clip.lighting) == (0, 1, "overexposure")
    gray = SeeDataset(tmp_path, "training", channels=1, size=(20, 30))[1]  # 9 frames: loops
    assert gray.frames.shape == (1, 4, 20, 30)
    np.testing.assert_array_equal(gray.indices, [0, 4, 8, 0])
    rnd = SeeDataset(tmp_path, "testing", random=True, seed=1)
    draws = {tuple(rnd[0].indices.tolist()) for _ in range(20)}
    assert len(draws) > 1
    z = normalize(clip.frames, "frames")
    assert z.dtype == np.float32 and abs(float(z.mean()) - (0.0 - 0.22616537) / 0.118931554) < 5


def test_temporal_indices():
    np.testing.assert_array_equal(temporal_indices(45, 4, 4), [16, 20, 24, 28])
    np.testing.assert_array_equal(temporal_indices(3, 4, 4), [0, 0, 0, 0])
    rng = np.random.default_rng(0)
    for n in (5, 18, 45, 131):
        for _ in range(50):
            idx = temporal_indices(n, 4, 4, rng)
            assert len(idx) == 4 and idx.min() >= 0 and idx.max() < n
            if n >= 18:
                assert (np.diff(idx) == 4).all()


def test_see_names_and_errors(tmp_path):
    info = SequenceName.parse("1_001_man_24_Master_normal_angry_45_take000")
    assert (info.seq, info.subject, info.age, info.lighting, info.emotion, info.length) == (
        1, 1, 24, "normal", "angry", 45,
    )  # fmt: skip
    assert info.format() == "1_001_man_24_Master_normal_angry_45_take000"
    assert SequenceName.parse("9_064_man_21_undergraduate_HDR_angry_42_take000").lighting == "hdr"
    with pytest.raises(ValueError):
        SequenceName.parse("1_001_man_24_Master_dim_angry_45_take000")
    write_see(tmp_path)
    doc = json.loads((tmp_path / "emotion.json").read_text())
    gone = next(iter(doc["database"]))
    for kind in ("frame", "event"):
        (tmp_path / kind / "angry" / gone).rename(tmp_path / kind / "angry" / "moved")
    with pytest.raises(DataSetError, match=f"frame/angry/{gone}: missing sequence folder"):
        SeeDataset(tmp_path, None)
    (tmp_path / "emotion.json").write_text(json.dumps({"labels": ["angry"]}))
    with pytest.raises(DataSetError, match=r"emotion\.json: missing key 'database'"):
        SeeDataset(tmp_path)
    write_see(tmp_path / "b", SEE_SEQS[:1])
    (tmp_path / "b" / "frame" / "angry").iterdir().__next__().joinpath("00008.jpg").unlink()
    ds = SeeDataset(tmp_path / "b", "training")
    with pytest.raises(DataSetError, match=r"00008\.jpg: missing frame"):
        ds[0]


def test_an_empty_or_text_dreamer_file_is_a_data_set_error(tmp_path):
    from models.data.dreamer import read_dreamer
    from models.data.windows import DataSetError

    for name, text in (("empty.mat", b""), ("text.mat", b"hello, not MATLAB\n")):
        (tmp_path / name).write_bytes(text)
        with pytest.raises(DataSetError, match=f"{tmp_path / name}: not a readable MATLAB file"):
            read_dreamer(tmp_path / name)


# ------------------------------------------------------------------ window_trials, k-fold
def timed_trial(trial: int, seconds: dict[str, float], rates: dict[str, float]) -> TrialSignals:
    """Every sample holds its own time in seconds after stimulus onset (+ 100 x channel)."""
    signals = {}
    for m, sec in seconds.items():
        n = int(round(sec * rates[m]))
        signals[m] = 100.0 * np.arange(2)[:, None] + np.arange(n)[None, :] / rates[m]
    return TrialSignals(subject=1, trial=trial, signals=signals, labels=np.array([5.0]))


def cut(
    trials: list[TrialSignals], rates: dict[str, float], window_s: float | None, hop_s: float | None
) -> WindowedSignals:
    names = {m: ("a", "b") for m in rates}
    return window_trials(
        trials, rates, window_s, hop_s, label_names=("valence",), channel_names=names,
        threshold=5.0, dtype=np.float64,
    )  # fmt: skip


def test_windows_cover_the_same_seconds_in_every_modality_of_unequal_length() -> None:
    """DREAMER's EEG and ECG of one film can differ in length; a window whose EEG
    and ECG come from different seconds pairs a heartbeat with the wrong brain
    state, so a trial is only as long as its shortest modality."""
    rates = {"eeg": 128.0, "ecg": 256.0}
    trials = [timed_trial(0, {"eeg": 10.0, "ecg": 8.0}, rates),
              timed_trial(1, {"eeg": 6.0, "ecg": 7.0}, rates)]  # fmt: skip
    w = cut(trials, rates, 2.0, 2.0)
    for m, rate in rates.items():
        seconds = w.x[m][:, 1] - 100.0  # channel 1: the sample's time
        want = w.start_s[:, None] + np.arange(int(2 * rate)) / rate
        np.testing.assert_allclose(seconds, want, err_msg=m)
    np.testing.assert_allclose(w.start_s, [0, 2, 4, 6, 0, 2, 4])
    assert w.trial.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_whole_trial_windows_ignore_the_hop() -> None:
    """``window_s=None`` promises exactly one window per trial (as long as the
    shortest trial); a hop must not cut longer trials into several, which
    would weight them more in training and evaluation."""
    rates = {"eeg": 8.0}
    trials = [timed_trial(0, {"eeg": 4.0}, rates), timed_trial(1, {"eeg": 6.0}, rates)]
    w = cut(trials, rates, None, 1.0)
    assert w.trial.tolist() == [0, 1] and w.start_s.tolist() == [0.0, 0.0]
    assert w.x["eeg"].shape == (2, 2, 32)


def test_window_that_rounds_up_past_the_end_is_shifted_back() -> None:
    """At 30 Hz a 0.25 s window is 7.5 samples, rounded to 8, and the last of six
    windows in a 1.5 s trial would start at sample 38 and read past sample 44:
    it must end at the signal's end instead of raising IndexError."""
    rates = {"video": 30.0, "eeg": 128.0}
    w = cut([timed_trial(0, {"video": 1.5, "eeg": 1.5}, rates)], rates, 0.25, 0.25)
    assert len(w) == 6 and w.x["video"].shape == (6, 2, 8)
    for m, rate in rates.items():
        assert w.x[m][-1, 0, -1] == pytest.approx(1.5 - 1 / rate), m  # the signal's last sample


def test_kfold_folds_are_never_empty_and_spread_every_subject() -> None:
    """A fold with no test windows gives a NaN score that poisons the mean over
    folds, so it is dropped; each subject's trials are dealt round-robin from a
    random fold, so within a subject the folds differ by at most one trial and
    subjects with fewer trials than k do not all pile into the first folds."""
    k = 4
    subject = np.repeat(np.arange(20), 3 * 2)  # 20 subjects x 3 trials x 2 windows
    trial = np.tile(np.repeat(np.arange(3), 2), 20)
    splits = kfold_splits(subject, trial, k=k, seed=0)
    assert len(splits) == k  # with a fixed starting fold, fold 3 would never be used
    for train, test in splits:
        assert test.size > 0 and train.size > 0
    seen = np.sort(np.concatenate([te for _, te in splits]))
    np.testing.assert_array_equal(seen, np.arange(len(subject)))
    for s in range(20):
        counts = [np.unique(trial[te][subject[te] == s]).size for _, te in splits]
        assert sum(counts) == 3 and max(counts) - min(counts) <= 1
    few = kfold_splits(np.zeros(4, int), np.array([0, 0, 1, 1]), k=5, seed=3)
    assert [te.size for _, te in few] == [2, 2]  # 2 trials, k=5: 2 folds, none empty


def test_segment_baseline_template_uses_the_first_whole_seconds() -> None:
    """A 2.5 s baseline is cut into 1 s segments from its start and the trailing
    half second is dropped; taking the last whole seconds instead would mix a
    different stretch of rest into the template (Yang et al.'s 1 s segments)."""
    rate = 4.0
    baseline = np.concatenate([[1.0, 2.0, 3.0, 4.0], [11.0, 12.0, 13.0, 14.0], [500.0, 900.0]])
    sig = np.zeros((1, 6))
    got = remove_baseline(sig, baseline[None], rate, "segment")
    template = np.array([6.0, 7.0, 8.0, 9.0])  # mean of seconds 0 and 1
    np.testing.assert_allclose(got[0], -np.concatenate([template, template[:2]]))
