"""The `affectlab` command routes every command to its own parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import PASS_THROUGH_HELP, build_parser, main


@pytest.mark.parametrize("command", sorted(PASS_THROUGH_HELP))
def test_pass_through_commands_get_their_own_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"affectlab {command}" in capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "run", *PASS_THROUGH_HELP):
        assert command in out


def test_unknown_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fly"])
    assert exc.value.code == 2


@pytest.mark.parametrize("model", ["concat-fusion", "hi-moe", "mco-e-net-lite"])
@pytest.mark.parametrize(
    "args, problem",
    [
        (["--seeds", "1"], "need --seeds >= 2"),
        (["--test-seeds", "9", "--first-seed", "4"], "must stay below --first-seed"),
        (["--minutes", "0.1"], "at least 10 s"),
    ],
)
def test_train_demo_says_what_is_wrong_with_its_splits(model, args, problem, capsys):
    assert main(["train-demo", "--model", model, *args]) == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("hi-moe-9000", "unknown model 'hi-moe-9000'; shipped models:"),
        ("nowhere.safetensors", "model file nowhere.safetensors does not exist"),
        ("pickle.pt", "is not a readable safetensors file"),
        ("folder.safetensors", "is a folder, not a .safetensors file"),
        ("hi-moe-sim", "device 'cuda' was asked for but torch sees no CUDA device"),
    ],
)
def test_a_model_that_cannot_be_served_stops_run_with_a_message(
    name, problem, tmp_path, monkeypatch, capsys
):
    """Before any source starts: exit code 1 and one line naming the model, no traceback."""
    import torch

    if "cuda" in problem and torch.cuda.is_available():
        pytest.skip("this machine has the GPU asked for")
    device = 'device = "cuda"\n' if "cuda" in problem else ""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pickle.pt").write_bytes(b"\x80\x04\x95 not safetensors at all")
    (tmp_path / "folder.safetensors").mkdir()
    config = tmp_path / "session.toml"
    config.write_text(f'[[sources]]\nkind = "simulated"\n[[models]]\nname = "{name}"\n{device}')
    assert main(["run", "--config", str(config), "--headless", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("affectlab: ") and problem in err
    assert "Traceback" not in err


#: a session that starts quickly: physiology only, one model
SESSION = """\
[session]
duration = 0.5
[[sources]]
kind = "simulated"
camera = false
events = false
[[models]]
name = "hi-moe-sim"
"""


@pytest.fixture
def no_session(monkeypatch):
    """Fails the test if a Session is built: a refused config must stop before anything
    (sources, models, the log, LSL outlets) is created or started."""
    import app.session

    def built(*args, **kwargs):
        raise AssertionError("a Session was built before the mistake was refused")

    monkeypatch.setattr(app.session, "Session", built)


def run_with_sink(tmp_path, sink: str, *options: str) -> int:
    config = tmp_path / "session.toml"
    config.write_text(f"{SESSION}[[sinks]]\n{sink}\n")
    return main(["run", "--config", str(config), "--headless", *options])


@pytest.mark.parametrize(
    ("sink", "problem"),
    [
        ('kind = "predictions"\npath = "preds.txt"', "sinks[0].path: expected a file ending in"),
        ('kind = "console"\nperiod = "fast"', "sinks[0].period: expected seconds"),
        ('kind = "lsl"\nname = 7', "sinks[0].name: expected an LSL stream name"),
        ('kind = "console"\nperod = 1.0', "sinks[0].perod: unknown option of console sinks"),
        ('kind = "lsl"\nnmae = "x"', "sinks[0].nmae: unknown option of lsl sinks"),
    ],
)
def test_a_wrong_sink_option_stops_run_naming_the_key(
    sink, problem, tmp_path, monkeypatch, capsys, no_session
):
    """Exit code 2 and one line naming the key, as for sources; no traceback."""
    monkeypatch.chdir(tmp_path)
    assert run_with_sink(tmp_path, sink) == 2
    err = capsys.readouterr().err
    assert err.startswith("affectlab: config error: ") and problem in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [tmp_path / "session.toml"]


def test_an_existing_predictions_file_in_the_config_stops_run(
    tmp_path, monkeypatch, capsys, no_session
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "preds.csv").write_text("earlier session\n")
    assert run_with_sink(tmp_path, 'kind = "predictions"\npath = "preds.csv"') == 2
    err = capsys.readouterr().err
    assert err.startswith("affectlab: config error: ") and err.count("\n") == 1
    assert "session.toml: sinks[0].path: predictions file 'preds.csv' already exists" in err
    assert (tmp_path / "preds.csv").read_text() == "earlier session\n"


@pytest.mark.parametrize("command", [["demo"], ["run", "--config", "session.toml"]])
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("existing.csv", "--predictions: predictions file 'existing.csv' already exists"),
        ("out.txt", "--predictions: expected a file ending in .csv, .jsonl, .ndjson, .parquet"),
    ],
)
def test_a_predictions_file_that_cannot_be_written_stops_the_session(
    command, name, problem, tmp_path, monkeypatch, capsys, no_session
):
    """--predictions does not go through the config parser; it is checked all the same, before
    anything is built, and also when the config names another log."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing.csv").write_text("earlier session\n")
    config = SESSION + '[[sinks]]\nkind = "predictions"\npath = "fresh.csv"\n'
    (tmp_path / "session.toml").write_text(config)
    before = sorted(tmp_path.iterdir())
    assert main([*command, "--headless", "--predictions", name, "--no-lsl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("affectlab: config error: ") and problem in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == before
    assert (tmp_path / "existing.csv").read_text() == "earlier session\n"


def test_a_new_predictions_file_passes_the_checks(tmp_path, monkeypatch, no_session):
    """The checks refuse only what is wrong: a fresh log in the config or on the command line
    reaches the session (here the stand-in that fails when built)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="Session was built"):
        run_with_sink(tmp_path, 'kind = "predictions"\npath = "runs/preds.parquet"')
    with pytest.raises(AssertionError, match="Session was built"):
        main(["demo", "--headless", "--predictions", "out.jsonl"])


@pytest.mark.parametrize("command", [["demo", "--headless"], ["replay", "session-folder"]])
@pytest.mark.parametrize("value", ["-5", "nan", "soon"])
def test_a_duration_must_be_seconds(command, value, capsys):
    """A negative duration ended the session at once with exit code 0 and said nothing."""
    with pytest.raises(SystemExit) as exc:
        main([*command, "--duration", value])
    assert exc.value.code == 2
    assert "--duration: expected seconds" in capsys.readouterr().err


def test_a_console_sink_period_shorter_than_the_sessions_is_kept(tmp_path, monkeypatch, capsys):
    """session.health_period is 5 s; a console sink asking for a line every 0.5 s gets
    one (health used to be published every 5 s only, so the sink could only thin it)."""
    monkeypatch.chdir(tmp_path)
    assert (
        run_with_sink(tmp_path, 'kind = "console"\nperiod = 0.5', "--duration", "3.5", "--no-lsl")
        == 0
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[health]")]
    assert len(lines) >= 4, lines


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--headless", "--duration", "1"], "not with --headless"),
        ([], "give --duration S"),
        (["--duration", "1", "--screenshot", "/proc/no/shot.png"], "cannot write in '/proc'"),
    ],
)
def test_a_screenshot_that_would_never_be_taken_is_refused(
    options, problem, tmp_path, capsys, no_session
):
    """It was silently not taken (--headless) or the session never ended (no duration)."""
    config = tmp_path / "session.toml"
    config.write_text(SESSION.replace("duration = 0.5", "duration = 0"))
    shot = str(tmp_path / "shot.png")
    assert main(["run", "--config", str(config), "--screenshot", shot, *options]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1


def test_a_reader_that_goes_away_is_not_a_traceback(tmp_path):
    """``affectlab info SESSION | head`` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    import numpy as np

    from recordings.xdf_writer import XdfStreamInfo, XdfWriter

    path = tmp_path / "s.xdf"
    w = XdfWriter(path)
    sid = w.add_stream(XdfStreamInfo("skin", "GSR", 1, 32.0, "float32"))
    w.write_samples(sid, np.ones((64, 1), np.float32), np.arange(64) / 32.0)
    w.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "info", str(path)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read()
    assert proc.wait(60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize(
    "command",
    [
        ["train", "hi-moe", "--data", "deap:{tmp}", "--out", "{tmp}/run"],
        ["train-demo", "--model", "hi-moe", "--cache-dir", "{tmp}/cache",
         "--out", "{tmp}/w.safetensors", "--run-dir", "{tmp}/run"],
    ],
)  # fmt: skip
def test_a_wrong_set_value_is_one_line_not_a_traceback(command, tmp_path, capsys):
    """The reviewer's ``--set d_model=abc``: exit code 2, the field named, no data read."""
    args = [a.format(tmp=tmp_path) for a in command] + ["--set", "d_model=abc"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert 'hi-moe: --set d_model="abc": d_model takes an integer (default 64)' in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_a_stats_file_that_cannot_be_written_is_refused_before_the_session(
    tmp_path, capsys, no_session
):
    """It was written when the session ended: a traceback after all the work."""
    config = tmp_path / "session.toml"
    config.write_text(SESSION)
    code = main(["run", "--config", str(config), "--headless", "--stats", "/proc/no/s.json"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--stats: cannot write in '/proc'" in err and err.count("\n") == 1
