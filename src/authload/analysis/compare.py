"""Two runs compared: per endpoint, is the candidate slower, faster, or no different?

For each endpoint present in either run, and over all (``*``), :func:`compare_runs` compares
p50, p95 and p99 latency (ms, every attempt: one that got no answer counts the time until it
failed; nearest rank as in :mod:`authload.analysis.stats`) and the error rate (share of
attempts with an error). Each change gets a percentile-bootstrap confidence interval: each
run's records are resampled independently, the change is computed for every pair of
resamples, and the interval is the middle of those changes.

The intervals are simultaneous (Bonferroni): the ``m`` rows that can decide the verdict (those
with enough data) each get the level ``1 - (1 - confidence) / m``, so that all of them hold
their true change together with probability at least ``confidence``, and two runs drawn from
the same distribution are called a regression (or an improvement) in at most
``1 - confidence`` of comparisons, however many endpoints there are. Each row draws at least
``resamples``, and enough that each tail of its interval holds 10 resamples.

Changes and tolerances:

- latency: the relative change, candidate / base - 1 (``0.3`` = 30 % slower); ``tolerance``
  is relative (default 0.05, 5 %), and a change must also exceed the absolute floor
  (``floor_ms``, default :data:`FLOOR_MS`, 2 ms, or the records' resolution if coarser: the
  step all recorded latencies lie on, as latencies rounded to 5 ms do): on 127.0.0.1 a
  request's time includes the load generator's own event loop, garbage collection and
  scheduling, which move by about a millisecond between runs with nothing changed in the
  service, so 1.1 -> 1.0 ms ("-9 %") is no verdict. A row's tolerance is then
  ``max(tolerance, floor_ms / base)``;
- error rate: the difference in percentage points (1 % -> 5 % is ``4.0``);
  ``error_tolerance_pp`` is absolute (default 0.5 pp), because a relative change of a rate
  near zero (0.01 % -> 0.03 %, "+200 %") says little;
- retry amplification: attempts per logical operation (an operation is one ``(worker,
  op_id)``: its first attempt and its retries), relative like latency with ``tolerance``; it
  is resampled by operation. Records without ``op_id`` and ``worker`` cannot give it.

The rows come from :data:`ROW_BUILDERS`, in table order: the per-endpoint statistics of the
records, then, when both runs have journey records, per flow and over all (``journey
<flow>``) the share of failed journeys (``journey_failures``: dropped arrivals count as
failed) and, for the open model, the share of arrivals never started (``arrivals`` /
``dropped``), both in percentage points like an error rate. Rows that can decide share the
simultaneous confidence below whatever builder made them.

:func:`setup_differences` says when two runs differ in scenario, target, load model or retry
policy (from their ``manifest.json``): their figures then measure different things.

A row's verdict is ``regression`` when the whole interval lies above +tolerance (slower, or
more errors), ``improvement`` when it lies below -tolerance, ``no significant change``
otherwise, and ``insufficient data`` when either run has fewer than ``min_samples`` (20)
attempts for it, or, for a percentile, fewer than it takes to leave :data:`TAIL_SAMPLES` (5)
attempts beyond it (p95: 100, p99: 500: the bootstrap of a percentile with less above it is
too coarse to trust), or the base latency is zero (no relative change): never a regression.
``note`` then says why. The overall verdict is ``regression`` if any row regresses, else
``improvement`` if any row improves, else ``no significant change``. The ``*`` rows pool
every endpoint, so a change of the mix between runs moves them too.

The bootstrap draws no resample matrices yet samples the same distribution as resampling
the records: the k-th smallest of n values drawn with replacement from sorted values ``x``
is ``x[floor(n * U)]``, where U, the k-th smallest of n uniform numbers, is
Beta(k, n + 1 - k); the number of errors in a resample of n attempts is
Binomial(n, observed error rate). Each statistic costs O(resamples) whatever the run size,
and each row draws from its own random stream (seed, endpoint, statistic), so a row's
interval depends only on the seed, its own data and how many rows decide.

The records are queried where they lie (:mod:`authload.analysis.query`), so two runs of a
hundred million records compare in bounded memory. Every figure shown is exact over every
record: the percentiles (nearest rank), counts, error rates and attempts per operation.
The latency intervals alone resample a **bounded sample**: per endpoint and over all, at
most :data:`SAMPLE_SIZE` (200,000) latencies drawn uniformly without replacement (the
records whose hash, seeded by ``seed``, is among the smallest). A group with fewer
attempts is its own sample, so a comparison of runs of that size is exactly a bootstrap of
every record. A larger group's interval is the one a run of 200,000 attempts would have:
about sqrt(n / 200,000) times as wide as all n would give (2.2 for a million), so a
sampled row errs towards ``no significant change``.
"""

from __future__ import annotations

import itertools
import json
import math
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from authload.analysis.journeys import DROPPED_ARRIVAL, IN_SCOPE, OK
from authload.analysis.query import (
    Journeys,
    JourneysLike,
    Records,
    RecordsLike,
    as_journeys,
    as_records,
    exact_quantiles,
)
from authload.analysis.stats import PERCENTILES
from authload.errors import ResultsError
from authload.rundir.files import MANIFEST_FILE, RECORDS_DIR, RECORDS_FILE
from authload.rundir.jsonfiles import plain
from authload.rundir.manifest import read_manifest

__all__ = [
    "ERROR_TOLERANCE_PP",
    "FLOOR_MS",
    "IMPROVEMENT",
    "INSUFFICIENT_DATA",
    "LATENCY_STATS",
    "MIN_SAMPLES",
    "NO_SIGNIFICANT_CHANGE",
    "REGRESSION",
    "ROW_BUILDERS",
    "SAMPLE_SIZE",
    "STATS",
    "TAIL_SAMPLES",
    "Comparison",
    "Inputs",
    "PendingRow",
    "Row",
    "RunSetup",
    "compare_runs",
    "endpoint_figures",
    "latency_resolution",
    "load_run_records",
    "load_setup",
    "min_count",
    "setup_differences",
]

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_SIGNIFICANT_CHANGE = "no significant change"
INSUFFICIENT_DATA = "insufficient data"

LATENCY_STATS = ("p50", "p95", "p99")
STATS = (*LATENCY_STATS, "error_rate", "amplification")
ERROR_TOLERANCE_PP = 0.5
FLOOR_MS = 2.0  # latency changes smaller than this are the load generator's own noise
MIN_SAMPLES = 20
TAIL_SAMPLES = 5  # attempts beyond a percentile it takes to compare it
TAIL_RESAMPLES = 10  # resamples in each tail of an interval, at least
SAMPLE_SIZE = 200_000  # latencies of one endpoint an interval resamples, at most

#: The record columns a comparison reads: ``worker`` and ``op_id`` (an operation) only for
#: amplification, ``t`` only to tell records apart in a sample.
COLUMNS = ("endpoint", "status", "latency_ms", "error", "worker", "op_id", "t")
REQUIRED_COLUMNS = COLUMNS[:4]
OPERATION_COLUMNS = ("worker", "op_id")


@dataclass(frozen=True)
class Row:
    """One statistic of one endpoint (``*``: all endpoints) in both runs.

    ``base`` and ``candidate`` are in ms, a share (0.01 = 1 %) for ``error_rate``, or
    attempts per operation for ``amplification``; None when the run has nothing to compute
    them from. ``base_count`` and ``candidate_count`` are the attempts (operations, for
    ``amplification``) they were computed from.
    ``change``, ``ci_low``, ``ci_high`` and ``tolerance`` are in ``unit``: ``relative``
    (latency and amplification: candidate / base - 1) or ``pp`` (error rate: percentage
    points). A latency row's ``tolerance`` is the larger of the relative tolerance and the
    absolute floor as a share of its base.
    ``relative_change`` is candidate / base - 1 for every statistic (None if base is 0).
    The interval is None when the verdict is ``insufficient data``, and ``note`` says why
    (e.g. ``too few samples for p99: 120 < 500``).
    """

    endpoint: str
    stat: str
    unit: str
    base: float | None
    candidate: float | None
    base_count: int
    candidate_count: int
    change: float | None
    relative_change: float | None
    ci_low: float | None
    ci_high: float | None
    tolerance: float
    verdict: str
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """Every row (endpoints sorted, then ``*``; statistics in :data:`STATS` order), the
    overall verdict and the settings it was computed with. ``deciding`` rows had enough data
    to decide; each of their intervals is at ``row_confidence``, so that together they hold
    at ``confidence``. ``floor_ms`` is the absolute floor of latency changes applied: the
    one asked for, or ``resolution_ms`` (the records' resolution) if larger."""

    rows: list[Row]
    verdict: str
    tolerance: float
    error_tolerance_pp: float
    confidence: float
    resamples: int
    seed: int
    min_samples: int
    deciding: int = 0
    row_confidence: float = 0.0
    floor_ms: float = FLOOR_MS
    resolution_ms: float = 0.0

    def row(self, endpoint: str, stat: str) -> Row:
        for row in self.rows:
            if row.endpoint == endpoint and row.stat == stat:
                return row
        raise KeyError((endpoint, stat))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; infinite interval ends (a zero base resampled) become None."""
        data: dict[str, Any] = plain(asdict(self))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)


def load_run_records(run_dir: Path | str) -> Records:
    """The records of a run directory, only the columns a comparison reads, as a table
    queried where it lies (:class:`~authload.analysis.query.Records`).

    Raises :class:`ResultsError` naming the directory when it is missing, is not a run
    directory, or its records are missing or unreadable.
    """
    path = Path(run_dir)
    if not path.exists():
        raise ResultsError(f"{path}: no such run directory")
    if not path.is_dir():
        raise ResultsError(f"{path}: not a run directory (not a directory)")
    if not (path / RECORDS_FILE).is_file():
        if (path / RECORDS_DIR).is_dir():
            raise ResultsError(f"{path}: records not finalized yet (no {RECORDS_FILE})")
        if not (path / MANIFEST_FILE).is_file():
            raise ResultsError(
                f"{path}: not a run directory (neither {MANIFEST_FILE} nor {RECORDS_FILE})"
            )
    return Records.of_run(path, columns=COLUMNS)


def compare_runs(
    base: RecordsLike,
    candidate: RecordsLike,
    tolerance: float = 0.05,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    *,
    error_tolerance_pp: float = ERROR_TOLERANCE_PP,
    min_samples: int = MIN_SAMPLES,
    floor_ms: float = FLOOR_MS,
    journeys: tuple[JourneysLike, JourneysLike] | None = None,
) -> Comparison:
    """Compare ``candidate``'s records with ``base``'s (see the module docstring).

    Both (:class:`~authload.analysis.query.Records` or pandas frames) need the columns
    ``endpoint``, ``status``, ``latency_ms`` and ``error``; ``worker`` and ``op_id`` for the
    retry amplification. The result depends only on the records and the arguments.
    ``journeys``: the two runs' journey records (base, candidate), for the journey rows.
    """
    _check_arguments(tolerance, error_tolerance_pp, confidence, resamples, seed, min_samples)
    if not (math.isfinite(floor_ms) and floor_ms >= 0):
        raise ValueError(f"floor_ms must be >= 0, not {floor_ms}")
    inputs = _inputs(base, candidate, min_samples, seed, journeys)
    pending = [row for build in ROW_BUILDERS for row in build(inputs)]
    deciding = sum(row.shortfall is None for row in pending)
    row_confidence = 1.0 - (1.0 - confidence) / max(deciding, 1)
    resolution = max(latency_resolution(inputs.base), latency_resolution(inputs.candidate))
    settings = _Settings(
        tolerance,
        error_tolerance_pp,
        row_confidence,
        resamples,
        seed,
        min_samples,
        max(floor_ms, resolution),
    )
    rows = [row.compute(settings) for row in pending]
    return Comparison(
        rows=rows,
        verdict=_overall({row.verdict for row in rows}),
        tolerance=tolerance,
        error_tolerance_pp=error_tolerance_pp,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        min_samples=min_samples,
        deciding=deciding,
        row_confidence=row_confidence,
        floor_ms=settings.floor_ms,
        resolution_ms=resolution,
    )


def _check_arguments(
    tolerance: float,
    error_tolerance_pp: float,
    confidence: float,
    resamples: int,
    seed: int,
    min_samples: int,
) -> None:
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be >= 0, not {tolerance}")
    if not (math.isfinite(error_tolerance_pp) and error_tolerance_pp >= 0):
        raise ValueError(f"error_tolerance_pp must be >= 0, not {error_tolerance_pp}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, not {resamples}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be >= 1, not {min_samples}")


def _inputs(
    base: RecordsLike,
    candidate: RecordsLike,
    min_samples: int,
    seed: int,
    journeys: tuple[JourneysLike, JourneysLike] | None,
) -> Inputs:
    for records, name in ((base, "base"), (candidate, "candidate")):
        missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
        if missing:
            raise ValueError(f"{name} records lack columns {missing}")
    kept = [None if j is None else as_journeys(j) for j in journeys or (None, None)]
    return Inputs(
        as_records(base),
        as_records(candidate),
        min_samples,
        kept[0],
        kept[1],
        seed,
        (_has_operations(base), _has_operations(candidate)),
    )


def _has_operations(records: RecordsLike) -> bool:
    """Whether the records say each attempt's operation (a frame may leave it out)."""
    return all(c in records.columns for c in OPERATION_COLUMNS)


def _overall(verdicts: set[str]) -> str:
    if REGRESSION in verdicts:
        return REGRESSION
    return IMPROVEMENT if IMPROVEMENT in verdicts else NO_SIGNIFICANT_CHANGE


def latency_resolution(records: RecordsLike) -> float:
    """The resolution of the recorded latencies (ms): the step every recorded value is a
    whole number of steps from the smallest by (latencies rounded to 1 ms: 1.0); 0 when
    they are on no such grid (a fine clock) or fewer than two differ.

    The step is the smallest gap between distinct values, or when there are more than
    :data:`SAMPLE_SIZE` of them, between those of a sample of them (picked by hash); every
    record is checked to lie on its grid."""
    table = as_records(records)
    extent = table.row(
        f"SELECT min(latency_ms) AS low, approx_count_distinct(latency_ms) AS distinct "
        f"FROM {{records}} WHERE {_FINITE}"
    )
    if pd.isna(extent["low"]):  # NULL: no finite latency
        return 0.0
    share = min(1.0, SAMPLE_SIZE / max(int(extent["distinct"]), 1))
    found = table.sql(
        f"SELECT DISTINCT latency_ms FROM {{records}} WHERE {_FINITE} "
        f"AND hash(latency_ms)::DOUBLE / {_HASHES} <= ?",
        [share],
    )
    values = np.unique(np.append(found["latency_ms"].to_numpy(dtype=float), extent["low"]))
    if values.size < 2:
        return 0.0
    step = float(np.diff(values).min())
    grid = "(latency_ms - ?) / ?"
    on_grid = table.row(
        f"SELECT bool_and(abs({grid} - round({grid})) <= 1e-6) AS ok "
        f"FROM {{records}} WHERE {_FINITE}",
        [float(values[0]), step] * 2,
    )["ok"]
    return step if on_grid else 0.0


_FINITE = "isfinite(latency_ms)"
_HASHES = "18446744073709551616.0"  # 2 ** 64: a hash as a share of its range


@dataclass(frozen=True)
class _Settings:
    tolerance: float
    error_tolerance_pp: float
    confidence: float  # of one row's interval (corrected for the rows deciding)
    resamples: int
    seed: int
    min_samples: int
    floor_ms: float  # latency changes smaller than this are no verdict

    @property
    def draws(self) -> int:
        """Resamples per row: at least :data:`TAIL_RESAMPLES` in each tail of the interval."""
        tail = (1.0 - self.confidence) / 2.0
        return max(self.resamples, math.ceil(TAIL_RESAMPLES / tail))


@dataclass(frozen=True)
class Inputs:
    """What the row builders read: the two runs' records and, when known, their journeys;
    ``seed`` draws the latency samples the intervals resample; ``operations``: whether each
    run's records say the attempts' operations (``worker``, ``op_id``)."""

    base: Records
    candidate: Records
    min_samples: int = MIN_SAMPLES
    base_journeys: Journeys | None = None
    candidate_journeys: Journeys | None = None
    seed: int = 0
    operations: tuple[bool, bool] = (True, True)


@dataclass(frozen=True)
class PendingRow:
    """A row before its interval: why it cannot decide (None: it can), and how to compute it
    once the number of deciding rows, hence each row's confidence, is known."""

    shortfall: str | None
    compute: Callable[[_Settings], Row]


def _endpoint_rows(inputs: Inputs) -> list[PendingRow]:
    """Per endpoint (sorted, then ``*``), each statistic of :data:`STATS`."""
    base = _samples(inputs.base, inputs.operations[0], inputs.seed)
    candidate = _samples(inputs.candidate, inputs.operations[1], inputs.seed)
    endpoints = [*sorted((set(base) | set(candidate)) - {"*"}), "*"]
    return [
        PendingRow(
            _shortfall(stat, base.get(e), candidate.get(e), inputs.min_samples),
            partial(_row, e, stat, base.get(e), candidate.get(e)),
        )
        for e in endpoints
        for stat in STATS
    ]


def _journey_rows(inputs: Inputs) -> list[PendingRow]:
    """Per flow (sorted, then ``*``) the failed share of journeys; over all, the share of
    arrivals dropped (when either run dropped or queued any: the open model)."""
    if inputs.base_journeys is None or inputs.candidate_journeys is None:
        return []
    b, c = _journey_counts(inputs.base_journeys), _journey_counts(inputs.candidate_journeys)
    if not b["*"]["journeys"] and not c["*"]["journeys"]:  # runs made before journeys were kept
        return []
    flows = [*sorted((set(b) | set(c)) - {"*"}), "*"]
    rows = [
        _share_pending(f"journey {f}", "journey_failures", _failed(b, f), _failed(c, f), inputs)
        for f in flows
    ]
    if any(x["*"]["dropped"] or x["*"]["queued"] for x in (b, c)):
        rows.append(_share_pending("arrivals", "dropped", _dropped(b), _dropped(c), inputs))
    return rows


def _journey_counts(journeys: Journeys) -> dict[str, dict[str, int]]:
    """Per flow and over all (``*``), of the journeys that ended or never started: how many
    (``journeys``), ``failed`` (dropped arrivals too), open-model ``arrivals`` (queued or
    dropped), ``dropped`` and ``queued``."""
    frame = journeys.per_group(
        "flow",
        f"""count(*) AS journeys, count(*) - count(*) FILTER (WHERE {OK}) AS failed,
            count(*) FILTER (WHERE waited_ms IS NOT NULL OR {DROPPED_ARRIVAL}) AS arrivals,
            count(*) FILTER (WHERE {DROPPED_ARRIVAL}) AS dropped,
            count(waited_ms) AS queued""",
        IN_SCOPE,
    )
    return {
        str(row["flow"]): {k: int(row[k]) for k in _JOURNEY_COUNTS} for _, row in frame.iterrows()
    }


_JOURNEY_COUNTS = ("journeys", "failed", "arrivals", "dropped", "queued")


def _failed(counts: dict[str, dict[str, int]], flow: str) -> tuple[int, int]:
    """(journeys, failed ones) of ``flow`` (``*``: all)."""
    row = counts.get(flow, {})
    return row.get("journeys", 0), row.get("failed", 0)


def _dropped(counts: dict[str, dict[str, int]]) -> tuple[int, int]:
    """(open-model arrivals, dropped ones)."""
    return counts["*"]["arrivals"], counts["*"]["dropped"]


def _share_pending(
    label: str, stat: str, base: tuple[int, int], candidate: tuple[int, int], inputs: Inputs
) -> PendingRow:
    """A share row (failed journeys, dropped arrivals), judged like an error rate."""
    b = _Sample(base[0], base[1], {}, np.empty(0), None)
    c = _Sample(candidate[0], candidate[1], {}, np.empty(0), None)
    shortfall = _shortfall("error_rate", b, c, inputs.min_samples)

    def compute(s: _Settings) -> Row:
        key = (zlib.crc32(label.encode()), zlib.crc32(stat.encode()))
        rng = np.random.default_rng(np.random.SeedSequence(s.seed, spawn_key=key))
        return replace(_error_row(label, b, c, rng, s), stat=stat)

    return PendingRow(shortfall, compute)


#: The builders of a comparison's rows, in table order.
ROW_BUILDERS: tuple[Callable[[Inputs], list[PendingRow]], ...] = (_endpoint_rows, _journey_rows)


def min_count(stat: str, min_samples: int = MIN_SAMPLES) -> int:
    """The attempts (operations, for amplification) each run needs for ``stat`` to decide:
    ``min_samples``, and for a percentile enough to leave :data:`TAIL_SAMPLES` beyond it."""
    if stat in ("error_rate", "amplification"):
        return min_samples
    return max(min_samples, math.ceil(TAIL_SAMPLES / (1.0 - PERCENTILES[stat]) - 1e-9))


def _shortfall(
    stat: str, base: _Sample | None, candidate: _Sample | None, min_samples: int
) -> str | None:
    """Why the row cannot decide (None: it can)."""
    need = min_count(stat, min_samples)
    if stat == "amplification":
        if any(x is not None and x.ops is None for x in (base, candidate)):
            return "no operations in the records (op_id, worker): attempts per operation unknown"
        have = min(s.ops.n if s and s.ops else 0 for s in (base, candidate))
        if have < need:
            return f"too few operations for amplification: {have} < {need}"
        return None
    have = min(base.attempts if base else 0, candidate.attempts if candidate else 0)
    if have < need:
        return f"too few samples for {stat}: {have} < {need}"
    if stat != "error_rate" and base is not None and not base.points.get(stat):
        return f"base {stat} is 0: no relative change"
    return None


@dataclass(frozen=True)
class _Operations:
    """Attempts per operation of one endpoint of one run: each distinct count (``sizes``)
    and how many operations had it (``counts``)."""

    sizes: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def amplification(self) -> float | None:
        return float(self.sizes @ self.counts) / self.n if self.n else None

    def resampled(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """The amplification of ``draws`` resamples of the operations (n with replacement)."""
        picked = rng.multinomial(self.n, self.counts / self.n, size=draws)
        result: np.ndarray = picked @ self.sizes / self.n
        return result


@dataclass(frozen=True)
class _Sample:
    """One endpoint of one run: its attempts and errors, its exact p50, p95 and p99
    (``points``, ms), a uniform sample of its latencies (every one up to
    :data:`SAMPLE_SIZE`), sorted, and its operations (None: the records do not say)."""

    attempts: int
    errors: int
    points: dict[str, float]
    latencies: np.ndarray
    ops: _Operations | None


def _samples(records: Records, operations: bool, seed: int) -> dict[str, _Sample]:
    """Per endpoint and over all (``*``)."""
    attempts = _attempts(records)
    points = _points(records)
    latencies = _latency_samples(records, {k: n for k, (n, _) in attempts.items()}, seed)
    ops = _operations(records, attempts["*"][0]) if operations else None
    no_ops = _Operations(np.empty(0), np.empty(0, dtype=np.int64))
    return {
        name: _Sample(
            n,
            errors,
            points.get(name, {}),
            latencies.get(name, np.empty(0)),
            None if ops is None else ops.get(name, no_ops),
        )
        for name, (n, errors) in attempts.items()
    }


def endpoint_figures(records: RecordsLike) -> pd.DataFrame:
    """Per endpoint (sorted) and over all (``*``, last): ``endpoint``, ``requests``,
    ``p50``, ``p95``, ``p99`` (ms, every attempt; None without attempts) and ``error_rate``
    (the share of attempts with an error), as a comparison computes them."""
    table = as_records(records)
    attempts, points = _attempts(table), _points(table)
    names = [*sorted(name for name in attempts if name != "*"), "*"]
    return pd.DataFrame(
        [
            {
                "endpoint": name,
                "requests": attempts[name][0],
                **{stat: points.get(name, {}).get(stat) for stat in LATENCY_STATS},
                "error_rate": attempts[name][1] / attempts[name][0] if attempts[name][0] else 0.0,
            }
            for name in names
        ]
    )


def _attempts(records: Records) -> dict[str, tuple[int, int]]:
    """Per endpoint and over all: (attempts, those with an error)."""
    frame = records.per_group("endpoint", "count(*) AS attempts, count(error) AS errors")
    return {str(r["endpoint"]): (int(r["attempts"]), int(r["errors"])) for _, r in frame.iterrows()}


def _points(records: Records) -> dict[str, dict[str, float]]:
    """The exact p50, p95 and p99 of every attempt, per endpoint and over all."""
    qs = [PERCENTILES[stat] for stat in LATENCY_STATS]
    frame = exact_quantiles(records, "latency_ms", qs, {"endpoint": "endpoint"}, overall=True)
    return {
        "*" if row["grouped"] else str(row["endpoint"]): dict(
            zip(LATENCY_STATS, map(float, row["q"]), strict=True)
        )
        for _, row in frame.iterrows()
    }


def _operations(records: Records, rows: int) -> dict[str, _Operations]:
    """Per endpoint and over all: how many operations made each number of attempts.

    A run's records are one operation each, mostly, so one aggregate would hold about as
    many groups as records: they are counted a range of operation ids at a time instead.
    Each process numbers its operations from 0 and writes its records in order, so a
    range's records lie in a few row groups, and the others are skipped by their
    statistics."""
    ids = records.row("SELECT min(op_id) AS low, max(op_id) AS high FROM {records}")
    if pd.isna(ids["low"]):  # no operation ids
        return {"*": _histogram(pd.Series(dtype=np.int64))}
    passes = max(1, min(_MAX_PASSES, math.ceil(rows / _OPERATIONS_PER_PASS)))
    width = (int(ids["high"]) - int(ids["low"])) // passes + 1
    query = """SELECT endpoint, size, count(*) AS n
        FROM (SELECT endpoint, worker, op_id, count(*) AS size FROM {records}
              WHERE op_id >= ? AND op_id < ? GROUP BY ALL)
        GROUP BY ALL"""
    bounds = [int(ids["low"]) + k * width for k in range(passes + 1)]
    frame = pd.concat([records.sql(query, [a, b]) for a, b in itertools.pairwise(bounds)])
    per_endpoint = frame.astype({"endpoint": str}).groupby(["endpoint", "size"])["n"].sum()
    found = {
        str(name): _histogram(part.droplevel("endpoint"))
        for name, part in per_endpoint.groupby(level="endpoint")
    }
    return found | {"*": _histogram(per_endpoint.groupby(level="size").sum())}


_OPERATIONS_PER_PASS = 1_000_000
_MAX_PASSES = 128


def _histogram(counts: pd.Series) -> _Operations:
    """Operations per number of attempts (``counts`` indexed by the number), by number."""
    ordered = counts.sort_index()
    return _Operations(ordered.index.to_numpy(dtype=float), ordered.to_numpy(dtype=np.int64))


def _latency_samples(records: Records, counts: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Per endpoint and over all, a uniform sample of at most :data:`SAMPLE_SIZE` latencies
    (every one when there are no more), sorted: the records whose seeded hash is among the
    group's smallest. The query returns only the records whose hash, as a share of its
    range, is under a bound that leaves ten standard deviations over the size wanted."""
    names = sorted(name for name in counts if name != "*")
    if not counts.get("*"):
        return {}
    shares = [_share(counts[name]) for name in names]
    overall = _share(counts["*"])
    values = ", ".join(f"({i}, ?, ?::DOUBLE)" for i in range(len(names)))
    key = "t, latency_ms" if "t" in records.columns else "row_number() OVER (), latency_ms"
    frame = records.sql(
        f"""WITH shares(i, endpoint, p) AS (VALUES {values})
        SELECT s.i, r.latency_ms, r.u
        FROM (SELECT endpoint, latency_ms, hash({int(seed)}, {key})::DOUBLE / {_HASHES} AS u
              FROM {{records}}) r
        JOIN shares s USING (endpoint) WHERE r.u <= greatest(s.p, ?::DOUBLE)""",
        [x for pair in zip(names, shares, strict=True) for x in pair] + [overall],
    )
    group, latency = frame["i"].to_numpy(), frame["latency_ms"].to_numpy(dtype=float)
    u = frame["u"].to_numpy(dtype=float)
    picked = {
        name: _smallest(latency, u, (group == i) & (u <= shares[i])) for i, name in enumerate(names)
    }
    return picked | {"*": _smallest(latency, u, u <= overall)}


def _smallest(values: np.ndarray, keys: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ``values`` (where ``mask`` holds) of the :data:`SAMPLE_SIZE` smallest ``keys``,
    sorted."""
    values, keys = values[mask], keys[mask]
    if values.size > SAMPLE_SIZE:
        values = values[np.argpartition(keys, SAMPLE_SIZE - 1)[:SAMPLE_SIZE]]
    return np.sort(values)


def _share(n: int) -> float:
    """The share of a group's records to keep for a sample of :data:`SAMPLE_SIZE`."""
    wanted = SAMPLE_SIZE + 10 * math.sqrt(SAMPLE_SIZE) + 100
    return 1.0 if n <= SAMPLE_SIZE else min(1.0, wanted / n)


def _row(
    endpoint: str, stat: str, base: _Sample | None, candidate: _Sample | None, s: _Settings
) -> Row:
    rng = np.random.default_rng(
        np.random.SeedSequence(s.seed, spawn_key=(zlib.crc32(endpoint.encode()), STATS.index(stat)))
    )
    if stat == "error_rate":
        return _error_row(endpoint, base, candidate, rng, s)
    if stat == "amplification":
        return _amplification_row(endpoint, base, candidate, rng, s)
    return _latency_row(endpoint, stat, base, candidate, rng, s)


def _latency_row(
    endpoint: str,
    stat: str,
    base: _Sample | None,
    candidate: _Sample | None,
    rng: np.random.Generator,
    s: _Settings,
) -> Row:
    q = PERCENTILES[stat]
    b = base.latencies if base else np.empty(0)
    c = candidate.latencies if candidate else np.empty(0)
    b_value, c_value = (x.points.get(stat) if x else None for x in (base, candidate))
    relative = None if b_value is None or c_value is None or b_value == 0 else c_value / b_value - 1
    low = high = None
    verdict = INSUFFICIENT_DATA
    tolerance = s.tolerance
    note = _shortfall(stat, base, candidate, s.min_samples)
    if note is None:
        b_reps, c_reps = _resampled_percentile(b, q, rng, s), _resampled_percentile(c, q, rng, s)
        changes = np.full(s.draws, np.inf)
        np.divide(c_reps, b_reps, out=changes, where=b_reps > 0)
        changes[(b_reps == 0) & (c_reps == 0)] = 1.0
        low, high = _interval(changes - 1.0, s.confidence)
        assert b_value  # a zero base cannot decide (its shortfall)
        tolerance = max(s.tolerance, s.floor_ms / b_value)
        verdict = _verdict(low, high, tolerance)
        if verdict != _verdict(low, high, s.tolerance):
            note = f"change within the {s.floor_ms:g} ms floor"
    return Row(
        endpoint=endpoint,
        stat=stat,
        unit="relative",
        base=b_value,
        candidate=c_value,
        base_count=base.attempts if base else 0,
        candidate_count=candidate.attempts if candidate else 0,
        change=relative,
        relative_change=relative,
        ci_low=low,
        ci_high=high,
        tolerance=tolerance,
        verdict=verdict,
        note=note or "",
    )


def _amplification_row(
    endpoint: str,
    base: _Sample | None,
    candidate: _Sample | None,
    rng: np.random.Generator,
    s: _Settings,
) -> Row:
    b_ops, c_ops = (x.ops if x else None for x in (base, candidate))
    b_value = b_ops.amplification if b_ops else None
    c_value = c_ops.amplification if c_ops else None
    relative = None if b_value is None or c_value is None else c_value / b_value - 1
    low = high = None
    verdict = INSUFFICIENT_DATA
    note = _shortfall("amplification", base, candidate, s.min_samples)
    if note is None:
        assert b_ops is not None and c_ops is not None
        changes = c_ops.resampled(rng, s.draws) / b_ops.resampled(rng, s.draws)
        low, high = _interval(changes - 1.0, s.confidence)
        verdict = _verdict(low, high, s.tolerance)
    return Row(
        endpoint=endpoint,
        stat="amplification",
        unit="relative",
        base=b_value,
        candidate=c_value,
        base_count=b_ops.n if b_ops else 0,
        candidate_count=c_ops.n if c_ops else 0,
        change=relative,
        relative_change=relative,
        ci_low=low,
        ci_high=high,
        tolerance=s.tolerance,
        verdict=verdict,
        note=note or "",
    )


def _error_row(
    endpoint: str,
    base: _Sample | None,
    candidate: _Sample | None,
    rng: np.random.Generator,
    s: _Settings,
) -> Row:
    nb, eb = (base.attempts, base.errors) if base else (0, 0)
    nc, ec = (candidate.attempts, candidate.errors) if candidate else (0, 0)
    b_rate = eb / nb if nb else None
    c_rate = ec / nc if nc else None
    change = relative = low = high = None
    verdict = INSUFFICIENT_DATA
    if b_rate is not None and c_rate is not None:
        change = (c_rate - b_rate) * 100.0
        relative = c_rate / b_rate - 1 if b_rate else None
    note = _shortfall("error_rate", base, candidate, s.min_samples)
    if note is None:
        b_reps = rng.binomial(nb, eb / nb, size=s.draws) / nb
        c_reps = rng.binomial(nc, ec / nc, size=s.draws) / nc
        low, high = _interval((c_reps - b_reps) * 100.0, s.confidence)
        verdict = _verdict(low, high, s.error_tolerance_pp)
    return Row(
        endpoint=endpoint,
        stat="error_rate",
        unit="pp",
        base=b_rate,
        candidate=c_rate,
        base_count=nb,
        candidate_count=nc,
        change=change,
        relative_change=relative,
        ci_low=low,
        ci_high=high,
        tolerance=s.error_tolerance_pp,
        verdict=verdict,
        note=note or "",
    )


def _resampled_percentile(
    sorted_values: np.ndarray, q: float, rng: np.random.Generator, s: _Settings
) -> np.ndarray:
    """The nearest-rank ``q`` percentile of ``s.draws`` resamples (n draws with
    replacement) of ``sorted_values``, drawn through the rank's order statistic."""
    n = sorted_values.size
    k = _rank(n, q) + 1  # 1-based rank of the percentile in a sample of n
    uniform_kth = rng.beta(k, n + 1 - k, size=s.draws)
    index = np.minimum((uniform_kth * n).astype(np.int64), n - 1)
    result: np.ndarray = sorted_values[index]
    return result


def _rank(n: int, q: float) -> int:
    """The 0-based index a nearest-rank percentile takes in n sorted values
    (:func:`authload.analysis.stats.percentile`)."""
    return int(np.quantile(np.arange(n), q, method="inverted_cdf"))


def _interval(changes: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval: the middle ``confidence`` of the resampled changes (order
    statistics, no interpolation, so an infinite change cannot turn into NaN)."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(changes, [tail, 1.0 - tail], method="inverted_cdf")
    return float(low), float(high)


def _verdict(low: float, high: float, tolerance: float) -> str:
    if low > tolerance:
        return REGRESSION
    if high < -tolerance:
        return IMPROVEMENT
    return NO_SIGNIFICANT_CHANGE


# ---------------------------------------------------------------------------- run setups


@dataclass(frozen=True)
class RunSetup:
    """What a run measured, from its ``manifest.json`` (None: not recorded)."""

    scenario: str | None
    target: str | None
    model: str | None
    retry_policy: str | None


SETUP_LABELS = {
    "scenario": "scenario",
    "target": "target",
    "model": "load model",
    "retry_policy": "retry policy",
}


def load_setup(run_dir: Path | str) -> RunSetup:
    """A run directory's setup; all None when it has no readable manifest."""
    try:
        manifest = read_manifest(Path(run_dir))
    except ResultsError:
        return RunSetup(None, None, None, None)
    return RunSetup(
        scenario=manifest.scenario_name,
        target=manifest.target,
        model=_text(manifest.scenario_field("load", "model")),
        retry_policy=_text(manifest.scenario_field("retry", "policy")),
    )


def setup_differences(base: RunSetup, candidate: RunSetup) -> list[str]:
    """One sentence per setting both runs recorded and differ in."""
    return [
        f"the runs differ in {label}: {getattr(base, name)} vs {getattr(candidate, name)}"
        for name, label in SETUP_LABELS.items()
        if None not in (getattr(base, name), getattr(candidate, name))
        and getattr(base, name) != getattr(candidate, name)
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
