"""Timelines, events as intervals, error bursts, recovery, retries, coordinated omission,
shedding, lost sessions and the latency spectrum, against hand-built records with known
answers; and once against a real run with a fault window on the mock."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from authload.analysis import (
    RecoveryTolerance,
    error_bursts,
    event_windows,
    fault_windows,
    latency_comparison,
    latency_from_intended,
    latency_spectrum,
    recovery_times,
    retry_after_honoured,
    retry_summary,
    sessions_lost,
    shedding_quality,
    timeline,
)
from authload.analysis.stats import percentile
from authload.analysis.timeline import TIMELINE_COLUMNS, grouped_percentiles
from authload.rundir.events import (
    AbortEvent,
    Event,
    FaultWindow,
    MassLogoutEvent,
    OutcomesEvent,
    RefreshStormEndEvent,
    RefreshStormStartEvent,
    StageEvent,
    fault_event,
    read_events,
)
from tests.helpers.runs import Run, run_scenario

nan = float("nan")


def _records(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Records with the schema's columns; each row gives what differs from a healthy 200."""
    base: dict[str, Any] = {
        "t_intended": nan,
        "endpoint": "mobile.refresh",
        "status": 200,
        "latency_ms": 10.0,
        "bytes": 100,
        "error": None,
        "retry_after_s": nan,
        "flow": "sms",
        "flow_id": None,
        "op_id": None,
        "attempt": 1,
        "worker": "w0",
    }
    frame = pd.DataFrame([{**base, **row} for row in rows])
    frame["op_id"] = frame["op_id"].fillna(pd.Series(range(1000, 1000 + len(frame))))
    return frame.astype({"op_id": "int64", "attempt": "int16", "status": "int16"})


def _steady(first: float, windows: int, per_window: int = 10, **row: Any) -> list[dict[str, Any]]:
    """``per_window`` records evenly spread over each of ``windows`` 1-s windows."""
    step = 1.0 / per_window
    return [{"t": first + w + i * step, **row} for w in range(windows) for i in range(per_window)]


def _column(frame: pd.DataFrame, name: str) -> list[float]:
    return [float(v) for v in frame[name]]


def _same(actual: list[float], expected: list[float]) -> bool:
    return len(actual) == len(expected) and all(
        (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e)
        for a, e in zip(actual, expected, strict=True)
    )


# ---------------------------------------------------------------------------------------------
# timeline


TIMELINE_ROWS: list[dict[str, Any]] = [
    # window 0 (100-101): a shed first attempt retried to a 200, a 200, a timeout
    {"t": 100.0, "op_id": 1, "status": 503, "error": "http", "retry_after_s": 0.5},
    {"t": 100.6, "op_id": 1, "attempt": 2, "latency_ms": 20.0},
    {"t": 100.2, "op_id": 2, "latency_ms": 30.0},
    {"t": 100.4, "op_id": 3, "status": 0, "error": "timeout", "latency_ms": 1000.0},
    # window 1: nothing; window 2: a rate-limited login, a 200 on another endpoint
    {"t": 102.5, "op_id": 4, "status": 429, "error": "http", "latency_ms": 5.0},
    {"t": 102.9, "op_id": 5, "endpoint": "gigma.login", "latency_ms": 40.0},
]


def test_timeline_counts_rates_and_percentiles_per_window() -> None:
    tl = timeline(_records(TIMELINE_ROWS))
    assert list(tl.columns) == TIMELINE_COLUMNS
    assert _column(tl, "t0") == [100.0, 101.0, 102.0]
    assert _column(tl, "t_s") == [0.0, 1.0, 2.0]
    assert _column(tl, "requests") == _column(tl, "rate") == [4, 0, 2]
    assert _same(_column(tl, "p50"), [20.0, nan, 5.0])  # answered only: 10, 20, 30 | 5, 40
    assert _same(_column(tl, "p95"), [30.0, nan, 40.0])
    assert _same(_column(tl, "p99"), [30.0, nan, 40.0])
    expected = {
        "ok": [2, 0, 1],
        "s4xx": [0, 0, 1],
        "s429": [0, 0, 1],
        "s5xx": [1, 0, 0],
        "s503": [1, 0, 0],
        "no_answer": [1, 0, 0],
        "err_timeout": [1, 0, 0],
        "err_connect": [0, 0, 0],
        "err_reset": [0, 0, 0],
        "err_http": [1, 0, 1],
        "err_contract": [0, 0, 0],
        "goodput": [2, 0, 1],  # ops 1 (on its 2nd attempt) and 2; op 5
    }
    for name, values in expected.items():
        assert _column(tl, name) == values, name
    assert _same(_column(tl, "error_rate"), [0.5, nan, 0.5])
    assert _same(_column(tl, "attempts_per_op"), [4 / 3, nan, 1.0])


def test_timeline_wider_windows_start_and_endpoint() -> None:
    records = _records(TIMELINE_ROWS)
    wide = timeline(records, window_s=2.0)
    assert _column(wide, "t0") == [100.0, 102.0]
    assert _column(wide, "rate") == [2.0, 1.0]
    assert _column(wide, "goodput") == [1.0, 0.5]

    late = timeline(records, start=101.0)
    assert _column(late, "t0") == [101.0, 102.0]
    assert _column(late, "requests") == [0, 2]

    # an endpoint keeps the run's windows
    login = timeline(records, endpoint="gigma.login")
    assert _column(login, "t0") == [100.0, 101.0, 102.0]
    assert _column(login, "requests") == [0, 0, 1]
    assert _same(_column(login, "p50"), [nan, nan, 40.0])

    assert timeline(records.iloc[:0]).empty
    assert list(timeline(records.iloc[:0]).columns) == TIMELINE_COLUMNS
    for bad in (0.5, 61.0):
        with pytest.raises(ValueError, match="window_s"):
            timeline(records, window_s=bad)


def test_ops_are_counted_per_worker() -> None:
    """Op ids are counted per process: op 1 of w0 and op 1 of w1 are two operations."""
    records = _records(
        [{"t": 0.0, "op_id": 1, "worker": "w0"}, {"t": 0.1, "op_id": 1, "worker": "w1"}]
    )
    assert _column(timeline(records), "attempts_per_op") == [1.0]
    assert _column(timeline(records), "goodput") == [2.0]


def test_grouped_percentiles_are_stats_percentile_per_group() -> None:
    rng = np.random.default_rng(7)
    sizes = [1, 2, 3, 7, 10, 99, 100, 101, 1000, 0, 1001]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.exponential(20.0, len(groups)).round(1)  # ties too
    quantiles = {"p0": 0.0, "p50": 0.5, "p90": 0.9, "p99": 0.99, "p99.9": 0.999, "max": 1.0}
    got = grouped_percentiles(groups, values, len(sizes), quantiles)
    for g, size in enumerate(sizes):
        for name, q in quantiles.items():
            expected = percentile(values[groups == g], q)
            assert _same([got[name][g]], [expected]), (size, name)


# ---------------------------------------------------------------------------------------------
# events as intervals


FAULT_HISTORY = [
    FaultWindow(t=1010.0, event="start", fault="profile-1", kind="status",
                endpoints=["mobile.esia_url"], name="esia down"),
    FaultWindow(t=1012.0, event="start", fault="admin-2", kind="latency",
                endpoints=["gigma.login", "mobile.refresh"]),
    FaultWindow(t=1014.0, event="end", fault="profile-1", kind="status",
                endpoints=["mobile.esia_url"], name="esia down"),
    FaultWindow(t=1001.0, event="end", fault="admin-0", kind="reset"),  # start not kept
]  # fmt: skip


def test_fault_windows_pair_starts_and_ends() -> None:
    faults = fault_windows(FAULT_HISTORY, end_t=1030.0)
    assert faults.to_dict("records") == [
        {"kind": "fault", "start": 1010.0, "end": 1014.0, "label": "status on mobile.esia_url"},
        {
            "kind": "fault",
            "start": 1012.0,
            "end": 1030.0,  # still open
            "label": "latency on gigma.login, mobile.refresh",
        },
    ]
    assert list(fault_windows([], 0.0).columns) == ["kind", "start", "end", "label"]


def test_event_windows_from_the_run_events() -> None:
    def storm(t: float, worker: str, at_s: float, n: int) -> RefreshStormStartEvent:
        return RefreshStormStartEvent(
            t=t, worker=worker, at_s=at_s, sessions=n, wanted=n, window_s=1.0
        )

    events: list[Event | FaultWindow] = [
        StageEvent(t=1000.0, stage=0, duration_s=5, users=4, spawn_rate=4),
        StageEvent(t=1005.0, stage=1, duration_s=20, rate=50),
        storm(1006.0, "w0", 6, 30),
        storm(1006.1, "w1", 6, 20),
        RefreshStormEndEvent(t=1008.0, worker="w1", at_s=6, sessions=20),
        RefreshStormEndEvent(t=1008.5, worker="w0", at_s=6, sessions=30),
        storm(1016.0, "w0", 16, 5),
        MassLogoutEvent(t=1009.0, worker="w0", at_s=9, counterparties=3, live=3),
        MassLogoutEvent(t=1009.2, worker="w1", at_s=9, counterparties=4, live=4),
        AbortEvent(t=1020.0, reason="error rate over 50%"),
        OutcomesEvent(t=1021.0, worker="w0", counts={"sms:completed": 3}),
        *FAULT_HISTORY,
    ]
    windows = event_windows(events, end_t=1025.0)
    assert windows.to_dict("records") == [
        {"kind": "stage", "start": 1000.0, "end": 1005.0, "label": "stage 0: 4 users"},
        {"kind": "stage", "start": 1005.0, "end": 1025.0, "label": "stage 1: 50/s"},
        {
            "kind": "refresh_storm",
            "start": 1006.0,
            "end": 1008.5,
            "label": "refresh storm: 50 sessions",
        },
        {"kind": "mass_logout", "start": 1009.0, "end": 1009.0, "label": "mass logout: 7 users"},
        {"kind": "fault", "start": 1010.0, "end": 1014.0, "label": "status on mobile.esia_url"},
        {
            "kind": "fault",
            "start": 1012.0,
            "end": 1025.0,
            "label": "latency on gigma.login, mobile.refresh",
        },
        {
            "kind": "refresh_storm",
            "start": 1016.0,
            "end": 1025.0,  # never ended
            "label": "refresh storm: 5 sessions",
        },
        {"kind": "abort", "start": 1020.0, "end": 1020.0, "label": "error rate over 50%"},
    ]
    assert event_windows([], 0.0).empty


def test_event_windows_take_the_fault_events_the_run_logged() -> None:
    """The run logs the mock's fault history as ``fault_start``/``fault_end`` events."""
    logged = [fault_event(e) for e in FAULT_HISTORY]
    expected = fault_windows(FAULT_HISTORY, end_t=1030.0)
    pd.testing.assert_frame_equal(event_windows(logged, end_t=1030.0), expected)
    both = event_windows([*logged, *FAULT_HISTORY], end_t=1030.0)  # each window once
    pd.testing.assert_frame_equal(both, expected)


# ---------------------------------------------------------------------------------------------
# bursts and recovery


def _burst_records() -> pd.DataFrame:
    rows = _steady(1000.0, 10)  # 10 requests a second for 10 s
    failures = {  # window -> (count, status, endpoint)
        0: (1, 0, "mobile.refresh"),  # a timeout: an error, not a 5xx
        3: (1, 503, "mobile.esia_url"),  # 10% > 5%
        4: (5, 503, "mobile.refresh"),
        5: (2, 503, "mobile.esia_url"),
        7: (1, 500, "gigma.login"),
    }
    for window, (count, status, endpoint) in failures.items():
        for i in range(count):
            error = "timeout" if status == 0 else "http"
            rows[window * 10 + i].update(status=status, error=error, endpoint=endpoint)
    # window 8: 20 requests, one 503: 5% does not exceed 5%
    rows += [{"t": 1008.05 + i / 10} for i in range(10)]
    rows[-1].update(status=503, error="http")
    return _records(rows)


def test_error_bursts_are_maximal_runs_of_windows_over_the_threshold() -> None:
    records = _burst_records()
    bursts = error_bursts(records)
    assert list(bursts.columns) == [
        "start",
        "end",
        "duration_s",
        "peak_rate",
        "errors",
        "endpoints",
    ]
    assert bursts.to_dict("records") == [
        {
            "start": 1003.0,
            "end": 1006.0,
            "duration_s": 3.0,
            "peak_rate": 5.0,
            "errors": 8,
            "endpoints": ["mobile.esia_url", "mobile.refresh"],
        },
        {
            "start": 1007.0,
            "end": 1008.0,
            "duration_s": 1.0,
            "peak_rate": 1.0,
            "errors": 1,
            "endpoints": ["gigma.login"],
        },
    ]
    only_503 = error_bursts(records, statuses="503")
    assert _column(only_503, "start") == [1003.0]
    any_error = error_bursts(records, statuses="errors")
    assert _column(any_error, "start") == [1000.0, 1003.0, 1007.0]
    assert error_bursts(records, threshold=0.5).empty
    wide = error_bursts(records, window_s=2.0)  # windows 1002-1004: 1 in 20, 1004-1006: 7 in 20
    assert (_column(wide, "start"), _column(wide, "end")) == ([1004.0], [1006.0])
    assert _column(wide, "peak_rate") == [3.5]
    with pytest.raises(ValueError, match="statuses"):
        error_bursts(records, statuses="4xx")


def _recovery_records() -> pd.DataFrame:
    rows = _steady(1000.0, 25)  # 25 s of 10 requests a second, 10 ms each
    for i, row in enumerate(rows):
        window, k = divmod(i, 10)
        failing = 5 <= window <= 7 or (window == 8 and k < 5) or window >= 20
        if failing:
            row.update(status=503, error="http", latency_ms=1.0)
        if window == 10 and k == 0:
            row.update(latency_ms=100.0)  # p99 over 10 * 1.5 + 5 ms
    return _records(rows)


def test_recovery_times_after_faults_and_storms() -> None:
    events = pd.DataFrame(
        [
            {"kind": "stage", "start": 1000.0, "end": 1025.0, "label": "stage 0: 10 users"},
            {"kind": "fault", "start": 1005.0, "end": 1008.0, "label": "status on *"},
            {"kind": "refresh_storm", "start": 1015.0, "end": 1016.5, "label": "storm"},
            {"kind": "fault", "start": 1020.0, "end": 1021.0, "label": "status on *"},
        ]
    )
    result = recovery_times(_recovery_records(), events)
    assert list(result.columns)[:6] == [
        "kind",
        "label",
        "start",
        "event_end",
        "recovered_at",
        "recovery_s",
    ]
    assert list(result["kind"]) == ["fault", "refresh_storm", "fault"]  # no stages
    # the fault: window 8 half errors, 9 fine, 10 a slow p99, 11-13 fine
    assert _same(_column(result, "recovered_at"), [1011.0, 1016.5, nan])
    assert _same(_column(result, "recovery_s"), [3.0, 0.0, nan])  # the storm did no harm
    assert (result["baseline_error_rate"][0], result["baseline_p99"][0]) == (0.0, 10.0)

    one_window = recovery_times(_recovery_records(), events, tolerance=RecoveryTolerance(windows=1))
    assert _same(_column(one_window, "recovery_s"), [1.0, 0.0, nan])
    lenient = recovery_times(
        _recovery_records(), events, tolerance=RecoveryTolerance(p99_factor=10.0)
    )
    assert _column(lenient, "recovery_s")[0] == 1.0


def test_recovery_without_a_baseline_is_unknown() -> None:
    events = pd.DataFrame([{"kind": "fault", "start": 999.0, "end": 1001.0, "label": "early"}])
    result = recovery_times(_recovery_records(), events)
    assert math.isnan(result["recovered_at"][0]) and math.isnan(result["baseline_p99"][0])


# ---------------------------------------------------------------------------------------------
# retries


RETRY_ROWS: list[dict[str, Any]] = [
    # w0 op 1: 503 with Retry-After 1 s; waits 1.1 s; 503 again, retried after 0.2 s; 200
    {"t": 10.0, "op_id": 1, "status": 503, "error": "http", "retry_after_s": 1.0,
     "latency_ms": 100.0},
    {"t": 11.2, "op_id": 1, "attempt": 2, "status": 503, "error": "http", "retry_after_s": 1.0,
     "latency_ms": 100.0},
    {"t": 11.5, "op_id": 1, "attempt": 3},
    # w0 op 2: 503 with Retry-After, never retried
    {"t": 10.0, "op_id": 2, "status": 503, "error": "http", "retry_after_s": 0.5},
    # w0 op 3: 429 with Retry-After 2 s, retried 1.96 s after the answer (within the slack)
    {"t": 20.0, "op_id": 3, "endpoint": "gigma.send_password", "status": 429, "error": "http",
     "retry_after_s": 2.0, "latency_ms": 50.0},
    {"t": 22.01, "op_id": 3, "endpoint": "gigma.send_password", "attempt": 2},
    # w1 op 1 (another process's op 1): a 503 without Retry-After, retried at once
    {"t": 10.0, "op_id": 1, "worker": "w1", "status": 503, "error": "http"},
    {"t": 10.1, "op_id": 1, "worker": "w1", "attempt": 2},
]  # fmt: skip


def test_retry_after_honoured() -> None:
    honoured = retry_after_honoured(_records(RETRY_ROWS))
    assert list(honoured.columns)[:5] == [
        "op_id",
        "endpoint",
        "retry_after_s",
        "waited_s",
        "honoured",
    ]
    assert list(honoured["op_id"]) == [1, 1, 3]
    assert list(honoured["attempt"]) == [1, 2, 1]
    assert list(honoured["endpoint"]) == ["mobile.refresh"] * 2 + ["gigma.send_password"]
    assert _column(honoured, "retry_after_s") == [1.0, 1.0, 2.0]
    assert _column(honoured, "waited_s") == pytest.approx([1.1, 0.2, 1.96])
    assert list(honoured["honoured"]) == [True, False, True]


def test_retry_summary() -> None:
    summary = retry_summary(_records(RETRY_ROWS))
    assert summary == {
        "operations": 4,
        "attempts": 8,
        "amplification": 2.0,
        "retried_ops": 3,
        "shed_503": 4,
        "shed_503_with_retry_after": 3,
        "retry_after_honoured_share": pytest.approx(2 / 3),
    }
    once = retry_summary(_records([{"t": 0.0}, {"t": 1.0}]))
    assert (once["amplification"], once["retried_ops"]) == (1.0, 0)
    assert once["retry_after_honoured_share"] is None
    assert retry_summary(_records([{"t": 0.0}]).iloc[:0])["amplification"] is None


# ---------------------------------------------------------------------------------------------
# coordinated omission


CO_ROWS: list[dict[str, Any]] = [
    # a journey due at 100.0 that started 0.5 s late: its first call, then a second
    {"t": 100.5, "t_intended": 100.0, "flow_id": "w0-1", "op_id": 1, "endpoint": "x",
     "latency_ms": 200.0},
    {"t": 101.0, "t_intended": 100.0, "flow_id": "w0-1", "op_id": 2, "endpoint": "y",
     "latency_ms": 100.0},
    # its third call, retried: counted from when the operation was due
    {"t": 102.0, "t_intended": 100.0, "flow_id": "w0-1", "op_id": 3, "endpoint": "y",
     "latency_ms": 100.0, "status": 503, "error": "http"},
    {"t": 102.5, "t_intended": 100.0, "flow_id": "w0-1", "op_id": 3, "attempt": 2,
     "endpoint": "y", "latency_ms": 100.0},
    # a closed-model call; and an attempt without an answer
    {"t": 103.0, "flow_id": "w0-2", "op_id": 4, "endpoint": "x", "latency_ms": 42.0},
    {"t": 103.0, "t_intended": 103.0, "flow_id": "w0-3", "op_id": 5, "endpoint": "x",
     "latency_ms": 5000.0, "status": 0, "error": "timeout"},
]  # fmt: skip


def test_latency_from_intended() -> None:
    corrected = latency_from_intended(_records(CO_ROWS))
    assert list(corrected) == pytest.approx([700.0, 600.0, 600.0, 1100.0, 42.0, 5000.0])


def test_latency_comparison_measured_and_from_intended() -> None:
    table = latency_comparison(_records(CO_ROWS))
    assert list(table.index) == ["x", "y", "*"]
    assert list(table.columns) == [
        "count",
        "measured_p50",
        "intended_p50",
        "measured_p90",
        "intended_p90",
        "measured_p99",
        "intended_p99",
        "measured_p99.9",
        "intended_p99.9",
        "measured_max",
        "intended_max",
    ]
    assert list(table["count"]) == [3, 3, 6]  # every attempt: the timeout counts its 5 s
    assert _column(table, "measured_p50") == [200.0, 100.0, 100.0]
    assert _column(table, "intended_p50") == pytest.approx([700.0, 600.0, 600.0])
    assert _column(table, "measured_p90") == [5000.0, 100.0, 5000.0]
    assert _column(table, "intended_p90") == pytest.approx([5000.0, 1100.0, 5000.0])
    assert _column(table, "intended_p99.9") == pytest.approx([5000.0, 1100.0, 5000.0])
    assert _column(table, "measured_max") == [5000.0, 100.0, 5000.0]


# ---------------------------------------------------------------------------------------------
# shedding, sessions, spectrum


def test_shedding_quality() -> None:
    records = _records(
        [
            {"t": 50.0, "op_id": 1, "status": 503, "error": "http", "latency_ms": 2.0},
            {"t": 50.3, "op_id": 2},
            {"t": 50.6, "op_id": 3, "status": 503, "error": "http", "latency_ms": 4.0},
            {"t": 51.1, "op_id": 1, "attempt": 2},
            {"t": 51.5, "op_id": 3, "attempt": 2, "status": 503, "error": "http", "latency_ms": 8},
        ]
    )
    quality = shedding_quality(records)
    assert list(quality.columns) == ["t0", "t_s", "offered", "goodput", "shed", "p99_503_ms"]
    assert _column(quality, "offered") == [3.0, 0.0]
    assert _column(quality, "goodput") == [1.0, 1.0]
    assert _column(quality, "shed") == [2.0, 1.0]
    assert _column(quality, "p99_503_ms") == [4.0, 8.0]
    assert _column(shedding_quality(records, window_s=2.0), "offered") == [1.5]


def test_sessions_lost_by_reason() -> None:
    events: list[Event] = [
        StageEvent(t=1.0, stage=0, duration_s=1, users=1),
        OutcomesEvent(
            t=2.0,
            worker="w0",
            counts={
                "sms:completed": 10,
                "sms:session_lost:rotation": 3,
                "refresh_storm:session_lost:rotation": 2,
                "refresh_storm:session_lost:invalid": 1,
            },
        ),
        OutcomesEvent(t=2.0, worker="w1", counts={"sms:session_lost:rotation": 1}),
    ]
    assert sessions_lost(events) == {"invalid": 1, "rotation": 6}
    assert sessions_lost([]) == {}


def test_latency_spectrum() -> None:
    records = _records([{"t": 0.0, "latency_ms": float(ms)} for ms in range(1, 1001)])
    spectrum = latency_spectrum(records)
    assert list(spectrum.columns) == ["percentile", "latency_ms"]
    at = dict(zip(spectrum["percentile"], spectrum["latency_ms"], strict=True))
    assert list(spectrum["percentile"])[:12] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 91, 92]
    assert len(spectrum) == 10 + 9 + 9 + 9 + 1  # to 99.99, as 1000 requests allow; then 100
    assert (at[0], at[50], at[90], at[99], at[99.9], at[99.99], at[100]) == (
        1,
        500,
        900,
        990,
        999,
        1000,
        1000,
    )
    assert spectrum["latency_ms"].is_monotonic_increasing
    assert latency_spectrum(records, endpoint="gigma.login").empty
    timeouts = records.assign(status=0, error="timeout")  # attempts count until they failed
    assert latency_spectrum(timeouts).equals(spectrum)


# ---------------------------------------------------------------------------------------------
# a real run: a 503 fault window on the ESIA URL, seen in the records

FAULT_START_S, FAULT_DURATION_S, LOAD_S = 9, 4, 18  # the load starts 1-6 s after the mock
FAULTED = f"""
name: fault-window
seed: 13
accounts: {{count: 500}}
mix: {{esia: 1}}
load:
  model: closed
  stages: [{{duration_s: {LOAD_S}, users: 4, spawn_rate: 4}}]
think_time: {{dist: fixed, ms: 20}}
retry: {{policy: none}}
abort: null
mock:
  behaviour:
    faults:
      - {{name: esia-down, kind: status, status: 503, endpoints: [mobile.esia_url],
         start_s: {FAULT_START_S}, duration_s: {FAULT_DURATION_S}}}
"""


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_scenario(tmp_path_factory.mktemp("faulted"), FAULTED, load_s=LOAD_S)
    assert run.code == 0, run.describe()
    return run


@pytest.mark.slow
@pytest.mark.integration
def test_burst_and_recovery_match_the_mock_fault_window(faulted: Run) -> None:
    records = faulted.records
    epoch = float(faulted.mock_stats["epoch"])
    start, end = epoch + FAULT_START_S, epoch + FAULT_DURATION_S + FAULT_START_S
    assert records["t"].min() < start - 2, "the load starts well before the fault"
    assert records["t"].max() > end + 4, "and goes on well after it"
    shed = records[records["status"] == 503]
    assert len(shed) > 0 and set(shed["endpoint"]) == {"mobile.esia_url"}
    assert (shed["t"] + shed["latency_ms"] / 1000 >= start).all()
    assert (shed["t"] <= end).all()

    [burst] = error_bursts(records, window_s=1.0).to_dict("records")
    assert abs(burst["start"] - start) <= 1.0, (burst, start)
    assert abs(burst["end"] - end) <= 1.0, (burst, end)
    assert burst["endpoints"] == ["mobile.esia_url"]
    inside = shed["t"].between(burst["start"], burst["end"], inclusive="left")
    assert burst["errors"] == inside.sum()
    outside = shed.loc[~inside, "t"]  # in an edge window where they were 5% or less
    assert ((outside >= burst["start"] - 1.0) & (outside < burst["end"] + 1.0)).all()

    history = [
        FaultWindow(t=start, event="start", fault="profile-1", kind="status",
                    endpoints=["mobile.esia_url"], name="esia-down"),
        FaultWindow(t=end, event="end", fault="profile-1", kind="status",
                    endpoints=["mobile.esia_url"], name="esia-down"),
    ]  # fmt: skip
    run_end = float((records["t"] + records["latency_ms"] / 1000).max())
    assert faulted.run_dir is not None
    logged = event_windows(read_events(faulted.run_dir), run_end)
    assert list(logged["kind"]).count("stage") == 1
    for fault in logged[logged["kind"] == "fault"].to_dict("records"):  # if the run logged it
        assert (fault["start"], fault["end"]) == pytest.approx((start, end), abs=1e-3)
    [recovery] = recovery_times(records, fault_windows(history, run_end)).to_dict("records")
    assert recovery["label"] == "status on mobile.esia_url"
    assert 0.0 <= recovery["recovery_s"] <= 1.0, recovery

    tl = timeline(records)
    assert tl["s503"].sum() == len(shed) and tl["requests"].sum() == len(records)
    assert retry_summary(records)["amplification"] == 1.0  # policy none
