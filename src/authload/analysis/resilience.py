"""Failures and how the service and the clients dealt with them: error bursts, recovery after
faults and storms, retries and Retry-After, coordinated omission, load shedding, lost
sessions, the latency spectrum.

Latency figures are of every attempt (one with no answer counts the time until it failed), as
in :func:`authload.analysis.stats.endpoint_summary`; percentiles are nearest-rank. Operations are
identified by (``worker``, ``op_id``), as op ids are counted per process.

Everything is a DuckDB aggregate over the records (:mod:`authload.analysis.query`), per window
or per endpoint, except :func:`retry_after_honoured` and :func:`latency_from_intended`, which
answer per record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from authload.analysis.query import ALL, ANSWERED, Percentiles, Records, RecordsLike, as_records
from authload.analysis.stats import PERCENTILES
from authload.analysis.timeline import (
    FAILED,
    NUMBERED,
    SHED,
    STATUS_5XX,
    Bools,
    Floats,
    Windowing,
    multi_attempts,
    per_window,
    share,
)
from authload.rundir.events import Event, OutcomesEvent, of_kind

__all__ = [
    "DEFAULT_TOLERANCE",
    "HONOUR_SLACK_S",
    "RECOVERY_KINDS",
    "RecoveryTolerance",
    "error_bursts",
    "latency_comparison",
    "latency_from_intended",
    "latency_spectra",
    "latency_spectrum",
    "recovery_times",
    "retry_after_honoured",
    "retry_summary",
    "sessions_lost",
    "shedding_quality",
]

#: A wait counts as honouring Retry-After if it falls short of it by at most this (timers).
HONOUR_SLACK_S = 0.05
#: Event intervals :func:`recovery_times` looks at by default.
RECOVERY_KINDS = ("fault", "refresh_storm", "mass_logout")

_BURST_FAILED = {"5xx": STATUS_5XX, "503": SHED, "errors": FAILED}
_BURST_STATUSES = tuple(_BURST_FAILED)
_BURST_COLUMNS = ["start", "end", "duration_s", "peak_rate", "errors", "endpoints"]
_COMPARED = {**{k: PERCENTILES[k] for k in ("p50", "p90", "p99", "p99.9")}, "max": 1.0}
#: The distinct operations of the records selected.
_OPERATIONS = (
    "count(*) FILTER (WHERE op_id IS NULL) "
    "+ count(DISTINCT (worker, op_id)) FILTER (WHERE op_id IS NOT NULL)"
)


# ---------------------------------------------------------------------------------------------
# bursts and recovery


def error_bursts(
    records: RecordsLike, window_s: float = 1.0, threshold: float = 0.05, statuses: str = "5xx"
) -> pd.DataFrame:
    """Maximal runs of consecutive windows in which the share of failed requests exceeds
    ``threshold``; failed means a 5xx (``statuses="5xx"``), a 503 (``"503"``) or any error
    (``"errors"``). Per burst: ``start`` and ``end`` (window bounds, unix s), ``duration_s``,
    ``peak_rate`` (failures/s of its worst window), ``errors`` (failures in it) and
    ``endpoints`` (sorted, those that failed in it). An empty window ends a burst."""
    if statuses not in _BURST_STATUSES:
        raise ValueError(f"statuses must be one of {_BURST_STATUSES}, not {statuses!r}")
    table = as_records(records)
    windows = Windowing.of(table, window_s)
    cells = table.sql(
        f"""WITH r AS ({windows.records()}) SELECT w, endpoint, count(*) AS requests,
            count(*) FILTER (WHERE {_BURST_FAILED[statuses]}) AS failed
        FROM r GROUP BY w, endpoint""",
        windows.params,
    )
    index = cells["w"].to_numpy(dtype=np.int64)
    count = int(index.max()) + 1 if len(index) else 0
    failed, requests = (
        np.bincount(index, weights=cells[c].to_numpy(dtype=float), minlength=count).astype(np.int64)
        for c in ("failed", "requests")
    )
    hot = (requests > 0) & (failed / np.maximum(requests, 1) > threshold)
    if not hot.any():
        return pd.DataFrame(columns=_BURST_COLUMNS)
    burst = np.where(hot, np.cumsum(hot & ~np.r_[False, hot[:-1]]) - 1, -1)
    t0 = windows.start + np.arange(count, dtype=float) * windows.width
    per_window = pd.DataFrame({"burst": burst, "t0": t0, "failed": failed})[hot]
    failing = cells[(cells["failed"] > 0).to_numpy() & hot[index]]
    return _bursts(per_window, failing, burst, windows.width)


def _bursts(
    per_window: pd.DataFrame, failing: pd.DataFrame, burst: Any, width: float
) -> pd.DataFrame:
    """One row per burst from its hot windows and the (window, endpoint) cells that failed."""
    grouped = per_window.groupby("burst")
    start = grouped["t0"].min()
    end = grouped["t0"].max() + width
    names = failing["endpoint"].groupby(burst[failing["w"].to_numpy(dtype=np.int64)]).unique()
    frame = pd.DataFrame(
        {
            "start": start,
            "end": end,
            "duration_s": end - start,
            "peak_rate": grouped["failed"].max() / width,
            "errors": grouped["failed"].sum(),
            "endpoints": names.map(lambda found: sorted(map(str, found))),
        }
    )
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class RecoveryTolerance:
    """When a window counts as back to the baseline (see :func:`recovery_times`)."""

    error_rate: float = 0.01  # error-rate allowance over the baseline, at least
    sigmas: float = 3.0  # or this many binomial standard errors of the window, if more
    p99_factor: float = 1.5
    p99_slack_ms: float = 5.0
    windows: int = 3  # consecutive windows needed


DEFAULT_TOLERANCE = RecoveryTolerance()


def recovery_times(
    records: RecordsLike,
    events: pd.DataFrame,
    window_s: float = 1.0,
    tolerance: RecoveryTolerance = DEFAULT_TOLERANCE,
    kinds: tuple[str, ...] = RECOVERY_KINDS,
) -> pd.DataFrame:
    """For each interval of ``events`` (:func:`~authload.analysis.timeline.event_windows`,
    :func:`~authload.analysis.timeline.fault_windows`) of one of ``kinds`` with an end, how
    long after its end the run was back to its baseline.

    Baseline: the windows that end by the event's start and overlap no other such event, with
    requests; its error rate is theirs pooled, its p99 the median of their p99s (like is
    compared with like: a window's p99 of few requests is near that window's maximum).
    A window is back when it has requests, its error rate is at most the baseline's plus
    ``tolerance.error_rate`` or ``tolerance.sigmas`` binomial standard errors of the window
    (whichever is more), and its p99 at most baseline p99 x ``p99_factor`` + ``p99_slack_ms``.
    Recovered at the start of the first of ``tolerance.windows`` consecutive windows back,
    looking from the window holding the end (no earlier than the end itself): ``recovery_s``
    is 0 when that window is already back, NaN when the run never got back (or had no
    baseline). Columns ``kind``, ``label``, ``start``, ``event_end``, ``recovered_at``,
    ``recovery_s``, ``baseline_error_rate``, ``baseline_p99``.
    """
    tl = _health(as_records(records), window_s)
    chosen = events[events["kind"].isin(kinds) & events["end"].notna()]
    spans = list(zip(chosen["start"].astype(float), chosen["end"].astype(float), strict=True))
    rows = []
    for i, (kind, label) in enumerate(zip(chosen["kind"], chosen["label"], strict=True)):
        start, end = spans[i]
        others = spans[:i] + spans[i + 1 :]
        rows.append(
            {
                "kind": kind,
                "label": label,
                "start": start,
                "event_end": end,
                **_recovery(tl, float(window_s), start, end, others, tolerance),
            }
        )
    columns = ["kind", "label", "start", "event_end", "recovered_at", "recovery_s"]
    return pd.DataFrame(rows, columns=[*columns, "baseline_error_rate", "baseline_p99"])


def _health(table: Records, window_s: float) -> pd.DataFrame:
    """Per window of the run, as :func:`~authload.analysis.timeline.timeline` has them:
    ``t0``, ``requests``, ``error_rate`` and ``p99``."""
    windows = Windowing.of(table, window_s)
    frame = per_window(table, windows, {"failed": FAILED}, {"p99": 0.99}, ANSWERED)
    return pd.DataFrame(
        {
            "t0": windows.t0(frame),
            "requests": frame["requests"].to_numpy(dtype=np.int64),
            "error_rate": share(frame["failed"], frame["requests"]),
            "p99": frame["p99"].to_numpy(dtype=float),
        }
    )


def _recovery(
    tl: pd.DataFrame,
    width: float,
    start: float,
    end: float,
    others: list[tuple[float, float]],
    tolerance: RecoveryTolerance,
) -> dict[str, float]:
    t0 = tl["t0"].to_numpy(dtype=float)
    t1 = t0 + width
    requests = tl["requests"].to_numpy(dtype=float)
    error_rate = tl["error_rate"].to_numpy(dtype=float)
    p99 = tl["p99"].to_numpy(dtype=float)
    base = (t1 <= start) & (requests > 0)
    for s, e in others:  # [s, e), or the point s
        base &= ~((t1 > s) & ((t0 < e) | (t0 <= s)))
    base_rate = float(np.nansum(error_rate[base] * requests[base]) / max(requests[base].sum(), 1))
    base_p99 = float(np.nanmedian(p99[base])) if np.isfinite(p99[base]).any() else np.nan
    if not base.any():
        base_rate = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = tolerance.sigmas * np.sqrt(base_rate * (1 - base_rate) / requests)
        back = (
            (requests > 0)
            & (error_rate <= base_rate + np.maximum(tolerance.error_rate, noise))
            & (p99 <= base_p99 * tolerance.p99_factor + tolerance.p99_slack_ms)
        )
    at = _first_run(back, int(np.searchsorted(t1, end, side="right")), tolerance.windows)
    recovered = np.nan if at is None else max(float(t0[at]), end)
    return {
        "recovered_at": recovered,
        "recovery_s": recovered - end,
        "baseline_error_rate": base_rate,
        "baseline_p99": base_p99,
    }


def _first_run(flags: Bools, first: int, length: int) -> int | None:
    """The first index from ``first`` on that starts ``length`` consecutive True flags."""
    if length < 1:
        raise ValueError("tolerance.windows must be at least 1")
    runs = np.convolve(flags.astype(np.int64), np.ones(length, dtype=np.int64), "valid")
    hits = np.flatnonzero(runs[first:] == length)
    return first + int(hits[0]) if len(hits) else None


# ---------------------------------------------------------------------------------------------
# retries


def _retried(source: str, multi: str) -> str:
    """SQL of the Retry-After answers among the records ``source`` selects that their
    operation retried, with ``waited_s``: from the answer (t + latency) to the start of the
    operation's next attempt (its first record with the next attempt number). Both are
    records of :data:`~authload.analysis.timeline.MULTI` (``multi``)."""
    return f"""SELECT a.*, n.t_next - (a.t + a.latency_ms / 1000) AS waited_s
        FROM ({source}) a JOIN (
            SELECT worker, op_id, attempt, arg_min(t, pos) AS t_next FROM {multi} GROUP BY ALL
        ) n ON n.worker = a.worker AND n.op_id = a.op_id AND n.attempt = a.attempt + 1
        WHERE a.retry_after_s IS NOT NULL"""


def retry_after_honoured(records: RecordsLike) -> pd.DataFrame:
    """Each answer with a Retry-After that its operation retried: ``op_id``, ``endpoint``,
    ``retry_after_s``, ``waited_s`` (from this attempt's end, t + latency, to the next
    attempt's start), ``honoured`` (waited at least Retry-After less ``HONOUR_SLACK_S``),
    ``worker``, ``attempt``; in record order."""
    table = as_records(records)
    rows = table.sql(f"{_retried(NUMBERED, multi_attempts(table))} ORDER BY pos")
    retry_after = rows["retry_after_s"].to_numpy(dtype=float)
    waited = rows["waited_s"].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "op_id": rows["op_id"].to_numpy(),
            "endpoint": rows["endpoint"].to_numpy(),
            "retry_after_s": retry_after,
            "waited_s": waited,
            "honoured": waited >= retry_after - HONOUR_SLACK_S,
            "worker": rows["worker"].to_numpy(),
            "attempt": rows["attempt"].to_numpy(dtype=np.int64),
        }
    )


def retry_summary(records: RecordsLike) -> dict[str, int | float | None]:
    """``operations``, ``attempts``, ``amplification`` (attempts per operation),
    ``retried_ops`` (with more than one attempt), ``shed_503`` (503 answers),
    ``shed_503_with_retry_after`` and ``retry_after_honoured_share`` (of the Retry-After
    answers that were retried, see :func:`retry_after_honoured`); None where undefined."""
    table = as_records(records)
    multi = multi_attempts(table)
    row = table.row(
        f"""WITH h AS ({_retried(f"SELECT * FROM {multi}", multi)})
        SELECT count(*) AS attempts,
            count(*) FILTER (WHERE {SHED}) AS shed,
            count(*) FILTER (WHERE {SHED} AND retry_after_s IS NOT NULL) AS shed_ra,
            (SELECT count(*) - count(DISTINCT (worker, op_id)) FROM {multi}) AS repeats,
            (SELECT {_OPERATIONS} FROM {{records}} WHERE attempt > 1) AS retried,
            (SELECT count(*) FROM h) AS answers,
            (SELECT count(*) FROM h WHERE waited_s >= retry_after_s - $1) AS honoured
        FROM {{records}}""",
        [HONOUR_SLACK_S],
    )
    attempts, answers = int(row["attempts"]), int(row["answers"])
    operations = attempts - int(row["repeats"])  # each operation's records but one are repeats
    return {
        "operations": operations,
        "attempts": attempts,
        "amplification": attempts / operations if operations else None,
        "retried_ops": int(row["retried"]),
        "shed_503": int(row["shed"]),
        "shed_503_with_retry_after": int(row["shed_ra"]),
        "retry_after_honoured_share": int(row["honoured"]) / answers if answers else None,
    }


# ---------------------------------------------------------------------------------------------
# coordinated omission


def latency_from_intended(records: RecordsLike) -> pd.Series:
    """Latency (ms) counted from when the operation was due, so that a late start (the
    coordinated omission of a saturated client) is not hidden; ``latency_ms`` where no
    ``t_intended`` (closed model).

    ``t_intended`` is the journey's intended start: it is the due time of the journey's first
    operation, for which this is (t + latency_ms / 1000 - t_intended) x 1000 exactly. A later
    operation of the journey was due as far after ``t_intended`` as it started after the
    journey's first request: its latency is counted from there, so the journey's start lag
    carries over to it but not the calls and think times before it. A retried operation is
    counted from its first attempt's due time, as the user waits for the whole operation.

    One value per record, in record order: for a frame or a short run; the report asks
    :func:`latency_comparison` for the figures instead.
    """
    table = as_records(records)
    values = table.sql(f"SELECT intended FROM ({_intended(table, NUMBERED)}) ORDER BY pos")
    return pd.Series(
        values["intended"].to_numpy(dtype=float),
        index=records.index if isinstance(records, pd.DataFrame) else None,
        name="latency_from_intended_ms",
    )


def _intended(table: Records, source: str) -> str:
    """SQL of the records ``source`` selects with ``intended``, their latency from the
    intended start (:func:`latency_from_intended`)."""
    if not table.row("SELECT bool_or(t_intended IS NOT NULL) AS due FROM {records}").get("due"):
        return f"SELECT *, latency_ms AS intended FROM ({source})"
    op_first = "coalesce(f.first, r.t)"  # the first attempt's start
    return f"""SELECT r.*, CASE WHEN r.t_intended IS NULL THEN r.latency_ms
            ELSE ((r.t + r.latency_ms / 1000)
                - (r.t_intended + ({op_first} - coalesce(j.first, {op_first})))) * 1000
            END AS intended
        FROM ({source}) r
        LEFT JOIN (SELECT worker, op_id, min(t) AS first FROM {multi_attempts(table)}
            GROUP BY ALL) f ON f.worker = r.worker AND f.op_id = r.op_id
        LEFT JOIN (SELECT flow_id, min(t) AS first FROM {{records}} WHERE flow_id IS NOT NULL
            GROUP BY flow_id) j ON j.flow_id = r.flow_id"""


def latency_comparison(records: RecordsLike) -> pd.DataFrame:
    """Per endpoint (sorted) and over all (``*``): ``count`` of attempts and, side by side,
    ``measured_<stat>`` and ``intended_<stat>`` (:func:`latency_from_intended`) for p50, p90,
    p99, p99.9 and max, in ms."""
    table = as_records(records)
    qs = tuple(_COMPARED.values())
    frame = table.per_group(
        "endpoint",
        "count(*) AS n",
        source=_intended(table, "SELECT * FROM {records}"),
        percentiles={side: Percentiles(side, qs) for side in ("latency_ms", "intended")},
    )
    columns: dict[str, Any] = {"count": frame["n"].to_numpy(dtype=np.int64)}
    for i, stat in enumerate(_COMPARED):
        for side in ("measured", "intended"):
            column = frame["latency_ms" if side == "measured" else side]
            columns[f"{side}_{stat}"] = [float(v[i]) for v in column]
    return pd.DataFrame(columns, index=pd.Index(list(map(str, frame["endpoint"])), name="endpoint"))


# ---------------------------------------------------------------------------------------------
# shedding, sessions, spectrum


def shedding_quality(records: RecordsLike, window_s: float = 1.0) -> pd.DataFrame:
    """Per window: ``t0``, ``t_s``, ``offered`` (operations started per s: first attempts),
    ``goodput`` (as in :func:`~authload.analysis.timeline.timeline`), ``shed`` (503 answers
    per s) and ``p99_503_ms`` (how fast the 503s themselves came; NaN when none). A service
    that sheds well keeps goodput near its capacity and answers its 503s fast."""
    table = as_records(records)
    windows = Windowing.of(table, window_s)
    counts = {"first": "attempt = 1", "shed": SHED}
    frame = per_window(table, windows, counts, {"p99": 0.99}, SHED, operations=True)
    t0 = windows.t0(frame)
    return pd.DataFrame(
        {
            "t0": t0,
            "t_s": t0 - windows.start,
            "offered": frame["first"].to_numpy(dtype=np.int64) / windows.width,
            "goodput": frame["good"].to_numpy(dtype=np.int64) / windows.width,
            "shed": frame["shed"].to_numpy(dtype=np.int64) / windows.width,
            "p99_503_ms": frame["p99"].to_numpy(dtype=float),
        }
    )


def sessions_lost(events: list[Event]) -> dict[str, int]:
    """Lost sessions by reason (``rotation``, ``invalid``, ...), summed over flows and
    processes, from the run's ``outcomes`` events (outcomes ``<flow>:session_lost:<reason>``)."""
    lost: dict[str, int] = {}
    for event in of_kind(events, OutcomesEvent):
        for outcome, n in event.counts.items():
            if "session_lost" in outcome:
                reason = outcome.split("session_lost", 1)[1].strip(":") or "unknown"
                lost[reason] = lost.get(reason, 0) + n
    return dict(sorted(lost.items()))


def latency_spectrum(records: RecordsLike, endpoint: str | None = None) -> pd.DataFrame:
    """The latency spectrum of every attempt as HdrHistogram plots it: ``percentile``
    (0 to 100) and ``latency_ms`` (nearest-rank). The grid has ten steps per decade of the
    tail: 0, 10, ..., 90, then 90, 91, ..., 99, then 99, 99.1, ..., 99.9, and so on while a
    decade's tail still holds a request, and ends with 100 (the maximum)."""
    table = as_records(records)
    grid = _spectrum_grid(max(len(table), 1))
    where, params = ("TRUE", []) if endpoint is None else ("endpoint = ?", [endpoint])
    n = table.row(f"SELECT count(*) AS n FROM {{records}} WHERE {where}", params)["n"]
    return _spectrum(int(n), table.percentiles(_on_grid(grid), where, params), grid)


def latency_spectra(records: RecordsLike) -> dict[str, pd.DataFrame]:
    """The latency spectrum over all endpoints (``*``) and of each endpoint (sorted)."""
    table = as_records(records)
    grid = _spectrum_grid(max(len(table), 1))
    frame = table.per_group("endpoint", "count(*) AS n", percentiles={"q": _on_grid(grid)})
    spectra = {
        str(name): _spectrum(int(n), values, grid)
        for name, n, values in zip(frame["endpoint"], frame["n"], frame["q"], strict=True)
    }
    return {ALL: spectra.pop(ALL)} | spectra


def _on_grid(grid: Floats) -> Percentiles:
    """The latencies at the quantiles of ``grid``: every count's own grid
    (:func:`_spectrum_grid`) is part of a larger count's, so one grid, the whole table's,
    serves every group."""
    return Percentiles("latency_ms", tuple(float(q) for q in grid))


def _spectrum(n: int, values: Any, grid: Floats) -> pd.DataFrame:
    """The spectrum of ``n`` values from their quantiles ``values`` on ``grid``."""
    if n == 0:
        return pd.DataFrame({"percentile": np.empty(0), "latency_ms": np.empty(0)})
    own = _spectrum_grid(n)
    picked = np.asarray(values, dtype=float)[np.searchsorted(grid, own)]
    return pd.DataFrame({"percentile": np.round(own * 100, 10), "latency_ms": picked})


def _spectrum_grid(n: int) -> Floats:
    """Quantiles 1 - 10^-k (1 - j/10), j = 0..9, for each decade k with 10^k <= n; then 1."""
    decades = int(np.floor(np.log10(n) + 1e-9)) + 1
    steps = [1 - 10.0**-k * (1 - j / 10) for k in range(decades) for j in range(10)]
    return np.unique(np.round([*steps, 1.0], 12))
