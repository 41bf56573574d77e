"""Open-model arrivals of one Locust process: each due arrival starts its journey at once when
fewer than ``max_in_flight`` journeys are in flight; otherwise, by ``load.when_full``, it
waits for a free place (``queue``, at most ``max_queue`` waiting, as wrk2 does) or is
dropped (``drop``). Either way nothing unsent is hidden: a journey is timed from its
arrival's due time, so the wait counts in its duration, and an arrival that never starts
(dropped, or still waiting when the test stops) is kept as a failed journey (``dropped``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
from gevent.lock import BoundedSemaphore
from gevent.pool import Group

from authload.load.flows import SharedState
from authload.load.live_counts import ArrivalCounts
from authload.rundir.records import DROPPED
from authload.scenario.model import Load

DROPPED_OUTCOME = "dropped_arrivals"  # the outcomes counter's key, as before journeys


class Arrivals:
    """Starts arrivals as they fall due (see the module docstring)."""

    def __init__(self, load: Load, state: SharedState) -> None:
        self.queue = load.when_full == "queue"
        self.max_queue = load.max_queue
        self.places = BoundedSemaphore(load.max_in_flight)
        self.state = state
        self.counts = ArrivalCounts()
        self.group = Group()
        self.stopped = False
        self.claimed = False

    def claim(self) -> bool:
        """The first dispatcher of this process claims its share of the schedule; another
        (Locust moving a lost process's user here) gets none: a share is sent once."""
        if self.claimed:
            return False
        self.claimed = True
        return True

    def arrive(
        self, due: float, stage: int, flow: str, run: Callable[[float, bool], object]
    ) -> None:
        """Arrival ``due`` (of stage ``stage``) of ``flow``: ``run(due, queued)`` runs its
        journey (``queued``: it waited for a free place)."""
        self.counts.due += 1
        by_stage = self.counts.due_by_stage
        by_stage.extend([0] * (stage + 1 - len(by_stage)))
        by_stage[stage] += 1
        if self.stopped:
            self._drop(due, flow)
        elif self.places.acquire(blocking=False):
            self.group.spawn(self._run, due, run, False)
        elif self.queue and self.counts.waiting < self.max_queue:
            self.counts.waiting += 1
            self.group.spawn(self._wait, due, flow, run)
        else:
            self._drop(due, flow)

    def stop(self) -> None:
        """The test is stopping: arrivals still waiting never start (each kept as dropped)."""
        self.stopped = True

    def join(self) -> None:
        self.group.join()

    def _wait(self, due: float, flow: str, run: Callable[[float, bool], object]) -> None:
        try:
            while not self.places.acquire(timeout=0.5):
                if self.stopped:
                    self._drop(due, flow)
                    return
        finally:
            self.counts.waiting -= 1
        if self.stopped:
            self.places.release()
            self._drop(due, flow)
            return
        self.counts.waited += 1
        self._run(due, run, True)

    def _run(self, due: float, run: Callable[[float, bool], object], queued: bool) -> None:
        self.counts.started += 1
        self.counts.in_flight += 1
        try:
            run(due, queued)
        finally:
            self.counts.in_flight -= 1
            self.places.release()

    def _drop(self, due: float, flow: str) -> None:
        self.counts.dropped += 1
        self.state.outcomes[DROPPED_OUTCOME] += 1
        if self.state.journal is not None:
            self.state.journal.add(due, time.time(), flow, DROPPED)


def sleep_until(due: float) -> None:
    gevent.sleep(max(0.0, due - time.time()))
