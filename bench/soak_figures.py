"""soak_memory's figures: each side's RSS at the end of the warm-up, its growth rate fitted over
the second half of the run, and the verdict against the goals (issue 21)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LOCUST_GROWTH_GOAL = 1.0  # MB/h: the Locust process after the warm-up
LOCUST_BAND_GOAL = 0.05  # every sample after the warm-up within 5% of the warm-up's end
MOCK_GROWTH_GOAL = 1.0  # MB/h: the mock has reached its bound and stays flat


@dataclass
class Sample:
    t: float  # seconds since the Locust process was found
    locust_kb: int
    mock_kb: int | None
    locust_cpu_s: float


def at(samples: Sequence[Sample], t: float) -> Sample:
    return min(samples, key=lambda s: abs(s.t - t))


def slope_mb_per_h(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, kB) points, in MB per hour."""
    n = len(points)
    if n < 2:
        return math.nan
    mean_t = sum(t for t, _ in points) / n
    mean_kb = sum(kb for _, kb in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return math.nan
    cov = sum((t - mean_t) * (kb - mean_kb) for t, kb in points)
    return cov / var * 3600 / 1024


@dataclass(frozen=True)
class Side:
    """One process's RSS after the warm-up."""

    name: str
    reference_mb: float  # at the end of the warm-up
    final_mb: float
    max_mb: float
    min_mb: float
    growth_mb_h: float  # fitted over the second half of the run (after the warm-up)

    @property
    def band(self) -> tuple[float, float]:
        return self.min_mb / self.reference_mb - 1, self.max_mb / self.reference_mb - 1


def side(name: str, samples: Sequence[Sample], warmup_s: float, fit_from_s: float) -> Side:
    kb = (lambda s: s.locust_kb) if name == "Locust" else (lambda s: s.mock_kb or 0)
    after = [s for s in samples if s.t >= at(samples, warmup_s).t]
    fit = [(s.t, float(kb(s))) for s in samples if s.t >= fit_from_s]
    return Side(
        name,
        kb(after[0]) / 1024,
        kb(samples[-1]) / 1024,
        max(kb(s) for s in after) / 1024,
        min(kb(s) for s in after) / 1024,
        slope_mb_per_h(fit),
    )


def verdicts(locust: Side, mock: Side) -> dict[str, bool]:
    low, high = locust.band
    return {
        "locust_growth": locust.growth_mb_h <= LOCUST_GROWTH_GOAL,
        "locust_band": max(-low, high) <= LOCUST_BAND_GOAL,
        "mock_flat": mock.growth_mb_h <= MOCK_GROWTH_GOAL,
    }


def figures(samples: Sequence[Sample], duration: float, warmup_s: float) -> dict[str, Any]:
    load = [s for s in samples if s.t <= duration + 1.0]
    fit_from = max(warmup_s, duration / 2)
    locust, mock = (side(n, load, warmup_s, fit_from) for n in ("Locust", "mock"))
    final = load[-1]
    return {
        "warmup_s": warmup_s,
        "fit_from_s": fit_from,
        "final_t_s": final.t,
        "locust": vars(locust),
        "mock": vars(mock),
        "verdicts": verdicts(locust, mock),
        "locust_cpu_pct": 100.0 * final.locust_cpu_s / final.t if final.t else 0.0,
    }


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report_lines(f: dict[str, Any]) -> list[str]:
    w, fit = f["warmup_s"] / 60, f["fit_from_s"] / 60
    lo, mo, v = Side(**f["locust"]), Side(**f["mock"]), f["verdicts"]
    low, high = lo.band
    end = f["final_t_s"] / 60
    return [
        f"{'':28}{'Locust':>10}{'mock':>10}",
        f"{f'RSS at minute {w:g} (MB)':28}{lo.reference_mb:10.1f}{mo.reference_mb:10.1f}",
        f"{'RSS at the end (MB)':28}{lo.final_mb:10.1f}{mo.final_mb:10.1f}",
        f"{f'RSS max from minute {w:g}':28}{lo.max_mb:10.1f}{mo.max_mb:10.1f}",
        f"{f'RSS min from minute {w:g}':28}{lo.min_mb:10.1f}{mo.min_mb:10.1f}",
        f"{f'growth, minute {fit:g}-{end:.0f} (MB/h)':28}"
        f"{lo.growth_mb_h:+10.2f}{mo.growth_mb_h:+10.2f}",
        "",
        f"Locust growth {lo.growth_mb_h:+.2f} MB/h   goal <= {LOCUST_GROWTH_GOAL:g} MB/h"
        f"   {_pass(v['locust_growth'])}",
        f"Locust band {100 * low:+.1f}% .. {100 * high:+.1f}% of minute {w:g}"
        f"   goal within {100 * LOCUST_BAND_GOAL:g}%   {_pass(v['locust_band'])}",
        f"mock growth {mo.growth_mb_h:+.2f} MB/h     goal flat, <= {MOCK_GROWTH_GOAL:g} MB/h"
        f"   {_pass(v['mock_flat'])}",
    ] + (
        [f"(Locust cpu {f['locust_cpu_pct']:.0f}% of its core on average)"]
        if f["locust_cpu_pct"]
        else []
    )
