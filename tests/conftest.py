"""Shared test setup: headless Qt, bounded torch threads, a fresh temp folder per test."""

from __future__ import annotations

import os

# Qt must see this before it starts (pytest-qt, the dashboard tests).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Two cores on the reference machine: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")
