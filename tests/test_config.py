"""Session configs: the shipped ones load, and every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, check_new_log, load_config, parse_config, shipped_config

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
        (
            {**MINIMAL, "session": {"duration": -1}},
            "session.duration: must be a number of seconds >= 0",
        ),
        ({**MINIMAL, "session": {"duration": float("nan")}}, "session.duration: must be"),
        ({**MINIMAL, "session": {"duration": float("inf")}}, "session.duration: must be"),
        ({**MINIMAL, "session": {"health_period": float("nan")}}, "session.health_period: must be"),
        ({**MINIMAL, "session": {"health_period": float("inf")}}, "session.health_period: must be"),
        ({**MINIMAL, "session": {"durration": 3}}, "session: unknown key 'durration'"),
        ({**MINIMAL, "models": [{"name": "m", "device": "tpu"}]}, "models[0].device"),
        ({**MINIMAL, "models": [{"device": "cpu"}]}, "models[0].name"),
        ({**MINIMAL, "models": [{"name": "m", "bindings": {"eeg": 3}}]}, "models[0].bindings.eeg"),
        ({**MINIMAL, "sinks": [{"kind": "predictions"}]}, "sinks[0].path"),
        ({**MINIMAL, "sinks": [{"kind": "printer"}]}, "sinks[0].kind: unknown sink kind"),
        (
            {**MINIMAL, "sinks": [{"kind": "predictions", "path": "preds.txt"}]},
            "sinks[0].path: expected a file ending in .csv, .jsonl, .ndjson, .parquet, got 'preds.txt'",
        ),
        ({**MINIMAL, "sinks": [{"kind": "predictions", "path": 3}]}, "sinks[0].path: expected"),
        (
            {**MINIMAL, "sinks": [{"kind": "predictions", "path": "a.csv", "format": "csv"}]},
            "sinks[0].format: unknown option of predictions sinks; allowed: kind, path",
        ),
        (
            {**MINIMAL, "sinks": [{"kind": "console", "period": "fast"}]},
            "sinks[0].period: expected seconds",
        ),
        ({**MINIMAL, "sinks": [{"kind": "console", "period": 0}]}, "sinks[0].period: expected"),
        ({**MINIMAL, "sinks": [{"kind": "console", "period": True}]}, "sinks[0].period: expected"),
        (
            {**MINIMAL, "sinks": [{"kind": "console", "period": float("inf")}]},
            "sinks[0].period: expected",
        ),
        (
            {**MINIMAL, "sinks": [{"kind": "lsl"}, {"kind": "console", "perod": 1.0}]},
            "sinks[1].perod: unknown option of console sinks; allowed: kind, period",
        ),
        ({**MINIMAL, "sinks": [{"kind": "lsl", "name": 7}]}, "sinks[0].name: expected an LSL"),
        ({**MINIMAL, "sinks": [{"kind": "lsl", "name": " "}]}, "sinks[0].name: expected a non"),
        (
            {**MINIMAL, "sinks": [{"kind": "lsl", "nmae": "x"}]},
            "sinks[0].nmae: unknown option of lsl sinks; allowed: kind, name",
        ),
        (
            {
                **MINIMAL,
                "sinks": [
                    {"kind": "predictions", "path": "runs/a.csv"},
                    {"kind": "predictions", "path": "runs/../runs/a.csv"},
                ],
            },
            "sinks[1].path: 'runs/../runs/a.csv' is the file of another predictions sink",
        ),
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


def test_sink_options_are_kept_checked() -> None:
    cfg = parse_config(
        {
            **MINIMAL,
            "sinks": [
                {"kind": "predictions", "path": "runs/p.JSONL"},
                {"kind": "lsl", "name": "lab-emotion"},
                {"kind": "console", "period": 2},
                {"kind": "lsl"},
            ],
        }
    )
    assert [(s.kind, s.options) for s in cfg.sinks] == [
        ("predictions", {"path": "runs/p.JSONL"}),
        ("lsl", {"name": "lab-emotion"}),
        ("console", {"period": 2.0}),
        ("lsl", {}),
    ]


def test_an_existing_predictions_file_is_refused_naming_the_key(tmp_path: Path) -> None:
    check_new_log(tmp_path / "new.csv", "sinks[0].path")
    (tmp_path / "old.csv").write_text("model\n")
    with pytest.raises(ConfigError, match=r"^sinks\[0\]\.path: predictions file .*already exists"):
        check_new_log(tmp_path / "old.csv", "sinks[0].path")


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


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "b.toml"
    bad.write_bytes(b"\xff\xfebad")
    with pytest.raises(ConfigError, match=r"b.toml: not a text file in UTF-8 \(byte 0\)"):
        load_config(bad)


def test_a_predictions_file_that_cannot_be_written_is_refused_before_the_session() -> None:
    """A Parquet log opens its file at the first flush: in a folder that refuses it every
    prediction was lost and the session still said exit 0."""
    with pytest.raises(
        ConfigError, match=r"--predictions: predictions file .*: cannot write in '/proc'"
    ):
        check_new_log("/proc/affectlab-no/p.parquet", "--predictions")


def test_unknown_shipped_config_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="available: .*demo"):
        shipped_config("nope")
