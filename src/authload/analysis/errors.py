"""Failures and how the service and the clients dealt with them: error bursts, recovery after
faults and storms, retries and Retry-After, coordinated omission, load shedding, lost
sessions, the latency spectrum.

Latency figures are of every attempt (one with no answer counts the time until it failed), as
in :func:`authload.analysis.stats.endpoint_summary`; percentiles are nearest-rank. Operations are
identified by (``worker``, ``op_id``), as op ids are counted per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from authload.analysis.stats import PERCENTILES
from authload.analysis.timeline import (
    Bools,
    Floats,
    Ints,
    Windows,
    attempts,
    grouped_percentiles,
    op_keys,
    status_mask,
    timeline,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "HONOUR_SLACK_S",
    "RECOVERY_KINDS",
    "RecoveryTolerance",
    "error_bursts",
    "latency_comparison",
    "latency_from_intended",
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

_BURST_STATUSES = ("5xx", "503", "errors")
_BURST_COLUMNS = ["start", "end", "duration_s", "peak_rate", "errors", "endpoints"]
_COMPARED = {**{k: PERCENTILES[k] for k in ("p50", "p90", "p99", "p99.9")}, "max": 1.0}


# ---------------------------------------------------------------------------------------------
# bursts and recovery


def error_bursts(
    records: pd.DataFrame, window_s: float = 1.0, threshold: float = 0.05, statuses: str = "5xx"
) -> pd.DataFrame:
    """Maximal runs of consecutive windows in which the share of failed requests exceeds
    ``threshold``; failed means a 5xx (``statuses="5xx"``), a 503 (``"503"``) or any error
    (``"errors"``). Per burst: ``start`` and ``end`` (window bounds, unix s), ``duration_s``,
    ``peak_rate`` (failures/s of its worst window), ``errors`` (failures in it) and
    ``endpoints`` (sorted, those that failed in it). An empty window ends a burst."""
    if statuses not in _BURST_STATUSES:
        raise ValueError(f"statuses must be one of {_BURST_STATUSES}, not {statuses!r}")
    w = Windows.of(records, window_s)
    bad = _failed(w.records, statuses)
    failed, requests = w.counts(bad), w.counts()
    hot = (requests > 0) & (failed / np.maximum(requests, 1) > threshold)
    burst = np.where(hot, np.cumsum(hot & ~np.r_[False, hot[:-1]]) - 1, -1)
    if not hot.any():
        return pd.DataFrame(columns=_BURST_COLUMNS)
    per_window = pd.DataFrame({"burst": burst, "t0": w.t0(), "failed": failed})[hot]
    grouped = per_window.groupby("burst")
    start = grouped["t0"].min()
    end = grouped["t0"].max() + w.width
    of_record = burst[w.index[bad]]
    names = pd.Series(w.records["endpoint"].to_numpy()[bad][of_record >= 0])
    unique = names.groupby(of_record[of_record >= 0]).unique()
    endpoints = unique.map(lambda found: sorted(map(str, found)))
    frame = pd.DataFrame(
        {
            "start": start,
            "end": end,
            "duration_s": end - start,
            "peak_rate": grouped["failed"].max() / w.width,
            "errors": grouped["failed"].sum(),
            "endpoints": endpoints,
        }
    )
    return frame.reset_index(drop=True)


def _failed(records: pd.DataFrame, statuses: str) -> Bools:
    if statuses == "5xx":
        return status_mask(records, 500, 599)
    if statuses == "503":
        return status_mask(records, 503, 503)
    return records["error"].notna().to_numpy(dtype=bool)


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
    records: pd.DataFrame,
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
    tl = timeline(records, window_s)
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


def retry_after_honoured(records: pd.DataFrame) -> pd.DataFrame:
    """Each answer with a Retry-After that its operation retried: ``op_id``, ``endpoint``,
    ``retry_after_s``, ``waited_s`` (from this attempt's end, t + latency, to the next
    attempt's start), ``honoured`` (waited at least Retry-After less ``HONOUR_SLACK_S``),
    ``worker``, ``attempt``; in record order."""
    keys = op_keys(records)
    attempt = attempts(records)
    carried = records["retry_after_s"].notna().to_numpy()
    left = pd.DataFrame({"key": keys[carried], "next": attempt[carried] + 1})
    left["row"] = np.flatnonzero(carried)
    right = pd.DataFrame({"key": keys, "next": attempt, "t_next": records["t"].to_numpy()})
    merged = left.merge(right.drop_duplicates(["key", "next"]), on=["key", "next"], how="inner")
    rows = records.iloc[merged["row"].to_numpy()]
    end = rows["t"].to_numpy(dtype=float) + rows["latency_ms"].to_numpy(dtype=float) / 1000
    waited = merged["t_next"].to_numpy(dtype=float) - end
    retry_after = rows["retry_after_s"].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "op_id": rows["op_id"].to_numpy(),
            "endpoint": rows["endpoint"].to_numpy(),
            "retry_after_s": retry_after,
            "waited_s": waited,
            "honoured": waited >= retry_after - HONOUR_SLACK_S,
            "worker": rows["worker"].to_numpy() if "worker" in rows.columns else None,
            "attempt": attempt[merged["row"].to_numpy()],
        }
    )


def retry_summary(records: pd.DataFrame) -> dict[str, int | float | None]:
    """``operations``, ``attempts``, ``amplification`` (attempts per operation),
    ``retried_ops`` (with more than one attempt), ``shed_503`` (503 answers),
    ``shed_503_with_retry_after`` and ``retry_after_honoured_share`` (of the Retry-After
    answers that were retried, see :func:`retry_after_honoured`); None where undefined."""
    keys = op_keys(records)
    operations = int(pd.unique(keys).size)
    shed = status_mask(records, 503, 503)
    honoured = retry_after_honoured(records)["honoured"]
    return {
        "operations": operations,
        "attempts": len(records),
        "amplification": len(records) / operations if operations else None,
        "retried_ops": int(pd.unique(keys[attempts(records) > 1]).size),
        "shed_503": int(shed.sum()),
        "shed_503_with_retry_after": int(
            (shed & records["retry_after_s"].notna().to_numpy()).sum()
        ),
        "retry_after_honoured_share": float(honoured.mean()) if len(honoured) else None,
    }


# ---------------------------------------------------------------------------------------------
# coordinated omission


def latency_from_intended(records: pd.DataFrame) -> pd.Series:
    """Latency (ms) counted from when the operation was due, so that a late start (the
    coordinated omission of a saturated client) is not hidden; ``latency_ms`` where no
    ``t_intended`` (closed model).

    ``t_intended`` is the journey's intended start: it is the due time of the journey's first
    operation, for which this is (t + latency_ms / 1000 - t_intended) x 1000 exactly. A later
    operation of the journey was due as far after ``t_intended`` as it started after the
    journey's first request: its latency is counted from there, so the journey's start lag
    carries over to it but not the calls and think times before it. A retried operation is
    counted from its first attempt's due time, as the user waits for the whole operation.
    """
    measured = records["latency_ms"].astype(float)
    if "t_intended" not in records.columns:
        return measured.rename("latency_from_intended_ms")
    t = records["t"].astype(float)
    end = t + measured / 1000
    op_first = t.groupby(op_keys(records)).transform("min")
    journey_first = op_first
    if "flow_id" in records.columns:
        journey_first = t.groupby(records["flow_id"]).transform("min").fillna(op_first)
    due = records["t_intended"].astype(float) + (op_first - journey_first)
    corrected = ((end - due) * 1000).where(due.notna(), measured)
    return corrected.rename("latency_from_intended_ms")


def latency_comparison(records: pd.DataFrame) -> pd.DataFrame:
    """Per endpoint (sorted) and over all (``*``): ``count`` of attempts and, side by side,
    ``measured_<stat>`` and ``intended_<stat>`` (:func:`latency_from_intended`) for p50, p90,
    p99, p99.9 and max, in ms."""
    codes, names = pd.factorize(records["endpoint"].to_numpy(), sort=True)
    measured = records["latency_ms"].to_numpy(dtype=float)
    intended = latency_from_intended(records).to_numpy(dtype=float)
    index = [*map(str, names), "*"]
    columns: dict[str, Any] = {"count": [*np.bincount(codes, minlength=len(names)), len(codes)]}
    by_name = {"measured": measured, "intended": intended}
    stats = {
        side: _per_endpoint(codes.astype(np.int64), values, len(names))
        for side, values in by_name.items()
    }
    for stat in _COMPARED:
        for side in by_name:
            columns[f"{side}_{stat}"] = stats[side][stat]
    return pd.DataFrame(columns, index=pd.Index(index, name="endpoint"))


def _per_endpoint(codes: Ints, values: Floats, count: int) -> dict[str, Floats]:
    each = grouped_percentiles(codes, values, count, _COMPARED)
    overall = grouped_percentiles(np.zeros(len(values), dtype=np.int64), values, 1, _COMPARED)
    return {k: np.concatenate([each[k], overall[k]]) for k in _COMPARED}


# ---------------------------------------------------------------------------------------------
# shedding, sessions, spectrum


def shedding_quality(records: pd.DataFrame, window_s: float = 1.0) -> pd.DataFrame:
    """Per window: ``t0``, ``t_s``, ``offered`` (operations started per s: first attempts),
    ``goodput`` (as in :func:`~authload.analysis.timeline.timeline`), ``shed`` (503 answers
    per s) and ``p99_503_ms`` (how fast the 503s themselves came; NaN when none). A service
    that sheds well keeps goodput near its capacity and answers its 503s fast."""
    tl = timeline(records, window_s)
    w = Windows.of(records, window_s)
    shed = status_mask(w.records, 503, 503)
    return pd.DataFrame(
        {
            "t0": tl["t0"],
            "t_s": tl["t_s"],
            "offered": w.counts(attempts(w.records) == 1) / w.width,
            "goodput": tl["goodput"],
            "shed": w.counts(shed) / w.width,
            "p99_503_ms": w.percentiles(shed, {"p99": 0.99})["p99"],
        }
    )


def sessions_lost(events: list[dict[str, Any]]) -> dict[str, int]:
    """Lost sessions by reason (``rotation``, ``invalid``, ...), summed over flows and
    processes, from the run's ``outcomes`` events (outcomes ``<flow>:session_lost:<reason>``)."""
    lost: dict[str, int] = {}
    for event in events:
        if event.get("kind") != "outcomes":
            continue
        for outcome, n in dict(event.get("counts") or {}).items():
            if "session_lost" in outcome:
                reason = str(outcome).split("session_lost", 1)[1].strip(":") or "unknown"
                lost[reason] = lost.get(reason, 0) + int(n)
    return dict(sorted(lost.items()))


def latency_spectrum(records: pd.DataFrame, endpoint: str | None = None) -> pd.DataFrame:
    """The latency spectrum of every attempt as HdrHistogram plots it: ``percentile``
    (0 to 100) and ``latency_ms`` (nearest-rank). The grid has ten steps per decade of the
    tail: 0, 10, ..., 90, then 90, 91, ..., 99, then 99, 99.1, ..., 99.9, and so on while a
    decade's tail still holds a request, and ends with 100 (the maximum)."""
    if endpoint is not None:
        records = records[records["endpoint"] == endpoint]
    values = np.sort(records["latency_ms"].to_numpy(dtype=float))
    n = len(values)
    if n == 0:
        return pd.DataFrame({"percentile": np.empty(0), "latency_ms": np.empty(0)})
    grid = _spectrum_grid(n)
    rank = np.clip(np.ceil(n * grid - 1), 0, n - 1).astype(np.int64)
    return pd.DataFrame({"percentile": np.round(grid * 100, 10), "latency_ms": values[rank]})


def _spectrum_grid(n: int) -> Floats:
    """Quantiles 1 - 10^-k (1 - j/10), j = 0..9, for each decade k with 10^k <= n; then 1."""
    decades = int(np.floor(np.log10(n) + 1e-9)) + 1
    steps = [1 - 10.0**-k * (1 - j / 10) for k in range(decades) for j in range(10)]
    return np.unique(np.round([*steps, 1.0], 12))
