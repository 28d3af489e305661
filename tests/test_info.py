"""`affectlab info` on real files: an XDF with a gap and markers, an AEDAT4, a session folder."""

from __future__ import annotations

import json

import dv_processing as dv
import numpy as np

from app.info import find_gaps
from app.info import main as info_main
from drivers.davis_server import events_to_store
from recordings.manifest import write_manifest
from recordings.xdf_writer import XdfStreamInfo, XdfWriter


def _xdf(path):
    w = XdfWriter(path)
    eeg = w.add_stream(
        XdfStreamInfo(
            "eeg",
            "EEG",
            2,
            100.0,
            "float32",
            channels=[
                {"label": "Fz", "unit": "uV", "type": "EEG"},
                {"label": "Cz", "unit": "uV", "type": "EEG"},
            ],
        )
    )
    mk = w.add_stream(XdfStreamInfo("trial-markers", "Markers", 1, 0.0, "string"))
    ts = np.concatenate([10 + np.arange(300) / 100.0, 15 + np.arange(200) / 100.0])  # 2 s gap
    w.write_samples(eeg, np.zeros((500, 2), np.float32), ts)
    labels = [f"trial {i}" for i in range(15)]
    w.write_samples(mk, [[x] for x in labels], 10.5 + np.arange(15) * 0.25)
    w.close()
    return labels


def test_info_of_an_xdf(tmp_path, capsys):
    path = tmp_path / "a.xdf"
    labels = _xdf(path)
    assert info_main([str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    eeg = next(s for s in info["streams"] if s["name"] == "eeg")
    assert eeg["count"] == 500 and eeg["nominal_rate"] == 100.0
    assert eeg["gaps"] == 1 and abs(eeg["longest_gap_s"] - 2.01) < 1e-6
    assert abs(eeg["duration_s"] - 6.99) < 1e-6
    assert abs(eeg["effective_rate"] - 499 / 6.99) < 1e-6
    assert [m["value"] for m in info["markers"]] == labels[:10]
    assert abs(info["markers"][1]["t_s"] - 0.75) < 1e-9
    assert info_main([str(path)]) == 0
    text = capsys.readouterr().out
    assert "eeg" in text and "1 (2.010 s, longest 2.010 s)" in text
    assert "trial 0" in text and "trial 9" in text and "trial 10" not in text


def test_info_of_an_aedat4(tmp_path, capsys):
    path = tmp_path / "cam.aedat4"
    writer = dv.io.MonoCameraWriter(
        str(path), dv.io.MonoCameraWriter.DAVISConfig("DAVIS346_t", (346, 260))
    )
    t = 1_700_000_000_000_000 + np.arange(5000) * 200
    writer.writeEvents(
        events_to_store(t, np.arange(5000) % 346, np.arange(5000) % 260, np.arange(5000) % 2)
    )
    for k in range(5):
        writer.writeFrame(dv.Frame(int(t[0] + k * 200_000), np.zeros((260, 346), np.uint8)))
    del writer
    assert info_main([str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    by = {s["modality"]: s for s in info["streams"]}
    assert by["EVENTS"]["count"] == 5000 and by["FRAMES"]["count"] == 5
    assert abs(by["EVENTS"]["effective_rate"] - 5000.0) < 1.0
    assert by["EVENTS"]["frame_shape"] == [260, 346]


def test_info_of_a_session_folder_and_bad_paths(tmp_path, capsys):
    folder = tmp_path / "s"
    folder.mkdir()
    _xdf(folder / "streams.xdf")
    manifest = {
        "format": "affectlab-session",
        "version": 1,
        "name": "mini",
        "created": "2026-01-01T00:00:00",
        "start_lsl": 9.9,
        "stop_lsl": None,
        "clock": {"unix_minus_lsl": 0.0},
        "models": [],
        "streams": [
            {
                "name": "eeg",
                "modality": "EEG",
                "kind": "numeric",
                "file": "streams.xdf",
                "xdf_stream_id": 1,
                "channels": ["Fz", "Cz"],
                "units": ["uV", "uV"],
                "nominal_rate": 100.0,
                "dtype": "float32",
                "count": 600,
            },
            {
                "name": "trial-markers",
                "modality": "MARKERS",
                "kind": "markers",
                "file": "streams.xdf",
                "xdf_stream_id": 2,
                "channels": ["marker"],
                "nominal_rate": 0.0,
                "dtype": "object",
                "count": 15,
            },
        ],
    }
    write_manifest(folder, manifest)
    assert info_main([str(folder)]) == 0
    text = capsys.readouterr().out
    assert "session 'mini'" in text and "did NOT stop cleanly" in text
    assert "has 500 items, the manifest says 600" in text
    assert "     0.850 s  trial 1" in text  # times from the session's start (start_lsl 9.9)
    assert info_main([str(tmp_path / "nothing")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "x.xdf").write_bytes(b"PK\x03\x04 a zip")
    assert info_main([str(tmp_path / "x.xdf")]) == 1
    assert "not an XDF file" in capsys.readouterr().err


def test_find_gaps():
    ts = np.array([0.0, 0.01, 0.02, 0.5, 0.51])
    assert find_gaps(ts, 100.0) == [(0.02, 0.48)]
    assert find_gaps(ts, 0.0) == []
