"""SLO evaluation: the scenario's expressions against the raw records and journeys.

Request latency statistics are of every attempt unless a filter narrows them (``ok``: the
answers the journey expected): one that got no answer (status 0: timeout, connect, reset)
counts the time until it failed, as Locust's statistics and the live verdict count it.
Journey statistics are of the journeys (:mod:`authload.analysis.journeys`), revocation
statistics of the tokens a logout from all devices revoked. Shares (an ``error_rate``,
``journey_success``, ``sessions_lost``, ``dropped``) are judged exactly
(:meth:`~authload.slo_grammar.SloSpec.error_rate_met`), and like a latency each has no
value and fails when there is nothing to judge: a gate never passes on what was not
exercised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from authload.analysis.journeys import journey_scope, revocations, session_lost_mask
from authload.analysis.stats import PERCENTILES, percentile
from authload.results import DROPPED, OK_OUTCOMES
from authload.slo_grammar import (
    JOURNEYS,
    REVOCATION,
    ErrorFilter,
    LatencyFilter,
    SloSpec,
    parse_slo,
)


def latency_mask(records: pd.DataFrame, selected: LatencyFilter) -> pd.Series:
    """The attempts a latency filter selects (the rule of :meth:`LatencyFilter.selects`)."""
    mask = pd.Series(True, index=records.index)
    if selected.expected is not None:
        mask &= records["error"].isna() == selected.expected
    if selected.kinds is not None:
        mask &= records["error"].isin(selected.kinds)
    if selected.statuses is not None:
        mask &= records["status"].between(*selected.statuses)
    return mask


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


def evaluate_slos(
    slos: list[str],
    records: pd.DataFrame,
    duration_s: float,
    journeys: pd.DataFrame | None = None,
) -> list[SloResult]:
    """``journeys``: the run's journey records; without them journey and revocation SLOs
    have no data."""
    return [evaluate(slo, records, duration_s, journeys) for slo in slos]


def evaluate(
    slo: str, records: pd.DataFrame, duration_s: float, journeys: pd.DataFrame | None = None
) -> SloResult:
    spec = parse_slo(slo)
    if spec.family == JOURNEYS:
        return _journeys(slo, spec, journey_scope(journeys, spec.endpoint))
    if spec.family == REVOCATION:
        return _latency(slo, spec, revocations(journeys)["duration_ms"])
    scope = records if spec.endpoint == "*" else records[records["endpoint"] == spec.endpoint]
    if spec.stat == "error_rate":
        return _error_rate(slo, spec, scope)
    if spec.latency_filter is not None:
        scope = scope[latency_mask(scope, spec.latency_filter)]
    value = _measure(spec.stat, scope, duration_s)
    passed = not math.isnan(value) and spec.met(value)
    return SloResult(slo, value, spec.threshold, passed, len(scope))


def _journeys(slo: str, spec: SloSpec, scope: pd.DataFrame) -> SloResult:
    """A journey statistic: a share (success, sessions lost, dropped) or a duration."""
    if not spec.is_share:
        return _latency(slo, spec, scope["duration_ms"])
    n = len(scope)
    if not n:
        return SloResult(slo, math.nan, spec.threshold, False, 0)
    hits = int(_share_mask(spec.stat, scope).sum())
    return SloResult(slo, 100.0 * hits / n, spec.threshold, spec.error_rate_met(hits, n), n)


def _share_mask(stat: str, journeys: pd.DataFrame) -> pd.Series:
    """The journeys a share statistic counts."""
    if stat == "journey_success":
        return journeys["outcome"].isin(OK_OUTCOMES)
    if stat == "sessions_lost":
        return session_lost_mask(journeys)
    return journeys["outcome"] == DROPPED


def _latency(slo: str, spec: SloSpec, durations: pd.Series) -> SloResult:
    if spec.quantile is not None:
        value = percentile(durations, spec.quantile)
    else:
        value = float(durations.mean()) if len(durations) else math.nan
    passed = not math.isnan(value) and spec.met(value)
    return SloResult(slo, value, spec.threshold, passed, len(durations))


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
