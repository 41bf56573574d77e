"""The run's events (``events.jsonl``): what happened besides requests, one JSON line each,
appended by every process of the run, and read back as typed models.

Each kind of event is one model below, told apart by its ``kind`` (:class:`EventKind`); the
lines on disk are the models' JSON, so a run directory reads as it always did.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from authload.errors import ResultsError
from authload.rundir.files import EVENTS_FILE
from authload.scenario.model import Stage


class EventKind(StrEnum):
    STAGE = "stage"  # the load entered a stage of the scenario
    OFFERED = "offered"  # closed model: users running against the stage's plan
    ABORT = "abort"  # the run was stopped early, and why
    RUN_ERROR = "run_error"  # the runner failed
    LOCUST = "locust"  # Locust's main process started (host, pid)
    WORKER_CONNECTED = "worker_connected"  # a remote worker reached the master
    WORKER_JOINED = "worker_joined"  # ... after the test started
    WORKERS = "workers"  # the workers the master gave the run to at the start
    WORKER_MISSING = "worker_missing"  # the master stopped hearing from a worker
    GENERATOR = "generator"  # a process's garbage-collection settings at the start
    OUTCOMES = "outcomes"  # a process's journey outcomes and arrivals at the end
    LIMITS = "limits"  # what a process used of the target's run-time limits
    MANUAL_CONTROL = "manual_control"  # users changed from Locust's web UI
    REFRESH_STORM_START = "refresh_storm_start"
    REFRESH_STORM_END = "refresh_storm_end"
    MASS_LOGOUT = "mass_logout"
    FAULT_START = "fault_start"  # the mock's fault windows, as it logged them
    FAULT_END = "fault_end"


KINDS = tuple(k.value for k in EventKind)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    t: float = Field(default_factory=time.time)  # unix seconds


class StageEvent(_Event, Stage):
    """The stage's plan as the scenario has it, and its index."""

    kind: Literal[EventKind.STAGE] = EventKind.STAGE
    stage: int


class OfferedEvent(_Event):
    kind: Literal[EventKind.OFFERED] = EventKind.OFFERED
    stage: int
    users: int
    planned_users: int | None


class AbortEvent(_Event):
    kind: Literal[EventKind.ABORT] = EventKind.ABORT
    reason: str
    worker: str | None = None  # a remote worker that could not take part


class RunErrorEvent(_Event):
    kind: Literal[EventKind.RUN_ERROR] = EventKind.RUN_ERROR
    error: str


class LocustEvent(_Event):
    kind: Literal[EventKind.LOCUST] = EventKind.LOCUST
    host: str
    pid: int


class WorkerInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    worker: str  # its index name, w0, w1, ...
    host: str | None = None
    client_id: str | None = None  # Locust's


class WorkerConnectedEvent(_Event, WorkerInfo):
    kind: Literal[EventKind.WORKER_CONNECTED] = EventKind.WORKER_CONNECTED


class WorkerJoinedEvent(_Event, WorkerInfo):
    kind: Literal[EventKind.WORKER_JOINED] = EventKind.WORKER_JOINED


class WorkersEvent(_Event):
    kind: Literal[EventKind.WORKERS] = EventKind.WORKERS
    workers: list[WorkerInfo]


class WorkerMissingEvent(_Event):
    kind: Literal[EventKind.WORKER_MISSING] = EventKind.WORKER_MISSING
    worker: str


class GeneratorEvent(_Event):
    kind: Literal[EventKind.GENERATOR] = EventKind.GENERATOR
    worker: str
    gc: str
    gc_threshold: list[int]
    gc_frozen: int


class OutcomesEvent(_Event):
    kind: Literal[EventKind.OUTCOMES] = EventKind.OUTCOMES
    worker: str
    counts: dict[str, int]  # journey outcome -> journeys (``flow:outcome``)
    # open model: :class:`authload.load.live_counts.ArrivalCounts`
    arrivals: dict[str, Any] = Field(default_factory=dict)


class LimitsEvent(_Event):
    kind: Literal[EventKind.LIMITS] = EventKind.LIMITS
    worker: str
    index: int
    processes: int
    send_password_budget: dict[str, Any] | None = None
    max_request_rate: dict[str, Any] | None = None


class ManualControlEvent(_Event):
    kind: Literal[EventKind.MANUAL_CONTROL] = EventKind.MANUAL_CONTROL
    elapsed_s: float
    users: int
    spawn_rate: float
    stage: int | None


class RefreshStormStartEvent(_Event):
    kind: Literal[EventKind.REFRESH_STORM_START] = EventKind.REFRESH_STORM_START
    worker: str
    at_s: float
    sessions: int
    wanted: int
    window_s: float


class RefreshStormEndEvent(_Event):
    kind: Literal[EventKind.REFRESH_STORM_END] = EventKind.REFRESH_STORM_END
    worker: str
    at_s: float
    sessions: int


class MassLogoutEvent(_Event):
    kind: Literal[EventKind.MASS_LOGOUT] = EventKind.MASS_LOGOUT
    worker: str
    at_s: float
    counterparties: int
    live: int


class FaultWindow(BaseModel):
    """One entry of the mock's fault history (``GET /_mock/faults``, ``mock_faults.json``): a
    fault window that started or ended."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # the mock adds t_s

    t: float
    event: Literal["start", "end"]
    fault: str
    kind: str  # the fault's kind: error, latency, ...
    endpoints: list[str] = Field(default_factory=lambda: ["*"])
    name: str = ""


class _FaultEvent(_Event):
    fault: str
    fault_kind: str
    endpoints: list[str]
    name: str

    def window(self) -> FaultWindow:
        event: Literal["start", "end"] = "start" if isinstance(self, FaultStartEvent) else "end"
        return FaultWindow(
            t=self.t,
            event=event,
            fault=self.fault,
            kind=self.fault_kind,
            endpoints=self.endpoints,
            name=self.name,
        )


class FaultStartEvent(_FaultEvent):
    kind: Literal[EventKind.FAULT_START] = EventKind.FAULT_START


class FaultEndEvent(_FaultEvent):
    kind: Literal[EventKind.FAULT_END] = EventKind.FAULT_END


Event = Annotated[
    StageEvent
    | OfferedEvent
    | AbortEvent
    | RunErrorEvent
    | LocustEvent
    | WorkerConnectedEvent
    | WorkerJoinedEvent
    | WorkersEvent
    | WorkerMissingEvent
    | GeneratorEvent
    | OutcomesEvent
    | LimitsEvent
    | ManualControlEvent
    | RefreshStormStartEvent
    | RefreshStormEndEvent
    | MassLogoutEvent
    | FaultStartEvent
    | FaultEndEvent,
    Field(discriminator="kind"),
]
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
EventT = TypeVar("EventT", bound=_Event)


def fault_event(window: FaultWindow) -> FaultStartEvent | FaultEndEvent:
    """One entry of the mock's fault history as the run's event (:meth:`_FaultEvent.window`
    gives it back)."""
    kind = FaultStartEvent if window.event == "start" else FaultEndEvent
    return kind(
        t=window.t,
        fault=window.fault,
        fault_kind=window.kind,
        endpoints=window.endpoints,
        name=window.name,
    )


def append_event(run_dir: Path, event: _Event) -> None:
    """Append one event as a JSON line to ``events.jsonl`` (one write, line-buffered)."""
    data = event.model_dump(mode="json")
    line = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    with (run_dir / EVENTS_FILE).open("a", encoding="utf-8", buffering=1) as f:
        f.write(line + "\n")


def of_kind(events: list[Event], kind: type[EventT]) -> list[EventT]:
    """The events of one kind, in order."""
    return [e for e in events if isinstance(e, kind)]


def read_events(run_dir: Path) -> list[Event]:
    """The events of a run, in order; none if the file is missing.

    A last line without its newline (the writer was killed mid-line) is ignored if it does
    not parse; any other bad line is a :class:`ResultsError`.
    """
    path = run_dir / EVENTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable: {exc}") from exc
    lines = text.split("\n")
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            if number == len(lines):  # torn last line: no newline after it
                break
            raise ResultsError(f"{path}:{number}: not a JSON line: {exc}") from exc
        events.append(_event(data, f"{path}:{number}"))
    return events


def _event(data: Any, where: str) -> Event:
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: an event must be a JSON object")
    if data.get("kind") not in KINDS:
        raise ResultsError(
            f"{where}: unknown event kind {data.get('kind')!r}; kinds: {', '.join(KINDS)}"
        )
    try:
        return _EVENT.validate_python(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"][1:])  # after the kind's tag
        raise ResultsError(f"{where}: {data['kind']} event: {field}: {problem['msg']}") from None
