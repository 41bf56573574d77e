"""SLO evaluation: the scenario's expressions against the raw records."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from authload.analysis.stats import PERCENTILES, percentile
from authload.slo_grammar import ErrorFilter, parse_slo


def error_mask(records: pd.DataFrame, selected: ErrorFilter) -> pd.Series:
    """The records an ``error_rate`` filter counts as failed."""
    if selected.any_error:
        return records["error"].notna()
    if selected.kinds is not None:
        return records["error"].isin(selected.kinds)
    assert selected.statuses is not None
    return records["status"].between(*selected.statuses)


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
    spec = parse_slo(slo)
    scope = records if spec.endpoint == "*" else records[records["endpoint"] == spec.endpoint]
    value = _measure(spec.stat, spec.error_filter, scope, duration_s)
    passed = not math.isnan(value) and spec.met(value)
    if spec.stat == "error_rate" and not len(scope):
        passed = True  # no requests, no errors
    return SloResult(slo, value, spec.threshold, passed, len(scope))


def _measure(stat: str, selected: ErrorFilter, scope: pd.DataFrame, duration_s: float) -> float:
    if stat == "error_rate":
        return float(error_mask(scope, selected).mean() * 100.0) if len(scope) else 0.0
    if stat == "rate":
        return len(scope) / duration_s if duration_s > 0 else float("nan")
    answered = scope.loc[scope["status"] > 0, "latency_ms"]
    if stat == "max":
        return float(answered.max()) if len(answered) else float("nan")
    if stat == "mean":
        return float(answered.mean()) if len(answered) else float("nan")
    return percentile(answered, PERCENTILES[stat])
