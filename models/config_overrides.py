"""``--set key=value`` items applied to a model's config dict, checked before any data is read.

A typo or a value of the wrong kind would otherwise train the default, or fail with a
traceback after minutes of loading: each is refused in one line that names the field
and what it takes. The ranges of the values are the config class's to check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from models.datasets import UsageError


def _kind(value: Any) -> str:
    """What a JSON value is, in the words of a ``--set`` error."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return "an object"


def _fits(value: Any, default: Any) -> bool:
    """Whether ``value`` may stand where the config's ``default`` does: a bool for a bool,
    an int for an int, a number for a float, a string for a string, a list (of what the
    default list holds) for a list, an object for an object; None takes anything."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            return False
        kinds = {_kind(v) for v in default}
        if len(kinds) == 1 and default[0] is not None:  # a homogeneous list: each item fits
            return all(_fits(v, default[0]) for v in value)
        return True
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _wanted(default: Any) -> str:
    """What a field takes, for the error: "a number" for a float field (an int will do)."""
    if isinstance(default, float) and not isinstance(default, bool):
        return "a number"
    if isinstance(default, list | tuple) and default and default[0] is not None:
        if isinstance(default[0], bool):
            return "a list of true or false"
        return f"a list of {_wanted(default[0]).removeprefix('a ').removeprefix('an ')}s"
    return _kind(default)


def _checked(model: str, key: str, value: Any, default: Any) -> Any:
    """``value`` if it is of the kind of the field's ``default`` (an int made a float for
    a float field), else a ``UsageError`` naming the field and what it takes."""
    if not _fits(value, default):
        raise UsageError(
            f"{model}: --set {key}={json.dumps(value)}: {key} takes {_wanted(default)} "
            f"(default {json.dumps(default)}), not {_kind(value)}"
        )
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    return value


def apply_overrides(
    d: dict[str, Any],
    overrides: dict[str, Any],
    model: str,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A config dict with ``--set`` overrides applied (a copy).

    Fields of concat fusion's nested ``fusion`` config may be named bare, so one
    ``--set d_model=32`` reaches it. An unknown field is a ``UsageError`` that
    lists the fields there are, since a typo would otherwise train the default;
    so is a value of another kind than the field's default (a string or a float
    for an integer, a list for a number), and a change to a field of ``fixed``
    (field -> why it cannot change), which the data or the caller decides. The
    ranges of the values are the config's own to check (``configure``).
    """
    d = dict(d)
    fixed = fixed or {}
    for key, value in overrides.items():
        if key in d:
            target = d
        elif isinstance(d.get("fusion"), dict) and key in d["fusion"]:
            d["fusion"] = target = dict(d["fusion"])
        else:
            nested = d["fusion"] if isinstance(d.get("fusion"), dict) else {}
            keys = sorted(k for k in d if not (k == "fusion" and nested)) + sorted(nested)
            raise UsageError(f"{model}: no config field {key!r}; fields: {', '.join(keys)}")
        if key in fixed and value != target[key]:
            raise UsageError(f"{model}: --set {key}: {fixed[key]}")
        target[key] = _checked(model, key, value, target[key])
    return d
