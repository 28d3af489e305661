"""The README and the model cards stay true to the code: every `affectlab` command line
they show parses with that command's own parser, every session config they show loads,
and every model it names is shipped. A renamed option or model fails here, not in a
user's terminal.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import PASS_THROUGH_MODULES, build_parser
from app.config import parse_config
from app.train_demo import DEMO_TRAINERS
from models.registry import SHIPPED

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "models" / "cards").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
#: how a documented line starts the command: the venv's script, the bare name, ./dev
PREFIXES = re.compile(r"^(?:\w+=\S+\s+)*(?:\.venv/bin/affectlab|affectlab|\./dev(?= demo\b))\s+")
#: argparse's usage synopsis ("[--speed 1|N|max]"), not a command to run
SYNOPSIS = re.compile(r"\[-")


@dataclass(frozen=True)
class DocumentedCommand:
    source: str  # file:line, for the failure message
    argv: list[str]

    def __str__(self) -> str:
        return f"{self.source}: affectlab {shlex.join(self.argv)}"


def fenced_blocks(path: Path) -> Iterator[tuple[str, str, int]]:
    """(language, text, first line number) of every fenced block."""
    text = path.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        yield match.group(1), match.group(2), text.count("\n", 0, match.start(2)) + 1


def documented_commands() -> list[DocumentedCommand]:
    found = []
    for path in DOCS:
        for _, block, first in fenced_blocks(path):
            lines = block.splitlines()
            i = 0
            while i < len(lines):
                number, line = first + i, lines[i]
                while line.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    line = line.rstrip()[:-1] + " " + lines[i].strip()
                i += 1
                line = line.split(" #", 1)[0].strip()
                start = PREFIXES.match(line)
                if start is None or SYNOPSIS.search(line):
                    continue
                argv = shlex.split(line[start.end() :])
                found.append(DocumentedCommand(f"{path.relative_to(ROOT)}:{number}", argv))
    return found


def parser_for(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser that `affectlab` hands these arguments to, and the arguments it gets."""
    command, rest = argv[0], argv[1:]
    if command not in PASS_THROUGH_MODULES:
        return build_parser(), argv
    if command == "train-demo":
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--model", default="concat-fusion")
        model = pre.parse_known_args(rest)[0].model
        return importlib.import_module(DEMO_TRAINERS[model]).build_parser(), rest
    return importlib.import_module(PASS_THROUGH_MODULES[command]).build_parser(), rest


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_kind() -> None:
    """The scan itself works: it finds the README's quick start and the trainers."""
    shown = {c.argv[0] for c in COMMANDS}
    assert {
        "demo",
        "run",
        "replay",
        "info",
        "train",
        "evaluate",
        "simulate",
        "train-demo",
        "score-demo",
        "serve",
    } <= shown
    assert any(c.argv == ["demo", "--headless", "--duration", "60"] for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_documented_command_parses(command: DocumentedCommand, capsys) -> None:
    parser, argv = parser_for(command.argv)
    wants_help = "--help" in argv
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        # --help exits 0 after printing; anything else is an option the code does not know
        assert wants_help and exc.code == 0, f"{command}\n{capsys.readouterr().err}"


def documented_configs() -> list:
    return [
        pytest.param(where := f"{path.relative_to(ROOT)}:{line}", block, id=where)
        for path in DOCS
        for language, block, line in fenced_blocks(path)
        if language == "toml"
    ]


@pytest.mark.parametrize(("where", "text"), documented_configs())
def test_documented_session_config_loads(where: str, text: str) -> None:
    config = parse_config(tomllib.loads(text))
    for model in config.models:
        assert model.name in SHIPPED, f"{where}: model {model.name!r} is not shipped"


def test_readme_run_options_table_matches_the_cli() -> None:
    """Every option in the README's table for `demo` and `run` exists, and every option
    those commands take is in the table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("Options of `demo` and `run`:", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"`(--[\w-]+)", table))
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    taken = {
        option
        for name in ("demo", "run")
        for action in sub.choices[name]._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--config")
    }
    assert documented == taken
