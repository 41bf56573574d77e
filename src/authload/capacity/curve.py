"""The load curve of a capacity search: the knee (where latency starts to climb faster than
throughput) and the first SLO to break. Numbers in, numbers out; no printing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from authload.capacity.judge import StepJudgement

__all__ = ["Breach", "Knee", "find_knee", "first_breach"]


@dataclass(frozen=True)
class Knee:
    """Where latency starts to climb faster than throughput: the last level before it."""

    level: float
    throughput_rps: float
    latency_ms: float
    next_level: float  # the level at which latency had climbed
    elasticity: float  # d ln latency / d ln throughput over that segment (inf: no gain)


def find_knee(
    level: Sequence[float],
    throughput: Sequence[float],
    latency: Sequence[float],
    min_rise: float = 0.1,
) -> Knee | None:
    """The knee of a load curve: between consecutive levels (sorted), the first segment in
    which latency rose by at least ``min_rise`` (10%) and by more, proportionally, than
    throughput did (elasticity d ln L / d ln X above 1, or throughput no higher). The knee is
    the level at the segment's start; None when latency never climbs like that."""
    points = sorted(
        (float(lv), float(x), float(y))
        for lv, x, y in zip(level, throughput, latency, strict=True)
        if x > 0 and y > 0  # NaN compares False: left out too
    )
    for (level0, x0, y0), (level1, x1, y1) in pairwise(points):
        rise = y1 / y0
        if rise < 1 + min_rise:
            continue
        gain = x1 / x0
        elasticity = math.inf if gain <= 1 else math.log(rise) / math.log(gain)
        if elasticity > 1:
            return Knee(level0, x0, y0, level1, elasticity)
    return None


@dataclass(frozen=True)
class Breach:
    """The first SLO to break: at the lowest failing level, the SLO furthest past its
    threshold, and on which endpoint (None when the step failed for another reason)."""

    level: float
    slo: str | None
    endpoint: str | None
    value: float | None
    threshold: float | None
    reasons: list[str]


def first_breach(steps: Sequence[tuple[float, StepJudgement]]) -> Breach | None:
    failed = sorted((level, j) for level, j in steps if not j.passed)
    if not failed:
        return None
    level, judgement = failed[0]
    broken = [o for o in judgement.slos if not o.passed]
    if not broken:
        return Breach(level, None, None, None, None, judgement.reasons)
    worst = max(broken, key=lambda o: o.severity)
    return Breach(level, worst.slo, worst.endpoint, worst.value, worst.threshold, judgement.reasons)
