"""The argparse types the commands share: a bad value is argparse's one-line error naming
what was expected, never a traceback nor a value that quietly does something else."""

from __future__ import annotations

import argparse
import re

import pytest

from app.arguments import fraction, positive_float, positive_int, seconds, threads


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (seconds, "0", 0.0),
        (seconds, "2.5", 2.5),
        (threads, "3", 3),
        (positive_int, "1", 1),
        (positive_float, "1e-4", 1e-4),
        (fraction, "0", 0.0),
        (fraction, "0.5", 0.5),
    ],
)
def test_good_values_are_taken(parse, text, value):
    assert parse(text) == value and type(parse(text)) is type(value)


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (seconds, "-1", "expected seconds >= 0"),
        (seconds, "inf", "expected seconds"),  # a session that would never end by itself
        (seconds, "nan", "expected seconds"),
        (seconds, "ten", "expected seconds"),
        (threads, "0", "expected 1 or more threads"),
        (threads, "2.5", "expected a whole number of threads"),
        (positive_int, "0", "expected a whole number >= 1"),
        (positive_int, "1.5", "expected a whole number >= 1"),
        (positive_float, "0", "expected a number > 0"),
        (positive_float, "nan", "expected a number > 0"),
        (fraction, "1", "expected a number in [0, 1)"),
        (fraction, "-0.1", "expected a number in [0, 1)"),
    ],
)
def test_bad_values_say_what_was_expected(parse, text, expected):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(expected)) as caught:
        parse(text)
    assert repr(text) in str(caught.value)
