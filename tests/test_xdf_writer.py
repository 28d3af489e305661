"""The XDF writer against pyxdf: formats, headers, footers, cut-off files and a refusing disk."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pyxdf

from recordings.xdf_writer import XdfStreamInfo, XdfWriter, varlen, xdf_format

ROOT = Path(__file__).resolve().parents[1]


def _info(name: str, fmt: str, n: int, rate: float = 0.0, type_: str = "EEG") -> XdfStreamInfo:
    return XdfStreamInfo(
        name=name,
        type=type_,
        channel_count=n,
        nominal_srate=rate,
        channel_format=fmt,
        source_id=f"src-{name}",
        channels=[{"label": f"c{i}", "unit": "uV", "type": type_} for i in range(n)],
        extra={"affectlab": {"modality": type_, "metadata": json.dumps({"k": [1, 2]})}},
    )


def _load(path: Path) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, synchronize_clocks=False)
    return {s["info"]["name"][0]: s for s in streams}


def test_varlen_picks_the_smallest_width():
    assert varlen(5) == b"\x01\x05"
    assert varlen(300) == b"\x04" + (300).to_bytes(4, "little")
    assert varlen(1 << 33)[0] == 8


@pytest.mark.parametrize(
    "dtype, fmt",
    [
        ("float32", "float32"),
        ("float64", "double64"),
        ("int16", "int16"),
        ("int32", "int32"),
        ("int64", "int64"),
        ("int8", "int8"),
        ("uint8", "int16"),
        ("object", "string"),
    ],
)
def test_every_format_round_trips_through_pyxdf(tmp_path, dtype, fmt):
    assert xdf_format(dtype)[0] == fmt
    rng = np.random.default_rng(0)
    path = tmp_path / "x.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(_info("s", fmt, 3, 100.0))
    if fmt == "string":
        data = np.array([[f"m{i}-é", "", "a b"] for i in range(40)], dtype=object)
    else:
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        data = (
            rng.integers(info.min, info.max, (40, 3)) if info else rng.normal(size=(40, 3))
        ).astype(dtype)
    ts = 1000.0 + np.arange(40) / 100.0
    w.write_samples(sid, data[:25], ts[:25])
    w.write_samples(sid, data[25:], ts[25:])
    w.clock_offsets(1000.0)
    w.close()
    s = _load(path)["s"]
    np.testing.assert_array_equal(s["time_stamps"], ts)
    if fmt == "string":
        assert s["time_series"] == data.tolist()
    else:
        np.testing.assert_array_equal(np.asarray(s["time_series"]), data)
    assert s["footer"]["info"]["sample_count"] == ["40"]


def test_headers_carry_labels_units_rate_source_and_the_spec(tmp_path):
    path = tmp_path / "h.xdf"
    w = XdfWriter(path)
    w.add_stream(_info("eeg", "float32", 2, 256.0))
    w.add_stream(_info("mk", "string", 1, 0.0, "Markers"))
    w.close()
    got = _load(path)
    info = got["eeg"]["info"]
    assert info["type"] == ["EEG"] and info["nominal_srate"] == ["256.0"]
    assert info["source_id"] == ["src-eeg"] and info["channel_format"] == ["float32"]
    chans = info["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in chans] == ["c0", "c1"]
    assert [c["unit"][0] for c in chans] == ["uV", "uV"]
    assert json.loads(info["desc"][0]["affectlab"][0]["metadata"][0]) == {"k": [1, 2]}
    assert got["mk"]["info"]["type"] == ["Markers"]
    assert len(got["mk"]["time_stamps"]) == 0


def test_nothing_reaches_the_file_before_flush_and_everything_after(tmp_path):
    path = tmp_path / "f.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(_info("s", "float32", 1, 10.0))
    w.write_samples(sid, np.ones((5, 1), np.float32), np.arange(5.0))
    assert path.stat().st_size == 0
    w.flush()
    size = path.stat().st_size
    assert size == w.bytes_written > 0
    assert len(_load(path)["s"]["time_stamps"]) == 5  # no footer yet: still loads


def test_a_file_cut_anywhere_loads_every_whole_chunk_before_the_cut(tmp_path):
    """What pyxdf 1.17 does with a cut tail, measured here: a cut inside a chunk's length field
    drops that chunk (with a logged error); a cut inside its values loads the chunk anyway,
    its last sample filled with stale bytes. So a reader cannot tell a cut chunk from a whole
    one, and a cut inside a chunk's tag makes pyxdf raise: which is why the writer only ever
    leaves whole chunks on disk."""
    path = tmp_path / "c.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(_info("s", "double64", 2, 100.0))
    ends = []
    for k in range(10):
        w.write_samples(sid, np.full((10, 2), k, np.float64), k + np.arange(10) / 100.0)
        w.flush()
        ends.append(path.stat().st_size)
    w.close()
    whole = path.read_bytes()
    for cut in (ends[3], ends[3] + 1, ends[6] - 7, ends[9]):
        part = tmp_path / f"cut{cut}.xdf"
        part.write_bytes(whole[:cut])
        s = _load(part)["s"]
        complete = sum(1 for e in ends if e <= cut)
        values = np.asarray(s["time_series"])
        assert len(s["time_stamps"]) in (10 * complete, 10 * complete + 10)
        np.testing.assert_array_equal(values[: 10 * complete : 10, 0], np.arange(complete))
        np.testing.assert_array_equal(
            s["time_stamps"][: 10 * complete],
            (np.arange(complete)[:, None] + np.arange(10) / 100.0).ravel(),
        )
    # a cut inside a chunk's 2-byte tag (here the Boundary chunk after the last samples) is
    # not caught by pyxdf at all
    (tmp_path / "tag.xdf").write_bytes(whole[: ends[9] + 3])
    with pytest.raises(struct.error):
        _load(tmp_path / "tag.xdf")


#: writes ~0.5 MB of samples under a 200 kB file size limit; reports what the writer saw
FSIZE_SCRIPT = r"""
import json, resource, signal, sys
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from recordings.xdf_writer import XdfWriter, XdfStreamInfo
w = XdfWriter(sys.argv[1])
sid = w.add_stream(XdfStreamInfo("s", "EEG", 4, 100.0, "float32"))
error = None
for k in range(200):
    w.write_samples(sid, np.full((100, 4), k, np.float32), k + np.arange(100) / 100.0)
    try:
        w.flush()
    except OSError as exc:
        error = exc.strerror
        break
w.close(write_footers=False)
print(json.dumps({"error": error, "chunks": k, "bytes": w.bytes_written}))
"""


def test_a_refused_write_leaves_only_whole_chunks(tmp_path):
    path = tmp_path / "full.xdf"
    out = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["error"] == "File too large"
    assert path.stat().st_size == report["bytes"] <= 200_000
    s = _load(path)["s"]
    n = len(s["time_stamps"])
    assert n == 100 * report["chunks"] > 0  # every chunk flushed before the failing one
    np.testing.assert_array_equal(
        np.asarray(s["time_series"])[::100, 0], np.arange(report["chunks"])
    )


def test_footers_give_the_first_and_last_stamp_and_the_count(tmp_path):
    """Readers (pyxdf, MNE, EEGLAB) take a stream's span from its StreamFooter without
    reading its samples; a footer that disagrees with the samples misplaces the stream
    against the others."""
    path = tmp_path / "footer.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(_info("s", "float32", 2, 100.0))
    ts = 500.0 + np.arange(30) / 100.0
    for a in range(0, 30, 10):  # three Samples chunks
        w.write_samples(sid, np.zeros((10, 2), np.float32), ts[a : a + 10])
    w.close()
    s = _load(path)["s"]
    footer = s["footer"]["info"]
    assert float(footer["first_timestamp"][0]) == s["time_stamps"][0] == ts[0]
    assert float(footer["last_timestamp"][0]) == s["time_stamps"][-1] == ts[-1]
    assert int(footer["sample_count"][0]) == 30
    assert w.span(sid) == (ts[0], ts[-1])
