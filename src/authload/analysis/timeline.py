"""A run over time: per-window figures from the raw records, and the run's events as intervals.

Windows are fixed slices of ``window_s`` seconds from the run's first record (or a given
start), every window in between included, so a quiet window is a row of zeros, never a gap.
A record belongs to the window its attempt started in (``t``). Percentiles are nearest-rank,
exactly as :func:`authload.analysis.stats.percentile` computes them, of the answered requests
(status > 0) of the window.

The figures are DuckDB aggregates grouped by window (:mod:`authload.analysis.query`): the
answer has one row per window, whatever the run's length. Operations are (``worker``,
``op_id``), as op ids are counted per process; a record without an op id is an operation of
its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from authload.analysis.query import ANSWERED, Records, RecordsLike, as_records, exact_quantiles
from authload.rundir.events import (
    AbortEvent,
    Event,
    EventT,
    FaultEndEvent,
    FaultStartEvent,
    FaultWindow,
    MassLogoutEvent,
    RefreshStormEndEvent,
    RefreshStormStartEvent,
    StageEvent,
    of_kind,
)

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

#: SQL conditions on a record.
FAILED = "error IS NOT NULL"
OK_STATUS = "status BETWEEN 200 AND 299"
STATUS_5XX = "status BETWEEN 500 AND 599"
SHED = "status = 503"  # the service shed the request

_COUNTS = {
    "ok": OK_STATUS,
    "s4xx": "status BETWEEN 400 AND 499",
    "s429": "status = 429",
    "s5xx": STATUS_5XX,
    "s503": SHED,
    "no_answer": f"NOT ({ANSWERED})",
    **{f"err_{kind}": f"error = '{kind}'" for kind in _ERROR_KINDS},
    "failed": FAILED,
}


# ---------------------------------------------------------------------------------------------
# windows


def check_window(window_s: float) -> None:
    if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
        raise ValueError(
            f"window_s must be from {MIN_WINDOW_S:g} to {MAX_WINDOW_S:g} s, not {window_s!r}"
        )


def first_t(table: Records) -> float:
    """When the first record's attempt started (unix s); 0.0 without records."""
    first = table.row("SELECT min(t) AS t FROM {records}").get("t")
    return 0.0 if first is None else float(first)


@dataclass(frozen=True)
class Windowing:
    """Windows of ``width`` s from ``start`` (unix s) over the records from ``start`` on (of
    ``endpoint`` only, if given)."""

    start: float
    width: float
    endpoint: str | None = None

    @classmethod
    def of(
        cls,
        table: Records,
        window_s: float,
        start: float | None = None,
        endpoint: str | None = None,
    ) -> Windowing:
        check_window(window_s)
        if start is None:  # the run's first record, whatever the endpoint: windows align
            start = first_t(table)
        return cls(float(start), float(window_s), endpoint)

    @property
    def params(self) -> list[Any]:
        """The parameters of :meth:`records` (and of any query built on it)."""
        return [self.start, self.width, *([] if self.endpoint is None else [self.endpoint])]

    def records(self, source: str = "{records}") -> str:
        """SQL of the windowed records of ``source``, each with its window ``w``: computed in
        DOUBLE as floor((t - start) / width), so a record on a window's edge falls where
        numpy put it."""
        where = "" if self.endpoint is None else " AND endpoint = $3"
        return (
            f"SELECT *, CAST(floor((t - $1) / $2) AS BIGINT) AS w FROM {source} "
            f"WHERE t >= $1{where}"
        )

    def t0(self, frame: pd.DataFrame) -> Floats:
        """The start (unix s) of each window of ``frame`` (column ``w``)."""
        return self.start + frame["w"].to_numpy(dtype=float) * self.width


#: The records of the operations that were retried (their attempts), a temporary table made
#: once per :class:`Records`: a few percent of a run's records, where the questions about an
#: operation's attempts need the operation's other records. An operation's attempts are
#: numbered from 1 (:data:`~authload.rundir.records.RECORD_SCHEMA`), so one with a record of
#: attempt 2 or more was retried; any other is a single record, its own first and last
#: attempt. (Finding them by their attempt numbers reads a few percent of the run; counting
#: every operation's records to find those with more than one took a second per 10 million.)
MULTI = "multi_attempt_records"
_MULTI_COLUMNS = "t, endpoint, status, latency_ms, retry_after_s, op_id, attempt, worker"
#: The records numbered in their order (``pos``): of two records of an operation alike in
#: attempt number (and start), the later is its last attempt and the earlier its next one,
#: as the numpy code took them.
NUMBERED = "SELECT row_number() OVER () AS pos, * FROM {records}"


def multi_attempts(table: Records) -> str:
    """The name of the :data:`MULTI` table of ``table`` (``pos`` and
    :data:`_MULTI_COLUMNS`), made on first use.

    Operations are told apart by one integer, op_id x (workers + 1) + the worker's place
    among the run's workers: the run's records are matched to the retried operations on it,
    which takes far less memory than on (worker, op_id)."""
    made = f"SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = '{MULTI}'"
    if table.row(made)["n"]:
        return MULTI
    workers = table.sql("SELECT DISTINCT worker FROM {records} WHERE worker IS NOT NULL")
    key = f"op_id * {len(workers) + 1} + coalesce(list_position($1, worker), 0)"
    table.sql(
        f"""CREATE TEMP TABLE {MULTI} AS SELECT pos, {_MULTI_COLUMNS} FROM (
            SELECT *, {key} AS op FROM ({NUMBERED}) WHERE op_id IS NOT NULL)
        SEMI JOIN (SELECT DISTINCT {key} AS op FROM {{records}}
            WHERE op_id IS NOT NULL AND attempt > 1) USING (op)""",
        [[str(worker) for worker in workers["worker"]]],
    )
    return MULTI


#: Per window, over the windowed records of :data:`MULTI` (``m``): its records, 2xx
#: answers, operations, and operations whose last attempt there (highest attempt, then
#: latest) got a 2xx.
_MULTI_FIGURES = f"""SELECT w, count(*) AS records, count(*) FILTER (WHERE ok) AS ok,
        count(DISTINCT (worker, op_id)) AS ops, count(*) FILTER (WHERE ok AND last) AS good
    FROM (SELECT w, worker, op_id, {OK_STATUS} AS ok, row_number() OVER (
        PARTITION BY worker, op_id ORDER BY attempt DESC, t DESC, pos DESC) = 1 AS last
        FROM m)
    GROUP BY w"""


def per_window(
    table: Records,
    windows: Windowing,
    counts: Mapping[str, str],
    percentiles: Mapping[str, float] | None = None,
    of: str = "TRUE",
    operations: bool = False,
) -> pd.DataFrame:
    """One row per window from the first to the last holding a record, quiet ones included:
    ``w``, ``requests``, and per name of ``counts`` the records its condition selects;
    per name of ``percentiles`` (quantiles) the nearest-rank latency of the records ``of``
    selects (NaN when none). With ``operations``: ``ops``, the operations with a record in
    the window, and ``good``, those whose last attempt got a 2xx, in that attempt's window.
    """
    counted = {**({"ok": OK_STATUS} if operations else {}), **counts}
    aggregates = ["count(*) AS requests"]
    aggregates += [f'count(*) FILTER (WHERE {c}) AS "{n}"' for n, c in counted.items()]
    columns = [f'coalesce(a."{n}", 0) AS "{n}"' for n in ["requests", *counted]]
    ctes = [
        f"r AS ({windows.records()})",
        f"a AS (SELECT w, {', '.join(aggregates)} FROM r GROUP BY w)",
    ]
    joins = ""
    if operations:
        multi = multi_attempts(table)
        ctes += [f"m AS ({windows.records(multi)})", f"o AS ({_MULTI_FIGURES})"]
        joins = " LEFT JOIN o USING (w)"
        columns += [  # an operation with one record counts once, on its own
            "coalesce(a.requests, 0) - coalesce(o.records, 0) + coalesce(o.ops, 0) AS ops",
            "coalesce(a.ok, 0) - coalesce(o.ok, 0) + coalesce(o.good, 0) AS good",
        ]
    ctes.append("g AS (SELECT unnest(range(coalesce(max(w) + 1, 0))) AS w FROM a)")
    frame = table.sql(
        f"""WITH {", ".join(ctes)}
        SELECT w, {", ".join(columns)} FROM g LEFT JOIN a USING (w){joins} ORDER BY w""",
        windows.params,
    )
    return _with_percentiles(table, windows, frame, percentiles or {}, of)


def _with_percentiles(
    table: Records, windows: Windowing, frame: pd.DataFrame, qs: Mapping[str, float], of: str
) -> pd.DataFrame:
    """``frame`` with a column per name of ``qs``: the window's nearest-rank latency of the
    records ``of`` selects (NaN when none)."""
    if not qs:
        return frame
    found = exact_quantiles(
        table,
        "latency_ms",
        tuple(qs.values()),
        {"w": "w"},
        of,
        windows.params,
        source=windows.records(),
    )
    by_window = dict(zip(found["w"], found["q"], strict=True))
    for i, name in enumerate(qs):
        frame[name] = [float(by_window[w][i]) if w in by_window else np.nan for w in frame["w"]]
    return frame


def share(part: Any, whole: Any) -> Floats:
    """part / whole, NaN where whole is 0."""
    part, whole = np.asarray(part, dtype=np.int64), np.asarray(whole, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, part / np.maximum(whole, 1), np.nan)


def grouped_percentiles(
    groups: Ints, values: Floats, count: int, quantiles: Mapping[str, float]
) -> dict[str, Floats]:
    """Nearest-rank percentiles per group (0 to ``count`` - 1), NaN for an empty group: the
    value at sorted index ceil(n q - 1), exactly as numpy's ``inverted_cdf`` (and so
    :func:`~authload.analysis.stats.percentile`) picks it. For arrays in memory (drift's
    windows); queries use :func:`~authload.analysis.query.quantiles`."""
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


# ---------------------------------------------------------------------------------------------
# timeline


def timeline(
    records: RecordsLike,
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
    table = as_records(records)
    windows = Windowing.of(table, window_s, start, endpoint)
    frame = per_window(table, windows, _COUNTS, _TIMELINE_PERCENTILES, ANSWERED, operations=True)
    requests = frame["requests"].to_numpy(dtype=np.int64)
    t0 = windows.t0(frame)
    columns: dict[str, Any] = {
        "t0": t0,
        "t_s": t0 - windows.start,
        "requests": requests,
        "rate": requests / windows.width,
        **{name: frame[name].to_numpy(dtype=float) for name in _TIMELINE_PERCENTILES},
        **{name: frame[name].to_numpy(dtype=np.int64) for name in _COUNTS if name != "failed"},
        "error_rate": share(frame["failed"], requests),
        "attempts_per_op": share(requests, frame["ops"]),
        "goodput": frame["good"].to_numpy(dtype=np.int64) / windows.width,
    }
    return pd.DataFrame(columns, columns=TIMELINE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# events as intervals


def event_windows(events: Sequence[Event | FaultWindow], end_t: float) -> pd.DataFrame:
    """The run's events (:func:`authload.rundir.events.read_events`) as intervals, by start.

    ``stage``: from each stage change to the next (the last until ``end_t``);
    ``refresh_storm``: from the first process's ``refresh_storm_start`` to the last one's
    ``refresh_storm_end`` (``end_t`` if it never ended); ``mass_logout`` and ``abort``:
    points (start == end); ``fault_start``/``fault_end`` (the mock's fault history as the
    run logged it), and entries of that history given as they are, go to
    :func:`fault_windows`. Other events (outcomes, ...) are left out.
    """
    logged = [e for e in events if not isinstance(e, FaultWindow)]
    history = [e for e in events if isinstance(e, FaultWindow)]
    history += [e.window() for e in logged if isinstance(e, FaultStartEvent | FaultEndEvent)]
    aborts = _in_order(logged, AbortEvent)
    rows = [
        *_stages(_in_order(logged, StageEvent), end_t),
        *_storms(logged, end_t),
        *_mass_logouts(_in_order(logged, MassLogoutEvent)),
        *(_row("abort", e.t, e.t, e.reason) for e in aborts),
    ]
    frames = [f for f in (_frame(rows), fault_windows(history, end_t)) if len(f)]
    return _sorted(pd.concat(frames, ignore_index=True) if frames else _frame([]))


def fault_windows(history: Sequence[FaultWindow], end_t: float) -> pd.DataFrame:
    """The mock's fault ``history`` (``GET /_mock/faults``) as intervals of kind ``fault``,
    labelled ``"<fault kind> on <endpoints>"``; a window still open ends at ``end_t``, an end
    whose start is not in the history is left out, a window listed twice counts once."""
    ends = {e.fault: e.t for e in history if e.event == "end"}
    starts = {e.fault: e for e in reversed(history) if e.event == "start"}
    rows = [
        _row("fault", e.t, ends.get(fault, end_t), f"{e.kind} on {', '.join(e.endpoints or ['*'])}")
        for fault, e in starts.items()
    ]
    return _sorted(_frame(rows))


def _in_order(events: list[Event], kind: type[EventT]) -> list[EventT]:
    return sorted(of_kind(events, kind), key=lambda e: e.t)


def _row(kind: str, start: float, end: float, label: str) -> dict[str, Any]:
    return {"kind": kind, "start": float(start), "end": float(end), "label": label}


def _stages(stages: list[StageEvent], end_t: float) -> list[dict[str, Any]]:
    ends = [e.t for e in stages[1:]] + [end_t] if stages else []
    return [_row("stage", e.t, end, _stage_label(e)) for e, end in zip(stages, ends, strict=True)]


def _stage_label(event: StageEvent) -> str:
    if event.users is not None:
        return f"stage {event.stage}: {event.users} users"
    return f"stage {event.stage}: {event.rate or 0:g}/s"


def _storms(events: list[Event], end_t: float) -> list[dict[str, Any]]:
    """One interval per storm (``at_s``), over the starts and ends of every process."""
    starts: dict[float, list[RefreshStormStartEvent]] = {}
    for e in _in_order(events, RefreshStormStartEvent):
        starts.setdefault(e.at_s, []).append(e)
    ends: dict[float, list[float]] = {}
    for end in _in_order(events, RefreshStormEndEvent):
        ends.setdefault(end.at_s, []).append(end.t)
    rows = []
    for at_s, group in starts.items():
        finished = ends.get(at_s, [])
        last = max(finished) if len(finished) >= len(group) else end_t
        sessions = sum(e.sessions for e in group)
        rows.append(_row("refresh_storm", group[0].t, last, f"refresh storm: {sessions} sessions"))
    return rows


def _mass_logouts(logouts: list[MassLogoutEvent]) -> list[dict[str, Any]]:
    """One point per mass logout (``at_s``): when the first process started it."""
    groups: dict[float, list[MassLogoutEvent]] = {}
    for e in logouts:
        groups.setdefault(e.at_s, []).append(e)
    rows = []
    for group in groups.values():
        n = sum(e.counterparties for e in group)
        rows.append(_row("mass_logout", group[0].t, group[0].t, f"mass logout: {n} users"))
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return frame.astype({"kind": object, "start": float, "end": float, "label": object})


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["start", "end"], kind="stable").reset_index(drop=True)
