"""Load shapes from a scenario's stages: users over time (closed model), arrival rate over
time (open model)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from locust import LoadTestShape

from authload.scenario.model import Load


def stage_at(load: Load, elapsed: float) -> int | None:
    """Index of the stage running at ``elapsed`` seconds, None when the load is over."""
    end = 0.0
    for index, stage in enumerate(load.stages):
        end += stage.duration_s
        if elapsed < end:
            return index
    return None


def arrival_times(load: Load, start: float, processes: int = 1, index: int = 0) -> Iterator[float]:
    """When process ``index`` of ``processes`` has arrivals due. Each stage's arrivals
    j = 0 .. n-1 (n = ceil(duration x rate), none at or past the stage's end) are due at the
    stage's start + j / rate, and process ``index`` takes those with j % processes == index:
    interleaved, the processes make exactly the stage's arrivals, never two at one instant."""
    offset = 0.0
    for stage in load.stages:
        rate = stage.rate or 0.0
        count = math.ceil(stage.duration_s * rate - 1e-9) if rate > 0 else 0
        for j in range(index, count, processes):
            yield start + offset + j / rate
        offset += stage.duration_s


class StagesShape(LoadTestShape):
    """Closed model: the stage's users at its spawn rate, or the users a person set in the
    web UI (``manual``: from then on, until the last stage ends). Open model: one arrival
    dispatcher per process (the shape keeps them alive until the last stage ends)."""

    abstract = True
    load: Load
    user_classes_for_open: list[Any]
    processes: int = 1
    manual: tuple[int, float] | None = None  # (users, spawn rate) under manual control

    def tick(self) -> tuple[int, float] | tuple[int, float, list[Any]] | None:
        index = stage_at(self.load, self.get_run_time())
        if index is None:
            return None
        if self.load.model == "open":
            return self.processes, float(self.processes), self.user_classes_for_open
        if self.manual is not None:
            return self.manual
        stage = self.load.stages[index]
        return int(stage.users or 0), stage.spawn_rate
