"""A bus sink for tests: keeps every prediction, to compare with logged or recorded ones."""

from __future__ import annotations


class Collect:
    def __init__(self) -> None:
        self.predictions: list = []

    def on_prediction(self, p) -> None:
        self.predictions.append(p)

    def on_health(self, health, now) -> None:
        pass

    def close(self) -> None:
        pass
