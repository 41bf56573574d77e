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
  is relative (default 0.05, 5 %);
- error rate: the difference in percentage points (1 % -> 5 % is ``4.0``);
  ``error_tolerance_pp`` is absolute (default 0.5 pp), because a relative change of a rate
  near zero (0.01 % -> 0.03 %, "+200 %") says little.

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
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from authload.analysis.stats import PERCENTILES, percentile
from authload.errors import ResultsError
from authload.results import MANIFEST_FILE, RECORDS_DIR, RECORDS_FILE, read_records

__all__ = [
    "ERROR_TOLERANCE_PP",
    "IMPROVEMENT",
    "INSUFFICIENT_DATA",
    "LATENCY_STATS",
    "MIN_SAMPLES",
    "NO_SIGNIFICANT_CHANGE",
    "REGRESSION",
    "STATS",
    "TAIL_SAMPLES",
    "Comparison",
    "Row",
    "compare_runs",
    "load_run_records",
    "min_count",
]

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_SIGNIFICANT_CHANGE = "no significant change"
INSUFFICIENT_DATA = "insufficient data"

LATENCY_STATS = ("p50", "p95", "p99")
STATS = (*LATENCY_STATS, "error_rate")
ERROR_TOLERANCE_PP = 0.5
MIN_SAMPLES = 20
TAIL_SAMPLES = 5  # attempts beyond a percentile it takes to compare it
TAIL_RESAMPLES = 10  # resamples in each tail of an interval, at least

#: The record columns a comparison reads.
COLUMNS = ("endpoint", "status", "latency_ms", "error")


@dataclass(frozen=True)
class Row:
    """One statistic of one endpoint (``*``: all endpoints) in both runs.

    ``base`` and ``candidate`` are in ms, or a share (0.01 = 1 %) for ``error_rate``; None
    when the run has nothing to compute them from. ``base_count`` and ``candidate_count``
    are the attempts they were computed from.
    ``change``, ``ci_low``, ``ci_high`` and ``tolerance`` are in ``unit``: ``relative``
    (latency: candidate / base - 1) or ``pp`` (error rate: percentage points).
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
    at ``confidence``."""

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

    def row(self, endpoint: str, stat: str) -> Row:
        for row in self.rows:
            if row.endpoint == endpoint and row.stat == stat:
                return row
        raise KeyError((endpoint, stat))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; infinite interval ends (a zero base resampled) become None."""
        data = asdict(self)
        data["rows"] = [{k: _finite(v) for k, v in row.items()} for row in data["rows"]]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)


def load_run_records(run_dir: Path | str) -> pd.DataFrame:
    """The records of a run directory, only the columns a comparison reads.

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
    frame: pd.DataFrame = read_records(path, columns=list(COLUMNS)).to_pandas()
    return frame


def compare_runs(
    base: pd.DataFrame,
    candidate: pd.DataFrame,
    tolerance: float = 0.05,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    *,
    error_tolerance_pp: float = ERROR_TOLERANCE_PP,
    min_samples: int = MIN_SAMPLES,
) -> Comparison:
    """Compare ``candidate``'s records with ``base``'s (see the module docstring).

    Both frames need the columns ``endpoint``, ``status``, ``latency_ms`` and ``error``.
    The result depends only on the records and the arguments.
    """
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
    base_samples, candidate_samples = _samples(base, "base"), _samples(candidate, "candidate")
    endpoints = [*sorted((set(base_samples) | set(candidate_samples)) - {"*"}), "*"]
    pairs = [
        (endpoint, stat, base_samples.get(endpoint), candidate_samples.get(endpoint))
        for endpoint in endpoints
        for stat in STATS
    ]
    deciding = sum(_shortfall(stat, b, c, min_samples) is None for _, stat, b, c in pairs)
    row_confidence = 1.0 - (1.0 - confidence) / max(deciding, 1)
    settings = _Settings(
        tolerance, error_tolerance_pp, row_confidence, resamples, seed, min_samples
    )
    rows = [_row(endpoint, stat, b, c, settings) for endpoint, stat, b, c in pairs]
    verdicts = {row.verdict for row in rows}
    verdict = (
        REGRESSION
        if REGRESSION in verdicts
        else IMPROVEMENT
        if IMPROVEMENT in verdicts
        else NO_SIGNIFICANT_CHANGE
    )
    return Comparison(
        rows=rows,
        verdict=verdict,
        tolerance=tolerance,
        error_tolerance_pp=error_tolerance_pp,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        min_samples=min_samples,
        deciding=deciding,
        row_confidence=row_confidence,
    )


@dataclass(frozen=True)
class _Settings:
    tolerance: float
    error_tolerance_pp: float
    confidence: float  # of one row's interval (corrected for the rows deciding)
    resamples: int
    seed: int
    min_samples: int

    @property
    def draws(self) -> int:
        """Resamples per row: at least :data:`TAIL_RESAMPLES` in each tail of the interval."""
        tail = (1.0 - self.confidence) / 2.0
        return max(self.resamples, math.ceil(TAIL_RESAMPLES / tail))


def min_count(stat: str, min_samples: int = MIN_SAMPLES) -> int:
    """The attempts each run needs for ``stat`` to decide: ``min_samples``, and for a
    percentile enough to leave :data:`TAIL_SAMPLES` beyond it."""
    if stat == "error_rate":
        return min_samples
    return max(min_samples, math.ceil(TAIL_SAMPLES / (1.0 - PERCENTILES[stat]) - 1e-9))


def _shortfall(
    stat: str, base: _Sample | None, candidate: _Sample | None, min_samples: int
) -> str | None:
    """Why the row cannot decide (None: it can)."""
    need = min_count(stat, min_samples)
    if stat == "error_rate":
        have = min(base.attempts if base else 0, candidate.attempts if candidate else 0)
    else:
        have = min(s.latencies.size if s else 0 for s in (base, candidate))
    if have < need:
        return f"too few samples for {stat}: {have} < {need}"
    if stat != "error_rate" and base is not None and not _point(base.latencies, PERCENTILES[stat]):
        return f"base {stat} is 0: no relative change"
    return None


@dataclass(frozen=True)
class _Sample:
    """One endpoint of one run: every attempt's latency, sorted; attempts and errors."""

    latencies: np.ndarray
    attempts: int
    errors: int


def _samples(records: pd.DataFrame, name: str) -> dict[str, _Sample]:
    missing = [c for c in COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"{name} records lack columns {missing}")
    failed = records["error"].notna().to_numpy()
    latency = records["latency_ms"].to_numpy(dtype=float)
    samples = {"*": _sample(latency, len(records), int(failed.sum()))}
    codes, names = pd.factorize(records["endpoint"], sort=True)
    for code, endpoint in enumerate(names):
        mine = codes == code
        samples[str(endpoint)] = _sample(latency[mine], int(mine.sum()), int(failed[mine].sum()))
    return samples


def _sample(latencies: np.ndarray, attempts: int, errors: int) -> _Sample:
    return _Sample(np.sort(latencies), attempts, errors)


def _row(
    endpoint: str, stat: str, base: _Sample | None, candidate: _Sample | None, s: _Settings
) -> Row:
    rng = np.random.default_rng(
        np.random.SeedSequence(s.seed, spawn_key=(zlib.crc32(endpoint.encode()), STATS.index(stat)))
    )
    if stat == "error_rate":
        return _error_row(endpoint, base, candidate, rng, s)
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
    b_value, c_value = _point(b, q), _point(c, q)
    relative = None if b_value is None or c_value is None or b_value == 0 else c_value / b_value - 1
    low = high = None
    verdict = INSUFFICIENT_DATA
    note = _shortfall(stat, base, candidate, s.min_samples)
    if note is None:
        b_reps, c_reps = _resampled_percentile(b, q, rng, s), _resampled_percentile(c, q, rng, s)
        changes = np.full(s.draws, np.inf)
        np.divide(c_reps, b_reps, out=changes, where=b_reps > 0)
        changes[(b_reps == 0) & (c_reps == 0)] = 1.0
        low, high = _interval(changes - 1.0, s.confidence)
        verdict = _verdict(low, high, s.tolerance)
    return Row(
        endpoint=endpoint,
        stat=stat,
        unit="relative",
        base=b_value,
        candidate=c_value,
        base_count=int(b.size),
        candidate_count=int(c.size),
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


def _point(sorted_values: np.ndarray, q: float) -> float | None:
    return percentile(sorted_values, q) if sorted_values.size else None


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
    """The 0-based index :func:`percentile` takes in n sorted values."""
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


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
