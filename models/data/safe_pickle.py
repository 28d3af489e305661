"""Load pickles of numpy arrays without letting the file run code.

A pickle is a program: loading one calls whatever callables it names, so a
downloaded ``s01.dat`` could run ``os.system``. DEAP's Python 2 pickles need
only a handful of globals to rebuild their arrays; this unpickler hands out
exactly those and refuses every other name before anything is called, so a
file that asks for more fails with ``UnsafePickleError`` and none of it runs.
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


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named a global outside ``ALLOWED_GLOBALS``; nothing from it was run."""

    def __init__(self, path: str | Path, module: str, name: str):
        self.path = str(path)
        self.module = module
        self.name = name
        super().__init__(
            f"{self.path}: refused to load: the pickle asks for the global "
            f"'{module}.{name}', but only numpy arrays and plain containers are "
            "allowed; nothing from the file was run"
        )


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str | Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise UnsafePickleError(self._path, module, name)
        return obj


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only numpy arrays, dtypes, scalars and plain containers.

    Python 2 byte strings are decoded as latin-1, as numpy's Python 2 arrays need.
    Raises ``UnsafePickleError`` for any other global, ``pickle.UnpicklingError``
    naming the file for a damaged one, ``FileNotFoundError`` for a missing one.
    """
    path = Path(path)
    with path.open("rb") as f:
        try:
            return _ArrayUnpickler(f, path).load()
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
