"""Errors of the models package that callers without torch catch.

The command line reports a model that cannot be served as a message, not a
traceback, and must be able to name the exception without importing torch
(``affectlab --help`` stays fast).
"""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model name or file that cannot be served, phrased for the person who configured it."""
