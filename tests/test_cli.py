"""The `affectlab` command routes every command to its own parser."""

from __future__ import annotations

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
    ],
)
def test_a_model_that_cannot_be_served_stops_run_with_a_message(
    name, problem, tmp_path, monkeypatch, capsys
):
    """Before any source starts: exit code 1 and one line naming the model, no traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pickle.pt").write_bytes(b"\x80\x04\x95 not safetensors at all")
    config = tmp_path / "session.toml"
    config.write_text(f'[[sources]]\nkind = "simulated"\n[[models]]\nname = "{name}"\n')
    assert main(["run", "--config", str(config), "--headless", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("affectlab: ") and problem in err
    assert "Traceback" not in err
