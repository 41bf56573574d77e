"""A capacity search's document (``capacity.json``): what it was asked, every step it ran,
and its answer; rewritten after each step, so a search cut short still leaves its steps.
Read by ``authload capacity`` (its printed lines, its page), the run history and the verdict
formats. ``version`` is its schema version (it has had one since its first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from authload.rundir.files import CAPACITY_FILE
from authload.rundir.jsonfiles import read_model, write_json

SCHEMA_VERSION = 1
#: ``exit_code``: a capacity found (or the closed-model steps ran), even the first level
#: failed its SLOs, the search was aborted or a step's run failed.
EXIT_FOUND, EXIT_BELOW_START, EXIT_ERROR = 0, 1, 3

Figures = dict[str, Any]  # a step, a knee, a breach, a fit: named figures, as computed


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CapacityAnswer(_Part):
    level: float | None  # the highest level that met every SLO; None: none did
    unit: str  # "journeys/s" (open model) or "users" (closed)
    bracket: list[float | None]  # [passed, failed]: the answer lies between
    found: bool
    bounded: bool  # a level above it failed
    ok_rps: float | None
    p99_ms: float | None
    note: str  # the answer for a person


class CapacityDocument(_Part):
    kind: Literal["authload-capacity"] = "authload-capacity"
    version: int = SCHEMA_VERSION
    scenario: str
    scenario_file: str
    mode: Literal["open", "closed"]
    unit: str
    target: str
    status: str  # running, completed, aborted, error
    stop_reason: str
    stop_detail: str
    start: str  # ISO 8601, UTC
    end: str | None
    elapsed_s: float
    settings: dict[str, Any]  # the search's options, defaults filled in
    slos: list[str]
    capacity: CapacityAnswer
    knee: Figures | None
    first_breach: Figures | None
    usl: Figures | None  # closed model: the Universal Scalability Law fit, or why not
    steps: list[Figures]
    exit_code: int


def write_capacity(directory: Path, document: CapacityDocument) -> None:
    write_json(directory / CAPACITY_FILE, document.model_dump(mode="json"))


def read_capacity(directory: Path) -> CapacityDocument:
    return read_model(directory / CAPACITY_FILE, CapacityDocument)
