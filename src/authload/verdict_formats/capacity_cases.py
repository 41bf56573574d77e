"""A capacity search (``capacity.json``) as a suite: a case for the search's own answer
(failed when even the first step failed, or when the search was aborted), and a case per SLO
as measured at the step that decides: the capacity's step when one was found, else the
lowest level tried. Steps above the capacity fail by design and fail no case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authload.rundir.capacity import EXIT_BELOW_START, EXIT_FOUND, CapacityDocument
from authload.rundir.files import CAPACITY_LOG
from authload.verdict_formats.cases import FAILED, PASSED, Case, Suite, slo_case


def capacity_suite(data: CapacityDocument, name: str, *, report: str | None = None) -> Suite:
    step = deciding_step(data)
    cases = [search_case(data)]
    if step is not None:
        group = f"step {step['index']} at {step['level']:g} {data.unit}"
        cases += [slo_case(s, group=group) for s in step.get("slos", [])]
    level = data.capacity.level
    properties = {
        "scenario": data.scenario,
        "mode": data.mode,
        "capacity": "" if level is None else f"{level:g}",
        "unit": data.unit,
        "stop_reason": data.stop_reason,
    }
    return Suite(
        name=name,
        verdict=verdict(data),
        duration_s=data.elapsed_s,
        cases=cases,
        timestamp=data.start,
        report=report,
        properties=properties,
    )


def verdict(data: CapacityDocument) -> str:
    if data.exit_code == EXIT_FOUND:
        return "pass"
    return "fail" if data.exit_code == EXIT_BELOW_START else data.status


def deciding_step(data: CapacityDocument) -> Mapping[str, Any] | None:
    """The step at the capacity, else the lowest level that was judged."""
    judged = [s for s in data.steps if s.get("verdict") in ("pass", "fail")]
    level = data.capacity.level
    at = [s for s in judged if level is not None and s["level"] == level]
    if at:
        return at[0]
    return min(judged, key=lambda s: s["level"]) if judged else None


def search_case(data: CapacityDocument) -> Case:
    note, level = data.capacity.note, data.capacity.level
    value = "-" if level is None else f"{level:g} {data.unit}"
    common = {"name": "capacity", "group": "capacity", "value": value}
    if data.exit_code == EXIT_FOUND:
        return Case(**common, outcome=PASSED, detail=note)
    if data.exit_code == EXIT_BELOW_START:
        return Case(**common, outcome=FAILED, message=note, kind="below_start", detail=note)
    stop = data.stop_detail or data.stop_reason
    message = f"the search ended {data.status}: {stop}; {CAPACITY_LOG} says more"
    return Case(**common, outcome=FAILED, message=message, kind=data.status)
