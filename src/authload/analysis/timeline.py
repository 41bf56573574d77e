"""A run over time: per-window figures from the raw records, and the run's events as intervals.

Windows are fixed slices of ``window_s`` seconds from the run's first record (or a given
start), every window in between included, so a quiet window is a row of zeros, never a gap.
A record belongs to the window its attempt started in (``t``). Percentiles are nearest-rank,
exactly as :func:`authload.analysis.stats.percentile` computes them, of the answered requests
(status > 0) of the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["event_windows", "fault_windows", "timeline"]

MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 60.0

TIMELINE_COLUMNS = [
    "t0",
    "t_s",
    "requests",
    "rate",
    "p50",
    "p95",
    "p99",
    "ok",
    "s4xx",
    "s429",
    "s5xx",
    "s503",
    "no_answer",
    "err_timeout",
    "err_connect",
    "err_reset",
    "err_http",
    "err_contract",
    "error_rate",
    "attempts_per_op",
    "goodput",
]
EVENT_COLUMNS = ["kind", "start", "end", "label"]
_ERROR_KINDS = ("timeout", "connect", "reset", "http", "contract")
_TIMELINE_PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


# ---------------------------------------------------------------------------------------------
# windows


@dataclass(frozen=True)
class Windows:
    """Records cut into windows: ``index`` is each record's window, ``count`` the windows."""

    records: pd.DataFrame
    index: Ints
    start: float
    width: float
    count: int

    @classmethod
    def of(
        cls,
        records: pd.DataFrame,
        window_s: float,
        start: float | None = None,
        endpoint: str | None = None,
    ) -> Windows:
        check_window(window_s)
        if start is None:  # the run's first record, whatever the endpoint: windows align
            start = float(records["t"].min()) if len(records) else 0.0
        if endpoint is not None:
            records = records[records["endpoint"] == endpoint]
        t = records["t"].to_numpy(dtype=float)
        keep = t >= start
        if not keep.all():
            records, t = records[keep], t[keep]
        index = np.floor((t - start) / window_s).astype(np.int64)
        count = int(index.max()) + 1 if len(index) else 0
        return cls(records, index, float(start), float(window_s), count)

    def t0(self) -> Floats:
        return self.start + np.arange(self.count, dtype=float) * self.width

    def counts(self, mask: Bools | None = None) -> Ints:
        """Records per window, or only those where ``mask`` holds."""
        index = self.index if mask is None else self.index[mask]
        return np.bincount(index, minlength=self.count).astype(np.int64)

    def percentiles(self, mask: Bools, quantiles: Mapping[str, float]) -> dict[str, Floats]:
        """Nearest-rank percentiles of ``latency_ms`` per window over the rows in ``mask``."""
        values = self.records["latency_ms"].to_numpy(dtype=float)[mask]
        return grouped_percentiles(self.index[mask], values, self.count, quantiles)

    def distinct(self, keys: Ints) -> Ints:
        """Distinct ``keys`` per window."""
        pairs = pd.DataFrame({"w": self.index, "k": keys}).drop_duplicates()
        return np.bincount(pairs["w"].to_numpy(dtype=np.int64), minlength=self.count).astype(
            np.int64
        )


def check_window(window_s: float) -> None:
    if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
        raise ValueError(
            f"window_s must be from {MIN_WINDOW_S:g} to {MAX_WINDOW_S:g} s, not {window_s!r}"
        )


def grouped_percentiles(
    groups: Ints, values: Floats, count: int, quantiles: Mapping[str, float]
) -> dict[str, Floats]:
    """Nearest-rank percentiles per group (0 to ``count`` - 1), NaN for an empty group: the
    value at sorted index ceil(n q - 1), exactly as numpy's ``inverted_cdf`` (and so
    :func:`~authload.analysis.stats.percentile`) picks it."""
    order = np.lexsort((values, groups))
    ordered = values[order]
    sizes = np.bincount(groups, minlength=count)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    filled = sizes > 0
    result = {}
    for name, q in quantiles.items():
        rank = np.clip(np.ceil(sizes * q - 1), 0, np.maximum(sizes - 1, 0)).astype(np.int64)
        picked = np.full(count, np.nan)
        picked[filled] = ordered[(offsets + rank)[filled]]
        result[name] = picked
    return result


def op_keys(records: pd.DataFrame) -> Ints:
    """One integer per logical operation: (worker, op_id), as op ids are counted per process.
    A record without an op id is an operation of its own."""
    n = len(records)
    if "op_id" not in records.columns:
        return np.arange(n, dtype=np.int64)
    op = pd.to_numeric(records["op_id"])
    missing = op.isna().to_numpy()
    ids: Ints = op.fillna(0).to_numpy(dtype=np.int64)
    if "worker" in records.columns:
        workers: Ints = np.asarray(pd.factorize(records["worker"])[0], dtype=np.int64)
    else:
        workers = np.zeros(n, dtype=np.int64)
    keys: Ints = workers * (int(ids.max(initial=0)) + 1) + ids
    keys[missing] = -1 - np.arange(int(missing.sum()), dtype=np.int64)
    return keys


def last_attempts(records: pd.DataFrame, keys: Ints) -> Bools:
    """Whether each record is its operation's last attempt (highest attempt, then latest)."""
    n = len(records)
    attempt = attempts(records)
    order = np.lexsort((records["t"].to_numpy(dtype=float), attempt, keys))
    last = np.ones(n, dtype=bool)
    sorted_keys = keys[order]
    last[order[:-1]] = sorted_keys[:-1] != sorted_keys[1:]
    return last


def status_mask(records: pd.DataFrame, low: int, high: int) -> Bools:
    status = records["status"].to_numpy(dtype=np.int64)
    return (status >= low) & (status <= high)


def attempts(records: pd.DataFrame) -> Ints:
    """Each record's attempt number (1 where the records have none)."""
    if "attempt" not in records.columns:
        return np.ones(len(records), dtype=np.int64)
    return records["attempt"].to_numpy(dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# timeline


def timeline(
    records: pd.DataFrame,
    window_s: float = 1.0,
    start: float | None = None,
    endpoint: str | None = None,
) -> pd.DataFrame:
    """One row per window from the first record (or ``start``) to the last.

    ``requests`` and ``rate`` (per s) count attempts; ``p50``/``p95``/``p99`` (ms) are of the
    window's answered requests (NaN when none); ``ok`` (2xx), ``s4xx``, ``s429``, ``s5xx``,
    ``s503``, ``no_answer`` (status 0) and ``err_<kind>`` are counts; ``error_rate`` is the
    share of attempts with an error (NaN for an empty window); ``attempts_per_op`` is attempts
    per distinct operation in the window (1.0: no retries); ``goodput`` is operations per s
    whose last attempt got a 2xx, counted in that attempt's window. ``endpoint`` keeps only
    that endpoint's records, in the windows of the whole run. ``window_s`` must be from 1 to
    60 s.
    """
    w = Windows.of(records, window_s, start, endpoint)
    frame = w.records
    requests = w.counts()
    error = frame["error"]
    answered = frame["status"].to_numpy(dtype=np.int64) > 0
    keys = op_keys(frame)
    ok = status_mask(frame, 200, 299)
    columns: dict[str, Any] = {
        "t0": w.t0(),
        "t_s": w.t0() - w.start,
        "requests": requests,
        "rate": requests / w.width,
        **w.percentiles(answered, _TIMELINE_PERCENTILES),
        "ok": w.counts(ok),
        "s4xx": w.counts(status_mask(frame, 400, 499)),
        "s429": w.counts(status_mask(frame, 429, 429)),
        "s5xx": w.counts(status_mask(frame, 500, 599)),
        "s503": w.counts(status_mask(frame, 503, 503)),
        "no_answer": w.counts(~answered),
        **{f"err_{k}": w.counts(_is(error, k)) for k in _ERROR_KINDS},
        "error_rate": _share(w.counts(error.notna().to_numpy()), requests),
        "attempts_per_op": _share(requests, w.distinct(keys)),
        "goodput": w.counts(ok & last_attempts(frame, keys)) / w.width,
    }
    return pd.DataFrame(columns, columns=TIMELINE_COLUMNS)


def _is(column: pd.Series, value: str) -> Bools:
    return (column == value).to_numpy(dtype=bool, na_value=False)


def _share(part: Ints, whole: Ints) -> Floats:
    """part / whole, NaN where whole is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, part / np.maximum(whole, 1), np.nan)


# ---------------------------------------------------------------------------------------------
# events as intervals


def event_windows(events: list[dict[str, Any]], end_t: float) -> pd.DataFrame:
    """The run's events (:func:`authload.results.read_events`) as intervals, by start.

    ``stage``: from each stage change to the next (the last until ``end_t``);
    ``refresh_storm``: from the first process's ``refresh_storm_start`` to the last one's
    ``refresh_storm_end`` (``end_t`` if it never ended); ``mass_logout`` and ``abort``:
    points (start == end); ``fault_start``/``fault_end`` (the mock's fault history as the
    run logged it), and entries of that history given as they are, go to
    :func:`fault_windows`. Other events (outcomes, ...) are left out.
    """
    history = [_as_history(e) for e in events if e.get("kind") in ("fault_start", "fault_end")]
    history += [e for e in events if e.get("event") in ("start", "end") and "fault" in e]
    rows = [
        *_stages(events, end_t),
        *_storms(events, end_t),
        *_mass_logouts(events),
        *(_row("abort", e["t"], e["t"], str(e.get("reason", ""))) for e in _kind(events, "abort")),
    ]
    frames = [f for f in (_frame(rows), fault_windows(history, end_t)) if len(f)]
    return _sorted(pd.concat(frames, ignore_index=True) if frames else _frame([]))


def fault_windows(history: list[dict[str, Any]], end_t: float) -> pd.DataFrame:
    """The mock's fault ``history`` (``GET /_mock/faults``) as intervals of kind ``fault``,
    labelled ``"<fault kind> on <endpoints>"``; a window still open ends at ``end_t``, an end
    whose start is not in the history is left out, a window listed twice counts once."""
    ends = {e["fault"]: float(e["t"]) for e in history if e.get("event") == "end"}
    starts = {e["fault"]: e for e in reversed(history) if e.get("event") == "start"}
    rows = [
        _row(
            "fault",
            e["t"],
            ends.get(fault, end_t),
            f"{e['kind']} on {', '.join(map(str, e.get('endpoints') or ['*']))}",
        )
        for fault, e in starts.items()
    ]
    return _sorted(_frame(rows))


def _as_history(event: dict[str, Any]) -> dict[str, Any]:
    """A ``fault_start``/``fault_end`` event as the ``/_mock/faults`` history entry it came
    from."""
    return {
        "t": event["t"],
        "event": str(event["kind"]).removeprefix("fault_"),
        "fault": event.get("fault"),
        "kind": event.get("fault_kind", "fault"),
        "endpoints": event.get("endpoints") or ["*"],
        "name": event.get("name", ""),
    }


def _kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return sorted((e for e in events if e.get("kind") == kind), key=lambda e: float(e["t"]))


def _row(kind: str, start: float, end: float, label: str) -> dict[str, Any]:
    return {"kind": kind, "start": float(start), "end": float(end), "label": label}


def _stages(events: list[dict[str, Any]], end_t: float) -> list[dict[str, Any]]:
    stages = _kind(events, "stage")
    ends = [float(e["t"]) for e in stages[1:]] + [end_t] if stages else []
    return [
        _row("stage", e["t"], end, _stage_label(e)) for e, end in zip(stages, ends, strict=True)
    ]


def _stage_label(event: dict[str, Any]) -> str:
    users = event.get("users")
    load = f"{users} users" if users is not None else f"{event.get('rate', '?')}/s"
    return f"stage {event.get('stage', '?')}: {load}"


def _storms(events: list[dict[str, Any]], end_t: float) -> list[dict[str, Any]]:
    """One interval per storm (``at_s``), over the starts and ends of every process."""
    starts: dict[Any, list[dict[str, Any]]] = {}
    for e in _kind(events, "refresh_storm_start"):
        starts.setdefault(e.get("at_s"), []).append(e)
    ends: dict[Any, list[float]] = {}
    for e in _kind(events, "refresh_storm_end"):
        ends.setdefault(e.get("at_s"), []).append(float(e["t"]))
    rows = []
    for at_s, group in starts.items():
        finished = ends.get(at_s, [])
        end = max(finished) if len(finished) >= len(group) else end_t
        sessions = sum(int(e.get("sessions", 0)) for e in group)
        rows.append(
            _row("refresh_storm", group[0]["t"], end, f"refresh storm: {sessions} sessions")
        )
    return rows


def _mass_logouts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per mass logout (``at_s``): when the first process started it."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for e in _kind(events, "mass_logout"):
        groups.setdefault(e.get("at_s"), []).append(e)
    rows = []
    for group in groups.values():
        n = sum(int(e.get("counterparties", 0)) for e in group)
        rows.append(_row("mass_logout", group[0]["t"], group[0]["t"], f"mass logout: {n} users"))
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return frame.astype({"kind": object, "start": float, "end": float, "label": object})


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["start", "end"], kind="stable").reset_index(drop=True)
