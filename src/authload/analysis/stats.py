"""Per-endpoint statistics from the raw records: exact percentiles, never averaged.

Latency figures are of every attempt: one that got no answer (status 0: timeout, connect,
reset) counts the time until it failed, as Locust, the live verdict and the Prometheus
histogram count it; leaving it out would hide the worst attempts of a run.

The figures are DuckDB aggregates over the records (:mod:`authload.analysis.query`): one
pass, one row per endpoint, whatever the run's length."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from authload.analysis.query import Records, RecordsLike, as_records, quantiles
from authload.slo_grammar import PERCENTILES

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
    ``ok``: count and p50, p95, p99 of the expected answers alone."""
    table = as_records(records)
    figures = _figures(table)
    errors = _tallies(table, "error", "error IS NOT NULL")
    statuses = _tallies(table, "status", "TRUE")
    summary = {}
    for _, row in figures.iterrows():
        name = "*" if row["endpoint"] is None or row["grouped"] else str(row["endpoint"])
        summary[name] = _row(row, duration_s, errors.get(name, {}), statuses.get(name, {}))
    if "*" not in summary:  # no records: the overall row still says so
        summary["*"] = _row(None, duration_s, {}, {})
    ordered = {k: summary[k] for k in sorted(summary) if k != "*"} | {"*": summary["*"]}
    return {name: {k: _none_if_nan(v) for k, v in row.items()} for name, row in ordered.items()}


def _figures(table: Records) -> pd.DataFrame:
    """One row per endpoint and one over all (``grouped``), in one pass."""
    qs = list(PERCENTILES.values())
    ok_qs = [PERCENTILES[name] for name in _OK_STATS]
    return table.sql(
        f"""SELECT endpoint, grouping(endpoint) = 1 AS grouped, count(*) AS count,
            {quantiles("latency_ms", qs)} AS q, max(latency_ms) AS max,
            avg(latency_ms) AS mean, count(error) AS failed,
            count(*) FILTER (WHERE attempt > 1) AS retries,
            count(*) FILTER (WHERE {_EXPECTED}) AS ok_count,
            {quantiles("latency_ms", ok_qs, _EXPECTED)} AS ok_q
        FROM {{records}} GROUP BY ROLLUP (endpoint)"""
    )


def _tallies(table: Records, column: str, where: str) -> dict[str, dict[str, int]]:
    """Per endpoint (and ``*``): how many records have each value of ``column``, most
    frequent first (for statuses: in status order)."""
    frame = table.sql(
        f"""SELECT endpoint, grouping(endpoint) = 1 AS grouped, {column} AS value,
            count(*) AS n FROM {{records}} WHERE {where}
        GROUP BY GROUPING SETS ((endpoint, {column}), ({column}))"""
    )
    order = ["value"] if column == "status" else ["n", "value"]
    frame = frame.sort_values(order, ascending=[column == "status"] + [True] * (len(order) - 1))
    result: dict[str, dict[str, int]] = {}
    for _, row in frame.iterrows():
        name = "*" if row["grouped"] else str(row["endpoint"])
        result.setdefault(name, {})[str(row["value"])] = int(row["n"])
    return result


def _row(
    row: pd.Series | None, duration_s: float, errors: dict[str, int], statuses: dict[str, int]
) -> dict[str, Any]:
    count = 0 if row is None else int(row["count"])
    q = _list(None if row is None else row["q"], len(PERCENTILES))
    ok_q = _list(None if row is None else row["ok_q"], len(_OK_STATS))
    return {
        "count": count,
        "rate_per_s": count / duration_s if duration_s > 0 else float("nan"),
        **dict(zip(PERCENTILES, q, strict=True)),
        "max": _float(None if row is None else row["max"]),
        "mean": _float(None if row is None else row["mean"]),
        "error_rate": int(row["failed"]) / count if row is not None and count else 0.0,
        "errors": errors,
        "statuses": statuses,
        "retries": 0 if row is None else int(row["retries"]),
        "ok": {
            "count": 0 if row is None else int(row["ok_count"]),
            **{name: _none_if_nan(v) for name, v in zip(_OK_STATS, ok_q, strict=True)},
        },
    }


def _list(value: Any, n: int) -> list[float]:
    """A quantile list from DuckDB (NaN each over no rows)."""
    if not isinstance(value, list | tuple | np.ndarray):  # None, NA: no rows
        return [float("nan")] * n
    return [float(v) for v in value]


def _float(value: Any) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
