"""Metric accumulation: the means of per-update metrics (losses, timings) over one train.csv interval, kept in
the checkpoint so that a resumed run writes the same train.csv rows."""

from __future__ import annotations

from typing import Any


class MetricAccumulator:
    """Means of the per-update metrics over one train.csv interval."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def clear(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load(self, state: dict[str, Any]) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])
