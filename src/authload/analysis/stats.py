"""Per-endpoint statistics from the raw records: exact percentiles, never averaged.

Latency figures are of every attempt: one that got no answer (status 0: timeout, connect,
reset) counts the time until it failed, as Locust, the live verdict and the Prometheus
histogram count it; leaving it out would hide the worst attempts of a run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from authload.results import read_records
from authload.slo_grammar import PERCENTILES

__all__ = ["PERCENTILES", "endpoint_summary", "load_records", "percentile"]


def load_records(run_dir: Path) -> pd.DataFrame:
    frame: pd.DataFrame = read_records(run_dir).to_pandas()
    return frame


def percentile(values: pd.Series | np.ndarray, q: float) -> float:
    """Nearest-rank percentile (the smallest value with at least q of the values at or below
    it), as HdrHistogram and most load tools report; NaN for no values."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return float("nan")
    return float(np.quantile(array, q, method="inverted_cdf"))


def _one(group: pd.DataFrame, duration_s: float) -> dict[str, Any]:
    latency = group["latency_ms"]
    statuses = group["status"].value_counts().sort_index()
    errors = group["error"].value_counts()
    count = len(group)
    row: dict[str, Any] = {
        "count": count,
        "rate_per_s": count / duration_s if duration_s > 0 else float("nan"),
        **{name: percentile(latency, q) for name, q in PERCENTILES.items()},
        "max": float(latency.max()) if len(latency) else float("nan"),
        "mean": float(latency.mean()) if len(latency) else float("nan"),
        "error_rate": float(group["error"].notna().mean()) if count else 0.0,
        "errors": {str(k): int(v) for k, v in errors.items()},
        "statuses": {str(k): int(v) for k, v in statuses.items()},
        "retries": int((group["attempt"] > 1).sum()),
        "ok": _expected(group),
    }
    return row


_OK_STATS = ("p50", "p95", "p99")


def _expected(group: pd.DataFrame) -> dict[str, Any]:
    """The latency of the answers the journey expected (``error`` null), beside every
    attempt's: a flood of fast failures makes every-attempt percentiles look good."""
    latency = group.loc[group["error"].isna(), "latency_ms"]
    return {
        "count": len(latency),
        **{
            name: _none_if_nan(percentile(latency, PERCENTILES[name]))
            for name in ("p50", "p95", "p99")
        },
    }


def endpoint_summary(records: pd.DataFrame, duration_s: float) -> dict[str, dict[str, Any]]:
    """Per endpoint and over all (``*``): count, rate, percentiles, max and mean (ms, every
    attempt; None without attempts), error rate, errors by kind, statuses, retries, and
    ``ok``: count and p50, p95, p99 of the expected answers alone."""
    summary = {
        str(name): _one(group, duration_s) for name, group in records.groupby("endpoint", sort=True)
    }
    summary["*"] = _one(records, duration_s)
    return {name: {k: _none_if_nan(v) for k, v in row.items()} for name, row in summary.items()}


def _none_if_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
