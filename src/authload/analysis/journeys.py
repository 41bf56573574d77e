"""Journeys as the user feels them: per flow, how many ended as the user wanted and how long
each took, from its intended start (open model: the arrival's due time) or its start (closed
model) to its end; open-model arrivals that never started count as failed journeys
(``dropped``). And per token revoked by a logout from all devices, the time until the
service first refused it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from authload.analysis.stats import PERCENTILES, percentile
from authload.results import (
    DROPPED,
    JOURNEY,
    JOURNEY_SCHEMA,
    LOST_PREFIXES,
    NEVER_REVOKED,
    OK_OUTCOMES,
    REVOCATION,
    REVOKED_AT_ONCE,
    STOPPED,
    read_journeys,
)

__all__ = [
    "journey_scope",
    "journey_summary",
    "load_journeys",
    "revocation_summary",
    "revocations",
    "session_lost_mask",
]


def load_journeys(run_dir: Path) -> pd.DataFrame:
    """The run's journey records with ``duration_ms`` (t_end - t_start)."""
    return _with_duration(read_journeys(run_dir).to_pandas())


def _with_duration(frame: pd.DataFrame) -> pd.DataFrame:
    frame["duration_ms"] = (frame["t_end"] - frame["t_start"]) * 1000.0
    return frame


def _none_kept() -> pd.DataFrame:
    return _with_duration(JOURNEY_SCHEMA.empty_table().to_pandas())


def journey_scope(journeys: pd.DataFrame | None, flow: str) -> pd.DataFrame:
    """The journeys of ``flow`` (``*``: every flow) that ended or never started; not those
    the test's end cut short, nor revocations."""
    if journeys is None:
        journeys = _none_kept()
    scope = journeys[(journeys["kind"] == JOURNEY) & (journeys["outcome"] != STOPPED)]
    return scope if flow == "*" else scope[scope["flow"] == flow]


def revocations(journeys: pd.DataFrame | None) -> pd.DataFrame:
    if journeys is None:
        journeys = _none_kept()
    return journeys[journeys["kind"] == REVOCATION]


def session_lost_mask(journeys: pd.DataFrame) -> pd.Series:
    return journeys["outcome"].astype(str).str.startswith(LOST_PREFIXES)


def _row(scope: pd.DataFrame) -> dict[str, Any]:
    n = len(scope)
    ok = int(scope["outcome"].isin(OK_OUTCOMES).sum())
    waited = scope["waited_ms"].fillna(0.0) if "waited_ms" in scope else pd.Series(dtype=float)
    started = scope[scope["outcome"] != DROPPED]["duration_ms"]
    return {
        "count": n,
        "ok": ok,
        "success_rate": ok / n if n else None,
        "dropped": int((scope["outcome"] == DROPPED).sum()),
        "sessions_lost": int(session_lost_mask(scope).sum()),
        "waited": int((waited > 0).sum()),
        "max_wait_ms": float(waited.max()) if len(waited) and waited.max() > 0 else None,
        **{name: _none(percentile(started, q)) for name, q in PERCENTILES.items()},
        "max": _none(float(started.max())) if len(started) else None,
    }


def journey_summary(journeys: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per flow and over all (``*``): journeys, ok, success rate (dropped arrivals count as
    failed), dropped, sessions lost, how many waited for a free place and the longest wait,
    and duration percentiles (ms) of the journeys that started."""
    scope = journey_scope(journeys, "*")
    rows = {str(flow): _row(group) for flow, group in scope.groupby("flow", sort=True)}
    rows["*"] = _row(scope)
    return rows


def revocation_summary(journeys: pd.DataFrame) -> dict[str, Any] | None:
    """The revocation times (ms) of the tokens a logout from all devices revoked; None when
    no such logout happened."""
    rows = revocations(journeys)
    if rows.empty:
        return None
    accepted = rows[rows["outcome"] != REVOKED_AT_ONCE]
    return {
        "tokens": len(rows),
        "accepted_after_revocation": len(accepted),
        "never_refused": int((rows["outcome"] == NEVER_REVOKED).sum()),
        "first_accepted_t": float(accepted["t_start"].min()) if len(accepted) else None,
        **{name: _none(percentile(rows["duration_ms"], q)) for name, q in PERCENTILES.items()},
        "max": float(rows["duration_ms"].max()),
    }


def _none(value: float) -> float | None:
    return None if value != value else value  # NaN: no data
