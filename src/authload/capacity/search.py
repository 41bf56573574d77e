"""The capacity search's decisions: the next level to try after the steps judged so far.

Pure functions of ``(level, outcome)`` pairs, so that a search can be replayed on paper: the
open model's geometric step-up then bisection (:func:`next_rate`), the closed model's steps
of users (:func:`next_users`), and the bracket the open search narrows (:func:`bracket`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Decision", "bracket", "next_rate", "next_users"]

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
