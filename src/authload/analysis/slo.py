"""SLO evaluation: the scenario's expressions against the raw records.

Latency statistics are of every attempt: one that got no answer (status 0: timeout, connect,
reset) counts the time until it failed, as Locust's statistics and the live verdict count it.
An ``error_rate`` is judged exactly (:meth:`~authload.slo_grammar.SloSpec.error_rate_met`),
and like a latency it has no value and fails when the SLO's endpoint had no attempt: a gate
never passes on an endpoint that was not exercised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from authload.analysis.stats import PERCENTILES, percentile
from authload.slo_grammar import ErrorFilter, SloSpec, parse_slo


def error_mask(records: pd.DataFrame, selected: ErrorFilter) -> pd.Series:
    """The records an ``error_rate`` filter counts as failed (the rule of
    :meth:`ErrorFilter.selects`: an error, of the filter's kinds and status range if given)."""
    mask = records["error"].notna()
    if selected.kinds is not None:
        mask &= records["error"].isin(selected.kinds)
    if selected.statuses is not None:
        mask &= records["status"].between(*selected.statuses)
    return mask


@dataclass(frozen=True)
class SloResult:
    slo: str
    value: float  # measured, in the SLO's unit; NaN: no data
    threshold: float
    passed: bool
    count: int  # records it was computed from


def evaluate_slos(slos: list[str], records: pd.DataFrame, duration_s: float) -> list[SloResult]:
    return [evaluate(slo, records, duration_s) for slo in slos]


def evaluate(slo: str, records: pd.DataFrame, duration_s: float) -> SloResult:
    spec = parse_slo(slo)
    scope = records if spec.endpoint == "*" else records[records["endpoint"] == spec.endpoint]
    if spec.stat == "error_rate":
        return _error_rate(slo, spec, scope)
    value = _measure(spec.stat, scope, duration_s)
    passed = not math.isnan(value) and spec.met(value)
    return SloResult(slo, value, spec.threshold, passed, len(scope))


def _error_rate(slo: str, spec: SloSpec, scope: pd.DataFrame) -> SloResult:
    attempts = len(scope)
    if not attempts:
        return SloResult(slo, math.nan, spec.threshold, False, 0)
    failed = int(error_mask(scope, spec.error_filter).sum())
    passed = spec.error_rate_met(failed, attempts)
    return SloResult(slo, 100.0 * failed / attempts, spec.threshold, passed, attempts)


def _measure(stat: str, scope: pd.DataFrame, duration_s: float) -> float:
    if stat == "rate":
        return len(scope) / duration_s if duration_s > 0 else float("nan")
    latency = scope["latency_ms"]  # every attempt, answered or not
    if stat == "max":
        return float(latency.max()) if len(latency) else float("nan")
    if stat == "mean":
        return float(latency.mean()) if len(latency) else float("nan")
    return percentile(latency, PERCENTILES[stat])
