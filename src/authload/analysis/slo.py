"""SLO evaluation: the scenario's expressions against the raw records and journeys.

Request latency statistics are of every attempt unless a filter narrows them (``ok``: the
answers the journey expected): one that got no answer (status 0: timeout, connect, reset)
counts the time until it failed, as Locust's statistics and the live verdict count it.
Journey statistics are of the journeys (:mod:`authload.analysis.journeys`), revocation
statistics of the tokens a logout from all devices revoked. Shares (an ``error_rate``,
``journey_success``, ``sessions_lost``, ``dropped``) are judged exactly
(:meth:`~authload.scenario.slo_grammar.SloSpec.error_rate_met`), and like a latency each has no
value and fails when there is nothing to judge: a gate never passes on what was not
exercised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from authload.analysis.journeys import DROPPED_ARRIVAL, LOST, OK, scope_where
from authload.analysis.query import (
    JourneysLike,
    Percentiles,
    RecordsLike,
    Table,
    as_journeys,
    as_records,
    sql_strings,
)
from authload.rundir.records import REVOCATION
from authload.scenario.slo_grammar import (
    JOURNEYS,
    PERCENTILES,
    REQUESTS,
    ErrorFilter,
    LatencyFilter,
    SloSpec,
    parse_slo,
)
from authload.scenario.slo_grammar import (
    REVOCATION as REVOCATION_FAMILY,
)


def latency_where(selected: LatencyFilter) -> str:
    """The SQL condition of the attempts a latency filter selects (the rule of
    :meth:`LatencyFilter.selects`)."""
    parts = ["TRUE"]
    if selected.expected is not None:
        parts.append("error IS NULL" if selected.expected else "error IS NOT NULL")
    return " AND ".join(parts + _kinds_and_statuses(selected.kinds, selected.statuses))


def error_where(selected: ErrorFilter) -> str:
    """The SQL condition of the records an ``error_rate`` filter counts as failed (the rule
    of :meth:`ErrorFilter.selects`: an error, of the filter's kinds and status range if
    given)."""
    parts = ["error IS NOT NULL", *_kinds_and_statuses(selected.kinds, selected.statuses)]
    return " AND ".join(parts)


def _kinds_and_statuses(
    kinds: frozenset[str] | None, statuses: tuple[int, int] | None
) -> list[str]:
    parts = [] if kinds is None else [f"error IN ({sql_strings(kinds)})"]
    if statuses is not None:
        parts.append(f"status BETWEEN {int(statuses[0])} AND {int(statuses[1])}")
    return parts


def error_mask(records: pd.DataFrame, selected: ErrorFilter) -> pd.Series:
    """Per record of a frame, whether ``selected`` counts it as failed (by
    :func:`error_where`, so exactly as the SLOs count)."""
    hits = as_records(records).sql(f"SELECT ({error_where(selected)}) AS hit FROM {{records}}")
    return pd.Series(hits["hit"].fillna(False).to_numpy(dtype=bool), index=records.index)


@dataclass(frozen=True)
class SloResult:
    slo: str
    value: float  # measured, in the SLO's unit; NaN: no data
    threshold: float
    passed: bool
    count: int  # records it was computed from


def evaluate_slos(
    slos: list[str],
    records: RecordsLike,
    duration_s: float,
    journeys: JourneysLike = None,
    endpoints: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[SloResult]:
    """``journeys``: the run's journey records; without them journey and revocation SLOs
    have no data. ``endpoints``: the run's
    :func:`~authload.analysis.stats.endpoint_summary`, if made: an SLO on a percentile it
    holds is read from it (the same nearest rank over the same attempts, so the SLO and the
    endpoint table cannot differ) instead of being computed again."""
    table = as_records(records)
    kept = as_journeys(journeys)
    return [evaluate(slo, table, duration_s, kept, endpoints) for slo in slos]


def evaluate(
    slo: str,
    records: RecordsLike,
    duration_s: float,
    journeys: JourneysLike = None,
    endpoints: Mapping[str, Mapping[str, Any]] | None = None,
) -> SloResult:
    spec = parse_slo(slo)
    known = _summarized(spec, endpoints or {})
    if known is not None:
        value, n = known
        return SloResult(slo, value, spec.threshold, _met(spec, value), n)
    if spec.family == JOURNEYS:
        return _journeys(slo, spec, as_journeys(journeys))
    if spec.family == REVOCATION_FAMILY:
        where = f"kind = '{REVOCATION}'"
        return _latency(slo, spec, as_journeys(journeys), "duration_ms", where, [])
    where, params = ("TRUE", []) if spec.endpoint == "*" else ("endpoint = ?", [spec.endpoint])
    table = as_records(records)
    if spec.stat == "error_rate":
        return _error_rate(slo, spec, table, where, params)
    if spec.latency_filter is not None:
        where = f"{where} AND {latency_where(spec.latency_filter)}"
    if spec.stat == "rate":
        n = _count(table, where, params)
        value = n / duration_s if duration_s > 0 else math.nan
        return SloResult(slo, value, spec.threshold, _met(spec, value), n)
    return _latency(slo, spec, table, "latency_ms", where, params)  # every attempt


def _summarized(
    spec: SloSpec, endpoints: Mapping[str, Mapping[str, Any]]
) -> tuple[float, int] | None:
    """An SLO's value and count as the endpoint summary has them: a percentile of every
    attempt, or of the expected answers (``ok``), of an endpoint or of all (``*``)."""
    if spec.family != REQUESTS or spec.filter not in (None, "ok"):
        return None
    figures = endpoints.get(spec.endpoint)
    name = next((n for n, q in PERCENTILES.items() if q == spec.quantile), None)
    if figures is None or name is None:
        return None
    held = figures if spec.filter is None else figures["ok"]
    if name not in held:
        return None
    value = held[name]
    return (math.nan if value is None else float(value)), int(held["count"])


def _journeys(slo: str, spec: SloSpec, journeys: Table) -> SloResult:
    """A journey statistic: a share (success, sessions lost, dropped) or a duration."""
    where, params = scope_where(spec.endpoint)
    if not spec.is_share:
        return _latency(slo, spec, journeys, "duration_ms", where, params)
    row = journeys.row(
        f"SELECT count(*) AS n, count(*) FILTER (WHERE {_SHARES[spec.stat]}) AS hits "
        f"FROM {{journeys}} WHERE {where}",
        params,
    )
    n, hits = int(row["n"]), int(row["hits"])
    if not n:
        return SloResult(slo, math.nan, spec.threshold, False, 0)
    return SloResult(slo, 100.0 * hits / n, spec.threshold, spec.error_rate_met(hits, n), n)


#: The journeys a share statistic counts.
_SHARES = {"journey_success": OK, "sessions_lost": LOST, "dropped": DROPPED_ARRIVAL}


def _latency(
    slo: str, spec: SloSpec, table: Table, column: str, where: str, params: list[Any]
) -> SloResult:
    """A percentile (``max`` is the 100th), or the mean, of ``column`` over the rows
    ``where`` selects."""
    row = table.row(
        f"SELECT count(*) AS n, avg({column}) AS mean FROM {{{table.name}}} WHERE {where}", params
    )
    if spec.quantile is None:
        found = row["mean"]
    else:
        found = table.percentiles(Percentiles(column, (spec.quantile,)), where, params)[0]
    value = math.nan if found is None else float(found)
    return SloResult(slo, value, spec.threshold, _met(spec, value), int(row["n"]))


def _error_rate(slo: str, spec: SloSpec, table: Table, where: str, params: list[Any]) -> SloResult:
    row = table.row(
        f"SELECT count(*) AS n, count(*) FILTER (WHERE {error_where(spec.error_filter)}) "
        f"AS failed FROM {{records}} WHERE {where}",
        params,
    )
    attempts, failed = int(row["n"]), int(row["failed"])
    if not attempts:
        return SloResult(slo, math.nan, spec.threshold, False, 0)
    passed = spec.error_rate_met(failed, attempts)
    return SloResult(slo, 100.0 * failed / attempts, spec.threshold, passed, attempts)


def _count(table: Table, where: str, params: list[Any]) -> int:
    return int(table.row(f"SELECT count(*) AS n FROM {{records}} WHERE {where}", params)["n"])


def _met(spec: SloSpec, value: float) -> bool:
    return not math.isnan(value) and spec.met(value)
