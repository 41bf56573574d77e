"""Statistics and SLOs against hand-built records with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from authload.analysis.slo import evaluate
from authload.analysis.stats import endpoint_summary, percentile


def _records(
    latencies: list[float],
    endpoint: str = "gigma.login",
    status: int = 200,
    error: str | None = None,
) -> pd.DataFrame:
    n = len(latencies)
    return pd.DataFrame(
        {
            "t": np.arange(n, dtype=float),
            "endpoint": [endpoint] * n,
            "status": [status] * n,
            "latency_ms": latencies,
            "error": [error] * n,
            "attempt": [1] * n,
        }
    )


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))  # 1..100 ms
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 0.999) == 100
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_summary_per_endpoint_and_overall() -> None:
    frame = pd.concat(
        [
            _records([float(i) for i in range(1, 101)]),
            _records([5.0] * 10, endpoint="mobile.refresh", status=503, error="http"),
            _records([0.0] * 5, endpoint="mobile.refresh", status=0, error="timeout"),
        ],
        ignore_index=True,
    )
    summary = endpoint_summary(frame, duration_s=10.0)
    login, refresh, total = summary["gigma.login"], summary["mobile.refresh"], summary["*"]
    assert (login["count"], login["rate_per_s"], login["p99"], login["max"]) == (100, 10.0, 99, 100)
    assert login["error_rate"] == 0
    assert refresh["statuses"] == {"0": 5, "503": 10}
    assert refresh["errors"] == {"http": 10, "timeout": 5}
    assert refresh["p50"] == 5.0  # timeouts have no answer: not in the latency figures
    assert total["count"] == 115 and total["error_rate"] == pytest.approx(15 / 115)


def test_no_answers_gives_none_not_nan() -> None:
    summary = endpoint_summary(_records([0.0], status=0, error="connect"), duration_s=1.0)
    assert summary["gigma.login"]["p99"] is None


def test_slos() -> None:
    frame = pd.concat(
        [
            _records([float(i) for i in range(1, 101)]),
            _records([1.0] * 2, status=503, error="http"),
        ],
        ignore_index=True,
    )
    assert evaluate("p99(gigma.login) < 100ms", frame, 10).passed
    assert not evaluate("p99(gigma.login) < 0.09s", frame, 10).passed
    rate = evaluate("error_rate(*, 5xx) < 1%", frame, 10)
    assert rate.value == pytest.approx(200 / 102) and not rate.passed
    assert evaluate("error_rate(gigma.login, 503) <= 2%", frame, 10).passed
    assert evaluate("rate(*) >= 10.2/s", frame, 10).passed
    assert evaluate("error_rate(mobile.refresh) < 1%", frame, 10).passed  # no requests
    assert not evaluate("p99(mobile.refresh) < 1s", frame, 10).passed  # no data fails
