"""[[sources]] tables become drivers; a bad option names its place in the config."""

from __future__ import annotations

import pytest

from app.config import SOURCE_KINDS, ConfigError, parse_config
from app.sources import SOURCE_BUILDERS, build_sources


def sources(*tables: dict):
    return parse_config({"sources": list(tables)}).sources


def test_every_source_kind_has_a_builder():
    assert set(SOURCE_KINDS) == set(SOURCE_BUILDERS)


def test_brainflow_synthetic_board_from_config():
    (driver,) = build_sources(sources({"kind": "brainflow", "name": "board", "board": "synthetic"}))
    names = [s.name for s in driver.specs]
    assert any("eeg" in n for n in names)
    assert all(n.startswith("board") for n in names)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"kind": "brainflow", "board": "no-such-board"}, "board"),
        ({"kind": "brainflow", "colour": 3}, "colour"),
        ({"kind": "webcam", "fps": "fast"}, "fps"),
    ],
)
def test_driver_option_errors_name_the_key(table, key):
    with pytest.raises(ConfigError, match=rf"sources\[1\]\.{key}: "):
        build_sources(sources({"kind": "simulated"}, table))


@pytest.mark.parametrize("kind", ["simulated", "brainflow", "webcam"])
def test_ring_seconds_sizes_the_rings_of_every_source_kind(kind, tmp_path):
    """The README promises ``ring_seconds`` of any source (it was refused as unknown by
    these three kinds)."""
    from test_webcam_driver import _indexed_frames, _write_video

    table: dict = {"kind": kind, "ring_seconds": 120}
    if kind == "webcam":
        table["file"] = str(_write_video(tmp_path / "clip.mkv", _indexed_frames(10)))
    drivers = build_sources(sources(table))
    try:
        rings = [(d.specs, d.rings) for d in drivers]
        for specs, by_name in rings:
            for spec in specs:
                if spec.nominal_rate > 0 and spec.kind.name != "EVENTS":
                    assert by_name[spec.name].capacity >= 120 * spec.nominal_rate, spec.name
    finally:
        for d in drivers:
            d.stop()
    with pytest.raises(ConfigError, match=r"sources\[0\]\.ring_seconds: "):
        build_sources(sources({**table, "ring_seconds": 0}))


def test_a_simulated_source_with_nothing_to_simulate_names_the_key():
    with pytest.raises(ConfigError, match=r"sources\[0\]\.streams: nothing to simulate"):
        build_sources(sources({"kind": "simulated", "streams": [], "camera": False}))
