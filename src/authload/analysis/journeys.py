"""Journeys as the user feels them: per flow, how many ended as the user wanted and how long
each took, from its intended start (open model: the arrival's due time) or its start (closed
model) to its end; open-model arrivals that never started count as failed journeys
(``dropped``). And per token revoked by a logout from all devices, the time until the
service first refused it.

The figures are DuckDB aggregates over ``journeys.parquet`` (:mod:`authload.analysis.query`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from authload.analysis.query import Journeys, JourneysLike, Percentiles, as_journeys, sql_strings
from authload.rundir.records import (
    DROPPED,
    JOURNEY,
    LOST_PREFIXES,
    NEVER_REVOKED,
    OK_OUTCOMES,
    REVOCATION,
    REVOKED_AT_ONCE,
    STOPPED,
)
from authload.scenario.slo_grammar import PERCENTILES

__all__ = [
    "DROPPED_ARRIVAL",
    "IN_SCOPE",
    "LOST",
    "OK",
    "journey_scope",
    "journey_summary",
    "load_journeys",
    "revocation_summary",
    "scope_where",
]


#: SQL conditions on a journey row.
IN_SCOPE = f"kind = '{JOURNEY}' AND outcome <> '{STOPPED}'"  # ended or never started
OK = f"outcome IN ({sql_strings(OK_OUTCOMES)})"
LOST = " OR ".join(f"starts_with(outcome, '{p}')" for p in LOST_PREFIXES)
DROPPED_ARRIVAL = f"outcome = '{DROPPED}'"  # an open-model arrival that never started
_STARTED = f"NOT ({DROPPED_ARRIVAL})"
_QS = tuple(PERCENTILES.values())
_REVOKED = Percentiles("duration_ms", _QS, f"kind = '{REVOCATION}'")


def load_journeys(run_dir: Path) -> pd.DataFrame:
    """The run's journey records with ``duration_ms`` (t_end - t_start), as one pandas frame:
    for notebooks; the analysis queries :class:`~authload.analysis.query.Journeys`."""
    return Journeys.of_run(run_dir).frame()


def scope_where(flow: str) -> tuple[str, list[Any]]:
    """The SQL condition (and its parameters) of the journeys of ``flow`` (``*``: every
    flow) that ended or never started; not those the test's end cut short, nor revocations."""
    return (IN_SCOPE, []) if flow == "*" else (f"{IN_SCOPE} AND flow = ?", [flow])


def journey_scope(journeys: JourneysLike, flow: str) -> pd.DataFrame:
    """The journeys of :func:`scope_where` as a pandas frame."""
    where, params = scope_where(flow)
    return as_journeys(journeys).frame(where=where, params=params)


def journey_summary(journeys: JourneysLike) -> dict[str, dict[str, Any]]:
    """Per flow and over all (``*``): journeys, ok, success rate (dropped arrivals count as
    failed), dropped, sessions lost, how many waited for a free place and the longest wait,
    and duration percentiles (ms) of the journeys that started."""
    frame = as_journeys(journeys).per_group(
        "flow",
        f"""count(*) AS count, count(*) FILTER (WHERE {OK}) AS ok,
            count(*) FILTER (WHERE {DROPPED_ARRIVAL}) AS dropped,
            count(*) FILTER (WHERE {LOST}) AS sessions_lost,
            count(*) FILTER (WHERE coalesce(waited_ms, 0) > 0) AS waited,
            max(waited_ms) FILTER (WHERE waited_ms > 0) AS max_wait_ms,
            max(duration_ms) FILTER (WHERE {_STARTED}) AS max""",
        IN_SCOPE,
        percentiles={"q": Percentiles("duration_ms", _QS, _STARTED)},
    )
    return {str(row["flow"]): _row(row) for _, row in frame.iterrows()}


def _row(row: pd.Series) -> dict[str, Any]:
    n, ok = int(row["count"]), int(row["ok"])
    return {
        "count": n,
        "ok": ok,
        "success_rate": ok / n if n else None,
        "dropped": int(row["dropped"]),
        "sessions_lost": int(row["sessions_lost"]),
        "waited": int(row["waited"]),
        "max_wait_ms": _none(row["max_wait_ms"]),
        **dict(zip(PERCENTILES, map(_none, row["q"]), strict=True)),
        "max": _none(row["max"]),
    }


def revocation_summary(journeys: JourneysLike) -> dict[str, Any] | None:
    """The revocation times (ms) of the tokens a logout from all devices revoked; None when
    no such logout happened."""
    table = as_journeys(journeys)
    row = table.row(
        f"""SELECT count(*) AS tokens,
            count(*) FILTER (WHERE outcome <> '{REVOKED_AT_ONCE}') AS accepted,
            count(*) FILTER (WHERE outcome = '{NEVER_REVOKED}') AS never_refused,
            min(t_start) FILTER (WHERE outcome <> '{REVOKED_AT_ONCE}') AS first_accepted_t,
            max(duration_ms) AS max
        FROM {{journeys}} WHERE kind = '{REVOCATION}'"""
    )
    if not row.get("tokens"):
        return None
    return {
        "tokens": int(row["tokens"]),
        "accepted_after_revocation": int(row["accepted"]),
        "never_refused": int(row["never_refused"]),
        "first_accepted_t": _none(row["first_accepted_t"]),
        **dict(zip(PERCENTILES, table.percentiles(_REVOKED), strict=True)),
        "max": float(row["max"]),
    }


def _none(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # NULL, NaN: no data
