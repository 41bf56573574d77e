"""Trend and change-point statistics of a series (used by :mod:`authload.analysis.drift`).

- :func:`linear_trend`: the Theil-Sen line with Sen's confidence interval, widened for
  autocorrelated points (Yue and Wang 2004).
- :func:`pettitt` and :func:`change_points`: Pettitt's rank test for one change point, and
  binary segmentation with it for several.

Rank-based throughout, so that one odd point (a GC pause, a noisy neighbour) can neither tilt
a trend nor make a step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

__all__ = ["MAX_POINTS", "TrendFit", "Values", "change_points", "linear_trend", "pettitt"]

MAX_POINTS = 1000  # Theil-Sen takes every pair: n (n - 1) / 2 slopes
MAX_STEPS = 5
MIN_SEGMENT = 3

Values = Sequence[float] | np.ndarray | pd.Series


@dataclass(frozen=True)
class TrendFit:
    """A line fitted through (x, y): ``slope`` per unit of x with its confidence interval,
    the fitted values at the first and last x, and the sample it came from."""

    slope: float
    ci_low: float
    ci_high: float
    start: float  # fitted at x0
    end: float  # fitted at x1
    x0: float
    x1: float
    n: int
    n_eff: float  # n shrunk for the residuals' lag-1 autocorrelation
    r1: float

    @property
    def change(self) -> float:
        """The fitted change from the first to the last x."""
        return self.end - self.start

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.ci_low > 0 or self.ci_high < 0


def linear_trend(x: Values, y: Values, confidence: float = 0.95) -> TrendFit | None:
    """Theil-Sen line through (x, y): the slope is the median of the slopes between every
    two points (one odd point cannot tilt it), the intercept the median of y - slope x.

    The interval is Sen's: the order statistics of the pairwise slopes at
    (N -/+ z sqrt(var S)) / 2, N the number of pairs and var S the variance of Kendall's S
    (ties in y corrected), inflated by n / n_eff for autocorrelated points (Yue and Wang
    2004), n_eff = n (1 - r1) / (1 + r1) with r1 the lag-1 autocorrelation of the
    residuals' ranks (no inflation when r1 <= 0). An end beyond the pairs is infinite.
    Points where x or y is not finite are left out; more than :data:`MAX_POINTS` are first
    reduced to the medians of that many consecutive groups. None with fewer than 3 points
    or a single x."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    order = np.argsort(xs, kind="stable")
    xs, ys = _thin(xs[order], ys[order], MAX_POINTS)
    n = xs.size
    if n < 3 or xs[0] == xs[-1]:
        return None
    i, j = np.triu_indices(n, k=1)
    dx = xs[j] - xs[i]
    apart = dx > 0
    slopes = np.sort((ys[j] - ys[i])[apart] / dx[apart])
    slope = float(np.median(slopes))
    intercept = float(np.median(ys - slope * xs))
    ranks = pd.Series(ys - (intercept + slope * xs)).rank().to_numpy(dtype=float)
    ranks = ranks - ranks.mean()
    spread = float((ranks**2).sum())
    r1 = float((ranks[:-1] * ranks[1:]).sum() / spread) if spread > 0 else 0.0
    n_eff = n * (1 - r1) / (1 + r1) if r1 > 0 else float(n)
    _, ties = np.unique(ys, return_counts=True)
    var_s = (n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())) / 18
    c = NormalDist().inv_cdf((1 + confidence) / 2) * math.sqrt(max(var_s, 0.0) * n / n_eff)
    pairs = slopes.size
    low, high = round((pairs - c) / 2) - 1, round((pairs + c) / 2)
    return TrendFit(
        slope=slope,
        ci_low=float(slopes[low]) if low >= 0 else -math.inf,
        ci_high=float(slopes[high]) if high < pairs else math.inf,
        start=intercept + slope * float(xs[0]),
        end=intercept + slope * float(xs[-1]),
        x0=float(xs[0]),
        x1=float(xs[-1]),
        n=int(n),
        n_eff=float(n_eff),
        r1=r1,
    )


def _thin(xs: np.ndarray, ys: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``most`` points: the medians of consecutive groups of (x, y)."""
    if xs.size <= most:
        return xs, ys
    groups = np.array_split(np.arange(xs.size), most)
    return (
        np.array([np.median(xs[g]) for g in groups]),
        np.array([np.median(ys[g]) for g in groups]),
    )


def pettitt(y: Values) -> tuple[int, float]:
    """Pettitt's change-point test: (k, p) where the most likely change is between
    ``y[k - 1]`` and ``y[k]``, and p its approximate p-value, 2 exp(-6 K^2 / (n^3 + n^2)),
    capped at 1 (K: the largest Mann-Whitney statistic over the splits, ties at mid-rank).
    Fewer than 2 values: (0, 1.0)."""
    values = np.asarray(y, dtype=float)
    n = values.size
    if n < 2:
        return 0, 1.0
    ranks = pd.Series(values).rank(method="average").to_numpy(dtype=float)
    k = np.arange(1, n)
    u = 2.0 * np.cumsum(ranks)[:-1] - k * (n + 1.0)
    best = int(np.argmax(np.abs(u)))
    big_k = float(abs(u[best]))
    p = min(1.0, 2.0 * math.exp(-6.0 * big_k**2 / (n**3 + n**2)))
    return best + 1, p


def change_points(
    y: Values,
    alpha: float = 0.01,
    min_segment: int = MIN_SEGMENT,
    max_steps: int = MAX_STEPS,
) -> list[tuple[int, float]]:
    """Change points of ``y`` by binary segmentation with :func:`pettitt`: split where the
    test is significant (p < ``alpha``) and both sides keep ``min_segment`` values, then look
    again in each side. Returns (index of the first value after the change, p), by index."""
    values = np.asarray(y, dtype=float)
    found: list[tuple[int, float]] = []
    pending = [(0, values.size)]
    while pending and len(found) < max_steps:
        lo, hi = pending.pop()
        if hi - lo < 2 * min_segment:
            continue
        k, p = pettitt(values[lo:hi])
        if p >= alpha or k < min_segment or hi - lo - k < min_segment:
            continue
        found.append((lo + k, p))
        pending += [(lo, lo + k), (lo + k, hi)]
    return sorted(found)
