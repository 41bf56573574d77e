"""Drift detection: the statistics on synthetic data whose truth is known, then soaks on the
real mock. One soak's `mobile.lkfl_auth` gets slower by steps (added-latency fault windows
opening one after another); a flat one does not. The first must be flagged with the right
sign on the right endpoint only; the second not at all. A short `--processes 2` run shows
the harness's own memory and CPU sampled for every Locust process."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from authload.analysis.drift import analyze_drift, error_budget, read_resources, settle_cpu
from authload.analysis.trend_stats import change_points, linear_trend, pettitt
from authload.errors import ResultsError
from authload.rundir.files import RESOURCES_FILE
from tests.helpers.runs import Run, authload, run_scenario

# ------------------------------------------------------------------------ synthetic: statistics


def test_linear_trend_recovers_a_known_slope_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(7)
    x = np.arange(60) * 10.0
    fit = linear_trend(x, 40.0 + 0.05 * x + rng.normal(0, 2.0, x.size))
    assert fit is not None
    assert fit.slope == pytest.approx(0.05, abs=0.005)
    assert fit.ci_low < 0.05 < fit.ci_high
    assert fit.significant
    assert fit.start == pytest.approx(40.0, abs=1.5)
    assert fit.change == pytest.approx(0.05 * 590, rel=0.1)
    assert fit.n == 60


def test_many_points_are_thinned_to_medians_and_keep_the_slope() -> None:
    rng = np.random.default_rng(8)
    x = np.arange(5000) * 10.0  # e.g. a long soak's resource samples
    fit = linear_trend(x, 80.0 + 0.001 * x + rng.normal(0, 1.0, x.size))
    assert fit is not None and fit.n == 1000
    assert fit.ci_low < 0.001 < fit.ci_high
    assert fit.change == pytest.approx(0.001 * 49990, rel=0.05)


def test_the_interval_covers_the_true_slope_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    x = np.arange(40) * 5.0
    covered = 0
    for _ in range(400):
        fit = linear_trend(x, 100.0 - 0.2 * x + rng.normal(0, 5.0, x.size))
        assert fit is not None
        covered += fit.ci_low <= -0.2 <= fit.ci_high
    assert 0.91 <= covered / 400 <= 0.99


def test_noise_is_rarely_significant_and_autocorrelation_widens_the_interval() -> None:
    rng = np.random.default_rng(3)
    x = np.arange(40) * 5.0
    significant = 0
    for _ in range(400):
        fit = linear_trend(x, 50.0 + rng.normal(0, 3.0, x.size))
        assert fit is not None
        significant += fit.significant
    assert significant / 400 <= 0.08
    # a slow wander (AR(1), phi 0.8): the residuals' autocorrelation shrinks the sample
    noise = np.zeros(40)
    for t in range(1, 40):
        noise[t] = 0.8 * noise[t - 1] + rng.normal()
    fit = linear_trend(x, 50.0 + 3.0 * noise)
    assert fit is not None
    assert fit.r1 > 0.2
    assert fit.n_eff < fit.n


def test_one_slow_window_does_not_make_a_trend() -> None:
    # a flat p99 of 62 ms with one 316 ms window at the start (seen on a real flat soak)
    rng = np.random.default_rng(9)
    y = 62.0 + rng.normal(0, 1.5, 31)
    y[0] = 316.0
    fit = linear_trend(np.arange(31) * 2.0, y)
    assert fit is not None
    assert abs(fit.change) < 5.0
    assert not fit.significant or abs(fit.change) < 0.2 * 62


def test_linear_trend_needs_three_points_and_two_times() -> None:
    assert linear_trend([1.0, 2.0], [1.0, 2.0]) is None
    assert linear_trend([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]) is None
    fit = linear_trend([0.0, 1.0, 2.0, float("nan")], [1.0, 2.0, 3.0, 9.0])
    assert fit is not None and fit.n == 3 and fit.slope == pytest.approx(1.0)


def test_pettitt_and_binary_segmentation_find_steps_and_only_steps() -> None:
    rng = np.random.default_rng(5)
    step = np.r_[rng.normal(10, 1, 25), rng.normal(15, 1, 25)]
    k, p = pettitt(step)
    assert k == 25 and p < 1e-4
    assert [i for i, _ in change_points(step)] == [25]
    stairs = np.concatenate([rng.normal(level, 1, 12) for level in (10, 16, 22, 28)])
    assert [i for i, _ in change_points(stairs)] == [12, 24, 36]
    assert change_points(rng.normal(10, 1, 50)) == []


# ------------------------------------------------------------------------ synthetic: analysis


def _records(
    seconds: float = 600.0,
    rate: float = 20.0,
    latency: dict[str, tuple[float, float]] | None = None,
    error_share: tuple[float, float] = (0.0, 0.0),
    seed: int = 1,
) -> pd.DataFrame:
    """Records of two endpoints over ``seconds`` at ``rate``/s each; an endpoint's median
    latency moves linearly from the first to the second value of ``latency`` (default: flat
    50 ms), lognormal around it; errors (status 503) from the first to the second share."""
    rng = np.random.default_rng(seed)
    latency = {"api.a": (50.0, 50.0), "api.b": (50.0, 50.0), **(latency or {})}
    frames = []
    for endpoint, (first, last) in latency.items():
        t = np.sort(rng.uniform(0, seconds, int(seconds * rate)))
        median = first + (last - first) * t / seconds
        failed = rng.random(t.size) < np.interp(t, [0, seconds], error_share)
        frames.append(
            pd.DataFrame(
                {
                    "t": 1_700_000_000.0 + t,
                    "endpoint": endpoint,
                    "status": np.where(failed, 503, 200),
                    "latency_ms": median * rng.lognormal(0.0, 0.25, t.size),
                    "error": np.where(failed, "http", None),
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values("t", ignore_index=True)


def _flagged(trends: pd.DataFrame) -> set[tuple[str, str, str]]:
    rows = trends[trends["flagged"]]
    return set(zip(rows["endpoint"], rows["metric"], rows["direction"], strict=True))


def test_a_rising_endpoint_is_flagged_up_and_only_it() -> None:
    drift = analyze_drift(_records(latency={"api.a": (50.0, 90.0)}))
    assert _flagged(drift.trends) == {("api.a", "p50", "up"), ("api.a", "p99", "up")}
    row = drift.trends.set_index(["endpoint", "metric"]).loc[("api.a", "p50")]
    # the fit starts after the warm-up (60 s of 600): the median moves 40 ms over 540 s
    assert row["change"] == pytest.approx(40.0 * 0.9, rel=0.15)
    assert row["ci_low_per_h"] <= 40.0 / 600 * 3600 <= row["ci_high_per_h"]
    assert drift.findings and all(f.startswith("api.a ") for f in drift.findings)
    assert not drift.steps["flagged"].any() or set(drift.steps["endpoint"]) == {"api.a"}


def test_a_falling_endpoint_is_flagged_down() -> None:
    drift = analyze_drift(_records(latency={"api.b": (80.0, 40.0)}, seed=2))
    assert ("api.b", "p50", "down") in _flagged(drift.trends)
    assert {e for e, _, _ in _flagged(drift.trends)} == {"api.b"}


def test_a_flat_run_is_not_flagged() -> None:
    for seed in range(5):
        drift = analyze_drift(_records(seed=seed), ["error_rate(*, 5xx) < 1%"])
        assert _flagged(drift.trends) == set(), seed
        assert not drift.steps["flagged"].any(), seed
        assert drift.findings == []
        json.dumps(drift.to_dict(), allow_nan=False)  # what summary.json keeps


def test_a_small_significant_change_is_not_material() -> None:
    # +3 ms on 50 ms over the run: real, but under both 20 % and 5 ms
    drift = analyze_drift(_records(seconds=1200, rate=50, latency={"api.a": (50.0, 53.0)}))
    row = drift.trends.set_index(["endpoint", "metric"]).loc[("api.a", "p50")]
    assert row["significant"] and not row["material"] and not row["flagged"]


def test_a_rising_error_rate_is_flagged() -> None:
    drift = analyze_drift(_records(error_share=(0.0, 0.06)))
    flagged = _flagged(drift.trends)
    assert ("api.a", "error_rate", "up") in flagged and ("api.b", "error_rate", "up") in flagged
    row = drift.trends.set_index(["endpoint", "metric"]).loc[("api.a", "error_rate")]
    assert row["unit"] == "%" and row["change"] == pytest.approx(6.0 * 0.9, abs=1.5)


def test_a_latency_step_is_found_where_it_happened() -> None:
    records = _records()
    late = (records["endpoint"] == "api.a") & (records["t"] >= 1_700_000_000.0 + 400)
    records.loc[late, "latency_ms"] *= 1.6
    drift = analyze_drift(records, window_s=10.0)
    steps = drift.steps[drift.steps["flagged"]]
    assert list(steps["endpoint"]) == ["api.a"]
    assert steps["t_s"].iloc[0] == pytest.approx(400, abs=10)
    assert steps["shift"].iloc[0] == pytest.approx(30, rel=0.25)


def test_error_budget_spent_over_time() -> None:
    t0 = 1_700_000_000.0
    n = 1000
    records = pd.DataFrame(
        {
            "t": t0 + np.arange(n) * 0.1,  # 100 s, 10/s
            "endpoint": "api.a",
            "status": 200,
            "latency_ms": 5.0,
            "error": None,
        }
    )
    bad = np.arange(500, 520)  # 20 503s from 50 s to 52 s: twice a 1 % budget of 1000
    records.loc[bad, "status"] = 503
    records.loc[bad, "error"] = "http"
    slos = ["error_rate(*, 5xx) < 1%", "error_rate(api.a, 429) < 1%", "p99(*) < 1s"]
    budgets, series = error_budget(records, slos, t0, t0 + 100, 10.0)
    assert list(budgets["slo"]) == slos[:2]
    five = budgets.iloc[0]
    assert five["budget_requests"] == pytest.approx(10.0)
    assert five["bad"] == 20 and five["spent"] == pytest.approx(2.0)
    assert five["exhausted_at_s"] == pytest.approx(60.0)  # the 50-60 s window spent it
    assert five["peak_burn_rate"] == pytest.approx(20.0)  # 20 of 100 = 20 % = 20 x 1 %
    assert five["windows_over_budget"] == 1
    assert budgets.iloc[1]["spent"] == 0 and pd.isna(budgets.iloc[1]["exhausted_at_s"])
    curve = series[series["slo"] == slos[0]]
    assert list(curve["spent"].round(6)) == [0.0] * 5 + [2.0] * 5


def test_harness_memory_trend_is_flagged_apart_from_the_service() -> None:
    records = _records()
    t0 = float(records["t"].min())
    times = t0 + np.arange(0, 600, 10.0)
    resources = pd.DataFrame(
        [
            {
                "t": t,
                "process": process,
                "role": "worker",
                "source": "heartbeat",
                "rss_bytes": rss,
                "cpu_percent": cpu,
            }
            for t in times
            for process, rss, cpu in (
                ("w0", 80e6 + (t - t0) * 100e3, 30.0),  # +60 MB over the run: a leak
                ("w1", 80e6, 95.0 if t > t0 + 300 else 40.0),  # flat, but saturated
            )
        ]
    )
    drift = analyze_drift(records, resources=resources)
    assert drift.findings == []
    harness = drift.harness.set_index("process")
    assert harness.loc["w0", "flagged"] and harness.loc["w0", "change_mb"] > 40
    assert not harness.loc["w1", "flagged"] and harness.loc["w1", "cpu_saturated"]
    assert any("w0 memory growing" in line for line in drift.harness_findings)
    assert any("w1 at 95% CPU" in line for line in drift.harness_findings)


def test_read_resources_keeps_complete_lines(tmp_path: Path) -> None:
    lines = [
        {"t": 1.0, "process": "w0", "role": "local", "rss_bytes": 100, "cpu_percent": None},
        {"t": 2.0, "process": "w0", "role": "local", "rss_bytes": 120, "cpu_percent": 5.0},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (tmp_path / RESOURCES_FILE).write_text(text + '{"t": 3.0, "proc', encoding="utf-8")
    frame = read_resources(tmp_path)
    assert list(frame["rss_bytes"]) == [100.0, 120.0]
    assert frame["cpu_percent"].isna().tolist() == [True, False]
    (tmp_path / RESOURCES_FILE).write_text("nonsense\n" + text, encoding="utf-8")
    with pytest.raises(ResultsError, match=r"resources.jsonl:1"):
        read_resources(tmp_path)
    assert read_resources(tmp_path / "nowhere").empty


def test_a_last_sample_just_after_a_periodic_one_reads_no_impossible_cpu(tmp_path: Path) -> None:
    """The sample taken as the run stopped came 0.6 ms after a periodic one: one 10 ms CPU
    tick over 0.6 ms read 1991 %. It joins the interval before it, weighted by time."""
    records = _records()
    t0 = float(records["t"].min())
    lines = [
        {"t": t0 + t, "process": "w0", "role": "local", "rss_bytes": 80e6, "cpu_percent": cpu,
         "source": "psutil"}
        for t, cpu in ((0.0, None), (10.0, 40.0), (20.0, 50.0), (20.0006, 1991.0))
    ]  # fmt: skip
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (tmp_path / RESOURCES_FILE).write_text(text, encoding="utf-8")
    drift = analyze_drift(records, resources=read_resources(tmp_path))
    row = drift.harness.set_index("process").loc["w0"]
    folded = (50.0 * 10.0 + 1991.0 * 0.0006) / 10.0006  # = 50.12: the share over both
    assert row["cpu_max"] == pytest.approx(folded)
    assert row["cpu_mean"] == pytest.approx((40.0 + folded) / 2)
    assert not row["cpu_saturated"]
    assert drift.harness_findings == []
    assert drift.resources["cpu_percent"].isna().tolist() == [True, False, False, True]


def test_short_cpu_intervals_chain_and_heartbeat_figures_are_left_alone() -> None:
    frame = pd.DataFrame(
        {
            "t": [0.0, 5.0, 5.2, 5.4, 0.0, 0.3],
            "process": ["master"] * 4 + ["w1"] * 2,
            "role": ["master"] * 4 + ["worker"] * 2,
            "rss_bytes": [1e8] * 6,
            "cpu_percent": [np.nan, 10.0, 60.0, 110.0, 30.0, 35.0],
            "source": ["psutil"] * 4 + ["heartbeat"] * 2,
        }
    )
    settled = settle_cpu(frame)
    master = settled[settled["process"] == "master"]["cpu_percent"]
    assert master.isna().tolist() == [True, False, True, True]  # unmeasured, kept, folded x2
    assert master.iloc[1] == pytest.approx((10 * 5 + 60 * 0.2 + 110 * 0.2) / 5.4)
    assert settled[settled["process"] == "w1"]["cpu_percent"].tolist() == [30.0, 35.0]


# ---------------------------------------------------------------------------- real soaks

SOAK_S = 70
SOAK = """
name: {name}
seed: 5
accounts: {{count: 2000}}
mix: {{esia: 1, lkfl: 1}}
load:
  model: closed
  stages:
    - {{duration_s: {duration}, users: 8, spawn_rate: 8}}
think_time: {{dist: fixed, ms: 100}}
flows:
  lkfl: {{wrong_password_share: 0}}
retry: {{policy: none}}
abort: null
slos:
  - "error_rate(*, 5xx) < 1%"
mock:
  behaviour:
    latency:
      default: {{dist: uniform, min_ms: 40, max_ms: 60}}
    faults: {faults}
"""
# mobile.lkfl_auth 30 ms slower every 15 s from 20 s on (several latency faults add up)
RAMP = "".join(
    f"\n      - {{name: slower-{i}, kind: latency, endpoints: [mobile.lkfl_auth], "
    f"added_ms: 30, start_s: {start}}}"
    for i, start in enumerate((20, 35, 50, 65), start=1)
)


def _soak(directory: Path, name: str, faults: str) -> Run:
    text = SOAK.format(name=name, duration=SOAK_S, faults=faults)
    run = run_scenario(directory, text, load_s=SOAK_S)
    assert run.code == 0, run.describe()
    return run


@pytest.fixture(scope="module")
def soaks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """One flat soak and one whose lkfl latency steps up, run side by side (light load)."""
    with ThreadPoolExecutor(2) as pool:
        flat = pool.submit(_soak, tmp_path_factory.mktemp("flat"), "drift-flat", "[]")
        ramp = pool.submit(_soak, tmp_path_factory.mktemp("ramp"), "drift-ramp", RAMP)
        return {"flat": flat.result(), "ramp": ramp.result()}


def _drift(run: Run) -> dict[str, Any]:
    drift = run.summary.get("drift")
    assert isinstance(drift, dict), run.describe()
    return drift


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(400)  # the fixture's two soaks run in the first test that uses them
def test_a_slowly_slower_endpoint_is_flagged_up_on_that_endpoint_only(
    soaks: dict[str, Run],
) -> None:
    drift = _drift(soaks["ramp"])
    trends = pd.DataFrame(drift["trends"])
    flagged = trends[trends["flagged"]]
    assert set(flagged["endpoint"]) == {"mobile.lkfl_auth"}, drift["flagged"]
    assert set(flagged["direction"]) == {"up"}
    assert {"p50", "p99"} <= set(flagged["metric"])
    p50 = trends.set_index(["endpoint", "metric"]).loc[("mobile.lkfl_auth", "p50")]
    assert 60 <= p50["change"] <= 160  # 120 ms added in four steps, most after the warm-up
    assert p50["ci_low_per_h"] > 0
    others = trends[trends["endpoint"] != "mobile.lkfl_auth"]
    assert set(others["endpoint"]) == {"mobile.esia_url", "mobile.esia_auth"}
    assert not others["flagged"].any()
    steps = pd.DataFrame(drift["steps"], columns=["endpoint", "shift", "flagged"])
    assert set(steps.loc[steps["flagged"], "endpoint"]) <= {"mobile.lkfl_auth"}
    assert (steps.loc[steps["flagged"], "shift"] > 0).all()
    assert all(line.startswith("mobile.lkfl_auth ") for line in drift["flagged"])


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_a_flat_soak_is_not_flagged(soaks: dict[str, Run]) -> None:
    drift = _drift(soaks["flat"])
    assert drift["flagged"] == [], drift["flagged"]
    trends = pd.DataFrame(drift["trends"])
    assert set(trends["endpoint"]) == {"mobile.esia_url", "mobile.esia_auth", "mobile.lkfl_auth"}
    assert not trends["flagged"].any()
    assert drift["window_s"] == 2.0 and drift["warmup_s"] == pytest.approx(7, abs=1)
    [budget] = drift["error_budgets"]
    assert budget["slo"] == "error_rate(*, 5xx) < 1%" and budget["spent"] == 0


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(400)
def test_the_report_shows_the_drift_and_report_prints_it(soaks: dict[str, Run]) -> None:
    ramp = soaks["ramp"]
    assert ramp.run_dir is not None
    page = (ramp.run_dir / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<h2>Drift</h2>") : page.index("<h2>Run</h2>")]
    assert "mobile.lkfl_auth p99 rising" in section
    for title in ("Latency per window", "Error budget spent", "Locust processes: memory"):
        assert re.search(rf'<img alt="{title}[^"]*" src="data:image/png;base64,', section)
    # the harness is sampled and reported apart: one local process
    harness = _drift(ramp)["harness"]
    assert [h["process"] for h in harness] == ["w0"]
    assert harness[0]["samples"] >= 6

    summary = ramp.run_dir / "summary.json"
    before = json.loads(summary.read_text(encoding="utf-8"))
    proc = authload("report", ramp.run_dir)
    assert proc.returncode == 0, proc.stderr
    assert "drift: " in proc.stdout and "mobile.lkfl_auth p50 rising" in proc.stdout
    after = json.loads(summary.read_text(encoding="utf-8"))
    assert after == before, "the drift is computed the same from the same run"


# --------------------------------------------------------------------- resources, 2 processes

PROCESSES = """
name: resources
seed: 2
accounts: {count: 500}
mix: {lkfl: 1}
load:
  model: closed
  stages:
    - {duration_s: 14, users: 4, spawn_rate: 4}
think_time: {dist: fixed, ms: 100}
retry: {policy: none}
mock: {behaviour: {latency: {default: {dist: fixed, ms: 5}}}}
"""


@pytest.mark.integration
@pytest.mark.timeout(200)
def test_resources_are_sampled_for_every_locust_process(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, PROCESSES, "--processes", "2", load_s=14)
    assert run.code == 0, run.describe()
    assert run.run_dir is not None
    samples = [
        json.loads(line)
        for line in (run.run_dir / RESOURCES_FILE).read_text(encoding="utf-8").splitlines()
    ]
    by_process: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_process.setdefault(str(sample["process"]), []).append(sample)
    workers = set(run.records["worker"])
    assert workers == {"w0", "w1"}
    assert set(by_process) == {"master"} | workers
    assert {s["role"] for s in by_process["master"]} == {"master"}
    for name, rows in by_process.items():
        measured = [r for r in rows if r["rss_bytes"]]
        assert measured, f"{name}: no memory figure in {rows}"
        assert all(10e6 < r["rss_bytes"] < 2e9 for r in measured)
        times = [r["t"] for r in rows]
        assert times == sorted(times)
    assert {s["source"] for s in by_process["w0"]} == {"heartbeat"}
    assert any(r["cpu_percent"] is not None for r in by_process["master"])
    frame = read_resources(run.run_dir)
    assert len(frame) == len(samples)
    assert run.summary["drift"] is None  # 14 s: too short for drift analysis
