"""`authload capacity`: the search's decisions, step judgement, knee, first breach and the USL
fit on synthetic data; the page; the CLI's refusals; and the ground truth on a real mock of
known capacity."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from junitparser import JUnitXml

from authload.capacity.curve import find_knee, first_breach
from authload.capacity.document import describe
from authload.capacity.driver import run_capacity
from authload.capacity.judge import TAIL_S, judge_step, step_window
from authload.capacity.options import CapacityOptions
from authload.capacity.page import capacity_figures, render_capacity_report
from authload.capacity.search import (
    ClosedSweep,
    Decision,
    OpenBisection,
    bracket,
    next_rate,
    next_users,
    search_for,
    step_scenario,
)
from authload.capacity.stops import SoFar, Stopped, stop_on_failed_step, stop_when_budget_spent
from authload.capacity.usl import UslFitError, fit_usl, usl
from authload.cli import main
from authload.run.console import RecordingConsole
from authload.rundir.capacity import CapacityDocument
from authload.scenario.loader import load_scenario
from tests.helpers.runs import SCENARIOS, authload

# ------------------------------------------------------------------------ the search


def test_open_search_steps_up_geometrically_then_bisects_to_the_precision() -> None:
    kw: dict[str, Any] = {"start": 10.0, "factor": 2.0, "precision": 0.05}
    assert next_rate([], **kw) == Decision(10.0, "start")
    assert next_rate([(10, True)], **kw) == Decision(20.0, "step_up")
    assert next_rate([(10, True), (20, True)], **kw) == Decision(40.0, "step_up")
    # the first failure: bisect between the last pass and it, geometrically
    steps = [(10, True), (20, True), (40, False)]
    assert next_rate(steps, **kw) == Decision(28.28, "bisect")
    steps += [(28.28, False)]
    assert next_rate(steps, **kw) == Decision(23.78, "bisect")
    steps += [(23.78, True)]
    assert next_rate(steps, **kw) == Decision(25.93, "bisect")
    steps += [(25.93, True)]  # 28.28 / 25.93 = 1.09
    assert next_rate(steps, **kw) == Decision(27.08, "bisect")
    steps += [(27.08, False)]  # 27.08 / 25.93 = 1.044 <= 1.05
    assert next_rate(steps, **kw) == Decision(None, "precision")
    assert bracket(steps) == (25.93, 27.08)


def test_open_search_stops_below_the_start_and_at_the_maximum() -> None:
    kw: dict[str, Any] = {"start": 10.0, "factor": 2.0, "precision": 0.05}
    assert next_rate([(10, False)], **kw) == Decision(None, "below_start")
    assert next_rate([(10, True), (20, True)], **kw, maximum=30) == Decision(30.0, "step_up")
    assert next_rate([(10, True), (30, True)], **kw, maximum=30) == Decision(None, "max_reached")
    # a failure at the maximum still brackets
    assert next_rate([(10, True), (30, False)], **kw, maximum=30).reason == "bisect"


def test_a_pass_above_a_failure_is_not_trusted() -> None:
    steps = [(10, True), (40, False), (20, False), (30, True)]  # 30 passed by luck
    assert bracket(steps) == (10, 20)
    decision = next_rate(steps, start=10, factor=2, precision=0.05)
    assert decision == Decision(14.14, "bisect")


def test_bisection_stops_when_rounding_leaves_no_level_between() -> None:
    assert next_rate([(100.0, True), (100.1, False)], start=1, factor=2, precision=0.0001) == (
        Decision(None, "precision")
    )


def test_closed_steps_double_users_and_stop_once_saturated() -> None:
    kw: dict[str, Any] = {"start": 1, "factor": 2.0, "maximum": 64}
    assert next_users([], **kw) == Decision(1, "start")
    assert next_users([(1, 10.0)], **kw) == Decision(2, "step_up")
    assert next_users([(1, 10.0)], start=1, factor=1.2, maximum=64) == Decision(2, "step_up")
    growing = [(1, 10.0), (2, 19.0), (4, 35.0)]
    assert next_users(growing, **kw) == Decision(8, "step_up")
    flat = [*growing, (8, 35.3), (16, 34.0)]  # two steps adding under 2% over 35
    assert next_users(flat, **kw) == Decision(None, "saturated")
    assert next_users([(1, 10.0), (2, 19.0), (4, 35.0)], start=1, factor=2, maximum=4) == (
        Decision(None, "max_reached")
    )
    assert next_users([(1, 10.0), (2, 19.0)], start=1, factor=2, maximum=3) == Decision(
        3, "step_up"
    )


def test_the_options_pick_one_search_and_both_answer_the_same_call() -> None:
    ok = judge_step(_records(_steady(5, 20, 50.0)), ["p99(*) < 100ms"], 1000, 1005)
    bad = judge_step(_records(_steady(5, 20, 900.0)), ["p99(*) < 100ms"], 1000, 1005)
    search = search_for(CapacityOptions(start=10, factor=2, maximum=30))
    assert search == OpenBisection(start=10, factor=2, precision=0.05, maximum=30)
    assert (search.unit, search.mode) == ("journeys/s", "open")
    assert search.next([]) == Decision(10, "start")
    assert search.next([(10, ok)]) == Decision(20.0, "step_up")
    assert search.next([(10, ok), (20, bad)]) == Decision(14.14, "bisect")
    sweep = search_for(CapacityOptions(closed=True, start=1, factor=2, maximum=4))
    assert sweep == ClosedSweep(start=1, factor=2, maximum=4)
    assert (sweep.unit, sweep.mode) == ("users", "closed")
    assert sweep.next([(1, ok), (2, ok)]) == Decision(4, "step_up")
    assert sweep.next([(1, ok), (2, ok), (4, bad)]).reason == "saturated"  # no more ok/s


def test_stops_compose_and_the_first_to_stop_says_how() -> None:
    stop = stop_on_failed_step() | stop_when_budget_spent(100)
    assert stop(SoFar([], 500.0)) is None  # the first step always runs
    passed = {"verdict": "pass", "reasons": [], "wall_s": 30.0}
    assert stop(SoFar([passed], 70.0)) is None  # the next step expected to end at 100 s
    assert stop(SoFar([passed], 70.5)) == Stopped("completed", "budget", "70 s of 100 s used")
    aborted = {"verdict": "aborted", "reasons": ["abort rule", "Ctrl-C"], "wall_s": 10.0}
    assert stop(SoFar([passed, aborted], 95.0)) == Stopped(
        "aborted", "aborted", "abort rule; Ctrl-C"
    )


# ---------------------------------------------------------------------------- the knee


def test_knee_is_where_latency_climbs_faster_than_throughput() -> None:
    rates = [10, 20, 40, 60, 70, 75, 80, 90]
    throughput = [10, 20, 40, 60, 70, 74, 75, 75]  # saturates at 75
    p99 = [20, 20, 21, 22, 24, 30, 80, 400]
    knee = find_knee(rates, throughput, p99)
    assert knee is not None
    # 70 -> 75: throughput x1.057, latency x1.25: elasticity 4 > 1, and a rise over 10%
    assert (knee.level, knee.next_level) == (70, 75)
    assert knee.elasticity == pytest.approx(math.log(30 / 24) / math.log(74 / 70))


def test_no_knee_while_latency_grows_slower_than_throughput() -> None:
    rates = [10, 20, 40, 80]
    assert find_knee(rates, rates, [20, 21, 22, 22.5]) is None  # flat latency
    assert find_knee(rates, rates, [20, 25, 31, 38]) is None  # x1.25 per doubling: e < 1
    # noise under 10% never makes a knee, even with no throughput gain
    assert find_knee([78, 79, 80], [78, 78, 78], [100, 108, 101]) is None


def test_knee_with_throughput_falling_and_unsorted_input() -> None:
    knee = find_knee([80, 40, 20, 60], [50, 40, 20, 55], [900, 30, 30, 31])
    assert knee is not None
    assert (knee.level, knee.next_level, knee.elasticity) == (60, 80, math.inf)
    assert find_knee([], [], []) is None
    assert find_knee([1.0], [1.0], [1.0]) is None


# ------------------------------------------------------------------------- a step's judgement


def _records(
    rows: list[tuple[float, str, int, float, str | None]], t0: float = 1000.0
) -> pd.DataFrame:
    """Records from (t since t0, endpoint, status, latency ms, error)."""
    return pd.DataFrame(
        {
            "t": [t0 + r[0] for r in rows],
            "t_intended": [t0 + r[0] for r in rows],
            "endpoint": [r[1] for r in rows],
            "status": [r[2] for r in rows],
            "latency_ms": [r[3] for r in rows],
            "error": [r[4] for r in rows],
        }
    )


def _steady(
    seconds: float, rate: float, latency: float, endpoint: str = "gigma.login"
) -> list[Any]:
    n = int(seconds * rate)
    return [(i / rate, endpoint, 200, latency, None) for i in range(n)]


def test_warm_up_is_left_out_of_the_judgement() -> None:
    slow_start = [(t, e, s, 900.0, err) for t, e, s, _, err in _steady(2, 50, 0)]
    rest = [(2 + t, e, s, lat, err) for t, e, s, lat, err in _steady(8, 50, 40.0)]
    records = _records(slow_start + rest)
    slos = ["p99(gigma.login) < 100ms"]
    start, end = step_window(records, warmup_s=2, measure_s=8, open_model=True)
    assert (start, end) == (1002.0, 1010.0 - TAIL_S)
    judged = judge_step(records, slos, start, end)
    assert judged.passed, judged.reasons
    assert judged.p99_ms == 40.0
    assert judged.requests == 7 * 50
    # throughput counts what ended in the window: 348 of its own (the last 2 end after
    # it) and 45 slow warm-up requests (sent from 1.1 s on, 0.9 s each)
    assert judged.throughput_rps == pytest.approx((348 + 45) / 7)
    # the same records with no warm-up left out fail
    judged = judge_step(records, slos, 1000.0, end)
    assert not judged.passed
    assert judged.reasons == ["p99(gigma.login) < 100ms (measured 900 on gigma.login)"]


def test_step_window_open_from_the_schedule_closed_from_the_first_request() -> None:
    records = _records(_steady(10, 10, 5.0))
    records.loc[0, "t"] += 0.3  # the first arrival was sent late; it was due at t0
    assert step_window(records, 2, 8, open_model=True, tail_s=0) == (1002.0, 1010.0)
    closed = records.assign(t_intended=np.nan)
    assert step_window(closed, 2, 8, open_model=False, tail_s=1) == (1000.1 + 2, 1000.1 + 9)
    assert all(math.isnan(v) for v in step_window(records.iloc[:0], 2, 8, True))


def test_a_failing_slo_over_all_endpoints_names_the_worst_endpoint() -> None:
    rows = _steady(10, 20, 30.0, "mobile.refresh") + _steady(10, 10, 30.0, "gigma.login")
    rows += [(5.0 + i / 10, "gigma.login", 503, 2.0, "http") for i in range(20)]
    records = _records(rows)
    judged = judge_step(records, ["error_rate(*) < 1%", "p99(*) < 100ms"], 1000, 1010)
    assert not judged.passed
    broken = [o for o in judged.slos if not o.passed]
    assert [(o.slo, o.endpoint) for o in broken] == [("error_rate(*) < 1%", "gigma.login")]
    assert broken[0].value == pytest.approx(100 * 20 / 320)
    assert judged.error_rate == pytest.approx(20 / 320)
    assert judged.ok_rps == pytest.approx(30.0, rel=0.02)  # ended in the window, no error


def test_throughput_counts_what_ended_in_the_window() -> None:
    # 100/s sent, each taking 2 s: over a 4-s window starting at 0, only those sent in the
    # first 2 s have ended
    records = _records(_steady(4, 100, 2000.0))
    judged = judge_step(records, ["p99(*) < 5s"], 1000, 1004)
    assert judged.requests == 400
    assert judged.throughput_rps == pytest.approx(50.0, rel=0.01)


def test_dropped_arrivals_climbing_latency_and_an_empty_window_fail() -> None:
    records = _records(_steady(9, 20, 20.0))
    assert judge_step(records, ["p99(*) < 1s"], 1000, 1009).passed
    dropped = judge_step(records, ["p99(*) < 1s"], 1000, 1009, dropped_arrivals=3)
    assert not dropped.passed
    assert dropped.reasons == ["3 arrivals dropped (journeys in flight at max_in_flight)"]

    climbing = _records([(i / 20, "gigma.login", 200, 20 + 10 * i / 20, None) for i in range(180)])
    judged = judge_step(climbing, ["p99(*) < 1s"], 1000, 1009)
    assert not judged.passed and not judged.steady
    assert judged.reasons[0].startswith("not steady: median latency still climbing")

    empty = judge_step(records, ["p99(*) < 1s"], 2000, 2009)
    assert not empty.passed
    assert "no requests in the measured window" in empty.reasons


def test_first_breach_is_at_the_lowest_failing_level_the_slo_furthest_past() -> None:
    ok = judge_step(
        _records(_steady(5, 20, 50.0)), ["p99(*) < 100ms", "error_rate(*) < 1%"], 1000, 1005
    )
    rows = _steady(5, 20, 150.0) + [(1 + i / 10, "gigma.login", 503, 1.0, "http") for i in range(2)]
    bad = judge_step(_records(rows), ["p99(*) < 100ms", "error_rate(*) < 1%"], 1000, 1005)
    worse = judge_step(_records(_steady(5, 20, 900.0)), ["p99(*) < 100ms"], 1000, 1005)
    assert first_breach([(10, ok)]) is None
    breach = first_breach([(40, worse), (10, ok), (20, bad)])
    assert breach is not None
    # at 20 both broke: p99 150 ms against 100 ms is x1.5, 2/102 = 1.96% errors against 1%
    # is x1.96, so the error rate is the one furthest past its threshold
    assert (breach.level, breach.slo, breach.endpoint) == (20, "error_rate(*) < 1%", "gigma.login")
    assert breach.value == pytest.approx(100 * 2 / 102)


# --------------------------------------------------------------------------- the USL fit


N_LEVELS = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64], dtype=float)
TRUTH = {"lam": 100.0, "sigma": 0.05, "kappa": 0.001}


def test_usl_fit_recovers_known_parameters_from_noisy_data() -> None:
    rng = np.random.default_rng(42)
    x = usl(N_LEVELS, **TRUTH) * (1 + rng.normal(0, 0.02, N_LEVELS.size))  # 2% noise
    fit = fit_usl(N_LEVELS, x)
    assert fit.lam == pytest.approx(TRUTH["lam"], rel=0.06)
    assert fit.sigma == pytest.approx(TRUTH["sigma"], abs=0.02)
    assert fit.kappa == pytest.approx(TRUTH["kappa"], rel=0.25)
    n_peak = math.sqrt((1 - TRUTH["sigma"]) / TRUTH["kappa"])  # 30.8 users
    assert fit.n_peak == pytest.approx(n_peak, rel=0.1)
    assert fit.x_peak == pytest.approx(float(usl(n_peak, **TRUTH)), rel=0.05)
    assert fit.r2 > 0.99
    assert fit.points == 10
    for name in ("lam", "sigma", "kappa"):
        low, high = getattr(fit, f"{name}_ci")
        assert low < getattr(fit, name) < high
        assert getattr(fit, f"{name}_se") > 0
    assert fit.predict([n_peak])[0] == pytest.approx(fit.x_peak, rel=0.01)


def test_usl_fit_is_exact_without_noise_and_its_intervals_cover_the_truth() -> None:
    exact = fit_usl(N_LEVELS, usl(N_LEVELS, **TRUTH))
    assert (exact.lam, exact.sigma, exact.kappa) == pytest.approx(
        (TRUTH["lam"], TRUTH["sigma"], TRUTH["kappa"]), rel=1e-4
    )
    assert exact.r2 == pytest.approx(1.0)
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        fit = fit_usl(N_LEVELS, usl(N_LEVELS, **TRUTH) * (1 + rng.normal(0, 0.02, N_LEVELS.size)))
        covered += all(
            getattr(fit, f"{k}_ci")[0] <= v <= getattr(fit, f"{k}_ci")[1] for k, v in TRUTH.items()
        )
    assert covered >= 28  # nominal 95% per parameter; at least 70% jointly


def test_usl_fit_without_coherency_has_no_peak() -> None:
    n = np.array([1, 2, 4, 8, 16], dtype=float)
    fit = fit_usl(n, usl(n, 50.0, 0.1, 0.0))
    assert fit.kappa == pytest.approx(0.0, abs=1e-6)
    if fit.kappa == 0:
        assert math.isinf(fit.n_peak)
        assert fit.x_peak == pytest.approx(50.0 / fit.sigma)
    assert fit.sigma == pytest.approx(0.1, rel=0.01)


@pytest.mark.parametrize(
    ("n", "x", "message"),
    [
        ([1, 2, 4], [10, 19, 35], "4 or more distinct concurrency levels; got 3"),
        ([1, 2, 2, 4, 4], [10, 19, 19, 35, 35], "got 3"),
        ([1, 2, 4, 8, 16], [40, 40, 40.1, 40, 39.9], "throughput is flat"),
        ([1, 2, 4, 8], [10, 0, 35, 50], "throughput > 0"),
        ([0, 2, 4, 8], [10, 20, 35, 50], "concurrency must be >= 1"),
        ([1, 2, 4, 8], [10, 20, math.nan, 50], "finite"),
        ([1, 2, 4, 8], [10, 20, 35], "equal-length"),
    ],
)
def test_usl_fit_refuses_degenerate_data(n: list[float], x: list[float], message: str) -> None:
    with pytest.raises(UslFitError, match=message.replace("(", r"\(")):
        fit_usl(n, x)


# ------------------------------------------------------------------- scenario, page, text


def test_each_step_is_the_scenario_at_one_level_with_warm_up_and_no_events() -> None:
    scenario = load_scenario(SCENARIOS / "smoke.yaml")
    step = step_scenario(scenario, 42.5, CapacityOptions(step_s=30, warmup_s=10))
    assert step.load.model == "open"
    assert [(s.duration_s, s.rate) for s in step.load.stages] == [(10, 42.5), (20, 42.5)]
    assert step.events == []
    assert (step.mix, step.slos, step.retry, step.name) == (
        scenario.mix,
        scenario.slos,
        scenario.retry,
        scenario.name,
    )
    closed = step_scenario(scenario, 8, CapacityOptions(closed=True, step_s=30, warmup_s=0))
    assert [(s.duration_s, s.users) for s in closed.load.stages] == [(30, 8)]


def _capacity_data(mode: str = "open") -> CapacityDocument:
    steps = []
    for i, (level, verdict, p99) in enumerate(
        [(10, "pass", 100.0), (20, "pass", 101.0), (40, "fail", 300.0), (28.28, "fail", 250.0)]
    ):
        steps.append(
            {
                "index": i + 1, "level": level, "chosen_by": "step_up", "verdict": verdict,
                "run_dir": f"2026-step{i}", "throughput_rps": min(level, 25.0),
                "ok_rps": min(level, 25.0), "p50_ms": p99 / 2, "p95_ms": p99, "p99_ms": p99,
                "error_rate": 0.0 if verdict == "pass" else 0.02,
                "reasons": [] if verdict == "pass" else ["p99(*) < 200ms (measured 300)"],
            }
        )  # fmt: skip
    usl_part = None
    if mode == "closed":
        fit = fit_usl([1, 2, 4, 8], [10, 19, 33, 45])
        usl_part = {"model": "USL", **{k: getattr(fit, k) for k in fit.__dataclass_fields__}}
        usl_part["n_peak"] = None if math.isinf(fit.n_peak) else fit.n_peak
    return CapacityDocument.model_validate({
        "kind": "authload-capacity", "scenario": "t", "scenario_file": "t.yaml", "mode": mode,
        "unit": "users" if mode == "closed" else "journeys/s", "target": "mock",
        "status": "completed", "stop_reason": "precision", "stop_detail": "",
        "start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:05:00+00:00",
        "elapsed_s": 300.0, "settings": {"precision": 0.05}, "slos": ["p99(*) < 200ms"],
        "capacity": {"level": 20, "unit": "journeys/s", "bracket": [20, 28.28], "found": True,
                     "bounded": True, "ok_rps": 20.0, "p99_ms": 101.0,
                     "note": "capacity 20/s: the highest level that met every SLO"},
        "knee": {"level": 20, "throughput_rps": 20.0, "latency_ms": 101.0, "next_level": 28.28,
                 "elasticity": None},
        "first_breach": {"level": 28.28, "slo": "p99(*) < 200ms", "endpoint": "gigma.login",
                         "value": 250.0, "threshold": 200.0, "reasons": []},
        "usl": usl_part, "steps": steps, "exit_code": 0,
    })  # fmt: skip


def test_the_page_has_the_three_plots_the_capacity_and_links_to_each_step(tmp_path: Path) -> None:
    data = _capacity_data()
    assert [t for t, _ in capacity_figures(data)] == [
        "Throughput vs offered load",
        "p99 latency vs offered load",
        "Error rate vs offered load",
    ]
    page = render_capacity_report(data, directory=None)
    assert "<title>authload capacity: t</title>" in page
    assert "20 journeys/s" in page
    assert page.count("data:image/png;base64,") == 3
    assert '<a href="2026-step2/report.html">2026-step2</a>' in page
    assert "p99(*) &lt; 200ms on gigma.login" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "Scalability model" not in page

    closed = render_capacity_report(_capacity_data("closed"), directory=tmp_path)
    assert "Scalability model (Universal Scalability Law fit)" in closed
    assert "extrapolation" in closed
    assert "<a href=" not in closed  # no step directories under tmp_path: no dead links


def test_describe_prints_capacity_knee_breach_and_the_model() -> None:
    lines = describe(_capacity_data("closed"))
    text = "\n".join(lines)
    assert lines[0].split()[:3] == ["step", "users", "verdict"]
    assert "capacity: capacity 20/s" in text
    assert "knee: 20 users" in text
    assert "first SLO to break: p99(*) < 200ms at 28.28 users, on gigma.login" in text
    assert "USL model (a fit, not a measurement): lambda" in text


# ------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--precision", "0"], "--precision"),
        (["--precision", "0.9"], "--precision"),
        (["--factor", "1"], "--factor"),
        (["--start", "-5"], "--start"),
        (["--closed", "--start", "1.5"], "--start"),
        (["--start", "50", "--max", "10"], "--max"),
        (["--max", "10"], "--max"),  # below the scenario's peak rate, the default start
        (["--closed", "--max", "2.5"], "--max"),
        (["--step", "10", "--warmup", "9.5"], "--warmup"),
        (["--step", "60", "--budget", "30"], "--budget"),
        (["--processes", "0"], "--processes"),
    ],
)
def test_cli_refuses_bad_options_naming_them(
    args: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["capacity", str(SCENARIOS / "capacity.yaml"), "--out", str(tmp_path), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("authload: error: ") and named in err, err
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written


def test_cli_refuses_unparsable_numbers_and_bad_scenarios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["capacity", "x.yaml", "--precision", "five"])
    assert exit_info.value.code == 2
    assert "--precision: invalid float value: 'five'" in capsys.readouterr().err

    assert main(["capacity", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)]) == 2
    assert "cannot read the scenario" in capsys.readouterr().err

    # no SLOs: no rate can fail, so there is nothing to search for (closed steps are fine)
    text = yaml.safe_load((SCENARIOS / "capacity.yaml").read_text(encoding="utf-8"))
    del text["slos"]
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(text), encoding="utf-8")
    assert main(["capacity", str(bare), "--out", str(tmp_path / "runs")]) == 2
    assert "slos: the scenario sets no SLOs" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------- ground truth on a real mock


def _truth(scenario: dict[str, Any]) -> float:
    """What the scenario's mock was told to carry: concurrency / service time (per s)."""
    behaviour = scenario["mock"]["behaviour"]
    slots = behaviour["capacity"]["endpoints"]["mobile.lkfl_auth"]["concurrency"]
    service_s = behaviour["latency"]["mobile.lkfl_auth"]["ms"] / 1000.0
    assert behaviour["latency"]["mobile.lkfl_auth"]["dist"] == "fixed"
    assert scenario["mix"] == {"lkfl": 1}  # one request per journey: arrivals = requests
    return float(slots / service_s)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(360)
def test_capacity_finds_the_mocks_known_capacity(tmp_path: Path) -> None:
    path = SCENARIOS / "capacity.yaml"
    truth = _truth(yaml.safe_load(path.read_text(encoding="utf-8")))  # 8 / 0.1 s = 80/s
    began = time.monotonic()
    proc = authload(
        "capacity", path, "--out", tmp_path, "--json",
        "--start", "50", "--factor", "1.5", "--precision", "0.03",
        "--step", "8", "--warmup", "2", "--budget", "170",
        timeout=330,
    )  # fmt: skip
    took = time.monotonic() - began
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    data = json.loads(proc.stdout)
    found = data["capacity"]["level"]
    print(f"capacity found {found}/s vs truth {truth:g}/s in {took:.0f} s")
    assert data["capacity"]["bounded"], data["capacity"]
    assert found == pytest.approx(truth, rel=0.05), data["capacity"]
    low, high = data["capacity"]["bracket"]
    assert high / low <= 1.03 or data["stop_reason"] == "budget"
    assert took < 240
    # the break is the latency SLO of the endpoint the mix uses; the knee sits at the edge
    breach = data["first_breach"]
    assert breach["endpoint"] == "mobile.lkfl_auth"
    assert data["knee"] is not None
    assert data["knee"]["level"] == pytest.approx(truth, rel=0.1)
    # progress on stderr per step; each step a complete run directory of its own
    assert proc.stderr.count("authload capacity: step ") == 2 * len(data["steps"])
    directory = next(tmp_path.glob("*-capacity-capacity"))
    for step in data["steps"]:
        run_dir = directory / step["run_dir"]
        for name in ("manifest.json", "summary.json", "requests.parquet", "report.html"):
            assert (run_dir / name).is_file(), (run_dir, name)
        assert step["window_s"] == pytest.approx(8 - 2 - TAIL_S)
    assert json.loads((directory / "capacity.json").read_text(encoding="utf-8")) == data
    page = (directory / "capacity.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3


CLOSED = """
name: usl
mix: {lkfl: 1}
load:
  model: closed
  stages: [{duration_s: 10, users: 2}]
think_time: {dist: fixed, ms: 0}
flows: {lkfl: {wrong_password_share: 0}}
retry: {policy: none}
abort: null
mock:
  behaviour:
    latency: {mobile.lkfl_auth: {dist: fixed, ms: 50}}
    capacity: {endpoints: {mobile.lkfl_auth: {concurrency: 2, queue: 16}}}
"""


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(300)
def test_closed_steps_of_users_fit_the_usl(tmp_path: Path) -> None:
    """Users with no think time against 2 slots of 50 ms: 20/s per user up to 40/s."""
    path = tmp_path / "usl.yaml"
    path.write_text(CLOSED, encoding="utf-8")
    proc = authload(
        "capacity", path, "--closed", "--out", tmp_path / "runs", "--json",
        "--start", "1", "--max", "8", "--step", "5", "--warmup", "1",
        timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    data = json.loads(proc.stdout)
    assert [s["level"] for s in data["steps"]] == [1, 2, 4, 8]
    ok = {s["level"]: s["ok_rps"] for s in data["steps"]}
    assert ok[1] == pytest.approx(20, rel=0.15)
    assert ok[4] == pytest.approx(40, rel=0.1)
    model = data["usl"]
    assert "error" not in model, model
    assert model["model"].startswith("Universal Scalability Law")
    # a hard ceiling is not the USL's smooth curve: the fit is rough, but it must place
    # one user near 20/s and the model's peak near the 40/s ceiling
    assert model["lam"] == pytest.approx(20, rel=0.25)
    assert model["x_peak"] == pytest.approx(40, rel=0.2)
    assert model["r2"] > 0.8
    assert model["points"] == 4
    assert data["knee"]["level"] == 2  # two slots: latency climbs from the third user on
    document = CapacityDocument.model_validate(data)  # the printed JSON is capacity.json
    assert "USL model (a fit, not a measurement)" in "\n".join(describe(document))


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(200)
def test_closed_steps_with_only_a_maximum_start_at_one_user(tmp_path: Path) -> None:
    """The README's `--closed --max N` with no --start: steps of 1, 2 users up to the max.
    Run here with a console that keeps what the search says; the steps' runs say theirs
    in capacity.log."""
    path = tmp_path / "usl.yaml"
    path.write_text(CLOSED, encoding="utf-8")
    console = RecordingConsole()
    options = CapacityOptions(closed=True, maximum=2, step_s=3, warmup_s=0, out=tmp_path / "runs")
    result = run_capacity(path, options, console)
    data = result.document.model_dump(mode="json")
    assert result.exit_code == 0, console.lines
    assert [s["level"] for s in data["steps"]] == [1, 2]
    assert data["stop_reason"] == "max_reached"
    assert console.lines[0] == f"capacity run directory {result.directory} (closed model, users)"
    assert console.lines[1] == "step 1: 1 users (start), 3 s with 0 s warm-up"
    assert console.lines[2].startswith("step 1: 1 users PASS: ")
    assert console.lines[3] == "step 2: 2 users (step up), 3 s with 0 s warm-up"
    assert console.lines[4].startswith("step 2: 2 users PASS: ")
    assert console.lines[5:] == [f"done: {data['capacity']['note']}"]
    log = (result.directory / "capacity.log").read_text(encoding="utf-8")
    assert [line for line in log.splitlines() if "run directory" in line] == [
        f"authload: run directory {result.directory / s['run_dir']}" for s in data["steps"]
    ]


ABORTING = """
name: ab
mix: {lkfl: 1}
load:
  model: open
  stages: [{duration_s: 10, rate: 40}]
flows: {lkfl: {wrong_password_share: 0}}
retry: {policy: none}
slos: ["error_rate(*) < 1%"]
abort: {error_rate: 0.2, window_s: 4, min_requests: 20}
mock:
  behaviour:
    latency: {mobile.lkfl_auth: {dist: fixed, ms: 50}}
    capacity: {endpoints: {mobile.lkfl_auth: {concurrency: 4, queue: 0}}}
"""


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(200)
def test_the_abort_rule_stops_the_search_at_once_with_exit_3(tmp_path: Path) -> None:
    """4 slots of 50 ms and no queue: at 100/s over a fifth is shed, past the abort rule."""
    path = tmp_path / "ab.yaml"
    path.write_text(ABORTING, encoding="utf-8")
    junit = tmp_path / "capacity.xml"
    proc = authload(
        "capacity", path, "--out", tmp_path / "runs",
        "--start", "40", "--factor", "2.5", "--step", "8", "--warmup", "2",
        "--junit", junit,
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 3, f"{proc.stdout}\n{proc.stderr}"
    [suite] = list(JUnitXml.fromfile(str(junit)))
    [search] = [case for case in suite if case.name == "capacity"]
    reason = "more than 20% of requests failed over 4 s (abort rule)"
    assert [(r.type, r.message) for r in search.result] == [
        ("aborted", f"the search ended aborted: {reason}; capacity.log says more")
    ]
    assert "step 2: ABORTED: more than 20% of requests failed over 4 s (abort rule)" in proc.stderr
    directory = next((tmp_path / "runs").glob("*-capacity-ab"))
    data = json.loads((directory / "capacity.json").read_text(encoding="utf-8"))
    assert (data["status"], data["stop_reason"], data["exit_code"]) == ("aborted", "aborted", 3)
    assert [s["verdict"] for s in data["steps"]] == ["pass", "aborted"]
    assert (directory / "capacity.html").is_file()
