"""SLO evaluation: the scenario's expressions against the raw records."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import pandas as pd

from authload.analysis.stats import PERCENTILES, percentile
from authload.scenario import SLO_PATTERN

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_FILTERS = {
    "5xx": lambda df: df["status"].between(500, 599),
    "503": lambda df: df["status"] == 503,
    "4xx": lambda df: df["status"].between(400, 499),
    "429": lambda df: df["status"] == 429,
    "errors": lambda df: df["error"].notna(),
    "timeout": lambda df: df["error"] == "timeout",
    "contract": lambda df: df["error"] == "contract",
}


@dataclass(frozen=True)
class SloResult:
    slo: str
    value: float  # measured, in the SLO's unit
    threshold: float
    passed: bool
    count: int  # records it was computed from


def evaluate_slos(slos: list[str], records: pd.DataFrame, duration_s: float) -> list[SloResult]:
    return [evaluate(slo, records, duration_s) for slo in slos]


def evaluate(slo: str, records: pd.DataFrame, duration_s: float) -> SloResult:
    match = SLO_PATTERN.match(slo)
    if match is None:
        raise ValueError(f"not an SLO: {slo!r}")
    scope = (
        records if match["endpoint"] == "*" else records[records["endpoint"] == match["endpoint"]]
    )
    stat, unit = match["stat"], match["unit"]
    threshold = float(match["value"]) * (1000.0 if unit == "s" else 1.0)
    value = _measure(stat, match["filter"] or "errors", scope, duration_s)
    passed = not math.isnan(value) and _OPS[match["op"]](value, threshold)
    if stat == "error_rate" and not len(scope):
        passed = True  # no requests, no errors
    return SloResult(slo, value, threshold, passed, len(scope))


def _measure(stat: str, filter_name: str, scope: pd.DataFrame, duration_s: float) -> float:
    if stat == "error_rate":
        return float(_FILTERS[filter_name](scope).mean() * 100.0) if len(scope) else 0.0
    if stat == "rate":
        return len(scope) / duration_s if duration_s > 0 else float("nan")
    answered = scope.loc[scope["status"] > 0, "latency_ms"]
    if stat == "max":
        return float(answered.max()) if len(answered) else float("nan")
    if stat == "mean":
        return float(answered.mean()) if len(answered) else float("nan")
    return percentile(answered, PERCENTILES[stat])
