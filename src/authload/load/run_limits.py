"""A shared target's run-time limits, each Locust process enforcing its share of them.

- ``send_password_budget``: every attempt of ``gigma.send_password`` (retries included) is a
  real phone call on a stand, so each takes one unit of the process's share; once the share
  is spent the call fails locally (:class:`LimitRefused`), nothing is sent.
- ``max_request_rate``: a ceiling on attempts per second of every endpoint; the process's share
  is paced by a token bucket in front of each attempt. An attempt waits for its turn (nothing
  goes faster, nothing is dropped); the waits are counted.

Shares of N processes: the budget ``budget // N``, the remainder to the lowest indexes; the
rate ``rate / N``. A process beyond the N the run expected (a late joiner) gets no share.
Runs under gevent: greenlets switch only while waiting, never inside these methods, and
waiting goes through ``time.sleep`` (which gevent patches).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from authload.load.config import RunLimits
from authload.rundir.events import Event, LimitsEvent, of_kind

SEND_PASSWORD = "gigma.send_password"
BUDGET_SPENT = "send_password_budget_spent"
NO_RATE_SHARE = "request_rate_share_none"


class LimitRefused(Exception):
    """An attempt refused locally by the target's limits; nothing was sent. ``outcome``
    names why (the journey ends with it)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def budget_share(budget: int, index: int, processes: int) -> int:
    """Process ``index``'s share of ``budget`` over ``processes``."""
    if index >= processes:
        return 0
    base, extra = divmod(budget, processes)
    return base + (1 if index < extra else 0)


def rate_share(rate: float, index: int, processes: int) -> float:
    return rate / processes if index < processes else 0.0


class SendBudget:
    """This process's share of the send_password budget."""

    def __init__(self, share: int) -> None:
        self.share = share
        self.used = 0
        self.refused = 0
        self.spent_at: float | None = None  # unix time the share ran out

    def check(self) -> None:
        if self.used >= self.share:
            self.refused += 1
            raise LimitRefused(BUDGET_SPENT)

    def take(self) -> None:
        self.check()
        self.used += 1
        if self.used == self.share:
            self.spent_at = time.time()


class RateCeiling:
    """A token bucket of capacity one that starts empty, filled at ``rate_per_s``: attempts
    go out at least ``1 / rate_per_s`` apart, in the order they asked, so over any time from
    its first use no more than rate x time are sent. Each caller reserves the next free slot
    and sleeps until it is due."""

    def __init__(
        self,
        rate_per_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate_per_s = rate_per_s
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self.waited = 0
        self.longest_wait_s = 0.0
        self.total_wait_s = 0.0

    def wait(self) -> None:
        if self.rate_per_s <= 0:
            raise LimitRefused(NO_RATE_SHARE)
        now = self._clock()
        due = now + self._interval if self._next is None else max(now, self._next)
        self._next = due + self._interval
        delay = due - now
        if delay > 0:
            self.waited += 1
            self.total_wait_s += delay
            self.longest_wait_s = max(self.longest_wait_s, delay)
            self._sleep(delay)


class RequestLimits:
    """One process's share of a target's run-time limits, used by every client of the
    process before each attempt."""

    def __init__(self, limits: RunLimits, index: int = 0, processes: int = 1) -> None:
        self.limits = limits
        self.budget: SendBudget | None = None
        self.ceiling: RateCeiling | None = None
        self.divide(index, processes)

    def divide(self, index: int, processes: int) -> None:
        """Take process ``index``'s share (known once the test starts)."""
        self.index, self.processes = index, processes
        budget, rate = self.limits.send_password_budget, self.limits.max_request_rate
        if budget is not None:
            self.budget = SendBudget(budget_share(budget, index, processes))
        if rate is not None:
            self.ceiling = RateCeiling(rate_share(rate, index, processes))

    def pace(self, name: str) -> None:
        """Before an attempt: refuse a send_password over budget, wait for the ceiling."""
        if self.budget is not None and name == SEND_PASSWORD:
            self.budget.check()
        if self.ceiling is not None:
            self.ceiling.wait()

    def spend(self, name: str) -> None:
        """Right before the attempt is sent (no wait in between): take its unit."""
        if self.budget is not None and name == SEND_PASSWORD:
            self.budget.take()

    def report(self) -> dict[str, Any]:
        """What this process used of its shares (for the run's events)."""
        report: dict[str, Any] = {"index": self.index, "processes": self.processes}
        if self.budget is not None:
            report["send_password_budget"] = {
                "share": self.budget.share,
                "used": self.budget.used,
                "refused": self.budget.refused,
                "spent_at": self.budget.spent_at,
            }
        if self.ceiling is not None:
            report["max_request_rate"] = {
                "rate_per_s": self.ceiling.rate_per_s,
                "waited": self.ceiling.waited,
                "longest_wait_s": round(self.ceiling.longest_wait_s, 6),
                "total_wait_s": round(self.ceiling.total_wait_s, 6),
            }
        return report


def process_limits(limits: RunLimits, index: int = 0, processes: int = 1) -> RequestLimits | None:
    """None when the target sets no run-time limit: the client path then checks nothing."""
    return RequestLimits(limits, index, processes) if limits.any else None


def limits_used(events: list[Event]) -> dict[str, Any] | None:
    """What the run used of its target's run-time limits, over all processes (from each
    process's ``limits`` event, :meth:`RequestLimits.report`); None when the target set none."""
    reports = of_kind(events, LimitsEvent)
    if not reports:
        return None
    used: dict[str, Any] = {"processes": len(reports)}
    budgets = [r.send_password_budget for r in reports if r.send_password_budget is not None]
    if budgets:
        used["send_password_budget"] = {
            "used": sum(b["used"] for b in budgets),
            "shares": sum(b["share"] for b in budgets),
            "refused": sum(b["refused"] for b in budgets),
        }
    ceilings = [r.max_request_rate for r in reports if r.max_request_rate is not None]
    if ceilings:
        used["max_request_rate"] = {
            "rate_per_s": sum(c["rate_per_s"] for c in ceilings),
            "waited": sum(c["waited"] for c in ceilings),
            "longest_wait_s": max(c["longest_wait_s"] for c in ceilings),
        }
    return used
