"""Statistics and SLOs against hand-built records with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from authload.analysis.slo import error_mask, evaluate
from authload.analysis.stats import endpoint_summary, percentile
from authload.scenario.slo_grammar import ERROR_FILTERS, parse_slo


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
            _records([10_000.0] * 5, endpoint="mobile.refresh", status=0, error="timeout"),
        ],
        ignore_index=True,
    )
    summary = endpoint_summary(frame, duration_s=10.0)
    login, refresh, total = summary["gigma.login"], summary["mobile.refresh"], summary["*"]
    assert (login["count"], login["rate_per_s"], login["p99"], login["max"]) == (100, 10.0, 99, 100)
    assert login["error_rate"] == 0
    assert refresh["statuses"] == {"0": 5, "503": 10}
    assert refresh["errors"] == {"http": 10, "timeout": 5}
    assert refresh["p50"] == 5.0
    assert refresh["max"] == 10_000.0  # a timeout counts the time until it failed
    assert refresh["mean"] == pytest.approx((10 * 5.0 + 5 * 10_000.0) / 15)
    assert total["count"] == 115 and total["error_rate"] == pytest.approx(15 / 115)


def test_no_answers_still_have_latency() -> None:
    summary = endpoint_summary(_records([3.0], status=0, error="connect"), duration_s=1.0)
    assert summary["gigma.login"]["p99"] == 3.0
    assert endpoint_summary(_records([]), duration_s=1.0)["*"]["p99"] is None


def test_the_endpoint_summary_is_plain_json_with_none_for_what_is_missing() -> None:
    """What summary.json holds as it is: no NaN, no numpy numbers."""
    summary = endpoint_summary(_records([3.0], status=0, error="connect"), duration_s=0.0)
    login = summary["gigma.login"]
    assert login["rate_per_s"] is None  # no duration
    assert login["ok"] == {"count": 0, "p50": None, "p95": None, "p99": None}
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def _timing_out(share_of_ten: int) -> pd.DataFrame:
    """100 logins: answered in 100 ms but for ``share_of_ten`` in ten timing out at 10 s."""
    timeouts = 10 * share_of_ten
    return pd.concat(
        [
            _records([100.0] * (100 - timeouts)),
            _records([10_000.0] * timeouts, status=0, error="timeout"),
        ],
        ignore_index=True,
    )


def test_timeouts_count_in_latency_slos_and_summary() -> None:
    """10% of logins time out at 10 s: the p99 is 10 s, not the answered ones' 100 ms."""
    frame = _timing_out(1)
    p99 = evaluate("p99(gigma.login) < 800ms", frame, 10)
    assert (p99.value, p99.passed, p99.count) == (10_000.0, False, 100)
    assert evaluate("max(gigma.login) >= 10s", frame, 10).passed
    assert evaluate("mean(gigma.login) < 1090ms", frame, 10).value == pytest.approx(1090.0)
    assert evaluate("p50(gigma.login) < 800ms", frame, 10).passed
    assert endpoint_summary(frame, 10)["gigma.login"]["p99"] == 10_000.0


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
    assert not evaluate("p99(mobile.refresh) < 1s", frame, 10).passed  # no data fails


def test_slos_read_from_the_endpoint_summary_equal_the_ones_computed_again() -> None:
    """The summary hands its endpoint figures to the SLOs: every SLO, read from them or not,
    has the value and count it has when computed from the records alone."""
    rng = np.random.default_rng(7)
    frame = pd.concat(
        [
            _records(list(rng.exponential(80.0, 500))),
            _records(list(rng.exponential(30.0, 300)), endpoint="mobile.refresh"),
            _records([5.0] * 40, endpoint="mobile.refresh", status=503, error="http"),
            _records([10_000.0] * 7, status=0, error="timeout"),
        ],
        ignore_index=True,
    )
    endpoints = endpoint_summary(frame, 10.0)
    slos = [
        f"{stat}({scope}{filtering}) < 100ms"
        for stat in ("p50", "p90", "p95", "p99", "p99.9", "max", "mean")
        for scope in ("gigma.login", "mobile.refresh", "*", "mobile.lkfl_auth")
        for filtering in ("", ", ok", ", 5xx", ", errors")
    ]
    for slo in slos:
        read, computed = evaluate(slo, frame, 10, endpoints=endpoints), evaluate(slo, frame, 10)
        assert (read.count, read.passed) == (computed.count, computed.passed), slo
        assert read.value == computed.value or (
            math.isnan(read.value) and math.isnan(computed.value)
        ), slo
    refresh_ok = evaluate("p99(mobile.refresh, ok) < 100ms", frame, 10, endpoints=endpoints)
    assert (refresh_ok.value, refresh_ok.count) == (endpoints["mobile.refresh"]["ok"]["p99"], 300)


def test_error_rate_of_an_endpoint_never_exercised_is_no_data_and_fails() -> None:
    frame = _records([1.0] * 10)
    result = evaluate("error_rate(mobile.refresh) < 1%", frame, 10)
    assert math.isnan(result.value) and not result.passed and result.count == 0
    assert not evaluate("error_rate(*, 5xx) < 1%", frame.iloc[:0], 10).passed


@pytest.mark.parametrize(
    ("errors", "slo", "passed"),
    [
        (29, "error_rate(*) < 29%", False),  # 29.000000000000004 as mean * 100
        (28, "error_rate(*) < 29%", True),
        (7, "error_rate(*) <= 7%", True),  # 7.000000000000001 as mean * 100
        (8, "error_rate(*) <= 7%", False),
        (57, "error_rate(*) <= 57%", True),
        (57, "error_rate(*) > 57%", False),
        (57, "error_rate(*) >= 57%", True),
        (1, "error_rate(*) <= 1%", True),
        (1, "error_rate(*) < 1%", False),
    ],
)
def test_error_rate_at_the_threshold_is_judged_exactly(errors: int, slo: str, passed: bool) -> None:
    frame = pd.concat(
        [_records([1.0] * (100 - errors)), _records([1.0] * errors, status=503, error="http")],
        ignore_index=True,
    )
    assert evaluate(slo, frame, 10).passed is passed


def test_exact_judgement_with_decimal_thresholds() -> None:
    spec = parse_slo("error_rate(*) <= 0.1%")
    assert spec.error_rate_met(1, 1000) and not spec.error_rate_met(2, 1999)
    assert parse_slo("error_rate(*) < 0.3%").error_rate_met(2, 1000)
    assert not parse_slo("error_rate(*) < 0.3%").error_rate_met(3, 1000)
    with pytest.raises(ValueError):
        spec.error_rate_met(0, 0)


def _mixed() -> pd.DataFrame:
    """Expected answers (error null: a typo's 400, a wrong password's 401), failures of every
    kind."""
    return pd.DataFrame(
        {
            "endpoint": ["gigma.login"] * 8,
            "status": [200, 400, 401, 400, 429, 503, 0, 0],
            "latency_ms": [1.0] * 8,
            "error": [None, None, None, "http", "http", "http", "timeout", "reset"],
        }
    )


@pytest.mark.parametrize(
    ("name", "selected"),
    [
        ("4xx", [3, 4]),  # the expected 400 and 401 are not failures
        ("429", [4]),
        ("5xx", [5]),
        ("503", [5]),
        ("errors", [3, 4, 5, 6, 7]),
        ("timeout", [6]),
        ("transport", [6, 7]),
        ("contract", []),
    ],
)
def test_error_filters_count_failed_attempts_only(name: str, selected: list[int]) -> None:
    frame = _mixed()
    mask = error_mask(frame, ERROR_FILTERS[name])
    assert list(np.flatnonzero(mask.to_numpy())) == selected
    errors = [None if pd.isna(e) else str(e) for e in frame["error"]]
    by_rule = [  # the live verdict's rule, on the same attempts
        i
        for i, (status, error) in enumerate(zip(frame["status"], errors, strict=True))
        if ERROR_FILTERS[name].selects(int(status), error)
    ]
    assert by_rule == selected


def test_expected_4xx_answers_do_not_fail_a_4xx_slo() -> None:
    frame = pd.concat(
        [_records([1.0] * 90), _records([1.0] * 10, status=400)],  # typo codes, error null
        ignore_index=True,
    )
    result = evaluate("error_rate(gigma.login, 4xx) < 1%", frame, 10)
    assert (result.value, result.passed) == (0.0, True)


def test_transport_filter_sees_timeouts_connects_and_resets() -> None:
    frame = pd.concat(
        [
            _records([1.0] * 97),
            _records([10_000.0], status=0, error="timeout"),
            _records([1.0], status=0, error="connect"),
            _records([2.0], status=0, error="reset"),
        ],
        ignore_index=True,
    )
    result = evaluate("error_rate(*, transport) < 1%", frame, 10)
    assert (result.value, result.passed) == (3.0, False)
    assert evaluate("error_rate(*, transport) <= 3%", frame, 10).passed
    assert evaluate("error_rate(*, 5xx) < 1%", frame, 10).passed  # blind to them
