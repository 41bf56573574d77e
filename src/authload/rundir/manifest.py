"""The run's manifest (``manifest.json``): what ran, where, with which versions, how it ended,
and which of its processes died. Written when the run starts (``status: running``) and again
when it ends; read by the report, the run history, comparisons and salvage.

``schema_version`` says which shape a manifest has; run directories written before it existed
have this same shape and read as version 1.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from authload.rundir.events import WorkerInfo
from authload.rundir.files import MANIFEST_FILE
from authload.rundir.jsonfiles import read_model, write_json

SCHEMA_VERSION = 1

Status = Literal["running", "completed", "aborted", "error", "incomplete"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Runner(_Part):
    """The `authload run` process: salvage tells a dead run from a live one by it."""

    host: str
    pid: int


class Distributed(_Part):
    expect_workers: int
    master_bind_host: str
    master_port: int
    workers_timeout_s: int


class DiedProcess(_Part):
    """A Locust process whose record spool was never closed."""

    worker: str
    last_record_t: float | None = None  # unix s; None: it recorded nothing
    last_record: str | None = None  # ISO time of the same
    missing_at: str | None = None  # when Locust's master stopped hearing from it, if it did


class UiRecord(_Part):
    """A run driven from Locust's web UI."""

    url: str
    started_by_user: bool
    manual_control: list[dict[str, Any]] = Field(default_factory=list)


class Manifest(_Part):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    scenario: dict[str, Any]  # the scenario as it ran (its model's JSON)
    target: str
    versions: dict[str, str | None]
    git_revision: str | None = None
    start: str  # ISO 8601, UTC
    end: str | None = None
    status: Status = "running"
    seed: int | None = None
    processes: int  # Locust processes that ran users
    runner: Runner | None = None  # None: written before manifests named their runner
    launched_by: str | None = None  # plain `locust -f`, not `authload run`
    distributed: Distributed | None = None
    locust_exit: int | None = None
    records: int | None = None  # request records merged
    torn_spools: list[str] = Field(default_factory=list)
    died: list[DiedProcess] = Field(default_factory=list)
    workers: list[WorkerInfo] = Field(default_factory=list)
    error: str | None = None  # what stopped a run that ended in error
    ui: UiRecord | None = None

    @property
    def scenario_name(self) -> str | None:
        name = self.scenario.get("name")
        return None if name is None else str(name)

    def scenario_field(self, section: str, key: str) -> Any:
        """``scenario[section][key]``, None when either is missing."""
        part = self.scenario.get(section)
        return part.get(key) if isinstance(part, dict) else None

    def started_at(self) -> datetime | None:
        return _time(self.start)

    def ended_at(self) -> datetime | None:
        return _time(self.end)


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    write_json(run_dir / MANIFEST_FILE, manifest.model_dump(mode="json", exclude_none=True))


def read_manifest(run_dir: Path) -> Manifest:
    """The run's manifest; a :class:`ResultsError` that names the file and the field when it
    is missing or not a manifest."""
    return read_model(run_dir / MANIFEST_FILE, Manifest)


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
