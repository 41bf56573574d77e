"""Capacity maths: judging one step of a capacity search, the search's next step, the knee,
the first SLO to break, and the Universal Scalability Law fit. Pure: numbers and frames in,
numbers out; no I/O, no printing (``authload.capacity`` runs the steps, the CLI prints).

A step is judged on its measured window only (warm-up excluded): the scenario's SLOs
(:func:`authload.analysis.slo.evaluate_slos`) on the window's records, plus two checks that
the load was really carried: no open-model arrival was dropped, and latency was not still
climbing through the window (a queue that grows passes a short step but not a long one).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy import optimize, stats  # type: ignore[import-untyped]

from authload.analysis.slo import evaluate, evaluate_slos
from authload.analysis.stats import percentile
from authload.slo_grammar import REQUESTS, parse_slo

__all__ = [
    "Breach",
    "Decision",
    "Knee",
    "SloOutcome",
    "StepJudgement",
    "UslFit",
    "UslFitError",
    "bracket",
    "find_knee",
    "first_breach",
    "fit_usl",
    "judge_step",
    "next_rate",
    "next_users",
    "step_window",
    "usl",
]

# steadiness: latency still climbing when the last third's median exceeds the first third's
# by both of these (a queue that grows through the window)
CLIMB_RATIO = 1.5
CLIMB_MIN_MS = 10.0
CLIMB_MIN_SAMPLES = 30  # answered requests per third, else the check is skipped
TAIL_S = 1.0  # the end of each step left out: the generator stopping slows what is in flight
SATURATED_GAIN = 0.02  # closed steps: two steps in a row adding less than this: saturated


# ------------------------------------------------------------------------------ one step


@dataclass(frozen=True)
class SloOutcome:
    """One SLO on a step's measured window; ``endpoint`` is the SLO's own, or for ``*`` the
    endpoint that did worst; ``severity`` is how far past the threshold (1.0 at it, above 1
    failing; ``inf`` when there was nothing to measure)."""

    slo: str
    value: float
    threshold: float
    passed: bool
    count: int
    endpoint: str
    severity: float


@dataclass(frozen=True)
class StepJudgement:
    """A step's measured window: its figures, the SLOs, and whether it passed (and why not)."""

    passed: bool
    reasons: list[str]
    window_start: float  # unix s
    window_end: float
    requests: int  # attempts started in the window (what the SLOs judge)
    throughput_rps: float  # attempts that ended in the window, per s
    ok_rps: float  # of those, the ones without an error, per s (goodput)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_rate: float  # share of attempts with an error, 0..1
    steady: bool
    slos: list[SloOutcome] = field(default_factory=list)

    @property
    def window_s(self) -> float:
        return self.window_end - self.window_start


def step_window(
    records: pd.DataFrame,
    warmup_s: float,
    measure_s: float,
    open_model: bool,
    tail_s: float = TAIL_S,
) -> tuple[float, float]:
    """The measured window of a step (unix s): from the schedule's start plus ``warmup_s``
    to ``tail_s`` before the end of the ``measure_s`` that follow (requests still in flight
    when the load generator stops are slowed by its stopping). The open model's schedule
    starts at its first intended arrival exactly; the closed model's at its first request."""
    if records.empty:
        return (math.nan, math.nan)
    start = float(records["t"].min())
    if open_model and "t_intended" in records and records["t_intended"].notna().any():
        start = float(records["t_intended"].min())
    return (start + warmup_s, start + warmup_s + max(measure_s - tail_s, 0.0))


def judge_step(
    records: pd.DataFrame,
    slos: Sequence[str],
    start: float,
    end: float,
    dropped_arrivals: int = 0,
) -> StepJudgement:
    """Judge the attempts that started in ``[start, end)``: the SLOs (rates over the window's
    length), dropped arrivals and steadiness; a step with no requests in its window fails.
    Throughput counts the attempts that ended in the window: above capacity the service
    completes fewer than are sent."""
    window = records[(records["t"] >= start) & (records["t"] < end)]
    span = end - start
    latency = window["latency_ms"]  # every attempt, as the SLOs count it (an unanswered one: to
    n = len(window)  # its failure)
    reasons: list[str] = []
    per_request = [s for s in slos if parse_slo(s).family == REQUESTS]  # a step has no journeys
    outcomes = [
        _outcome(r.slo, r.value, r.threshold, r.passed, r.count, window, span)
        for r in evaluate_slos(per_request, window, span)
    ]
    reasons += [f"{o.slo} (measured {_fmt(o.value)}{_where(o)})" for o in outcomes if not o.passed]
    if n == 0:
        reasons.append("no requests in the measured window")
    if dropped_arrivals > 0:
        reasons.append(f"{dropped_arrivals} arrivals dropped (journeys in flight at max_in_flight)")
    steady, climb = _steadiness(window, start, end)
    if not steady:
        reasons.append(climb)
    errors = int(window["error"].notna().sum())
    ends = records["t"] + records["latency_ms"] / 1000.0
    done = records[(ends >= start) & (ends < end)]
    completed, completed_ok = len(done), int(done["error"].isna().sum())
    return StepJudgement(
        passed=not reasons,
        reasons=reasons,
        window_start=start,
        window_end=end,
        requests=n,
        throughput_rps=completed / span if span > 0 else math.nan,
        ok_rps=completed_ok / span if span > 0 else math.nan,
        p50_ms=percentile(latency, 0.50),
        p95_ms=percentile(latency, 0.95),
        p99_ms=percentile(latency, 0.99),
        error_rate=errors / n if n else 0.0,
        steady=steady,
        slos=outcomes,
    )


def _fmt(value: float) -> str:
    return "no data" if math.isnan(value) else f"{value:.4g}"


def _where(outcome: SloOutcome) -> str:
    return f" on {outcome.endpoint}" if outcome.endpoint != "*" else ""


def _severity(op: str, value: float, threshold: float) -> float:
    if math.isnan(value):
        return math.inf
    if op in ("<", "<="):
        return value / threshold if threshold > 0 else (math.inf if value > 0 else 1.0)
    return threshold / value if value > 0 else math.inf


def _outcome(
    slo: str,
    value: float,
    threshold: float,
    passed: bool,
    count: int,
    window: pd.DataFrame,
    span: float,
) -> SloOutcome:
    spec = parse_slo(slo)
    severity = _severity(spec.op, value, threshold)
    if spec.endpoint != "*" or spec.stat == "rate" or passed:
        return SloOutcome(slo, value, threshold, passed, count, spec.endpoint, severity)
    # a failing SLO over all endpoints: the endpoint that did worst on the same measure
    worst, worst_severity = "*", -math.inf
    for name in sorted(window["endpoint"].unique()):
        result = evaluate(spec.scoped(str(name)).text, window, span)
        s = _severity(spec.op, result.value, result.threshold)
        if s > worst_severity and result.count > 0:
            worst, worst_severity = str(name), s
    return SloOutcome(slo, value, threshold, passed, count, worst, severity)


def _steadiness(window: pd.DataFrame, start: float, end: float) -> tuple[bool, str]:
    third = (end - start) / 3.0
    answered = window[window["status"] > 0]
    first = answered.loc[answered["t"] < start + third, "latency_ms"]
    last = answered.loc[answered["t"] >= end - third, "latency_ms"]
    if len(first) < CLIMB_MIN_SAMPLES or len(last) < CLIMB_MIN_SAMPLES:
        return True, ""
    p_first, p_last = percentile(first, 0.5), percentile(last, 0.5)
    if p_last > CLIMB_RATIO * p_first and p_last - p_first >= CLIMB_MIN_MS:
        return False, (
            f"not steady: median latency still climbing through the window "
            f"({p_first:.4g} ms in its first third, {p_last:.4g} ms in its last)"
        )
    return True, ""


# ---------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class Decision:
    """The next level to try, or None to stop, and why: ``start``, ``step_up``, ``bisect``;
    stops: ``precision`` (bracket narrow enough), ``max_reached``, ``below_start`` (the first
    level already failed), ``saturated`` (closed: throughput stopped growing)."""

    level: float | None
    reason: str


def bracket(results: Sequence[tuple[float, bool]]) -> tuple[float | None, float | None]:
    """(highest passing level below the lowest failing one, lowest failing level), from
    ``(level, passed)`` pairs; a pass above a failure (noise) is not trusted."""
    fails = [level for level, passed in results if not passed]
    high = min(fails) if fails else None
    passes = [level for level, passed in results if passed and (high is None or level < high)]
    return (max(passes) if passes else None), high


def next_rate(
    results: Sequence[tuple[float, bool]],
    *,
    start: float,
    factor: float,
    precision: float,
    maximum: float | None = None,
) -> Decision:
    """Open-model search: from ``start``, multiply by ``factor`` while steps pass; once one
    fails, bisect (geometric mean) between the last passing and first failing rate until
    their ratio is within ``1 + precision``."""
    if not results:
        return Decision(start, "start")
    low, high = bracket(results)
    if low is None:
        return Decision(None, "below_start")
    if high is None:
        if maximum is not None and low >= maximum * (1 - 1e-9):
            return Decision(None, "max_reached")
        up = _round(low * factor)
        return Decision(up if maximum is None else min(up, maximum), "step_up")
    if high / low <= 1 + precision:
        return Decision(None, "precision")
    middle = _round(math.sqrt(low * high))
    if not low < middle < high:  # rounding ate the gap: the bracket is as narrow as it gets
        return Decision(None, "precision")
    return Decision(middle, "bisect")


def _round(rate: float) -> float:
    """Four significant digits: rates read cleanly and the schedule does not care."""
    return float(f"{rate:.4g}")


def next_users(
    results: Sequence[tuple[int, float]], *, start: int, factor: float, maximum: int
) -> Decision:
    """Closed-model steps for the scalability fit: ``start`` users, then times ``factor``
    (at least one more) up to ``maximum``; stop early once two steps in a row each added
    less than 2% throughput over the best before them (saturated, or past the peak)."""
    if not results:
        return Decision(start, "start")
    if len(results) >= 3:
        best = max(x for _, x in results[:-2])
        if all(x < best * (1 + SATURATED_GAIN) for _, x in results[-2:]):
            return Decision(None, "saturated")
    last = results[-1][0]
    if last >= maximum:
        return Decision(None, "max_reached")
    return Decision(min(maximum, max(last + 1, round(last * factor))), "step_up")


# ------------------------------------------------------------------- knee, first breach


@dataclass(frozen=True)
class Knee:
    """Where latency starts to climb faster than throughput: the last level before it."""

    level: float
    throughput_rps: float
    latency_ms: float
    next_level: float  # the level at which latency had climbed
    elasticity: float  # d ln latency / d ln throughput over that segment (inf: no gain)


def find_knee(
    level: Sequence[float],
    throughput: Sequence[float],
    latency: Sequence[float],
    min_rise: float = 0.1,
) -> Knee | None:
    """The knee of a load curve: between consecutive levels (sorted), the first segment in
    which latency rose by at least ``min_rise`` (10%) and by more, proportionally, than
    throughput did (elasticity d ln L / d ln X above 1, or throughput no higher). The knee is
    the level at the segment's start; None when latency never climbs like that."""
    points = sorted(
        (float(lv), float(x), float(y))
        for lv, x, y in zip(level, throughput, latency, strict=True)
        if x > 0 and y > 0  # NaN compares False: left out too
    )
    for (level0, x0, y0), (level1, x1, y1) in pairwise(points):
        rise = y1 / y0
        if rise < 1 + min_rise:
            continue
        gain = x1 / x0
        elasticity = math.inf if gain <= 1 else math.log(rise) / math.log(gain)
        if elasticity > 1:
            return Knee(level0, x0, y0, level1, elasticity)
    return None


@dataclass(frozen=True)
class Breach:
    """The first SLO to break: at the lowest failing level, the SLO furthest past its
    threshold, and on which endpoint (None when the step failed for another reason)."""

    level: float
    slo: str | None
    endpoint: str | None
    value: float | None
    threshold: float | None
    reasons: list[str]


def first_breach(steps: Sequence[tuple[float, StepJudgement]]) -> Breach | None:
    failed = sorted((level, j) for level, j in steps if not j.passed)
    if not failed:
        return None
    level, judgement = failed[0]
    broken = [o for o in judgement.slos if not o.passed]
    if not broken:
        return Breach(level, None, None, None, None, judgement.reasons)
    worst = max(broken, key=lambda o: o.severity)
    return Breach(level, worst.slo, worst.endpoint, worst.value, worst.threshold, judgement.reasons)


# ------------------------------------------------------------ Universal Scalability Law


class UslFitError(ValueError):
    """The data cannot carry a USL fit (too few levels, flat, not positive, no convergence)."""


def usl(
    n: float | np.ndarray | Sequence[float], lam: float, sigma: float, kappa: float
) -> np.ndarray:
    """Gunther's Universal Scalability Law: X(N) = lam N / (1 + sigma (N-1) + kappa N (N-1))."""
    n = np.asarray(n, dtype=float)
    result: np.ndarray = lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
    return result


@dataclass(frozen=True)
class UslFit:
    """A least-squares USL fit: a model of the measured points, not a measurement.

    ``lam`` is the throughput of one user without contention (units of the data, per s),
    ``sigma`` contention (serialisation, 0..1), ``kappa`` coherency (crosstalk); ``*_se`` are
    their standard errors and ``*_ci`` 95% intervals (t distribution, n - 3 degrees of
    freedom, clipped to the parameters' bounds). ``n_peak`` = sqrt((1 - sigma) / kappa) is
    where the model's throughput peaks (``inf`` with no coherency cost) and ``x_peak`` the
    throughput there (the asymptote lam / sigma when ``n_peak`` is infinite). ``r2`` is the
    fit's R squared.
    """

    lam: float
    sigma: float
    kappa: float
    lam_se: float
    sigma_se: float
    kappa_se: float
    lam_ci: tuple[float, float]
    sigma_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    n_peak: float
    n_peak_se: float
    x_peak: float
    r2: float
    points: int

    def predict(self, n: float | np.ndarray | Sequence[float]) -> np.ndarray:
        return usl(n, self.lam, self.sigma, self.kappa)


MIN_USL_LEVELS = 4
FLAT = 0.01  # throughput varying by less than this share of its mean is flat


def fit_usl(concurrency: Sequence[float], throughput: Sequence[float]) -> UslFit:
    """Fit the USL to throughput measured at several concurrencies (closed-model steps).

    Needs at least four distinct concurrency levels (three parameters and one degree of
    freedom), all positive and finite, and throughput that varies; otherwise a
    :class:`UslFitError` says which. Starting values come from the linearised form
    (lam N / X - 1 = sigma (N-1) + kappa N (N-1), non-negative least squares), then all three
    are fitted together within sigma in [0, 1], kappa >= 0.
    """
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if n.shape != x.shape or n.ndim != 1:
        raise UslFitError("USL fit: concurrency and throughput must be two equal-length lists")
    if not (np.isfinite(n).all() and np.isfinite(x).all()):
        raise UslFitError("USL fit: concurrency and throughput must be finite numbers")
    if (n < 1).any() or (x <= 0).any():
        raise UslFitError("USL fit: concurrency must be >= 1 and throughput > 0 at every point")
    levels = len(np.unique(n))
    if levels < MIN_USL_LEVELS:
        raise UslFitError(
            f"USL fit needs throughput at {MIN_USL_LEVELS} or more distinct concurrency "
            f"levels; got {levels}"
        )
    spread = (x.max() - x.min()) / x.mean()
    if spread < FLAT:
        raise UslFitError(
            f"USL fit: throughput is flat (it varies by {spread:.2%} across the levels, under "
            f"{FLAT:.0%}): the system was saturated at every level, or the levels were too "
            f"close, so scalability cannot be told apart from noise"
        )
    p0 = _usl_start(n, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        try:
            params, cov = optimize.curve_fit(
                usl, n, x, p0=p0, bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]), maxfev=20000
            )
        except (RuntimeError, ValueError) as exc:
            raise UslFitError(f"USL fit did not converge: {exc}") from None
    lam, sigma, kappa = (float(p) for p in params)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None)) if np.isfinite(cov).all() else np.full(3, np.nan)
    dof = len(n) - 3
    t = float(stats.t.ppf(0.975, dof)) if dof > 0 else math.inf
    ci = [  # within the parameters' own bounds: lam >= 0, sigma in [0, 1], kappa >= 0
        (float(max(p - t * s, 0.0)), float(min(p + t * s, top)))
        for p, s, top in zip(params, se, (math.inf, 1.0, math.inf), strict=True)
    ]
    residual = x - usl(n, lam, sigma, kappa)
    total = float(((x - x.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total
    n_peak, n_peak_se, x_peak = _peak(lam, sigma, kappa, cov)
    return UslFit(
        lam=lam,
        sigma=sigma,
        kappa=kappa,
        lam_se=float(se[0]),
        sigma_se=float(se[1]),
        kappa_se=float(se[2]),
        lam_ci=ci[0],
        sigma_ci=ci[1],
        kappa_ci=ci[2],
        n_peak=n_peak,
        n_peak_se=n_peak_se,
        x_peak=x_peak,
        r2=r2,
        points=len(n),
    )


def _usl_start(n: np.ndarray, x: np.ndarray) -> list[float]:
    low = n == n.min()
    lam = float(x[low].mean() / n.min())
    lam = max(lam, float((x / n).max()))  # lam N / X - 1 must not go negative
    design = np.column_stack([n - 1.0, n * (n - 1.0)])
    target = lam * n / x - 1.0
    try:
        (sigma, kappa), _ = optimize.nnls(design, target)
    except (RuntimeError, ValueError):
        sigma, kappa = 0.01, 1e-4
    return [lam, float(min(max(sigma, 0.0), 0.99)), float(max(kappa, 0.0))]


def _peak(lam: float, sigma: float, kappa: float, cov: np.ndarray) -> tuple[float, float, float]:
    """N* = sqrt((1 - sigma) / kappa), its standard error by the delta method, X(N*)."""
    if kappa <= 0 or sigma >= 1:
        asymptote = lam / sigma if sigma > 0 else math.inf
        return math.inf, math.nan, asymptote
    n_peak = math.sqrt((1.0 - sigma) / kappa)
    gradient = np.array([0.0, -1.0 / (2.0 * kappa * n_peak), -n_peak / (2.0 * kappa)])
    variance = float(gradient @ cov @ gradient) if np.isfinite(cov).all() else math.nan
    n_peak_se = math.sqrt(variance) if variance >= 0 else math.nan
    return n_peak, n_peak_se, float(usl(n_peak, lam, sigma, kappa))
