"""Whether the planned load was offered, stage by stage.

Closed model: the users Locust ran, as the run's watcher noted them every few seconds
(``offered`` events), once a stage has ramped up (its change of users at its spawn rate, and
:data:`SETTLE_S` more): a stage falls short when at least :data:`SUSTAINED` samples show
fewer users than planned. Open model: each stage's planned arrivals (its duration x rate,
the schedule every process shares) against those the processes accounted for (each process's
``due_by_stage`` at its end; a process that died never reports, so its journeys kept in the
records stand for what it offered): a stage falls short by more than :data:`ARRIVAL_SLACK`.
"""

from __future__ import annotations

import math

import pandas as pd

from authload.analysis.query import JourneysLike, Percentiles, Table, as_journeys
from authload.rundir.events import Event, OfferedEvent, OutcomesEvent, StageEvent, of_kind
from authload.rundir.manifest import DiedProcess
from authload.rundir.records import DROPPED, JOURNEY
from authload.scenario.model import Load
from authload.scenario.slo_grammar import EVENT_JOURNEYS

SETTLE_S = 5.0  # after a stage's ramp: Locust's master learns the workers' users with delay
SUSTAINED = 2  # samples (5 s apart) short of the plan that make a shortfall
ARRIVAL_SLACK = 0.01  # arrivals a stage may miss (timing at the very end of the load)
#: SQL: the journeys the open model's arrivals started (not the timed events' own).
_P95 = Percentiles("duration_ms", (0.95,))
ARRIVALS = f"kind = '{JOURNEY}' AND flow NOT IN ({', '.join(repr(f) for f in EVENT_JOURNEYS)})"


def shortfalls(
    load: Load, events: list[Event], journeys: JourneysLike, died: list[DiedProcess]
) -> list[str]:
    """Each stage that was not offered as planned, said for a person (times from the load's
    start)."""
    starts = {e.stage: e.t for e in of_kind(events, StageEvent)}
    if not starts:
        return ["the load never started"]
    if load.model == "closed":
        return _closed(load, events, starts)
    return _open(load, events, as_journeys(journeys), died, min(starts.values()))


def _closed(load: Load, events: list[Event], starts: dict[int, float]) -> list[str]:
    origin = min(starts.values())
    offered = of_kind(events, OfferedEvent)
    found, previous = [], 0
    for index, stage in enumerate(load.stages):
        planned = int(stage.users or 0)
        if index not in starts:
            found.append(f"stage {index} ({planned} users) never ran")
            continue
        steady = starts[index] + abs(planned - previous) / stage.spawn_rate + SETTLE_S
        short = [e for e in offered if e.stage == index and e.t >= steady and e.users < planned]
        if len(short) >= SUSTAINED:
            fewest = min(e.users for e in short)
            since = short[0].t - origin
            found.append(
                f"stage {index}: planned {planned} users, {fewest} running from {since:.0f} s"
            )
        previous = planned
    return found


def _open(
    load: Load,
    events: list[Event],
    journeys: Table,
    died: list[DiedProcess],
    origin: float,
) -> list[str]:
    reported = _reported_dues(events)
    lost = _dead_journeys(load, journeys, died, origin)
    found = []
    for index, stage in enumerate(load.stages):
        rate = stage.rate or 0.0
        planned = math.ceil(stage.duration_s * rate - 1e-9) if rate > 0 else 0
        offered = reported.get(index, 0) + lost.get(index, 0)
        if offered < planned * (1.0 - ARRIVAL_SLACK):
            found.append(f"stage {index}: planned {planned} arrivals, {offered} offered")
    return found


def _reported_dues(events: list[Event]) -> dict[int, int]:
    total: dict[int, int] = {}
    for event in of_kind(events, OutcomesEvent):
        for index, n in enumerate(event.arrivals.get("due_by_stage", [])):
            total[index] = total.get(index, 0) + int(n)
    return total


def _dead_journeys(
    load: Load, journeys: Table, died: list[DiedProcess], origin: float
) -> dict[int, int]:
    """The journeys kept of the processes that died, by the stage they were due in."""
    dead = sorted({d.worker for d in died})
    if not dead:
        return {}
    marks = ", ".join("?" for _ in dead)
    mine = journeys.frame(["t_start"], f"{ARRIVALS} AND worker IN ({marks})", dead)
    ends = pd.Series([s.duration_s for s in load.stages]).cumsum().tolist()
    counts: dict[int, int] = {}
    for t in mine["t_start"] - origin:
        index = next((i for i, end in enumerate(ends) if t < end), None)
        if index is not None:
            counts[index] = counts.get(index, 0) + 1
    return counts


def open_model_limit(
    load: Load, journeys: JourneysLike, resources: pd.DataFrame, cpu_saturated: float
) -> str | None:
    """What limited an open-model run whose arrivals waited or were dropped: the generator
    (a Locust process at ``cpu_saturated`` % CPU or more), else the service (its journeys
    took so long that ``max_in_flight`` of them were in flight: rate x duration). None when
    no arrival waited or dropped."""
    if load.model != "open":
        return None
    table = as_journeys(journeys)
    arrivals = table.row(
        f"""SELECT count(*) FILTER (WHERE coalesce(waited_ms, 0) > 0) AS waited,
            count(*) FILTER (WHERE outcome = '{DROPPED}') AS dropped
        FROM {{journeys}} WHERE {ARRIVALS}"""
    )
    waited, dropped = int(arrivals.get("waited") or 0), int(arrivals.get("dropped") or 0)
    if not waited and not dropped:
        return None
    what = f"{waited} arrivals waited for a free place and {dropped} were dropped"
    workers = resources[resources["role"] != "master"] if not resources.empty else resources
    busiest = float(workers["cpu_percent"].max()) if not workers.empty else float("nan")
    if busiest >= cpu_saturated:
        return (
            f"{what}: the generator was the limit (a Locust process at {busiest:.0f}% CPU); "
            f"add processes or workers"
        )
    slow = float(table.percentiles(_P95, ARRIVALS)[0] or 0.0) / 1000.0
    return (
        f"{what}: the service was the limit: its journeys took up to {slow:.1f} s (p95), so "
        f"max_in_flight ({load.max_in_flight} per process) filled (Locust at most "
        f"{busiest:.0f}% CPU)"
    )
