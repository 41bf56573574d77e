"""A comparison of two runs (``Comparison.to_dict()``) as a suite: a case per row. A row
with enough data decides (a regression fails it); a row without is skipped, saying why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authload.verdict_formats.cases import FAILED, PASSED, SKIPPED, Case, Suite
from authload.verdict_formats.units import where

REGRESSION = "regression"
INSUFFICIENT_DATA = "insufficient data"


def comparison_suite(
    comparison: Mapping[str, Any],
    name: str,
    *,
    duration_s: float = 0.0,
    timestamp: str | None = None,
    report: str | None = None,
) -> Suite:
    """The suite of a comparison: ``name`` says which runs (``base -> candidate``)."""
    confidence = float(comparison["confidence"])
    cases = [row_case(row, confidence) for row in comparison["rows"]]
    properties = {
        "verdict": str(comparison["verdict"]),
        "tolerance": f"{comparison['tolerance']:g}",
        "error_tolerance_pp": f"{comparison['error_tolerance_pp']:g}",
        "confidence": f"{confidence:g}",
    }
    return Suite(
        name=name,
        verdict=str(comparison["verdict"]),
        duration_s=duration_s,
        cases=cases,
        timestamp=timestamp,
        report=report,
        properties=properties,
    )


def row_case(row: Mapping[str, Any], confidence: float) -> Case:
    endpoint, stat, verdict = str(row["endpoint"]), str(row["stat"]), str(row["verdict"])
    common = {
        "name": f"{stat}({endpoint})",
        "group": "compare",
        "endpoint": endpoint,
        "value": f"{figure(row, 'base')} -> {figure(row, 'candidate')}",
        "threshold": tolerance(row),
    }
    if verdict == INSUFFICIENT_DATA:
        return Case(**common, outcome=SKIPPED, message=f"{verdict}: {row.get('note') or ''}")
    summary = change_text(row, confidence)
    if verdict != REGRESSION:
        return Case(**common, outcome=PASSED, detail=f"{verdict}: {summary}")
    message = (
        f"{stat} of {where(endpoint)} regressed: {summary}; find what changed on "
        f"{where(endpoint)} between the two runs (the candidate's report shows when)"
    )
    return Case(**common, outcome=FAILED, message=message, kind=REGRESSION, detail=summary)


def is_rate(row: Mapping[str, Any]) -> bool:
    return str(row["unit"]) == "pp"


def figure(row: Mapping[str, Any], side: str) -> str:
    value = row.get(side)
    if value is None:
        return "-"
    return f"{value:.2%}" if is_rate(row) else f"{value:.1f} ms"


def change(row: Mapping[str, Any], value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f} pp" if is_rate(row) else f"{value:+.1%}"


def tolerance(row: Mapping[str, Any]) -> str:
    value = float(row["tolerance"])
    return f"±{value:g} pp" if is_rate(row) else f"±{value:.1%}"


def change_text(row: Mapping[str, Any], confidence: float) -> str:
    """``+23.4% (120.3 ms -> 148.5 ms), 95% interval [+15.2%, +31.0%], tolerance ±5.0%``."""
    interval = f"[{change(row, row.get('ci_low'))}, {change(row, row.get('ci_high'))}]"
    return (
        f"{change(row, row.get('change'))} ({figure(row, 'base')} -> "
        f"{figure(row, 'candidate')}), {confidence:.0%} simultaneous interval {interval}, "
        f"tolerance {tolerance(row)}"
    )
