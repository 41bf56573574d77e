"""authload's own counts of the run so far, where the run's watcher is: journey outcomes and
open-model arrivals, per process, gathered on the master.

A worker adds its cumulative counts to each report it sends its master (Locust's
``report_to_master`` event, every few seconds, and once more when it stops); the master keeps
each worker's latest (``worker_report``). A process alone reads its own runtime. The
progress line and the live verdict read :func:`totals`. No Locust or gevent import here: the
master's run state (:mod:`authload.load.run_state`) reads it outside Locust's processes too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from locust.env import Environment

    from authload.load.runtime import Runtime

KEY = "authload"
_BY_WORKER: dict[str, dict[str, Any]] = {}  # on the master: each worker's latest counts
_OWN: dict[str, Runtime] = {}  # a process alone: its runtime


@dataclass
class ArrivalCounts:
    """One process's open-model arrivals so far (:mod:`authload.load.arrivals` counts them)."""

    due: int = 0
    due_by_stage: list[int] = field(default_factory=list)  # arrivals due, per stage
    started: int = 0
    waited: int = 0  # started after waiting for a free place
    dropped: int = 0
    waiting: int = 0  # now
    in_flight: int = 0  # now


@dataclass
class LiveCounts:
    outcomes: Counter[str] = field(default_factory=Counter)
    arrivals: ArrivalCounts = field(default_factory=ArrivalCounts)


def snapshot(rt: Runtime) -> dict[str, Any]:
    return {"outcomes": dict(rt.state.outcomes), "arrivals": asdict(rt.arrivals.counts)}


def report_from(environment: Environment, rt: Runtime) -> None:
    """This process's counts: added to its reports when it is a worker, read directly else."""
    _OWN["current"] = rt

    def on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data[KEY] = snapshot(rt)

    environment.events.report_to_master.add_listener(on_report)


def gather_on(environment: Environment) -> None:
    """On the master: keep each worker's latest counts."""

    def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
        if KEY in data:
            _BY_WORKER[client_id] = data[KEY]

    environment.events.worker_report.add_listener(on_worker_report)


def totals() -> LiveCounts:
    """The counts over every process so far."""
    sources = list(_BY_WORKER.values())
    if "current" in _OWN:
        sources.append(snapshot(_OWN["current"]))
    total = LiveCounts()
    for source in sources:
        total.outcomes.update(source["outcomes"])
        for name, value in source["arrivals"].items():
            if isinstance(value, int):
                setattr(total.arrivals, name, getattr(total.arrivals, name) + value)
    return total
