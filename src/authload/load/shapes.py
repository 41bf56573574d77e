"""Load shapes from a scenario's stages: users over time (closed model), arrival rate over
time (open model)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from locust import LoadTestShape

from authload.scenario import Load


def stage_at(load: Load, elapsed: float) -> int | None:
    """Index of the stage running at ``elapsed`` seconds, None when the load is over."""
    end = 0.0
    for index, stage in enumerate(load.stages):
        end += stage.duration_s
        if elapsed < end:
            return index
    return None


def arrival_times(load: Load, start: float, processes: int = 1) -> Iterator[float]:
    """When this process's arrivals are due: each stage's rate (shared by ``processes``) as
    evenly spaced arrivals from the stage's start, none at or past its end."""
    offset = 0.0
    for stage in load.stages:
        rate = (stage.rate or 0.0) / processes
        count = math.ceil(stage.duration_s * rate - 1e-9) if rate > 0 else 0
        for k in range(count):
            yield start + offset + k / rate
        offset += stage.duration_s


class StagesShape(LoadTestShape):
    """Closed model: the stage's users at its spawn rate. Open model: one arrival dispatcher
    per process (the shape keeps them alive until the last stage ends)."""

    abstract = True
    load: Load
    user_classes_for_open: list[Any]
    processes: int = 1

    def tick(self) -> tuple[int, float] | tuple[int, float, list[Any]] | None:
        index = stage_at(self.load, self.get_run_time())
        if index is None:
            return None
        if self.load.model == "open":
            return self.processes, float(self.processes), self.user_classes_for_open
        stage = self.load.stages[index]
        return int(stage.users or 0), stage.spawn_rate
