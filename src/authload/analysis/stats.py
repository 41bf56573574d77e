"""Per-endpoint statistics from the raw records: exact percentiles, never averaged.

Latency figures are of every attempt: one that got no answer (status 0: timeout, connect,
reset) counts the time until it failed, as Locust, the live verdict and the Prometheus
histogram count it; leaving it out would hide the worst attempts of a run.

The figures are DuckDB aggregates over the records (:mod:`authload.analysis.query`): a few
passes over the file, one row per endpoint, whatever the run's length."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from authload.analysis.query import ALL, Percentiles, Records, RecordsLike, as_records
from authload.scenario.slo_grammar import PERCENTILES

__all__ = ["PERCENTILES", "endpoint_summary", "load_records", "percentile"]

_OK_STATS = ("p50", "p95", "p99")
_EXPECTED = "error IS NULL"  # the answers the journey expected


def load_records(run_dir: Path) -> pd.DataFrame:
    """Every record of a run as one pandas frame, for notebooks on runs that fit in memory
    (about 330 bytes a record); the analysis itself queries :class:`Records` instead."""
    return Records.of_run(run_dir).frame()


def percentile(values: pd.Series | np.ndarray, q: float) -> float:
    """Nearest-rank percentile (the smallest value with at least q of the values at or below
    it), as HdrHistogram and most load tools report; NaN for no values."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return float("nan")
    return float(np.quantile(array, q, method="inverted_cdf"))


def endpoint_summary(records: RecordsLike, duration_s: float) -> dict[str, dict[str, Any]]:
    """Per endpoint and over all (``*``): count, rate, percentiles, max and mean (ms, every
    attempt; None without attempts), error rate, errors by kind, statuses, retries, and
    ``ok``: count and p50, p95, p99 of the expected answers alone. Plain Python values, as
    JSON holds them (a missing figure is None, never NaN)."""
    table = as_records(records)
    figures = table.per_group("endpoint", _FIGURES, percentiles={"q": _ALL_ATTEMPTS})
    expected = table.per_group("endpoint", "count(*) AS count", _EXPECTED, percentiles=_OK)
    ok_rows = {str(row["endpoint"]): row for _, row in expected.iterrows()}
    errors = _tallies(table, "error", "error IS NOT NULL")
    statuses = _tallies(table, "status", "TRUE")
    summary = {}
    for _, row in figures.iterrows():
        name = str(row["endpoint"])
        tallies = (errors.get(name, {}), statuses.get(name, {}))
        summary[name] = _row(row, ok_rows.get(name), duration_s, *tallies)
    return {name: {k: _none_if_nan(v) for k, v in row.items()} for name, row in summary.items()}


_FIGURES = (
    "count(*) AS count, max(latency_ms) AS max, avg(latency_ms) AS mean, "
    "count(error) AS failed, count(*) FILTER (WHERE attempt > 1) AS retries"
)
_ALL_ATTEMPTS = Percentiles("latency_ms", tuple(PERCENTILES.values()))
_OK = {"q": Percentiles("latency_ms", tuple(PERCENTILES[s] for s in _OK_STATS))}


def _tallies(table: Records, column: str, where: str) -> dict[str, dict[str, int]]:
    """Per endpoint (and ``*``): how many records have each value of ``column``, most
    frequent first (for statuses: in status order)."""
    frame = table.sql(
        f"""SELECT coalesce(endpoint, '{ALL}') AS endpoint, {column} AS value, count(*) AS n
        FROM {{records}} WHERE {where} GROUP BY GROUPING SETS ((endpoint, {column}), ({column}))"""
    )
    if column == "status":
        frame = frame.sort_values("value")
    else:
        frame = frame.sort_values(["n", "value"], ascending=[False, True])
    result: dict[str, dict[str, int]] = {}
    for name, value, n in zip(frame["endpoint"], frame["value"], frame["n"], strict=True):
        result.setdefault(str(name), {})[str(value)] = int(n)
    return result


def _row(
    row: pd.Series,
    ok: pd.Series | None,
    duration_s: float,
    errors: dict[str, int],
    statuses: dict[str, int],
) -> dict[str, Any]:
    count = int(row["count"])
    ok_q = [math.nan] * len(_OK_STATS) if ok is None else list(ok["q"])
    return {
        "count": count,
        "rate_per_s": count / duration_s if duration_s > 0 else float("nan"),
        **dict(zip(PERCENTILES, map(float, row["q"]), strict=True)),
        "max": _float(row["max"]),
        "mean": _float(row["mean"]),
        "error_rate": int(row["failed"]) / count if count else 0.0,
        "errors": errors,
        "statuses": statuses,
        "retries": int(row["retries"]),
        "ok": {
            "count": 0 if ok is None else int(ok["count"]),
            **{name: _none_if_nan(v) for name, v in zip(_OK_STATS, ok_q, strict=True)},
        },
    }


def _float(value: Any) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
