"""Locust user classes: one per journey (closed model) and the open-model dispatcher."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

from locust import User, constant, task

from authload.load.arrivals import sleep_until
from authload.load.flows import run_journey
from authload.load.runtime import Runtime
from authload.load.shapes import arrival_times, stage_at
from authload.scenario.distributions import sample_ms

RUNTIME: dict[str, Runtime] = {}  # "current": the process's runtime, set on Locust's init
# (a remote worker: when its master's run configuration arrives, before its users spawn)


def runtime() -> Runtime:
    try:
        return RUNTIME["current"]
    except KeyError:
        raise RuntimeError(
            "no authload runtime in this process: its run never reached it"
        ) from None


class JourneyUser(User):
    """Closed model: a person doing one journey after another, with think time between.
    Its requests go out on its own connection to each API (:mod:`authload.load.wire`)."""

    abstract = True
    flow: ClassVar[str] = ""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.api = runtime().client()

    def stop(self, force: bool = False) -> bool:
        """Locust stops this user (fewer users in the next stage, or the test's end): noted,
        so that after the stop's grace its journey starts no request and none is in flight
        when Locust's stop timeout runs out (see :class:`~authload.load.clients.StopGate`)."""
        self.api.user_stop.begin()
        stopped: bool = super().stop(force)
        return stopped

    def wait_time(self) -> float:
        rt = runtime()
        return sample_ms(rt.scenario.think_time, rt.rng) / 1000.0

    @task
    def journey(self) -> None:
        rt = runtime()
        run_journey(self.flow, rt.journey(self.api, self.flow))


def journey_users(mix: Mapping[Any, float]) -> list[type[JourneyUser]]:
    """A user class per flow of the mix, weighted as the scenario says."""
    classes = []
    for flow, weight in mix.items():
        if weight > 0:
            name = "".join(p.title() for p in flow.split("_")) + "User"
            classes.append(
                type(name, (JourneyUser,), {"flow": flow, "weight": weight, "abstract": False})
            )
    return classes


class ArrivalUser(User):
    """Open model: starts journeys on the arrival schedule whatever the latency.

    One per process; it takes this process's share of the scenario's arrivals (every
    ``processes``-th, from its index on) and hands each to the process's
    :class:`~authload.load.arrivals.Arrivals`, which starts it, queues it or drops it (never
    hidden: see there). Every journey carries its intended start time into the records.
    """

    abstract = True
    wait_time = constant(1.0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        rt = runtime()  # its connections serve every journey in flight at once
        self.api = rt.client(connections=rt.scenario.load.max_in_flight)

    @task
    def dispatch(self) -> None:
        rt = runtime()
        if not rt.arrivals.claim():  # Locust rebalanced a lost process's dispatcher here: this
            while True:  # process's share is already being sent; the lost one's is reported
                self.wait()  # as a shortfall (load_offered), never sent twice
        flows = [f for f, w in rt.scenario.mix.items() if w > 0]
        weights = [rt.scenario.mix[f] for f in flows]
        index, processes = rt.share()
        # the schedule counts from the test's start, as the shape that ends it does, not from
        # this dispatcher's (later) start: its last arrivals are due before the load ends
        arrivals, load, start = rt.arrivals, rt.scenario.load, rt.test_started or time.time()
        for due in arrival_times(load, start, processes, index):
            sleep_until(due)
            if _past_the_stop(rt, due):
                break
            flow = rt.rng.choices(flows, weights=weights)[0]
            stage = stage_at(load, due - start)
            arrivals.arrive(due, stage or 0, flow, partial(self._journey, rt, flow))
        arrivals.join()
        while True:  # the schedule is done: wait, stoppable at once, for the shape to end
            self.wait()

    def _journey(self, rt: Runtime, flow: str, due: float, queued: bool) -> None:
        run_journey(flow, rt.journey(self.api, flow, t_intended=due, queued=queued))


STOP_DUE_S = 1.0  # arrivals due this long after the test began to stop are still sent


def _past_the_stop(rt: Runtime, due: float) -> bool:
    """Whether the test began to stop before this arrival was due (an abort, a Ctrl-C): no
    more arrivals then. At the load's natural end the shape stops the test within a moment
    of the last arrival's due time (its clock starts a little before this process's), so
    those due within :data:`STOP_DUE_S` of the stop are still sent: the planned arrivals,
    all of them."""
    since = rt.gate.stopping_since
    return since is not None and due > since + STOP_DUE_S
