"""What ends a capacity search from outside the search: composable stop conditions.

The search's own answer ends it too (:class:`~authload.capacity.search.Decision` with no
level: the precision reached, ``--max`` reached, saturated...); these are the conditions it
cannot see: the time budget, a step that aborted or errored. Each is an object with one call
shape, in the style of tenacity's stop strategies (and :mod:`authload.load.retry`): called
with the search so far, it answers how the search ends, or None to go on; ``a | b`` stops
when either does, and says what the first of them said.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAILED",
    "SoFar",
    "Stop",
    "Stopped",
    "stop_any",
    "stop_on_failed_step",
    "stop_when_budget_spent",
]

FAILED = ("aborted", "error")  # a step's verdicts that end the search, its statuses then


@dataclass(frozen=True)
class SoFar:
    """The search so far, as a stop sees it before the next step."""

    steps: Sequence[Mapping[str, Any]]  # as capacity.json has them, in the order they ran
    elapsed_s: float  # since the search started


@dataclass(frozen=True)
class Stopped:
    """How a search ended: ``status`` (completed, aborted, error), ``reason`` (capacity.json's
    ``stop_reason``) and ``detail``."""

    status: str
    reason: str
    detail: str = ""


class Stop(ABC):
    """A stop condition: called before each step, it says whether the search ends there."""

    @abstractmethod
    def __call__(self, so_far: SoFar) -> Stopped | None: ...

    def __or__(self, other: Stop) -> Stop:
        return stop_any(self, other)


class stop_any(Stop):
    """Stop when any of the stops does; the first of them (in order) says how."""

    def __init__(self, *stops: Stop) -> None:
        self.stops = stops

    def __call__(self, so_far: SoFar) -> Stopped | None:
        for stop in self.stops:
            stopped = stop(so_far)
            if stopped is not None:
                return stopped
        return None


class stop_on_failed_step(Stop):
    """Stop once a step aborted (its abort rule, Ctrl-C) or its run errored: the search ends
    the way that step did, with its reasons."""

    def __call__(self, so_far: SoFar) -> Stopped | None:
        if not so_far.steps or so_far.steps[-1]["verdict"] not in FAILED:
            return None
        last = so_far.steps[-1]
        return Stopped(last["verdict"], last["verdict"], "; ".join(last["reasons"]))


class stop_when_budget_spent(Stop):
    """Stop when the next step would end past ``budget_s``: it is expected to take as long as
    the longest step so far. The first step always runs (``--budget`` is at least a step)."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s

    def __call__(self, so_far: SoFar) -> Stopped | None:
        if not so_far.steps:
            return None
        expected = max(s["wall_s"] for s in so_far.steps)
        if so_far.elapsed_s + expected <= self.budget_s:
            return None
        return Stopped(
            "completed", "budget", f"{so_far.elapsed_s:.0f} s of {self.budget_s:g} s used"
        )
