"""A verdict as test cases, the one model behind the JUnit XML and the Markdown summary.

:func:`run_suite` turns a run's ``summary.json`` into a :class:`Suite`: a case per SLO, one per
default gate (``summary["gates"]``, when the summary has them; a disabled gate is skipped), and
one for the run itself when it did not finish (aborted, error) or when its verdict is not
``pass`` though no case failed, so that the suite fails exactly when the verdict is not a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from authload.rundir.summary import Summary
from authload.verdict_formats.units import bound, figure, spec_of, unit_of, where

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
#: verdicts of a run that did not finish, and what a person is told
UNFINISHED = {
    "aborted": "the run was aborted (status {status}): the abort rule or a Ctrl-C stopped "
    "it; events.jsonl in the run directory says why",
    "error": "the run ended in an error (status {status}): no requests, or authload or the "
    "target failed; events.jsonl and the run's output say what",
    "incomplete": "the run never finished (its runner was killed); `authload report` "
    "summarized what it left, its figures stop there",
}


@dataclass(frozen=True)
class Case:
    """One judged thing. ``value`` and ``threshold`` are as a person reads them (``912.4
    ms``, ``< 800 ms``); ``message`` says why it failed or was skipped and what to look at;
    ``kind`` names the failure (``slo``, ``gate``, ``invalid``, ``aborted``, ``regression``)."""

    name: str
    group: str
    outcome: str
    endpoint: str | None = None
    value: str = "-"
    threshold: str = "-"
    message: str = ""
    kind: str = ""
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED


@dataclass(frozen=True)
class Suite:
    """A run (or a comparison, or a capacity search) and its cases. ``report`` is the path
    of the page that shows it (``report.html``), ``timestamp`` when it started (ISO 8601)."""

    name: str
    verdict: str
    duration_s: float
    cases: list[Case]
    timestamp: str | None = None
    report: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(c.failed for c in self.cases)

    @property
    def skipped(self) -> int:
        return sum(c.outcome == SKIPPED for c in self.cases)


def run_suite(
    summary: Summary,
    name: str,
    *,
    report: str | None = None,
    timestamp: str | None = None,
) -> Suite:
    """The suite of one run from its ``summary.json``."""
    verdict = summary.verdict
    cases = [slo_case(s.model_dump()) for s in summary.slos]
    cases += [gate_case(g.model_dump()) for g in summary.gates]
    status = status_case(summary, cases)
    properties = {
        "scenario": summary.scenario,
        "verdict": verdict,
        "status": summary.status,
        "requests": str(summary.requests),
    }
    if report is not None:
        properties["report"] = report
    return Suite(
        name=name,
        verdict=verdict,
        duration_s=summary.duration_s,
        cases=cases if status is None else [status, *cases],
        timestamp=timestamp,
        report=report,
        properties=properties,
    )


def slo_case(slo: Mapping[str, Any], group: str = "slo") -> Case:
    """A case of one SLO result: ``{"slo", "value", "threshold", "passed", "count"}``
    (``endpoint`` too on a capacity step: the one that did worst on an SLO over ``*``)."""
    text = str(slo["slo"])
    spec = spec_of(text)
    endpoint = slo.get("endpoint") or (spec.endpoint if spec else None)
    value = _number(slo.get("value"))
    count = int(slo.get("count") or 0)
    passed = bool(slo.get("passed"))
    return Case(
        name=text,
        group=group,
        outcome=PASSED if passed else FAILED,
        endpoint=endpoint,
        value=figure(value, unit_of(spec)),
        threshold=bound(spec, _number(slo.get("threshold"))),
        message="" if passed else slo_message(text, endpoint, value, count),
        kind="" if passed else "slo",
        detail=f"{count} attempts",
    )


def slo_message(text: str, endpoint: str | None, value: float | None, count: int) -> str:
    """What a failed SLO means and where to look."""
    spec = spec_of(text)
    place = where(endpoint)
    if value is None:
        return (
            f"{text}: no data, {place} had no attempts in the measured window, so the SLO "
            f"cannot pass; check that the scenario's mix exercises {place}"
        )
    measured = figure(value, unit_of(spec))
    allowed = bound(spec, spec.threshold if spec else None)
    if spec is not None and spec.stat == "error_rate":
        kinds = f" ({spec.filter})" if spec.filter else ""
        return (
            f"{text}: {measured} of {count} attempts on {place} failed{kinds}, the SLO allows "
            f"{allowed}; the report's errors table shows which statuses and errors"
        )
    if spec is not None and spec.stat == "rate":
        return (
            f"{text}: {place} served {measured}, the SLO wants {allowed}; the load did not "
            f"reach it (dropped arrivals, slow answers, too few users)"
        )
    stat = spec.stat if spec is not None else "the statistic"
    return (
        f"{text}: {stat} latency of {place} was {measured} over {count} attempts, the SLO "
        f"allows {allowed}; the report shows {place}'s latency over time next to faults, "
        f"retries and errors"
    )


def gate_case(gate: Mapping[str, Any]) -> Case:
    """A case of one default gate: ``{"gate", "passed", "severity", "value", "threshold",
    "evidence", "enabled"}``."""
    name = str(gate.get("gate", "gate"))
    evidence = str(gate.get("evidence") or "")
    value = "-" if gate.get("value") is None else f"{gate['value']:g}"
    threshold = "-" if gate.get("threshold") is None else str(gate["threshold"])
    common = {"name": name, "group": "gate", "value": value, "threshold": threshold}
    if not gate.get("enabled", True):
        return Case(**common, outcome=SKIPPED, message=f"{name}: disabled for this run")
    if gate.get("passed"):
        return Case(**common, outcome=PASSED, detail=evidence)
    invalid = gate.get("severity") == "invalid"
    message = (
        f"{name}: the run is invalid, its figures cannot be trusted: {evidence}"
        if invalid
        else f"{name}: {evidence}"
    )
    if threshold != "-":
        message += f" (measured {value}, allowed {threshold})"
    return Case(
        **common,
        outcome=FAILED,
        message=message,
        kind="invalid" if invalid else "gate",
        detail=evidence,
    )


def status_case(summary: Summary, cases: Sequence[Case]) -> Case | None:
    """The run's own case: when it did not finish, or when its verdict is not a pass and no
    other case says why."""
    verdict, status = summary.verdict, summary.status
    unfinished = verdict in UNFINISHED
    if verdict == "pass" or (not unfinished and any(c.failed for c in cases)):
        return None
    message = UNFINISHED.get(verdict, "verdict {verdict} (status {status}): see summary.json")
    return Case(
        name="run",
        group="run",
        outcome=FAILED,
        value=verdict,
        message=message.format(verdict=verdict, status=status),
        kind=verdict,
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
