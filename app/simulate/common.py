"""What the simulated data sets share: a subject's participant seed and the progress callback."""

from __future__ import annotations

from collections.abc import Callable

from drivers.simulated.noise import rng_for

Progress = Callable[[int], None]


def subject_seed(seed: int, subject: int) -> int:
    """The participant seed of subject ``subject`` (1-based) of a data set made with ``seed``."""
    return int(rng_for(seed, "simulate.subject", subject).integers(0, 2**31 - 1))
