"""The run's summary (``summary.json``): its figures and its verdict, as the end of the run
(or ``authload report`` on a run that never finished) wrote them; read by the command line,
the report, the run history, the Pushgateway and the verdict formats.

The figures per endpoint and per flow are maps of named figures (``p99``, ``p99.9``, ...) as
:mod:`authload.analysis.stats` and :mod:`authload.analysis.journeys` compute them; the rest is
typed. Summaries written before a part existed read with that part empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from authload.rundir.files import SUMMARY_FILE
from authload.rundir.jsonfiles import read_model, write_json
from authload.rundir.manifest import Status

SCHEMA_VERSION = 1

Verdict = Literal["pass", "fail", "invalid", "aborted", "error", "incomplete"]
#: What a figure map holds: numbers (None when there was nothing to measure) and, for an
#: endpoint, its errors and statuses counted by kind.
Figures = dict[str, Any]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SloOutcome(_Part):
    slo: str
    value: float | None  # measured, in the SLO's unit; None: no data
    threshold: float
    passed: bool
    count: int  # records it was computed from


class GateOutcome(_Part):
    gate: str
    severity: str  # fail or invalid
    enabled: bool
    passed: bool
    value: float | None  # what was counted
    threshold: str  # what passes
    evidence: str  # for a person: what, where, how many, first when


class Reconciled(_Part):
    """One endpoint's request count as the records, Locust and the mock saw it."""

    records: int
    locust: int | None
    answered: int  # records that got an HTTP status
    mock: int | None = None  # on a mock: the requests it answered
    match: bool


class ReconciledCounts(_Part):
    endpoints: dict[str, Reconciled] = Field(default_factory=dict)
    match: bool = True


class Summary(_Part):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    scenario: str
    status: Status
    verdict: Verdict
    duration_s: float
    requests: int
    endpoints: dict[str, Figures] = Field(default_factory=dict)  # and "*": all of them
    journeys: dict[str, Figures] = Field(default_factory=dict)  # per flow, and "*"
    revocation: Figures | None = None  # tokens a logout from all devices revoked
    slos: list[SloOutcome] = Field(default_factory=list)
    gates: list[GateOutcome] = Field(default_factory=list)
    outcomes: dict[str, int] = Field(default_factory=dict)  # journey outcomes, all processes
    reconciliation: ReconciledCounts = Field(default_factory=ReconciledCounts)
    mock_sessions_evicted: dict[str, int] | None = None  # per API; None: not a mock
    mock_families_revoked: int | None = None
    open_model_limit: str | None = None  # what limited an open-model run, for a person
    limits: dict[str, Any] | None = None  # what the run used of its target's limits
    drift: dict[str, Any] | None = None  # runs of 60 s or more (authload.analysis.drift)


def write_summary(run_dir: Path, summary: Summary) -> None:
    write_json(run_dir / SUMMARY_FILE, summary.model_dump(mode="json"))


def read_summary(run_dir: Path) -> Summary:
    """The run's summary; a :class:`ResultsError` that names the file and the field when it
    is missing or not a summary."""
    return read_model(run_dir / SUMMARY_FILE, Summary)
