"""A capacity search (``capacity.json``) as a suite: a case for the search's own answer
(failed when even the first step failed, or when the search was aborted), and a case per SLO
as measured at the step that decides: the capacity's step when one was found, else the
lowest level tried. Steps above the capacity fail by design and fail no case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authload.rundir.files import CAPACITY_LOG
from authload.verdict_formats.cases import FAILED, PASSED, Case, Suite, slo_case

EXIT_FOUND, EXIT_BELOW_START = 0, 1


def capacity_suite(data: Mapping[str, Any], name: str, *, report: str | None = None) -> Suite:
    step = deciding_step(data)
    cases = [search_case(data)]
    if step is not None:
        group = f"step {step['index']} at {step['level']:g} {data['unit']}"
        cases += [slo_case(s, group=group) for s in step.get("slos", [])]
    capacity = data["capacity"]
    properties = {
        "scenario": str(data.get("scenario", "")),
        "mode": str(data.get("mode", "")),
        "capacity": "" if capacity.get("level") is None else f"{capacity['level']:g}",
        "unit": str(data.get("unit", "")),
        "stop_reason": str(data.get("stop_reason", "")),
    }
    return Suite(
        name=name,
        verdict=verdict(data),
        duration_s=float(data.get("elapsed_s") or 0.0),
        cases=cases,
        timestamp=data.get("start"),
        report=report,
        properties=properties,
    )


def verdict(data: Mapping[str, Any]) -> str:
    code = int(data.get("exit_code", 3))
    if code == EXIT_FOUND:
        return "pass"
    return "fail" if code == EXIT_BELOW_START else str(data.get("status", "error"))


def deciding_step(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The step at the capacity, else the lowest level that was judged."""
    steps: list[Mapping[str, Any]] = data.get("steps", [])
    judged = [s for s in steps if s.get("verdict") in ("pass", "fail")]
    level = data["capacity"].get("level")
    at = [s for s in judged if level is not None and s["level"] == level]
    if at:
        return at[0]
    return min(judged, key=lambda s: s["level"]) if judged else None


def search_case(data: Mapping[str, Any]) -> Case:
    capacity = data["capacity"]
    note = str(capacity.get("note", ""))
    value = "-" if capacity.get("level") is None else f"{capacity['level']:g} {data['unit']}"
    common = {"name": "capacity", "group": "capacity", "value": value}
    code = int(data.get("exit_code", 3))
    if code == EXIT_FOUND:
        return Case(**common, outcome=PASSED, detail=note)
    if code == EXIT_BELOW_START:
        return Case(**common, outcome=FAILED, message=note, kind="below_start", detail=note)
    stop = str(data.get("stop_detail") or data.get("stop_reason") or "")
    message = f"the search ended {data.get('status')}: {stop}; {CAPACITY_LOG} says more"
    return Case(**common, outcome=FAILED, message=message, kind=str(data.get("status")))
