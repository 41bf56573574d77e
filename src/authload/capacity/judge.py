"""Judging one step of a capacity search: its measured window and whether it carried the load.

Records in (a step run's :class:`~authload.analysis.query.Records`, queried where they lie,
or a frame), numbers out; no printing. A step is judged on its measured window only (warm-up
excluded): the scenario's SLOs (:func:`authload.analysis.slo.evaluate_slos`) on the window's
records, plus two checks that the load was really carried: no open-model arrival was
dropped, and latency was not still climbing through the window (a queue that grows passes a
short step but not a long one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from authload.analysis.query import (
    ANSWERED,
    Records,
    RecordsLike,
    as_records,
    between,
    exact_quantiles,
)
from authload.analysis.slo import evaluate, evaluate_slos
from authload.scenario.slo_grammar import REQUESTS, parse_slo

__all__ = ["TAIL_S", "SloOutcome", "StepJudgement", "judge_step", "step_window"]

# steadiness: latency still climbing when the last third's median exceeds the first third's
# by both of these (a queue that grows through the window)
CLIMB_RATIO = 1.5
CLIMB_MIN_MS = 10.0
CLIMB_MIN_SAMPLES = 30  # answered requests per third, else the check is skipped
TAIL_S = 1.0  # the end of each step left out: the generator stopping slows what is in flight


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
    records: RecordsLike,
    warmup_s: float,
    measure_s: float,
    open_model: bool,
    tail_s: float = TAIL_S,
) -> tuple[float, float]:
    """The measured window of a step (unix s): from the schedule's start plus ``warmup_s``
    to ``tail_s`` before the end of the ``measure_s`` that follow (requests still in flight
    when the load generator stops are slowed by its stopping). The open model's schedule
    starts at its first intended arrival exactly; the closed model's at its first request."""
    row = as_records(records).row(
        "SELECT min(t) AS first, min(t_intended) AS intended FROM {records}"
    )
    if pd.isna(row["first"]):  # no records
        return (math.nan, math.nan)
    start = float(row["first"])
    if open_model and not pd.isna(row["intended"]):
        start = float(row["intended"])
    return (start + warmup_s, start + warmup_s + max(measure_s - tail_s, 0.0))


def judge_step(
    records: RecordsLike,
    slos: Sequence[str],
    start: float,
    end: float,
    dropped_arrivals: int = 0,
) -> StepJudgement:
    """Judge the attempts that started in ``[start, end)``: the SLOs (rates over the window's
    length), dropped arrivals and steadiness; a step with no requests in its window fails.
    Throughput counts the attempts that ended in the window: above capacity the service
    completes fewer than are sent. Latency figures are of every attempt, as the SLOs count
    it (an unanswered one: to its failure)."""
    table = as_records(records)
    window = table.selection(between("t", start, end))
    span = end - start
    counts = _counts(table, start, end)
    n = counts["n"]
    per_request = [s for s in slos if parse_slo(s).family == REQUESTS]  # a step has no journeys
    outcomes = [
        _outcome(r.slo, r.value, r.threshold, r.passed, r.count, window, span)
        for r in evaluate_slos(per_request, window, span)
    ]
    reasons = [f"{o.slo} (measured {_fmt(o.value)}{_where(o)})" for o in outcomes if not o.passed]
    if n == 0:
        reasons.append("no requests in the measured window")
    if dropped_arrivals > 0:
        reasons.append(f"{dropped_arrivals} arrivals dropped (journeys in flight at max_in_flight)")
    steady, climb = _steadiness(window, start, end)
    if not steady:
        reasons.append(climb)
    p50, p95, p99 = _percentiles(window, "0", [0.50, 0.95, 0.99]).get(0, [math.nan] * 3)
    return StepJudgement(
        passed=not reasons,
        reasons=reasons,
        window_start=start,
        window_end=end,
        requests=n,
        throughput_rps=counts["completed"] / span if span > 0 else math.nan,
        ok_rps=counts["completed_ok"] / span if span > 0 else math.nan,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        error_rate=counts["errors"] / n if n else 0.0,
        steady=steady,
        slos=outcomes,
    )


def _counts(records: Records, start: float, end: float) -> dict[str, int]:
    """The attempts that started in the window (``n``) and those of them with an error;
    those that ended in it (``completed``) and those of them without an error."""
    started, ended = between("t", start, end), between("t + latency_ms / 1000.0", start, end)
    row = records.row(
        f"""SELECT count(*) FILTER (WHERE {started}) AS n,
            count(error) FILTER (WHERE {started}) AS errors,
            count(*) FILTER (WHERE {ended}) AS completed,
            count(*) FILTER (WHERE {ended} AND error IS NULL) AS completed_ok
        FROM {{records}}"""
    )
    return {k: int(v) for k, v in row.items()}


def _percentiles(records: Records, group: str, qs: list[float]) -> dict[int, list[float]]:
    """Nearest-rank percentiles of every attempt's latency per value of ``group`` (SQL)."""
    frame = exact_quantiles(records, "latency_ms", qs, {"g": group}, f"({group}) IS NOT NULL")
    return {int(row["g"]): [float(v) for v in row["q"]] for _, row in frame.iterrows()}


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
    window: Records,
    span: float,
) -> SloOutcome:
    spec = parse_slo(slo)
    severity = _severity(spec.op, value, threshold)
    if spec.endpoint != "*" or spec.stat == "rate" or passed:
        return SloOutcome(slo, value, threshold, passed, count, spec.endpoint, severity)
    # a failing SLO over all endpoints: the endpoint that did worst on the same measure
    worst, worst_severity = "*", -math.inf
    for name in sorted(window.sql("SELECT DISTINCT endpoint FROM {records}")["endpoint"]):
        result = evaluate(spec.scoped(str(name)).text, window, span)
        s = _severity(spec.op, result.value, result.threshold)
        if s > worst_severity and result.count > 0:
            worst, worst_severity = str(name), s
    return SloOutcome(slo, value, threshold, passed, count, worst, severity)


def _steadiness(window: Records, start: float, end: float) -> tuple[bool, str]:
    third = (end - start) / 3.0
    first, last = between("t", start, start + third), between("t", end - third, end)
    thirds = f"CASE WHEN {ANSWERED} AND {first} THEN 0 WHEN {ANSWERED} AND {last} THEN 2 END"
    answered = window.sql(f"SELECT {thirds} AS g, count(*) AS n FROM {{records}} GROUP BY g")
    sizes = {
        int(g): int(n) for g, n in zip(answered["g"], answered["n"], strict=True) if not pd.isna(g)
    }
    if min(sizes.get(0, 0), sizes.get(2, 0)) < CLIMB_MIN_SAMPLES:
        return True, ""
    medians = _percentiles(window, thirds, [0.5])
    p_first, p_last = medians[0][0], medians[2][0]
    if p_last > CLIMB_RATIO * p_first and p_last - p_first >= CLIMB_MIN_MS:
        return False, (
            f"not steady: median latency still climbing through the window "
            f"({p_first:.4g} ms in its first third, {p_last:.4g} ms in its last)"
        )
    return True, ""
