"""Load pickles of numpy arrays without letting the file run code.

A pickle is a program: loading one calls whatever callables it names, so a
downloaded ``s01.dat`` could run ``os.system``. DEAP's Python 2 pickles need
only a handful of globals to rebuild their arrays; this unpickler hands out
exactly those and refuses every other name before anything is called, so a
file that asks for more fails with ``UnsafePickleError`` and none of it runs.

Naming only those globals is not enough on its own: rebuilding a ``numpy.dtype``
applies whatever state the file gives it (flags, fields, offsets), so a file can
forge an "array of floats" whose elements are object pointers or fields far past
the end of its buffer, which crash (or worse) when read. Every array and scalar
loaded must therefore be of a plain dtype, exactly as numpy builds it itself.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy >= 2: the real home; numpy.core is a deprecated alias
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

#: The only globals a pickle may name: how numpy rebuilds arrays, dtypes and
#: scalars (under both module names numpy has used), and plain containers.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (module, name): obj
        for module in ("builtins", "__builtin__")
        for name, obj in (
            ("list", list),
            ("dict", dict),
            ("tuple", tuple),
            ("set", set),
            ("frozenset", frozenset),
        )
    },
}


#: dtype kinds whose items are plain bytes: booleans, numbers and fixed-width strings
PLAIN_KINDS = frozenset("biufcUS")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for more than plain numpy data; nothing from it was run or returned."""

    def __init__(self, path: str | Path, what: str):
        self.path = str(path)
        super().__init__(
            f"{self.path}: refused to load: the pickle {what}, but only numpy arrays of "
            "numbers or strings and plain containers are allowed; nothing from the file "
            "was run"
        )


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str | Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise UnsafePickleError(self._path, f"asks for the global '{module}.{name}'")
        return obj


def _forged(dt: np.dtype) -> bool:
    """Whether ``dt`` is anything but a plain dtype exactly as numpy builds it."""
    if dt.kind not in PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None:
        return True
    fresh = np.dtype(dt.str)
    return dt != fresh or dt.flags != fresh.flags or dt.itemsize != fresh.itemsize


def _check_plain(obj: Any, path: Path) -> None:
    """Refuse any array or scalar in ``obj`` whose dtype is not plain (see the module)."""
    if isinstance(obj, np.ndarray | np.generic):
        if _forged(obj.dtype):
            raise UnsafePickleError(path, f"holds an array of dtype {obj.dtype!r}")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _check_plain(key, path)
            _check_plain(value, path)
    elif isinstance(obj, list | tuple | set | frozenset):
        for item in obj:
            _check_plain(item, path)
    elif isinstance(obj, np.dtype) and _forged(obj):
        raise UnsafePickleError(path, f"holds the dtype {obj!r}")


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only numpy arrays, dtypes and scalars of numbers or
    strings, and plain containers.

    Python 2 byte strings are decoded as latin-1, as numpy's Python 2 arrays need.
    Raises ``UnsafePickleError`` for any other global, ``pickle.UnpicklingError``
    naming the file for a damaged one, ``FileNotFoundError`` for a missing one.
    """
    path = Path(path)
    with path.open("rb") as f:
        try:
            loaded = _ArrayUnpickler(f, path).load()
            _check_plain(loaded, path)
            return loaded
        except UnsafePickleError:
            raise
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
        ) as exc:
            raise pickle.UnpicklingError(f"{path}: not a readable pickle ({exc})") from exc
