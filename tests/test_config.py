"""Session configs: the shipped ones load, and every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_config, parse_config, shipped_config

MINIMAL = {"sources": [{"kind": "simulated"}]}


def test_shipped_demo_config_loads() -> None:
    cfg = load_config(shipped_config("demo"))
    assert cfg.name == "demo"
    assert [s.kind for s in cfg.sources] == ["simulated"]
    assert cfg.models and cfg.models[0].name
    assert {s.kind for s in cfg.sinks} >= {"lsl", "console"}


def test_minimal_config_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.duration == 0.0
    assert cfg.sources[0].name == "simulated0"
    assert cfg.models == [] and cfg.sinks == []


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "sources: no [[sources]]"),
        ({"sources": [{"kind": "lsll"}]}, "sources[0].kind: unknown source kind 'lsll'"),
        ({"sources": [{"name": "x"}]}, "sources[0].kind: expected"),
        ({**MINIMAL, "session": {"duration": "ten"}}, "session.duration: expected seconds"),
        ({**MINIMAL, "session": {"duration": -1}}, "session.duration: must be >= 0"),
        ({**MINIMAL, "session": {"durration": 3}}, "session: unknown key 'durration'"),
        ({**MINIMAL, "models": [{"name": "m", "device": "tpu"}]}, "models[0].device"),
        ({**MINIMAL, "models": [{"device": "cpu"}]}, "models[0].name"),
        ({**MINIMAL, "models": [{"name": "m", "bindings": {"eeg": 3}}]}, "models[0].bindings.eeg"),
        ({**MINIMAL, "sinks": [{"kind": "predictions"}]}, "sinks[0].path"),
        ({**MINIMAL, "sinks": [{"kind": "printer"}]}, "sinks[0].kind: unknown sink kind"),
        (
            {"sources": [{"kind": "simulated", "name": "a"}, {"kind": "simulated", "name": "a"}]},
            "sources[1].name: 'a' is used",
        ),
        ({**MINIMAL, "extra": 1}, "top level: unknown key 'extra'"),
    ],
)
def test_config_errors_name_the_key(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert fragment in str(err.value)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[session\nname = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing\.toml: no such config file"):
        load_config(tmp_path / "missing.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[[sources]]\nkind = "simulated"\n[session]\nduration = "x"\n')
    with pytest.raises(ConfigError, match=r"wrong\.toml: session\.duration"):
        load_config(wrong)


def test_unknown_shipped_config_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="available: .*demo"):
        shipped_config("nope")
