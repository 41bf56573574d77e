"""Drift over a long run: did latency, errors or the harness itself move while the load held?

:func:`analyze_drift` cuts the run (after a warm-up) into windows and, per endpoint, fits a
line through each window's p50, p99 (ms, answered requests, nearest rank) and error rate
(% of attempts):

- **Trend**: the Theil-Sen slope of the window figures (the median of the slopes between
  every two windows, so one slow window - a GC pause, a noisy neighbour - cannot make a
  trend) with Sen's confidence interval (95 %). Window figures are autocorrelated (a slow
  service stays slow for a while), which makes the plain interval too narrow, so the
  variance behind it is inflated by n / n_eff, n_eff = n (1 - r1) / (1 + r1) with r1 the
  lag-1 autocorrelation of the residuals' ranks (Yue and Wang 2004). A trend is
  **flagged** only when the interval excludes zero AND the fitted change over the analysed
  span is material: at least :attr:`Thresholds.latency_relative` (20 %) of the endpoint's typical
  (median window) level and at least :attr:`Thresholds.latency_ms` (5 ms) for latency; at
  least :attr:`Thresholds.error_pp` (0.5 percentage points, as ``authload compare``) for the
  error rate.
- **Steps**: change points of the window medians (p50), Pettitt's rank test applied by
  binary segmentation (segments of 3 windows or more, at most 5 steps per endpoint); a
  step is kept when its p-value is under :attr:`Thresholds.step_alpha` (0.01), and flagged
  when the shift (median after - median before) is material as for trends.
- **Error-budget burn**: for each ``error_rate(...) < X%`` SLO of the scenario, the budget
  is X % of the run's requests in its scope; per window the burn rate (the window's error
  rate / X %: 1 spends the budget exactly by the end) and the share of the whole run's
  budget spent so far (above 1: the SLO fails). Over the whole run, warm-up included.
- **Harness**: the Locust processes' memory (RSS) and CPU sampled during the run
  (``resources.jsonl``, see :mod:`authload.load.progress`); each process's memory trend is
  fitted as above and flagged when it grows or shrinks by at least
  :attr:`Thresholds.memory_relative` (10 %) of its median and
  :attr:`Thresholds.memory_mb` (10 MB). It is reported apart from the service: a harness
  that leaks or runs out of CPU (any sample at or above 90 % of a core) slows its own
  measurements, and its trend must not be read as the service's. A psutil CPU figure is the
  share of a core since the process's previous sample, counted in clock ticks (10 ms): over
  an interval under :data:`MIN_CPU_INTERVAL_S` (the last sample, taken as the run stops,
  may come a millisecond after a periodic one) one tick reads 2000 %, so such a figure is
  folded into the previous one, weighted by their intervals (the CPU share over both).

Windows: the analysed span (from the end of the warm-up, by default 10 % of the run and at
most 300 s, to the last request) over about :data:`TARGET_WINDOWS` windows of 1 to 60 s;
only complete windows count, and a window enters an endpoint's fit only with at least
:attr:`Thresholds.min_samples` (20) answered requests (latency) or attempts (error rate);
a fit needs :data:`MIN_WINDOWS` (8) such windows. Runs shorter than :data:`MIN_SPAN_S`
(60 s) are not analysed. Drift looks for change over time at steady load: a scenario whose
load itself changes after the warm-up moves the figures too.

The window figures and the budgets' counts are DuckDB aggregates over the records
(:mod:`authload.analysis.query`): exact, and in bounded memory however long the run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from authload.analysis.query import (
    ANSWERED,
    Records,
    RecordsLike,
    as_records,
    between,
    exact_quantiles,
    window_index,
)
from authload.analysis.slo import error_where  # counted exactly as the SLOs count
from authload.analysis.trend_stats import change_points, linear_trend
from authload.errors import ResultsError
from authload.rundir.files import RESOURCES_FILE
from authload.rundir.jsonfiles import plain
from authload.rundir.manifest import Manifest
from authload.scenario.slo_grammar import DEFAULT_FILTER, SloSpec, parse_slo

__all__ = [
    "MIN_CPU_INTERVAL_S",
    "MIN_SPAN_S",
    "MIN_WINDOWS",
    "TARGET_WINDOWS",
    "Drift",
    "LoadedRun",
    "Thresholds",
    "analyze_drift",
    "error_budget",
    "read_resources",
    "run_drift",
    "settle_cpu",
]

MIN_SPAN_S = 60.0
MIN_WINDOWS = 8
TARGET_WINDOWS = 40
WARMUP_SHARE = 0.1
WARMUP_MAX_S = 300.0
_WINDOW_CHOICES = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)
LATENCY_METRICS = {"p50": 0.50, "p99": 0.99}
MB = 1024.0 * 1024.0
MIN_CPU_INTERVAL_S = 1.0  # a 10 ms CPU tick is at most 1 % of a core over it


@dataclass(frozen=True)
class Thresholds:
    """When a trend or a step is flagged (see the module docstring)."""

    confidence: float = 0.95
    latency_relative: float = 0.20
    latency_ms: float = 5.0
    error_pp: float = 0.5
    memory_relative: float = 0.10
    memory_mb: float = 10.0
    step_alpha: float = 0.01
    cpu_saturated: float = 90.0
    min_samples: int = 20


# ------------------------------------------------------------------------------------ windows


def _window_for(span_s: float) -> float:
    """About TARGET_WINDOWS windows over ``span_s``, of a round length from 1 to 60 s."""
    wanted = span_s / TARGET_WINDOWS
    for choice in _WINDOW_CHOICES:
        if choice >= wanted:
            return choice
    return _WINDOW_CHOICES[-1]


SERIES_COLUMNS = ["endpoint", "t_s", "answered", "attempts", "p50", "p99", "error_rate"]


def window_series(records: RecordsLike, start: float, end: float, window_s: float) -> pd.DataFrame:
    """Per endpoint and complete window from ``start`` to ``end`` (unix s): ``t_s`` (the
    window's middle, s since ``start``), ``answered``, ``attempts``, ``p50``, ``p99`` (ms,
    NaN when nothing was answered) and ``error_rate`` (%, NaN without attempts)."""
    count = math.floor((end - start) / window_s + 1e-9)
    if count < 1:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    table = as_records(records)
    keys = {"endpoint": "endpoint", "w": window_index(start, window_s)}
    span = between("t", start, start + count * window_s)
    counts = table.sql(
        f"""SELECT endpoint, {keys["w"]} AS w, count(*) AS attempts,
            count(*) FILTER (WHERE {ANSWERED}) AS answered, count(error) AS failed
        FROM {{records}} WHERE {span} GROUP BY ALL"""
    )
    if counts.empty:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    qs = list(LATENCY_METRICS.values())
    pct = exact_quantiles(table, "latency_ms", qs, keys, f"{span} AND {ANSWERED}")
    names = sorted(counts["endpoint"].astype(str).unique())
    grid = pd.MultiIndex.from_product([names, range(count)], names=["endpoint", "w"])
    figures = counts.astype({"endpoint": str}).set_index(["endpoint", "w"]).reindex(grid)
    picked = pct.astype({"endpoint": str}).set_index(["endpoint", "w"])["q"].reindex(grid)
    attempts = figures["attempts"].fillna(0).to_numpy(dtype=np.int64)
    failed = figures["failed"].fillna(0).to_numpy(dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(attempts > 0, failed / attempts * 100, np.nan)
    return pd.DataFrame(
        {
            "endpoint": np.repeat(np.asarray(names, dtype=object), count),
            "t_s": np.tile((np.arange(count) + 0.5) * window_s, len(names)),
            "answered": figures["answered"].fillna(0).to_numpy(dtype=np.int64),
            "attempts": attempts,
            **_columns(picked, list(LATENCY_METRICS)),
            "error_rate": rate,
        },
        columns=SERIES_COLUMNS,
    )


def _columns(lists: pd.Series, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Quantile lists (NaN where missing: no values) as one array per name."""
    rows = [v if isinstance(v, list | tuple | np.ndarray) else [np.nan] * len(names) for v in lists]
    values = np.asarray(rows, dtype=float).reshape(len(rows), len(names))
    return {name: values[:, i] for i, name in enumerate(names)}


# ------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Drift:
    """What :func:`analyze_drift` found. Times are seconds since ``start_t`` (the first
    request, unix s). ``trends``, ``steps``, ``budgets`` and ``harness`` are one row per
    finding (columns as their builders document); ``series``, ``budget_series`` and
    ``resources`` hold the figures over time the plots draw."""

    start_t: float
    span_s: float
    warmup_s: float
    window_s: float
    thresholds: Thresholds
    trends: pd.DataFrame
    steps: pd.DataFrame
    budgets: pd.DataFrame
    harness: pd.DataFrame
    series: pd.DataFrame
    budget_series: pd.DataFrame
    resources: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[str]:
        """The service's flagged trends and steps, one sentence each."""
        lines = [_trend_text(row) for row in frame_rows(self.trends) if row["flagged"]]
        lines += [_step_text(row) for row in frame_rows(self.steps) if row["flagged"]]
        return lines

    @property
    def harness_findings(self) -> list[str]:
        """The harness's flagged memory trends and CPU saturation, one sentence each."""
        lines = []
        for row in frame_rows(self.harness):
            if row["flagged"]:
                lines.append(
                    f"Locust process {row['process']} memory "
                    f"{'growing' if row['change_mb'] > 0 else 'shrinking'}: "
                    f"{row['change_mb']:+.1f} MB over the run "
                    f"({row['start_mb']:.1f} -> {row['end_mb']:.1f} MB)"
                )
            if row["cpu_saturated"]:
                lines.append(
                    f"Locust process {row['process']} at {row['cpu_max']:.0f}% CPU: its "
                    f"latency figures include its own queueing"
                )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (no NaN or infinity): what summary.json keeps under
        ``drift``."""
        data = {
            "span_s": self.span_s,
            "warmup_s": self.warmup_s,
            "window_s": self.window_s,
            "thresholds": asdict(self.thresholds),
            "flagged": self.findings,
            "harness_flagged": self.harness_findings,
            "trends": frame_rows(self.trends),
            "steps": frame_rows(self.steps),
            "error_budgets": frame_rows(self.budgets),
            "harness": frame_rows(self.harness),
            "notes": list(self.notes),
        }
        cleaned: dict[str, Any] = plain(data)
        return cleaned


TREND_COLUMNS = [
    *("endpoint", "metric", "unit", "level", "start", "end", "change", "relative_change"),
    *("slope_per_h", "ci_low_per_h", "ci_high_per_h", "windows", "n_eff", "significant"),
    *("material", "flagged", "direction"),
]
STEP_COLUMNS = [
    *("endpoint", "metric", "unit", "t_s", "before", "after", "shift", "p_value", "material"),
    "flagged",
]
BUDGET_COLUMNS = [
    *("slo", "endpoint", "filter", "threshold_pct", "requests", "budget_requests", "bad"),
    *("spent", "exhausted_at_s", "peak_burn_rate", "windows_over_budget"),
]
HARNESS_COLUMNS = [
    *("process", "role", "samples", "median_mb", "start_mb", "end_mb", "change_mb"),
    *("slope_mb_per_h", "ci_low_mb_per_h", "ci_high_mb_per_h", "significant", "material"),
    *("flagged", "cpu_mean", "cpu_max", "cpu_saturated"),
]


def analyze_drift(
    records: RecordsLike,
    slos: Iterable[str] = (),
    resources: pd.DataFrame | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    warmup_s: float | None = None,
    window_s: float | None = None,
    thresholds: Thresholds | None = None,
) -> Drift:
    """Trends, steps, error-budget burn and the harness's own trend (module docstring).

    ``records`` need ``t``, ``endpoint``, ``status``, ``latency_ms`` and ``error``;
    ``resources`` is :func:`read_resources`' frame. ``start`` and ``end`` (unix s) default
    to the first request and the last request's end; ``warmup_s`` to 10 % of the run (at
    most 300 s); ``window_s`` to a round length giving about 40 windows after the warm-up.
    """
    th = thresholds or Thresholds()
    table = as_records(records)
    first, last, endpoints = _extent(table)
    if start is None:
        if first is None:
            raise ValueError("no records: nothing to analyse")
        start = first
    t0 = float(start)
    stop = float(end) if end is not None else math.nan if last is None else last
    span = max(0.0, stop - t0)
    warm = min(WARMUP_SHARE * span, WARMUP_MAX_S) if warmup_s is None else float(warmup_s)
    width = _window_for(span - warm) if window_s is None else float(window_s)
    if not 0 < width <= 3600:
        raise ValueError(f"window_s must be above 0 and at most 3600 s, not {width}")
    series = window_series(table, t0 + warm, stop, width)
    series["t_s"] = series["t_s"] + warm  # since the run's start, not the warm-up's end
    trends = _trends(series, th)
    budgets, budget_series = error_budget(table, slos, t0, stop, width)
    samples = settle_cpu(resources) if resources is not None else _empty_resources()
    return Drift(
        start_t=t0,
        span_s=span,
        warmup_s=warm,
        window_s=width,
        thresholds=th,
        trends=trends,
        steps=_steps(series, th),
        budgets=budgets,
        harness=_harness(samples, t0, t0 + warm, th),
        series=series,
        budget_series=budget_series,
        resources=samples.assign(t_s=samples["t"] - t0) if len(samples) else samples,
        notes=_notes(endpoints, trends, resources, width, th),
    )


def _extent(table: Records) -> tuple[float | None, float | None, list[str]]:
    """The first request's start, the last request's end (unix s; None without records)
    and the endpoints, sorted."""
    row = table.row(
        "SELECT min(t) AS first, max(t + latency_ms / 1000.0) AS last, "
        "list(DISTINCT endpoint) AS endpoints FROM {records}"
    )
    if pd.isna(row["first"]):  # NULL: no records
        return None, None, []
    return float(row["first"]), float(row["last"]), sorted(map(str, row["endpoints"]))


def _notes(
    endpoints: list[str],
    trends: pd.DataFrame,
    resources: pd.DataFrame | None,
    width: float,
    th: Thresholds,
) -> list[str]:
    notes = []
    fitted = set(trends["endpoint"]) if len(trends) else set()
    sparse = [e for e in endpoints if e not in fitted]
    if sparse:
        notes.append(
            f"too few requests per window for a trend: {', '.join(sparse)} (at least "
            f"{th.min_samples} per {width:g} s window in {MIN_WINDOWS} windows)"
        )
    if resources is None or resources.empty:
        notes.append(f"no {RESOURCES_FILE}: the harness's own memory and CPU are unknown")
    return notes


def usable_windows(series: pd.DataFrame, metric: str, th: Thresholds) -> pd.DataFrame:
    enough = series["attempts" if metric == "error_rate" else "answered"] >= th.min_samples
    return series[enough & series[metric].notna()]


def _material(change: float, level: float, metric: str, th: Thresholds) -> bool:
    if metric == "error_rate":
        return abs(change) >= th.error_pp
    return abs(change) >= max(th.latency_relative * abs(level), th.latency_ms)


def _trends(series: pd.DataFrame, th: Thresholds) -> pd.DataFrame:
    rows = []
    for endpoint, group in series.groupby("endpoint", sort=True):
        for metric in (*LATENCY_METRICS, "error_rate"):
            usable = usable_windows(group, metric, th)
            if len(usable) < MIN_WINDOWS:
                continue
            fit = linear_trend(usable["t_s"], usable[metric], th.confidence)
            if fit is None:
                continue
            level = float(usable[metric].median())
            material = _material(fit.change, level, metric, th)
            rows.append(
                {
                    "endpoint": str(endpoint),
                    "metric": metric,
                    "unit": "%" if metric == "error_rate" else "ms",
                    "level": level,
                    "start": fit.start,
                    "end": fit.end,
                    "change": fit.change,
                    "relative_change": fit.change / level if level else None,
                    "slope_per_h": fit.slope * 3600,
                    "ci_low_per_h": fit.ci_low * 3600,
                    "ci_high_per_h": fit.ci_high * 3600,
                    "windows": fit.n,
                    "n_eff": fit.n_eff,
                    "significant": fit.significant,
                    "material": material,
                    "flagged": fit.significant and material,
                    "direction": "up" if fit.slope > 0 else "down" if fit.slope < 0 else "flat",
                }
            )
    return pd.DataFrame(rows, columns=TREND_COLUMNS)


def _steps(series: pd.DataFrame, th: Thresholds) -> pd.DataFrame:
    rows = []
    for endpoint, group in series.groupby("endpoint", sort=True):
        usable = usable_windows(group, "p50", th)
        if len(usable) < MIN_WINDOWS:
            continue
        values = usable["p50"].to_numpy(dtype=float)
        times = usable["t_s"].to_numpy(dtype=float)
        level = float(np.median(values))
        points = change_points(values, th.step_alpha)
        bounds = [0, *(k for k, _ in points), len(values)]
        for i, (k, p) in enumerate(points):
            before = float(np.median(values[bounds[i] : k]))
            after = float(np.median(values[k : bounds[i + 2]]))
            material = _material(after - before, level, "p50", th)
            rows.append(
                {
                    "endpoint": str(endpoint),
                    "metric": "p50",
                    "unit": "ms",
                    "t_s": float((times[k - 1] + times[k]) / 2),
                    "before": before,
                    "after": after,
                    "shift": after - before,
                    "p_value": p,
                    "material": material,
                    "flagged": material,
                }
            )
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def error_budget(
    records: RecordsLike, slos: Iterable[str], start: float, end: float, window_s: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per ``error_rate(...) < X%`` SLO (``<=`` too): its budget over the run and its burn
    over time. Returns (one row per SLO: ``requests`` in scope, ``budget_requests`` = X % of
    them, ``bad``, ``spent`` (bad / budget; None for a zero budget), ``exhausted_at_s`` (end
    of the window where the spent share reached 1, s since ``start``; None if never),
    ``peak_burn_rate``, ``windows_over_budget`` (burn rate above 1); and per SLO and
    window: ``slo``, ``t_s`` (window end), ``burn_rate``, ``spent``)."""
    count = max(1, math.ceil((end - start) / window_s - 1e-9))
    budgeted = [(slo, spec) for slo in slos if _is_budget(spec := parse_slo(slo))]
    counts = _budget_counts(as_records(records), [s for _, s in budgeted], start, window_s, count)
    rows, frames = [], []
    for i, (slo, spec) in enumerate(budgeted):
        total_w, bad_w = counts[f"n{i}"].to_numpy(), counts[f"bad{i}"].to_numpy()
        row, frame = _burn(slo, spec, total_w, bad_w, window_s)
        rows.append(row)
        frames.append(frame)
    series = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["slo", "t_s", "burn_rate", "spent"])
    )
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS), series


def _is_budget(spec: SloSpec) -> bool:
    return spec.stat == "error_rate" and spec.op in ("<", "<=")


def _budget_counts(
    table: Records, specs: Sequence[SloSpec], start: float, window_s: float, count: int
) -> pd.DataFrame:
    """Per window (0 to ``count`` - 1; a record before the first or after the last counts
    in it) and SLO ``i``: ``n<i>``, the records in its scope, and ``bad<i>``, those it
    counts as failed; one pass over the records."""
    if not specs:
        return pd.DataFrame(index=range(count))
    columns, params = [], []
    for i, spec in enumerate(specs):
        scope = "TRUE" if spec.endpoint == "*" else "endpoint = ?"
        bad = error_where(spec.error_filter)
        columns += [
            f"count(*) FILTER (WHERE {scope}) AS n{i}",
            f"count(*) FILTER (WHERE {scope} AND {bad}) AS bad{i}",
        ]
        params += [] if spec.endpoint == "*" else [spec.endpoint, spec.endpoint]
    window = f"least(greatest({window_index(start, window_s)}, 0), {count - 1})"
    frame = table.sql(
        f"SELECT {window} AS w, {', '.join(columns)} FROM {{records}} GROUP BY w", params
    )
    return frame.set_index("w").reindex(range(count), fill_value=0).astype(np.int64)


def _burn(
    slo: str, spec: SloSpec, total_w: np.ndarray, bad_w: np.ndarray, window_s: float
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One SLO's budget row and its burn per window, from its records and failed records
    per window."""
    count = len(total_w)
    share = spec.value / 100.0
    n, bad = int(total_w.sum()), int(bad_w.sum())
    budget = share * n
    with np.errstate(divide="ignore", invalid="ignore"):
        burn = np.where(total_w > 0, bad_w / np.maximum(total_w, 1) / share, np.nan)
        spent = np.cumsum(bad_w) / budget if budget > 0 else np.full(count, np.nan)
    if share == 0:
        burn = np.where(bad_w > 0, np.inf, np.where(total_w > 0, 0.0, np.nan))
    over = np.flatnonzero(spent >= 1.0) if budget > 0 else np.flatnonzero(bad_w > 0)
    t_end = (np.arange(count) + 1.0) * window_s
    row = {
        "slo": slo,
        "endpoint": spec.endpoint,
        "filter": spec.filter or DEFAULT_FILTER,
        "threshold_pct": share * 100,
        "requests": n,
        "budget_requests": budget,
        "bad": bad,
        "spent": bad / budget if budget > 0 else None,
        "exhausted_at_s": float(t_end[over[0]]) if len(over) else None,
        "peak_burn_rate": float(np.nanmax(burn)) if np.isfinite(burn).any() else None,
        "windows_over_budget": int(np.nansum(burn > 1.0)),
    }
    return row, pd.DataFrame({"slo": slo, "t_s": t_end, "burn_rate": burn, "spent": spent})


def settle_cpu(samples: pd.DataFrame, min_interval_s: float = MIN_CPU_INTERVAL_S) -> pd.DataFrame:
    """``samples`` with each psutil CPU figure taken over less than ``min_interval_s`` since
    its process's previous sample folded into the figure before it (weighted by interval)
    and removed (NaN). Heartbeat figures are Locust's own 10 s measurements: left as they
    are."""
    if samples.empty or "source" not in samples.columns:
        return samples
    settled = samples.sort_values("t", kind="stable", ignore_index=True)
    interval_based = settled["source"] == "psutil"
    for _, group in settled[interval_based].groupby("process", sort=False):
        cpu = _fold_short_intervals(
            group["t"].to_numpy(dtype=float),
            group["cpu_percent"].to_numpy(dtype=float),
            min_interval_s,
        )
        settled.loc[group.index, "cpu_percent"] = cpu
    return settled


def _fold_short_intervals(times: np.ndarray, cpu: np.ndarray, min_interval_s: float) -> np.ndarray:
    """Each ``cpu[i]`` is the mean over ``times[i-1]`` to ``times[i]``: one over less than
    ``min_interval_s`` joins the last kept figure (their time-weighted mean) or, with none
    to join (its predecessor unmeasured), is dropped."""
    out = cpu.copy()
    kept, span = -1, 0.0  # the figure short ones join, and the interval it covers
    for i in range(1, len(out)):
        interval = float(times[i] - times[i - 1])
        if math.isnan(out[i]) or interval >= min_interval_s:
            kept, span = (-1, 0.0) if math.isnan(out[i]) else (i, interval)
            continue
        if kept >= 0:
            out[kept] = (out[kept] * span + out[i] * interval) / (span + interval)
            span += interval
        out[i] = math.nan
    return out


def _harness(samples: pd.DataFrame, t0: float, from_t: float, th: Thresholds) -> pd.DataFrame:
    rows = []
    for process, group in samples.groupby("process", sort=True):
        memory = group[group["rss_bytes"].notna()]
        steady = memory[memory["t"] >= from_t]
        cpu = group["cpu_percent"].dropna()
        fit = (
            linear_trend(steady["t"] - t0, steady["rss_bytes"] / MB, th.confidence)
            if len(steady) >= 3
            else None
        )
        median = float((memory["rss_bytes"] / MB).median()) if len(memory) else math.nan
        material = fit is not None and abs(fit.change) >= max(
            th.memory_relative * median, th.memory_mb
        )
        significant = fit is not None and fit.significant
        cpu_max = float(cpu.max()) if len(cpu) else None
        rows.append(
            {
                "process": str(process),
                "role": str(group["role"].iloc[-1]),
                "samples": len(memory),
                "median_mb": median,
                "start_mb": fit.start if fit else None,
                "end_mb": fit.end if fit else None,
                "change_mb": fit.change if fit else None,
                "slope_mb_per_h": fit.slope * 3600 if fit else None,
                "ci_low_mb_per_h": fit.ci_low * 3600 if fit else None,
                "ci_high_mb_per_h": fit.ci_high * 3600 if fit else None,
                "significant": significant,
                "material": material,
                "flagged": significant and material,
                "cpu_mean": float(cpu.mean()) if len(cpu) else None,
                "cpu_max": cpu_max,
                "cpu_saturated": cpu_max is not None and cpu_max >= th.cpu_saturated,
            }
        )
    return pd.DataFrame(rows, columns=HARNESS_COLUMNS)


# ------------------------------------------------------------------------------ run directory


RESOURCE_COLUMNS = ["t", "process", "role", "rss_bytes", "cpu_percent", "source"]


def _empty_resources() -> pd.DataFrame:
    return pd.DataFrame(columns=RESOURCE_COLUMNS).astype(
        {"t": float, "rss_bytes": float, "cpu_percent": float}
    )


def read_resources(run_dir: Path | str) -> pd.DataFrame:
    """The samples of ``run_dir/resources.jsonl``: ``t`` (unix s), ``process``, ``role``,
    ``rss_bytes`` and ``cpu_percent`` (NaN when not measured yet), ``source``; empty when the
    file is missing. A torn last line is ignored; any other bad line is a ResultsError."""
    path = Path(run_dir) / RESOURCES_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _empty_resources()
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable: {exc}") from exc
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            if number == len(lines):  # the writer was killed mid-line
                break
            raise ResultsError(f"{path}:{number}: not a JSON line: {exc}") from exc
        if not isinstance(row, dict) or "t" not in row or "process" not in row:
            raise ResultsError(f"{path}:{number}: a sample needs t and process")
        rows.append({c: row.get(c) for c in RESOURCE_COLUMNS})
    if not rows:
        return _empty_resources()
    frame = pd.DataFrame(rows, columns=RESOURCE_COLUMNS)
    for column in ("t", "rss_bytes", "cpu_percent"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


class LoadedRun(Protocol):
    """What the drift reads of a loaded run (:func:`authload.analysis.report.load_run`)."""

    @property
    def run_dir(self) -> Path: ...

    @property
    def manifest(self) -> Manifest: ...

    @property
    def records(self) -> RecordsLike: ...

    @property
    def start_t(self) -> float: ...

    @property
    def end_t(self) -> float: ...


def run_drift(run: LoadedRun, thresholds: Thresholds | None = None) -> Drift | None:
    """The drift of a loaded run: None when it lasted less than :data:`MIN_SPAN_S` or
    recorded nothing."""
    if run.records.empty or run.end_t - run.start_t < MIN_SPAN_S:
        return None
    slos = run.manifest.scenario.get("slos") or []
    return analyze_drift(
        run.records,
        [str(s) for s in slos],
        read_resources(run.run_dir),
        start=run.start_t,
        end=run.end_t,
        thresholds=thresholds,
    )


# -------------------------------------------------------------------------------------- text


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _trend_text(row: Mapping[str, Any]) -> str:
    unit = "pp" if row["metric"] == "error_rate" else "ms"
    shown = "error rate" if row["metric"] == "error_rate" else row["metric"]
    verb = "rising" if row["change"] > 0 else "falling"
    return (
        f"{row['endpoint']} {shown} {verb}: {row['change']:+.1f} {unit} over the run "
        f"({row['start']:.1f} -> {row['end']:.1f}; slope {row['slope_per_h']:+.1f} {unit}/h, "
        f"interval {row['ci_low_per_h']:+.1f} to {row['ci_high_per_h']:+.1f})"
    )


def _step_text(row: Mapping[str, Any]) -> str:
    return (
        f"{row['endpoint']} p50 step at {row['t_s']:.0f} s: {row['before']:.1f} -> "
        f"{row['after']:.1f} ms (p = {row['p_value']:.2g})"
    )
