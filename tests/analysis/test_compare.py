"""Run comparison against synthetic run directories with known distributions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from authload.analysis import compare as compare_module
from authload.analysis.compare import (
    IMPROVEMENT,
    INSUFFICIENT_DATA,
    NO_SIGNIFICANT_CHANGE,
    REGRESSION,
    STATS,
    Comparison,
    compare_runs,
    load_run_records,
)
from authload.analysis.stats import percentile
from authload.cli import main
from authload.errors import ResultsError
from authload.rundir.files import MANIFEST_FILE, RECORDS_DIR, RECORDS_FILE
from tests.helpers import documents
from tests.helpers.synthetic_runs import LOGIN, REFRESH, SMS, one_endpoint, one_run, write_run

LATENCY_STATS = ("p50", "p95", "p99")


def _retried(records: pd.DataFrame, attempts: list[int], worker: str = "w0") -> pd.DataFrame:
    """``records`` regrouped into operations of ``attempts`` each, in turn (attempt 1, 2, ..)."""
    sizes = np.resize(np.asarray(attempts), len(records))
    ops = np.repeat(np.arange(len(records)), sizes)[: len(records)]
    attempt = pd.Series(ops).groupby(ops).cumcount().to_numpy() + 1
    return records.assign(worker=worker, op_id=ops, attempt=attempt)


def _verdicts(result: Comparison, endpoint: str) -> dict[str, str]:
    return {stat: result.row(endpoint, stat).verdict for stat in STATS}


def _same(verdict: str) -> dict[str, str]:
    return dict.fromkeys(STATS, verdict)


BASE = one_run(one_endpoint(LOGIN, 5000, 1), one_endpoint(REFRESH, 20000, 2, median_ms=15.0))


def test_identical_distributions_are_no_significant_change() -> None:
    candidate = one_run(
        one_endpoint(LOGIN, 5000, 11), one_endpoint(REFRESH, 20000, 12, median_ms=15.0)
    )
    result = compare_runs(BASE, candidate)
    assert result.verdict == NO_SIGNIFICANT_CHANGE
    for endpoint in (LOGIN, REFRESH, "*"):
        assert _verdicts(result, endpoint) == _same(NO_SIGNIFICANT_CHANGE), endpoint
    assert result.deciding == len(result.rows) == 15
    assert result.row_confidence == pytest.approx(1 - 0.05 / 15)
    for row in result.rows:  # every interval holds the true change, 0 (simultaneous: wider)
        assert row.ci_low is not None and row.ci_high is not None
        assert row.ci_low <= 0 <= row.ci_high, row
        assert row.ci_high - row.ci_low < (0.35 if row.unit == "relative" else 1.0), row
    assert [(r.endpoint, r.stat) for r in result.rows] == [
        (e, s) for e in (LOGIN, REFRESH, "*") for s in STATS
    ]


def test_slower_endpoint_is_a_regression_on_that_endpoint_and_its_latency_only() -> None:
    candidate = one_run(
        one_endpoint(LOGIN, 5000, 11, scale=1.3), one_endpoint(REFRESH, 20000, 12, median_ms=15.0)
    )
    result = compare_runs(BASE, candidate)
    assert result.verdict == REGRESSION
    assert _verdicts(result, LOGIN) == {
        "p50": REGRESSION,
        "p95": REGRESSION,
        "p99": REGRESSION,
        "error_rate": NO_SIGNIFICANT_CHANGE,
        "amplification": NO_SIGNIFICANT_CHANGE,
    }
    assert _verdicts(result, REFRESH) == _same(NO_SIGNIFICANT_CHANGE)
    for stat in LATENCY_STATS:
        row = result.row(LOGIN, stat)
        assert row.ci_low is not None and row.ci_high is not None
        assert row.ci_low <= 0.3 <= row.ci_high, row
        assert row.change == pytest.approx(0.3, abs=0.08)
        assert row.base is not None and row.candidate is not None
        assert row.change == pytest.approx(row.candidate / row.base - 1)
        assert row.base_count == row.candidate_count == 5000


def test_slower_tail_is_a_regression_of_the_tail_percentiles_only() -> None:
    candidate = one_run(
        one_endpoint(LOGIN, 5000, 11),
        one_endpoint(REFRESH, 20000, 12, median_ms=15.0, tail_scale=1.3),
    )
    result = compare_runs(BASE, candidate)
    assert result.verdict == REGRESSION
    assert _verdicts(result, REFRESH) == {
        "p50": NO_SIGNIFICANT_CHANGE,
        "p95": REGRESSION,
        "p99": REGRESSION,
        "error_rate": NO_SIGNIFICANT_CHANGE,
        "amplification": NO_SIGNIFICANT_CHANGE,
    }
    assert _verdicts(result, LOGIN) == _same(NO_SIGNIFICANT_CHANGE)


def test_faster_endpoint_is_an_improvement() -> None:
    candidate = one_run(
        one_endpoint(LOGIN, 5000, 11, scale=0.7), one_endpoint(REFRESH, 20000, 12, median_ms=15.0)
    )
    result = compare_runs(BASE, candidate)
    assert result.verdict == IMPROVEMENT
    for stat in LATENCY_STATS:
        row = result.row(LOGIN, stat)
        assert row.verdict == IMPROVEMENT
        assert row.ci_low is not None and row.ci_high is not None
        assert row.ci_low <= -0.3 <= row.ci_high < -0.05, row
    assert _verdicts(result, REFRESH) == _same(NO_SIGNIFICANT_CHANGE)


def test_error_rate_from_1_to_5_percent_is_a_regression_in_percentage_points() -> None:
    base = one_run(one_endpoint(LOGIN, 5000, 1, error_rate=0.01), one_endpoint(REFRESH, 5000, 2))
    candidate = one_run(
        one_endpoint(LOGIN, 5000, 11, error_rate=0.05), one_endpoint(REFRESH, 5000, 12)
    )
    result = compare_runs(base, candidate)
    assert result.verdict == REGRESSION
    row = result.row(LOGIN, "error_rate")
    assert (row.verdict, row.unit, row.tolerance) == (REGRESSION, "pp", 0.5)
    assert row.base == pytest.approx(0.01, abs=0.004)
    assert row.candidate == pytest.approx(0.05, abs=0.008)
    assert row.base is not None and row.candidate is not None
    assert row.change == pytest.approx((row.candidate - row.base) * 100)
    assert row.relative_change == pytest.approx(row.candidate / row.base - 1)
    assert row.ci_low is not None and row.ci_high is not None
    assert 0.5 < row.ci_low <= 4.0 <= row.ci_high < 6.0
    for stat in LATENCY_STATS:  # errors are answered too: their latencies did not change
        assert result.row(LOGIN, stat).verdict == NO_SIGNIFICANT_CHANGE
    assert _verdicts(result, REFRESH) == _same(NO_SIGNIFICANT_CHANGE)


def test_small_error_rate_changes_are_within_the_absolute_tolerance() -> None:
    base = one_run(one_endpoint(LOGIN, 50000, 1, error_rate=0.001))
    candidate = one_run(one_endpoint(LOGIN, 50000, 11, error_rate=0.003))  # tripled, +0.2 pp
    row = compare_runs(base, candidate).row(LOGIN, "error_rate")
    assert row.verdict == NO_SIGNIFICANT_CHANGE
    assert row.relative_change is not None and row.relative_change > 1.0
    strict = compare_runs(base, candidate, error_tolerance_pp=0.05).row(LOGIN, "error_rate")
    assert strict.verdict == REGRESSION


def test_too_few_samples_is_insufficient_data_never_a_regression() -> None:
    base = one_run(one_endpoint(LOGIN, 1000, 1), one_endpoint(REFRESH, 1000, 2))
    candidate = one_run(
        one_endpoint(LOGIN, 19, 11, scale=3.0, error_rate=0.5),  # much worse, but 19 attempts
        one_endpoint(REFRESH, 1000, 12),
        one_endpoint(SMS, 500, 13),  # not in the base run
    )
    result = compare_runs(base, candidate)
    assert result.verdict == NO_SIGNIFICANT_CHANGE
    assert _verdicts(result, LOGIN) == _same(INSUFFICIENT_DATA)
    assert _verdicts(result, SMS) == _same(INSUFFICIENT_DATA)
    login = result.row(LOGIN, "p50")
    assert login.candidate_count == 19 and login.ci_low is None and login.ci_high is None
    assert login.change is not None and login.change > 1.0  # still shown
    sms = result.row(SMS, "p99")
    assert (sms.base, sms.base_count, sms.change) == (None, 0, None)
    assert [r.endpoint for r in result.rows[:: len(STATS)]] == [LOGIN, SMS, REFRESH, "*"]

    twenty = one_run(one_endpoint(LOGIN, 20, 11, scale=3.0), one_endpoint(REFRESH, 1000, 12))
    assert compare_runs(base, twenty).row(LOGIN, "p50").verdict == REGRESSION


def test_error_rate_and_latency_count_attempts_not_answers() -> None:
    """An endpoint that stopped answering at all: its error rate (every attempt failed) is a
    regression, and its latency rows still compare every attempt (the time until it failed)."""
    base = one_run(one_endpoint(LOGIN, 200, 1))
    down = one_endpoint(LOGIN, 200, 11)
    down["status"], down["error"] = np.int16(0), "connect"
    result = compare_runs(base, down)
    assert result.verdict == REGRESSION
    assert result.row(LOGIN, "error_rate").verdict == REGRESSION
    assert result.row(LOGIN, "error_rate").change == pytest.approx(100.0)
    for stat in ("p50", "p95"):
        row = result.row(LOGIN, stat)
        assert (row.candidate_count, row.note) == (200, ""), row
        assert row.verdict == NO_SIGNIFICANT_CHANGE  # failed after as long as base answered
    p99 = result.row(LOGIN, "p99")
    assert (p99.verdict, p99.note) == (INSUFFICIENT_DATA, "too few samples for p99: 200 < 500")


def test_unanswered_attempts_count_in_latency_with_their_time_to_fail() -> None:
    base = one_run(one_endpoint(LOGIN, 2000, 1))
    candidate = one_endpoint(LOGIN, 2000, 11)
    timed_out = np.arange(2000) % 10 == 0  # 10% time out after 10 s
    candidate.loc[timed_out, ["status", "latency_ms", "error"]] = (0, 10_000.0, "timeout")
    result = compare_runs(base, candidate)
    assert result.verdict == REGRESSION
    row = result.row(LOGIN, "p99")
    assert (row.verdict, row.candidate, row.candidate_count) == (REGRESSION, 10_000.0, 2000)


def test_same_seed_same_intervals_other_seed_other_intervals() -> None:
    candidate = one_run(one_endpoint(LOGIN, 3000, 11, scale=1.1), one_endpoint(REFRESH, 3000, 12))
    first, again = compare_runs(BASE, candidate, seed=7), compare_runs(BASE, candidate, seed=7)
    assert first == again
    assert first.to_json() == again.to_json()
    other = compare_runs(BASE, candidate, seed=8)
    assert [r.change for r in other.rows] == [r.change for r in first.rows]
    assert [r.ci_low for r in other.rows] != [r.ci_low for r in first.rows]
    # a row's interval depends on its own data and on how many rows decide, not on the
    # other endpoints' data
    other_refresh = candidate.copy()
    other_refresh.loc[other_refresh["endpoint"] == REFRESH, "latency_ms"] *= 2.0
    other = compare_runs(BASE, other_refresh, seed=7)
    assert other.deciding == first.deciding
    assert other.row(LOGIN, "p95") == first.row(LOGIN, "p95")
    alone = compare_runs(BASE[BASE["endpoint"] == LOGIN], candidate, seed=7)
    assert alone.deciding < first.deciding  # refresh cannot decide: a narrower correction
    alone_low, first_low = alone.row(LOGIN, "p95").ci_low, first.row(LOGIN, "p95").ci_low
    assert alone_low is not None and first_low is not None and alone_low > first_low


def test_intervals_match_a_bootstrap_that_resamples_the_records() -> None:
    """The order-statistic draws give the interval resampling the records would give."""
    base, candidate = one_endpoint(LOGIN, 400, 1), one_endpoint(LOGIN, 400, 11, scale=1.2)
    resamples, confidence = 20000, 0.7  # 8 rows decide: each row's interval at 96.25%
    result = compare_runs(base, candidate, confidence=confidence, resamples=resamples)
    assert result.deciding == 8  # not p99 on 400 samples: p50, p95, errors, retries, twice
    tail = (1 - result.row_confidence) / 2
    rng = np.random.default_rng(123)
    b, c = base["latency_ms"].to_numpy(), candidate["latency_ms"].to_numpy()
    for stat, q in (("p50", 0.5), ("p95", 0.95)):
        b_reps = np.quantile(
            b[rng.integers(0, b.size, (resamples, b.size))], q, axis=1, method="inverted_cdf"
        )
        c_reps = np.quantile(
            c[rng.integers(0, c.size, (resamples, c.size))], q, axis=1, method="inverted_cdf"
        )
        low, high = np.quantile(c_reps / b_reps - 1, [tail, 1 - tail])
        row = result.row(LOGIN, stat)
        assert row.ci_low == pytest.approx(low, abs=0.01), stat
        assert row.ci_high == pytest.approx(high, abs=0.01), stat
        assert row.base == percentile(b, q) and row.candidate == percentile(c, q)


def test_fifty_thousand_records_per_endpoint_take_well_under_a_second() -> None:
    endpoints = [f"e{i}" for i in range(4)]
    base = one_run(*(one_endpoint(e, 50000, i) for i, e in enumerate(endpoints)))
    candidate = one_run(*(one_endpoint(e, 50000, 10 + i) for i, e in enumerate(endpoints)))
    start = time.perf_counter()
    compare_runs(base, candidate)
    assert time.perf_counter() - start < 1.0


def test_arguments_are_checked() -> None:
    for bad in ({"confidence": 1.0}, {"confidence": 0.0}, {"tolerance": -0.1}, {"resamples": 0}):
        with pytest.raises(ValueError):
            compare_runs(BASE, BASE, **bad)
    with pytest.raises(ValueError, match="lack columns"):
        compare_runs(BASE.drop(columns=["error"]), BASE)


def test_json_round_trips() -> None:
    candidate = one_run(one_endpoint(LOGIN, 5000, 11, scale=1.3), one_endpoint(SMS, 10, 13))
    data = json.loads(compare_runs(BASE, candidate).to_json())
    assert data["verdict"] == REGRESSION
    assert data["tolerance"] == 0.05 and data["error_tolerance_pp"] == 0.5
    rows = {(r["endpoint"], r["stat"]): r for r in data["rows"]}
    assert rows[(LOGIN, "p99")]["verdict"] == REGRESSION
    assert rows[(SMS, "p50")]["base"] is None and rows[(SMS, "p50")]["ci_low"] is None


def _fast(n: int, seed: int, median_ms: float) -> pd.DataFrame:
    """A fast endpoint: latencies within 3% of ``median_ms``."""
    records = one_endpoint(REFRESH, n, seed, median_ms=median_ms)
    rng = np.random.default_rng(seed)
    return records.assign(latency_ms=median_ms * rng.uniform(0.97, 1.03, n))


def test_a_change_under_the_absolute_floor_is_no_verdict() -> None:
    """1.1 -> 1.0 ms: a clear -9% (beyond the 5% tolerance) but 0.1 ms, under the 2 ms
    floor; without the floor it was an improvement. 10 -> 14 ms is beyond both."""
    base, candidate = _fast(5000, 1, 1.1), _fast(5000, 11, 1.0)
    result = compare_runs(base, candidate)
    assert result.verdict == NO_SIGNIFICANT_CHANGE
    assert result.floor_ms == compare_module.FLOOR_MS == 2.0
    row = result.row(REFRESH, "p50")
    assert row.change == pytest.approx(-0.09, abs=0.02)
    assert row.ci_high is not None and row.ci_high < -0.05  # past the relative tolerance
    assert (row.verdict, row.note) == (NO_SIGNIFICANT_CHANGE, "change within the 2 ms floor")
    assert row.base is not None and row.tolerance == pytest.approx(2.0 / row.base)
    assert compare_runs(base, candidate, floor_ms=0).row(REFRESH, "p50").verdict == IMPROVEMENT
    slower = compare_runs(_fast(5000, 1, 10.0), _fast(5000, 11, 14.0)).row(REFRESH, "p50")
    assert (slower.verdict, slower.note) == (REGRESSION, "")
    assert slower.tolerance == pytest.approx(0.2, rel=0.01)  # 2 ms of a 10 ms base


def test_the_floor_is_at_least_the_records_resolution() -> None:
    """Latencies recorded in steps of 5 ms: a 5 ms change is one step, no verdict."""
    base = _fast(5000, 1, 20.0).assign(latency_ms=20.0)
    base.loc[::10, "latency_ms"] = 25.0
    candidate = base.assign(latency_ms=base["latency_ms"] - 5.0)  # 20/25 -> 15/20 ms
    result = compare_runs(base, candidate)
    assert (result.resolution_ms, result.floor_ms) == (5.0, 5.0)
    row = result.row(REFRESH, "p50")
    assert (row.change, row.ci_low, row.ci_high) == (-0.25, -0.25, -0.25)  # 20 -> 15 ms
    assert (row.verdict, row.note) == (NO_SIGNIFICANT_CHANGE, "change within the 5 ms floor")
    assert (
        compare_runs(base, candidate.assign(latency_ms=candidate["latency_ms"] - 5))
        .row(REFRESH, "p50")
        .verdict
        == IMPROVEMENT
    )  # 20 -> 10 ms: two steps
    resolution = compare_module.latency_resolution
    assert resolution(_fast(5000, 1, 1.0)) == resolution(BASE) == 0.0  # a fine clock
    assert resolution(BASE.assign(latency_ms=BASE["latency_ms"].round(1))) == pytest.approx(0.1)


def test_retry_amplification_is_attempts_per_operation() -> None:
    """Policy none (one attempt each) against immediate retries (half the operations took 2
    attempts, half 3): 2.5 attempts per operation, a regression of +150%."""
    none = one_run(one_endpoint(LOGIN, 3000, 1), one_endpoint(REFRESH, 3000, 2))
    immediate = one_run(
        _retried(one_endpoint(LOGIN, 3000, 11), [2, 3]),
        one_endpoint(REFRESH, 3000, 12, median_ms=40),
    )
    result = compare_runs(none, immediate)
    assert result.verdict == REGRESSION
    row = result.row(LOGIN, "amplification")
    assert (row.base, row.candidate) == (1.0, 2.5)
    assert (row.base_count, row.candidate_count) == (3000, 1200)  # operations
    assert (row.unit, row.change, row.verdict) == ("relative", 1.5, REGRESSION)
    assert row.ci_low is not None and row.ci_high is not None
    assert row.ci_low <= 1.5 <= row.ci_high and row.ci_high - row.ci_low < 0.1
    assert result.row(REFRESH, "amplification").verdict == NO_SIGNIFICANT_CHANGE
    overall = result.row("*", "amplification")
    assert overall.candidate == pytest.approx(6000 / 4200)  # attempts / operations
    # the same operation ids in another process are other operations
    two_workers = one_run(
        _retried(one_endpoint(LOGIN, 1500, 1), [2, 3], "w0"),
        _retried(one_endpoint(LOGIN, 1500, 2), [2, 3], "w1"),
    )
    assert compare_runs(two_workers, immediate).row(LOGIN, "amplification").base == 2.5


def test_amplification_needs_operations_in_the_records() -> None:
    bare = BASE.drop(columns=["worker", "op_id"])
    result = compare_runs(bare, BASE)
    row = result.row(LOGIN, "amplification")
    assert (row.verdict, row.base) == (INSUFFICIENT_DATA, None)
    assert row.note.startswith("no operations in the records (op_id, worker)")
    assert result.row(LOGIN, "p50").verdict == NO_SIGNIFICANT_CHANGE  # the rest still compares
    few = compare_runs(BASE, _retried(one_endpoint(LOGIN, 45, 11), [3]))
    assert few.row(LOGIN, "amplification").note == ("too few operations for amplification: 15 < 20")


def test_setup_differences_name_what_differs(tmp_path: Path) -> None:
    def setup(name: str, scenario: dict[str, Any], target: str = "mock") -> compare_module.RunSetup:
        directory = tmp_path / name
        directory.mkdir()
        documents.manifest(directory, scenario, target)
        return compare_module.load_setup(directory)

    gate = {"name": "gate", "load": {"model": "open"}, "retry": {"policy": "none"}}
    base = setup("base", gate)
    assert base == compare_module.RunSetup("gate", "mock", "open", "none")
    assert compare_module.setup_differences(base, setup("same", gate)) == []
    other = {"name": "smoke", "load": {"model": "closed"}, "retry": {"policy": "immediate"}}
    assert compare_module.setup_differences(base, setup("other", other, "beta")) == [
        "the runs differ in scenario: gate vs smoke",
        "the runs differ in target: mock vs beta",
        "the runs differ in load model: open vs closed",
        "the runs differ in retry policy: none vs immediate",
    ]
    unknown = compare_module.load_setup(tmp_path / "nowhere")  # no manifest: nothing to say
    assert unknown == compare_module.RunSetup(None, None, None, None)
    assert compare_module.setup_differences(base, unknown) == []


# --- run directories and the command ---------------------------------------------------


def test_load_run_records_reads_a_run_directory(tmp_path: Path) -> None:
    records = one_run(one_endpoint(LOGIN, 100, 1, error_rate=0.1), one_endpoint(REFRESH, 50, 2))
    frame = load_run_records(write_run(tmp_path / "run", records))
    assert list(frame.columns) == list(compare_module.COLUMNS)
    assert len(frame) == 150
    assert frame["error"].notna().sum() == (records["error"].notna()).sum()


def test_load_run_records_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such run directory"):
        load_run_records(tmp_path / "missing")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ResultsError, match="not a run directory"):
        load_run_records(tmp_path / "file")
    with pytest.raises(ResultsError, match="not a run directory"):
        load_run_records(tmp_path)
    (tmp_path / RECORDS_DIR).mkdir()
    with pytest.raises(ResultsError, match="not finalized"):
        load_run_records(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MANIFEST_FILE).write_text("{}", encoding="utf-8")
    (broken / RECORDS_FILE).write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="unreadable"):
        load_run_records(broken)


def _authload(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authload", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    refresh = one_endpoint(REFRESH, 3000, 2, median_ms=15.0)
    return {
        "base": write_run(root / "base", one_run(one_endpoint(LOGIN, 3000, 1), refresh)),
        "same": write_run(root / "same", one_run(one_endpoint(LOGIN, 3000, 11), refresh)),
        "slower": write_run(
            root / "slower", one_run(one_endpoint(LOGIN, 3000, 11, scale=1.3), refresh)
        ),
        "faster": write_run(
            root / "faster", one_run(one_endpoint(LOGIN, 3000, 11, scale=0.7), refresh)
        ),
        "retried": write_run(
            root / "retried",
            one_run(_retried(one_endpoint(LOGIN, 3000, 11), [2, 3]), refresh),
            retry="immediate",
        ),
    }


def test_command_exits_1_on_a_regression_and_prints_the_table(runs: dict[str, Path]) -> None:
    result = _authload("compare", runs["base"], runs["slower"])
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "verdict: REGRESSION"
    assert "95% intervals, simultaneous over the " in lines[1]
    login_p99 = next(line for line in lines if line.startswith(LOGIN) and " p99 " in line)
    assert login_p99.endswith(" regression") and " ms " in login_p99 and "%" in login_p99
    refresh_p99 = next(line for line in lines if line.startswith(REFRESH) and " p99 " in line)
    assert refresh_p99.endswith(" no significant change")
    assert any(line.startswith(LOGIN) and " pp" in line for line in lines)  # error rate


def test_command_exits_0_without_a_regression(runs: dict[str, Path]) -> None:
    same = _authload("compare", runs["base"], runs["same"])
    assert same.returncode == 0, same.stderr
    assert same.stdout.splitlines()[-1] == "verdict: NO SIGNIFICANT CHANGE"


def test_command_improvement_and_tolerance(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(runs["base"]), str(runs["faster"])]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: IMPROVEMENT"
    assert main(["compare", str(runs["base"]), str(runs["slower"]), "--tolerance", "0.5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: NO SIGNIFICANT CHANGE"


def test_command_warns_of_another_retry_policy_and_shows_the_amplification(
    runs: dict[str, Path],
) -> None:
    result = _authload("compare", runs["base"], runs["retried"])
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == (
        "warning: the runs differ in retry policy: none vs immediate: their figures measure "
        "different things"
    )
    assert "or within 2 ms" in lines[2]
    row = next(line for line in lines if line.startswith(LOGIN) and " amplification " in line)
    assert row.split()[2:6] == ["1.00", "x", "2.50", "x"] and row.endswith(" regression")
    data = json.loads(_authload("compare", runs["base"], runs["retried"], "--json").stdout)
    assert data["warnings"] == ["the runs differ in retry policy: none vs immediate"]
    assert _authload("compare", runs["base"], runs["same"]).stdout.count("warning") == 0


def test_command_json_parses(runs: dict[str, Path]) -> None:
    result = _authload("compare", runs["base"], runs["slower"], "--json", "--confidence", "0.9")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["verdict"] == REGRESSION and data["confidence"] == 0.9
    assert data["base"] == str(runs["base"]) and data["candidate"] == str(runs["slower"])
    verdicts = {(r["endpoint"], r["stat"]): r["verdict"] for r in data["rows"]}
    assert verdicts[(LOGIN, "p50")] == REGRESSION
    assert verdicts[(REFRESH, "p50")] == NO_SIGNIFICANT_CHANGE


def test_command_exits_2_on_a_directory_that_is_not_a_run(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    result = _authload("compare", runs["base"], tmp_path)
    assert result.returncode == 2
    assert "not a run directory" in result.stderr and str(tmp_path) in result.stderr
    assert result.stdout == ""


def test_command_bad_input_is_exit_2(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(tmp_path / "nope"), str(runs["base"])]) == 2
    assert "no such run directory" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    (unfinished / RECORDS_DIR).mkdir(parents=True)
    assert main(["compare", str(runs["base"]), str(unfinished)]) == 2
    assert "not finalized" in capsys.readouterr().err
    assert main(["compare", str(runs["base"]), str(runs["same"]), "--confidence", "95"]) == 2
    assert "--confidence" in capsys.readouterr().err


def _same_distribution_run(rng: np.random.Generator, n: int) -> pd.DataFrame:
    endpoints = [LOGIN, REFRESH, SMS, "mobile.lkfl_auth"]
    size = n * len(endpoints)
    return pd.DataFrame(
        {
            "endpoint": np.repeat(endpoints, n),
            "status": 200,
            "latency_ms": rng.lognormal(np.log(40.0), 0.6, size),
            "error": ["http" if failed else None for failed in rng.random(size) < 0.02],
        }
    )


@pytest.mark.parametrize(("n", "tolerance", "trials"), [(100, 0.05, 150), (600, 0.0, 100)])
def test_runs_from_one_distribution_are_rarely_called_a_regression(
    n: int, tolerance: float, trials: int
) -> None:
    """20 rows decide, yet the family-wise rate of false verdicts stays near 1 - confidence
    (5%; 2.5% each way). Without the correction: 17% false regressions at 100 requests per
    endpoint, 33% at 600 with no tolerance."""
    rng = np.random.default_rng(2024)
    verdicts = [
        compare_runs(
            _same_distribution_run(rng, n),
            _same_distribution_run(rng, n),
            tolerance=tolerance,
            error_tolerance_pp=tolerance * 10,
            resamples=500,
            seed=trial,
        ).verdict
        for trial in range(trials)
    ]
    regressions = verdicts.count(REGRESSION) / trials
    false_verdicts = regressions + verdicts.count(IMPROVEMENT) / trials
    assert regressions <= 0.05, regressions
    assert false_verdicts <= 0.08, false_verdicts


def test_p99_needs_five_samples_beyond_it_to_decide() -> None:
    base = one_run(one_endpoint(LOGIN, 499, 1), one_endpoint(REFRESH, 500, 2))
    candidate = one_run(
        one_endpoint(LOGIN, 499, 11, scale=3.0), one_endpoint(REFRESH, 500, 12, scale=3.0)
    )
    result = compare_runs(base, candidate)
    login, refresh = result.row(LOGIN, "p99"), result.row(REFRESH, "p99")
    assert (login.verdict, login.ci_low) == (INSUFFICIENT_DATA, None)
    assert login.note == "too few samples for p99: 499 < 500"
    assert login.change is not None and login.change > 1.0  # still shown
    assert (refresh.verdict, refresh.note) == (REGRESSION, "")
    assert result.row(LOGIN, "p95").verdict == REGRESSION  # 100 suffice for p95
    assert compare_module.min_count("p50") == 20 and compare_module.min_count("p95") == 100


def _journeys(
    flow: str, ok: int, failed: int, dropped: int = 0, open_model: bool = True
) -> pd.DataFrame:
    outcomes = ["completed"] * ok + ["failed:mobile.refresh:http"] * failed + ["dropped"] * dropped
    n = len(outcomes)
    return pd.DataFrame(
        {
            "t_start": np.arange(n, dtype=float),
            "t_end": np.arange(n, dtype=float) + 1.0,
            "waited_ms": np.zeros(n),
            "flow": [flow] * n,
            "flow_id": [f"w0-{i}" for i in range(n)],
            "outcome": outcomes,
            "kind": ["journey"] * n,
            "worker": ["w0"] * n,
            "duration_ms": np.full(n, 1000.0),
        }
    )


def test_failed_journeys_and_dropped_arrivals_are_rows_that_decide() -> None:
    records = one_run(one_endpoint("mobile.refresh", 200, 1))
    base = _journeys("sms", ok=495, failed=5)
    candidate = pd.concat(
        [_journeys("sms", ok=400, failed=50, dropped=50), _journeys("esia", ok=100, failed=0)],
        ignore_index=True,
    )
    result = compare_runs(records, records, journeys=(base, candidate))
    sms = result.row("journey sms", "journey_failures")
    assert sms.base == pytest.approx(0.01) and sms.candidate == pytest.approx(0.2)
    assert sms.verdict == REGRESSION  # dropped arrivals count as failed journeys
    esia = result.row("journey esia", "journey_failures")
    assert esia.verdict == INSUFFICIENT_DATA and "too few" in esia.note  # none in the base
    dropped = result.row("arrivals", "dropped")
    assert (dropped.base, dropped.candidate) == (0.0, pytest.approx(50 / 600))
    assert dropped.verdict == REGRESSION
    assert result.verdict == REGRESSION
    same = compare_runs(records, records, journeys=(base, base))
    assert same.row("journey *", "journey_failures").verdict == NO_SIGNIFICANT_CHANGE
    without = compare_runs(records, records)  # runs without journey records: no such rows
    assert not [r for r in without.rows if r.stat in ("journey_failures", "dropped")]
