"""The XDF reader against pyxdf on the same files, and on damaged files.

Files come from affectlab's own writer (recordings.xdf_writer) and, for chunks
the writer never produces (deduced stamps, clock offsets that are not 0), from
chunks assembled here by the XDF spec.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import pyxdf

from recordings.xdf_reader import XdfError, load_xdf
from recordings.xdf_writer import (
    TAG_CLOCK_OFFSET,
    TAG_SAMPLES,
    XdfStreamInfo,
    XdfWriter,
    chunk,
    varlen,
)


def _chans(labels, unit="uV", kind="EEG"):
    return [{"label": label, "unit": unit, "type": kind} for label in labels]


def write_file(path: Path, n_chunks: int = 20, offsets: bool = False) -> dict[str, np.ndarray]:
    """EEG float32, an int16 stream, a double stream and string markers; returns truth."""
    w = XdfWriter(path)
    eeg = w.add_stream(XdfStreamInfo("eeg", "EEG", 4, 128.0, "float32", channels=_chans("ABCD")))
    i16 = w.add_stream(XdfStreamInfo("count", "EDA", 1, 32.0, "int16", channels=_chans("c")))
    dbl = w.add_stream(XdfStreamInfo("temp", "TEMP", 2, 4.0, "double64", channels=_chans("xy")))
    mk = w.add_stream(XdfStreamInfo("mk", "Markers", 1, 0.0, "string"))
    rng = np.random.default_rng(0)
    truth: dict[str, list] = {"eeg": [], "eeg_t": [], "count": [], "temp": [], "mk": []}
    for k in range(n_chunks):
        t = 100.0 + k * 0.25 + np.arange(32) / 128.0
        v = rng.standard_normal((32, 4)).astype(np.float32)
        w.write_samples(eeg, v, t)
        truth["eeg"].append(v)
        truth["eeg_t"].append(t)
        c = np.arange(k * 8, k * 8 + 8, dtype=np.int16).reshape(-1, 1)
        w.write_samples(i16, c, 100.0 + k * 0.25 + np.arange(8) / 32.0)
        truth["count"].append(c)
        w.write_samples(dbl, np.array([[k, -k]], np.float64), np.array([100.0 + k * 0.25]))
        if k % 5 == 0:
            w.write_samples(mk, [[f"marker {k} é"]], np.array([100.0 + k * 0.25]))
            truth["mk"].append([f"marker {k} é"])
        if offsets:
            w._add(
                chunk(TAG_CLOCK_OFFSET, struct.pack("<Idd", eeg, 100.0 + k * 0.25, 0.5 + 0.001 * k))
            )
        w.boundary()
        w.flush(fsync=False)
    w.close()
    return {
        "eeg": np.concatenate(truth["eeg"]),
        "eeg_t": np.concatenate(truth["eeg_t"]),
        "count": np.concatenate(truth["count"]),
        "mk": truth["mk"],
    }


def test_reads_what_pyxdf_reads(tmp_path):
    path = tmp_path / "a.xdf"
    truth = write_file(path)
    f = load_xdf(path)
    assert f.problems == [] and not f.truncated
    ref = {s["info"]["name"][0]: s for s in pyxdf.load_xdf(str(path), dejitter_timestamps=False)[0]}
    assert [s.name for s in f.streams] == ["eeg", "count", "temp", "mk"]
    for s in f.streams:
        r = ref[s.name]
        np.testing.assert_array_equal(s.time_stamps, r["time_stamps"])
        if s.is_string:
            assert s.time_series == r["time_series"]
        else:
            np.testing.assert_array_equal(s.time_series, r["time_series"])
            assert s.time_series.dtype == r["time_series"].dtype
    eeg = f.stream("eeg")
    np.testing.assert_array_equal(eeg.time_series, truth["eeg"])
    np.testing.assert_array_equal(eeg.time_stamps, truth["eeg_t"])
    assert eeg.labels == list("ABCD") and eeg.units == ["uV"] * 4 and eeg.type == "EEG"
    assert eeg.nominal_srate == 128.0 and eeg.footer is not None
    assert f.stream("mk").time_series == truth["mk"]


def test_clock_offsets_are_applied_like_pyxdf(tmp_path):
    path = tmp_path / "offsets.xdf"
    truth = write_file(path, offsets=True)
    f = load_xdf(path)
    ref = {s["info"]["name"][0]: s for s in pyxdf.load_xdf(str(path), dejitter_timestamps=False)[0]}
    eeg = f.stream("eeg")
    # a linear drift of 1 ms per 0.25 s: pyxdf's robust fit and our least squares agree
    np.testing.assert_allclose(eeg.time_stamps, ref["eeg"]["time_stamps"], atol=1e-6)
    assert abs(eeg.time_stamps[0] - truth["eeg_t"][0] - 0.5) < 1e-6
    raw = load_xdf(path, synchronize=False).stream("eeg")
    np.testing.assert_array_equal(raw.time_stamps, truth["eeg_t"])


def test_deduced_timestamps(tmp_path):
    """Samples with a 0-byte stamp continue from the previous one at 1 / nominal rate."""
    path = tmp_path / "dedup.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(XdfStreamInfo("x", "EEG", 2, 10.0, "float32"))
    body = struct.pack("<I", sid) + varlen(3)
    body += b"\x08" + struct.pack("<d", 5.0) + np.array([1, 2], "<f4").tobytes()
    body += b"\x00" + np.array([3, 4], "<f4").tobytes()
    body += b"\x00" + np.array([5, 6], "<f4").tobytes()
    w._add(chunk(TAG_SAMPLES, body))
    w.close()
    s = load_xdf(path).stream("x")
    np.testing.assert_allclose(s.time_stamps, [5.0, 5.1, 5.2])
    np.testing.assert_array_equal(s.time_series, [[1, 2], [3, 4], [5, 6]])
    ref = pyxdf.load_xdf(str(path), dejitter_timestamps=False)[0][0]
    np.testing.assert_allclose(s.time_stamps, ref["time_stamps"])


def test_truncated_file_reads_up_to_the_break(tmp_path):
    path = tmp_path / "cut.xdf"
    truth = write_file(path)
    data = path.read_bytes()
    cut = int(len(data) * 0.6)
    path.write_bytes(data[:cut])
    f = load_xdf(path)
    assert len(f.problems) == 1
    msg = f.problems[0]
    assert str(path) in msg and "truncated" in msg and "byte" in msg
    eeg = f.stream("eeg")
    assert 0 < eeg.count < len(truth["eeg"])
    np.testing.assert_array_equal(eeg.time_series, truth["eeg"][: eeg.count])
    assert f.truncated and f.bytes_read <= cut


def test_corrupt_chunk_is_skipped_to_the_next_boundary(tmp_path):
    path = tmp_path / "bad.xdf"
    truth = write_file(path)
    data = bytearray(path.read_bytes())
    # find the 5th Samples chunk of the EEG stream and break its tag
    first = load_xdf(path)
    assert first.problems == []
    pos = 0
    seen = 0
    while True:
        pos = data.index(b"\x03\x00\x01\x00\x00\x00", pos + 1)  # tag 3, stream id 1
        seen += 1
        if seen == 5:
            break
    data[pos] = 0x63  # tag 99
    path.write_bytes(bytes(data))
    f = load_xdf(path)
    assert len(f.problems) == 1
    assert "unknown tag 99" in f.problems[0] and str(path) in f.problems[0]
    assert "boundary" in f.problems[0]
    # the byte named is where the boundary chunk starts: its length-width byte (1), length (18)
    at = int(f.problems[0].rsplit("at byte ", 1)[1].split()[0].rstrip(".;,"))
    assert data[at : at + 4] == bytes([1, 18, 5, 0])  # tag 5: boundary
    eeg = f.stream("eeg")
    # the damaged chunk and what followed it up to the boundary are gone; the rest is there
    assert len(truth["eeg"]) - 32 <= eeg.count < len(truth["eeg"])
    assert eeg.time_stamps[-1] == truth["eeg_t"][-1]


def test_not_xdf_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.xdf"
    path.write_text("hello")
    with pytest.raises(XdfError, match="not an XDF file"):
        load_xdf(path)
    with pytest.raises(XdfError, match="no such file"):
        load_xdf(tmp_path / "missing.xdf")


# --------------------------------------------------------------------------- values left in the file
def test_lazy_values_slice_like_the_loaded_array(tmp_path):
    """``lazy=True``: numeric values are read from the file by slice, equal to the loaded
    array for every kind of slice (chunk edges, across many chunks, empty, negative, strided)."""
    path = tmp_path / "a.xdf"
    write_file(path, n_chunks=30)
    whole = load_xdf(path)
    lazy = load_xdf(path, lazy=True)
    rng = np.random.default_rng(1)
    for s, z in zip(whole.streams, lazy.streams, strict=True):
        np.testing.assert_array_equal(z.time_stamps, s.time_stamps)
        if s.is_string:
            assert z.time_series == s.time_series  # strings stay decoded in memory
            continue
        v = z.time_series
        assert type(v).__name__ == "XdfValues" and v.shape == s.time_series.shape
        assert v.dtype == s.time_series.dtype and len(v) == s.count
        n = s.count
        edges = [0, 1, 31, 32, 33, 64, n - 1, n]
        cuts = [(a, b) for a in edges for b in edges] + [
            tuple(sorted(rng.integers(0, n + 1, 2))) for _ in range(100)
        ]
        for a, b in cuts:
            np.testing.assert_array_equal(v[a:b], s.time_series[a:b], err_msg=f"{s.name} {a}:{b}")
        keys = [slice(None), slice(-5, None), slice(3, 90, 7), slice(None, None, -1), slice(9, 2)]
        keys += [
            0,
            -1,
            n // 2,
            (slice(4, 60), 0),
            (slice(None), slice(0, 1)),
            (7, 0),
            [3, 1, n - 1],
        ]
        for key in keys:
            np.testing.assert_array_equal(v[key], s.time_series[key], err_msg=f"{s.name} {key}")
        np.testing.assert_array_equal(np.asarray(v), s.time_series)
        as64 = v.as_dtype(np.float64)
        assert as64[2:40].dtype == np.float64
        np.testing.assert_array_equal(as64[2:40], s.time_series[2:40].astype(np.float64))
        with pytest.raises(IndexError):
            v[n]


def test_lazy_reads_deduced_stamps_and_damaged_files(tmp_path):
    """Deduced (0-byte) stamps, as LabRecorder writes them, give samples of two sizes: each
    one's place is listed and the values equal the eager reading and pyxdf's; a stream of
    two float32 channels (no wider than a listed place) is decoded into memory instead.
    A truncated file's complete chunks read lazily as eagerly."""
    path = tmp_path / "dedup.xdf"
    w = XdfWriter(path)
    wide = w.add_stream(XdfStreamInfo("wide", "EEG", 3, 10.0, "float32"))
    narrow = w.add_stream(XdfStreamInfo("narrow", "EEG", 2, 10.0, "float32"))
    rng = np.random.default_rng(2)
    truth = {"wide": [], "narrow": []}
    for k in range(12):
        for sid, name, c in ((wide, "wide", 3), (narrow, "narrow", 2)):
            n = int(rng.integers(1, 9))
            v = rng.standard_normal((n, c)).astype("<f4")
            truth[name].append(v)
            if k % 3 == 2:  # every sample stamped: a chunk of one record size among the others
                w.write_samples(sid, v, 5.0 + k + np.arange(n) / 10.0)
                continue
            body = struct.pack("<I", sid) + varlen(n)
            for i in range(n):
                stamped = i == 0 or rng.random() < 0.3
                body += (b"\x08" + struct.pack("<d", 5.0 + k + i / 10.0)) if stamped else b"\x00"
                body += v[i].tobytes()
            w._add(chunk(TAG_SAMPLES, body))
    w.close()
    eager, lazy = load_xdf(path), load_xdf(path, lazy=True)
    ref = {s["info"]["name"][0]: s for s in pyxdf.load_xdf(str(path), dejitter_timestamps=False)[0]}
    for name in ("wide", "narrow"):
        e, z = eager.stream(name), lazy.stream(name)
        np.testing.assert_array_equal(e.time_series, np.concatenate(truth[name]))
        np.testing.assert_array_equal(e.time_series, ref[name]["time_series"])
        np.testing.assert_allclose(e.time_stamps, ref[name]["time_stamps"])
        np.testing.assert_array_equal(z.time_stamps, e.time_stamps)
    v, n = lazy.stream("wide").time_series, lazy.stream("wide").count
    assert type(v).__name__ == "XdfValues"
    for a in range(n + 1):
        for b in range(a, n + 1):
            np.testing.assert_array_equal(v[a:b], eager.stream("wide").time_series[a:b])
    assert isinstance(lazy.stream("narrow").time_series, np.ndarray)

    cut = tmp_path / "cut.xdf"
    truth = write_file(cut)
    data = cut.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    eeg = load_xdf(cut, lazy=True).stream("eeg")
    assert 0 < eeg.count < len(truth["eeg"])
    np.testing.assert_array_equal(np.asarray(eeg.time_series), truth["eeg"][: eeg.count])


def test_lazy_values_refuse_a_file_changed_after_opening(tmp_path):
    path = tmp_path / "a.xdf"
    write_file(path)
    v = load_xdf(path, lazy=True).stream("eeg").time_series
    assert v[0:10].shape == (10, 4)
    with open(path, "ab") as fh:
        fh.write(b"\0" * 7)
    with pytest.raises(XdfError, match="changed since it was opened"):
        v[0:10]


def test_letting_go_of_scanned_pages_keeps_every_value(tmp_path, monkeypatch):
    """The reader drops file pages behind its scans (every 64 MB; here every 8 kB, so every
    pass does it many times): what it read before, held as views of the mapping, and what
    it reads after stay exact."""
    from recordings import xdf_reader

    monkeypatch.setattr(xdf_reader._ResidentPages, "STEP", 8192)
    path = tmp_path / "a.xdf"
    truth = write_file(path, n_chunks=200)
    for lazy in (False, True):
        f = load_xdf(path, lazy=lazy)
        eeg = f.stream("eeg")
        np.testing.assert_array_equal(eeg.time_stamps, truth["eeg_t"])
        np.testing.assert_array_equal(np.asarray(eeg.time_series), truth["eeg"])
        np.testing.assert_array_equal(np.asarray(f.stream("count").time_series), truth["count"])
        assert f.stream("mk").time_series == truth["mk"]
