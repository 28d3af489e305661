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
