"""The capacity search's strategies: which level to try next after the steps judged so far.

Two kinds, with one call shape (:meth:`Search.next`): :class:`OpenBisection` (open model,
arrivals/s: grow by a factor until a step fails, then bisect to the precision, never above
the maximum) and :class:`ClosedSweep` (closed model, users: grow by a factor up to the
maximum, stopping once throughput stops growing). :func:`search_for` picks one from the
options, the only place that asks which; the driver runs whichever it is given.

The decisions themselves are pure functions of ``(level, outcome)`` pairs, so that a search
can be replayed on paper: the open model's geometric step-up then bisection
(:func:`next_rate`), the closed model's steps of users (:func:`next_users`), and the bracket
the open search narrows (:func:`bracket`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from authload.capacity.options import CapacityOptions
from authload.scenario.model import Load, Scenario, Stage

if TYPE_CHECKING:
    from authload.capacity.judge import StepJudgement

__all__ = [
    "ClosedSweep",
    "Decision",
    "OpenBisection",
    "Search",
    "bracket",
    "next_rate",
    "next_users",
    "search_for",
    "search_kind",
    "step_scenario",
]

SATURATED_GAIN = 0.02  # closed steps: two steps in a row adding less than this: saturated


@dataclass(frozen=True)
class Decision:
    """The next level to try, or None to stop, and why: ``start``, ``step_up``, ``bisect``;
    stops: ``precision`` (bracket narrow enough), ``max_reached``, ``below_start`` (the first
    level already failed), ``saturated`` (closed: throughput stopped growing)."""

    level: float | None
    reason: str


def bracket(results: Sequence[tuple[float, bool]]) -> tuple[float | None, float | None]:
    """(highest passing level below the lowest failing one, lowest failing level), from
    ``(level, passed)`` pairs; a pass above a failure (noise) is not trusted."""
    fails = [level for level, passed in results if not passed]
    high = min(fails) if fails else None
    passes = [level for level, passed in results if passed and (high is None or level < high)]
    return (max(passes) if passes else None), high


def next_rate(
    results: Sequence[tuple[float, bool]],
    *,
    start: float,
    factor: float,
    precision: float,
    maximum: float | None = None,
) -> Decision:
    """Open-model search: from ``start``, multiply by ``factor`` while steps pass; once one
    fails, bisect (geometric mean) between the last passing and first failing rate until
    their ratio is within ``1 + precision``."""
    if not results:
        return Decision(start, "start")
    low, high = bracket(results)
    if low is None:
        return Decision(None, "below_start")
    if high is None:
        if maximum is not None and low >= maximum * (1 - 1e-9):
            return Decision(None, "max_reached")
        up = _round(low * factor)
        return Decision(up if maximum is None else min(up, maximum), "step_up")
    if high / low <= 1 + precision:
        return Decision(None, "precision")
    middle = _round(math.sqrt(low * high))
    if not low < middle < high:  # rounding ate the gap: the bracket is as narrow as it gets
        return Decision(None, "precision")
    return Decision(middle, "bisect")


def _round(rate: float) -> float:
    """Four significant digits: rates read cleanly and the schedule does not care."""
    return float(f"{rate:.4g}")


def next_users(
    results: Sequence[tuple[int, float]], *, start: int, factor: float, maximum: int
) -> Decision:
    """Closed-model steps for the scalability fit: ``start`` users, then times ``factor``
    (at least one more) up to ``maximum``; stop early once two steps in a row each added
    less than 2% throughput over the best before them (saturated, or past the peak)."""
    if not results:
        return Decision(start, "start")
    if len(results) >= 3:
        best = max(x for _, x in results[:-2])
        if all(x < best * (1 + SATURATED_GAIN) for _, x in results[-2:]):
            return Decision(None, "saturated")
    last = results[-1][0]
    if last >= maximum:
        return Decision(None, "max_reached")
    return Decision(min(maximum, max(last + 1, round(last * factor))), "step_up")


# --------------------------------------------------------------------------- the strategies


class Search(ABC):
    """One way of choosing a search's levels, and what a level is.

    The driver asks :meth:`next` before every step, with the steps judged so far, and runs
    the level it says; it never asks which kind it holds. A search keeps no state of its
    own: asked again with the same steps, it answers the same.
    """

    mode: ClassVar[str]  # capacity.json's "mode"
    unit: ClassVar[str]  # what a level counts
    description: ClassVar[str]  # the model and what its levels are, said at the start
    open_model: ClassVar[bool]  # a step's schedule starts at its first intended arrival
    fits_usl: ClassVar[bool]  # its steps carry a Universal Scalability Law fit

    @abstractmethod
    def next(self, judged: Sequence[tuple[float, StepJudgement]]) -> Decision:
        """The next level after the steps judged so far (``(level, judgement)``, as run),
        or None and why the search is over."""

    @classmethod
    @abstractmethod
    def of(cls, options: CapacityOptions) -> Search:
        """This kind of search with the options' settings (defaults filled in)."""

    @classmethod
    @abstractmethod
    def step_load(cls, load: Load, level: float, options: CapacityOptions) -> Load:
        """The load of one step at ``level``: a warm-up stage, then the measured stage."""

    @classmethod
    def step_scenario(cls, scenario: Scenario, level: float, options: CapacityOptions) -> Scenario:
        """The scenario of one step: its load at ``level``, no timed events."""
        load = cls.step_load(scenario.load, level, options)
        return scenario.model_copy(update={"load": load, "events": []})


@dataclass(frozen=True)
class OpenBisection(Search):
    """Open model, levels in journey arrivals/s (:func:`next_rate`)."""

    start: float
    factor: float
    precision: float
    maximum: float | None = None

    mode = "open"
    unit = "journeys/s"
    description = "open model, arrivals/s"
    open_model = True
    fits_usl = False

    def next(self, judged: Sequence[tuple[float, StepJudgement]]) -> Decision:
        return next_rate(
            [(level, j.passed) for level, j in judged],
            start=self.start,
            factor=self.factor,
            precision=self.precision,
            maximum=self.maximum,
        )

    @classmethod
    def of(cls, options: CapacityOptions) -> OpenBisection:
        assert options.start is not None and options.factor is not None
        return cls(options.start, options.factor, options.precision, options.maximum)

    @classmethod
    def step_load(cls, load: Load, level: float, options: CapacityOptions) -> Load:
        durations = (options.warmup_s, options.step_s - options.warmup_s)
        stages = [Stage(duration_s=d, rate=level) for d in durations if d > 0]
        return Load(model="open", stages=stages, max_in_flight=load.max_in_flight)


@dataclass(frozen=True)
class ClosedSweep(Search):
    """Closed model, levels in users, for the scalability fit (:func:`next_users`)."""

    start: int
    factor: float
    maximum: int

    mode = "closed"
    unit = "users"
    description = "closed model, users"
    open_model = False
    fits_usl = True

    def next(self, judged: Sequence[tuple[float, StepJudgement]]) -> Decision:
        return next_users(
            [(int(level), j.ok_rps) for level, j in judged],
            start=self.start,
            factor=self.factor,
            maximum=self.maximum,
        )

    @classmethod
    def of(cls, options: CapacityOptions) -> ClosedSweep:
        assert options.start is not None and options.factor is not None
        assert options.maximum is not None
        return cls(int(options.start), options.factor, int(options.maximum))

    @classmethod
    def step_load(cls, load: Load, level: float, options: CapacityOptions) -> Load:
        users = int(level)
        spawn = max(1.0, users / max(options.warmup_s / 2.0, 0.5))  # all up mid-warm-up
        durations = (options.warmup_s, options.step_s - options.warmup_s)
        stages = [Stage(duration_s=d, users=users, spawn_rate=spawn) for d in durations if d > 0]
        return Load(model="closed", stages=stages, max_in_flight=load.max_in_flight)


def search_kind(options: CapacityOptions) -> type[Search]:
    """The kind of search the options ask for: the one place that tells open from closed."""
    return ClosedSweep if options.closed else OpenBisection


def search_for(options: CapacityOptions) -> Search:
    """The search the options ask for (their defaults filled in:
    :func:`~authload.capacity.options.resolve_options`)."""
    return search_kind(options).of(options)


def step_scenario(scenario: Scenario, level: float, options: CapacityOptions) -> Scenario:
    """The scenario of one step of the search the options ask for: ``level`` arrivals/s
    (open) or users (closed), a warm-up stage then the measured stage, no timed events."""
    return search_kind(options).step_scenario(scenario, level, options)
