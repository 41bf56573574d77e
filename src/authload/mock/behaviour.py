"""How the mock behaves under load: added latency, capacity with load shedding, faults.

Each piece is small and separately testable; ``Behaviour`` holds the live set built from a
profile. Times are wall-clock seconds (``time.time``) so that fault windows mean the same
instant in every process of a scaled-out mock.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authload.contracts import ENDPOINTS
from authload.mock.profile import STATE_FAULTS, Capacity, Fault, Profile
from authload.scenario.distributions import Distribution, sample_ms

MAX_FAULT_RECORDS = 1000


class Shed(Exception):
    """No capacity and no room in the queue: answer 503 with Retry-After."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("shed")
        self.retry_after_s = retry_after_s


class Limiter:
    """``concurrency`` slots and a FIFO queue of ``queue`` waiters; beyond that, shed."""

    def __init__(self, spec: Capacity) -> None:
        self.spec = spec
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for one."""
        if self.in_use < self.spec.concurrency and not self._waiters:
            self.in_use += 1
            return True
        return False

    async def acquire(self, on_queue: Callable[[int], None] | None = None) -> None:
        if self.try_acquire():
            return
        if len(self._waiters) >= self.spec.queue:
            raise Shed(self.spec.retry_after_s)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if on_queue:
            on_queue(+1)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.spec.queue_timeout_s)
        except TimeoutError:
            if waiter.done():  # the slot arrived just as the wait ran out: keep it
                return
            self._waiters.remove(waiter)
            waiter.cancel()
            raise Shed(self.spec.retry_after_s) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        finally:
            if on_queue:
                on_queue(-1)

    def reconfigure(self, spec: Capacity) -> None:
        """New limits at run time; waiters get any slots the change opens."""
        self.spec = spec
        while self._waiters and self.in_use < spec.concurrency:
            self.in_use += 1
            self.release()

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self.in_use -= 1


@dataclass
class FaultRecord:
    """A fault window: from ``starts_at`` to ``ends_at`` (or removal), wall-clock seconds."""

    id: str
    spec: Fault
    origin: str  # "profile" or "admin"
    starts_at: float
    ends_at: float | None
    removed_at: float | None = None

    def end(self) -> float | None:
        ends = [t for t in (self.ends_at, self.removed_at) if t is not None]
        return min(ends) if ends else None

    def open_after(self, now: float) -> bool:
        """Active now or still to come."""
        end = self.end()
        return end is None or end > now

    def close(self, now: float) -> None:
        """End the window now; one that has not started yet never opens."""
        self.removed_at = max(now, self.starts_at)

    def active(self, now: float) -> bool:
        end = self.end()
        return self.starts_at <= now and (end is None or now < end)

    def to_json(self, epoch: float, now: float) -> dict[str, Any]:
        end = self.end()
        return {
            "id": self.id,
            "origin": self.origin,
            "active": self.active(now),
            "starts_at": self.starts_at,
            "ends_at": end,
            "start_s": round(self.starts_at - epoch, 6),
            "end_s": None if end is None else round(end - epoch, 6),
            **self.spec.model_dump(),
        }


@dataclass
class FaultBoard:
    epoch: float
    records: list[FaultRecord] = field(default_factory=list)
    _next: int = 0

    def add(self, spec: Fault, origin: str, base: float) -> FaultRecord:
        self._next += 1
        starts = base + spec.start_s
        ends = None if spec.duration_s is None else starts + spec.duration_s
        record = FaultRecord(f"{origin}-{self._next}", spec, origin, starts, ends)
        self.records.append(record)
        if len(self.records) > MAX_FAULT_RECORDS:
            del self.records[0]
        return record

    def remove(self, fault_id: str | None, now: float) -> list[FaultRecord]:
        """End the given fault (or every open one) now; scheduled ones never start."""
        ended = [
            r for r in self.records if (fault_id is None or r.id == fault_id) and r.open_after(now)
        ]
        for r in ended:
            r.close(now)
        return ended

    def pick(self, endpoint: str, now: float, rng: random.Random) -> tuple[Fault | None, float]:
        """The terminal fault hitting this request, if any, and latency faults' added ms."""
        added = 0.0
        for r in self.records:
            spec = r.spec
            if spec.kind in STATE_FAULTS or not (r.active(now) and spec.applies_to(endpoint)):
                continue
            if spec.fraction < 1.0 and rng.random() >= spec.fraction:
                continue
            if spec.kind == "latency":
                added += spec.added_ms
            else:
                return spec, added
        return None, added

    def revocation_lag(self, endpoint: str, now: float) -> float:
        """How long a token revoked or rotated now keeps working at ``endpoint``: the longest
        ``lag_s`` of the open stale_revocation windows on it (0: refused at once)."""
        lags = [
            r.spec.lag_s
            for r in self.records
            if r.spec.kind == "stale_revocation" and r.active(now) and r.spec.applies_to(endpoint)
        ]
        return max(lags, default=0.0)

    def active_kinds(self, now: float) -> set[tuple[str, str]]:
        """(endpoint, kind) pairs with an open window."""
        pairs: set[tuple[str, str]] = set()
        for r in self.records:
            if r.active(now):
                scope = ENDPOINTS if "*" in r.spec.endpoints else r.spec.endpoints
                pairs.update((e, r.spec.kind) for e in scope)
        return pairs

    def history(self) -> list[dict[str, Any]]:
        """Every window start and end that has happened, in time order."""
        now = time.time()
        events = []
        for r in self.records:
            end = r.end()
            if end is not None and end <= r.starts_at:
                continue  # removed before it started: never opened
            if r.starts_at <= now:
                events.append(self._event(r, "start", r.starts_at))
            if end is not None and end <= now:
                events.append(self._event(r, "end", end))
        return sorted(events, key=lambda e: (e["t"], e["event"] == "start"))

    def _event(self, r: FaultRecord, event: str, t: float) -> dict[str, Any]:
        return {
            "t": t,
            "t_s": round(t - self.epoch, 6),
            "event": event,
            "fault": r.id,
            "kind": r.spec.kind,
            "endpoints": list(r.spec.endpoints),
            "name": r.spec.name,
        }


class Behaviour:
    """The live behaviour built from a profile: limiters, faults, latency draws."""

    def __init__(self, profile: Profile, epoch: float, rng: random.Random) -> None:
        self.rng = rng
        self.epoch = epoch
        self.faults = FaultBoard(epoch)
        self.profile = profile
        self.shared: Limiter | None = None
        self.limiters: dict[str, Limiter] = {}
        self._latency: dict[str, Distribution | None] = {}  # endpoint -> its added latency
        self.apply(profile)

    def apply(self, profile: Profile) -> None:
        """Switch to a new profile; its scheduled faults replace the old profile's."""
        self.profile = profile
        self._latency = {name: profile.latency_for(name) for name in ENDPOINTS}
        cap = profile.capacity
        self.shared = _limiter(self.shared, cap.shared)
        old, self.limiters = self.limiters, {}
        for name, spec in cap.endpoints.items():
            limiter = _limiter(old.get(name), spec)
            if limiter is not None:
                self.limiters[name] = limiter
        now = time.time()
        for record in self.faults.records:
            if record.origin == "profile" and record.open_after(now):
                record.close(now)
        for fault in profile.faults:
            self.faults.add(fault, "profile", self.epoch)

    def rebase(self, epoch: float) -> None:
        """Count the profile's fault windows from ``epoch`` (the load's start) instead of the
        mock's start: the windows scheduled on the old clock are forgotten (history keeps
        none of them: they belong to the time before the load) and the profile's windows
        are scheduled again from ``epoch``. Admin windows stay as they are."""
        self.epoch = self.faults.epoch = epoch
        self.faults.records = [r for r in self.faults.records if r.origin != "profile"]
        for fault in self.profile.faults:
            self.faults.add(fault, "profile", epoch)

    def control(self) -> dict[str, Any]:
        """Everything an admin can change, as JSON: what other mock processes load."""
        return {
            "epoch": self.epoch,
            "profile": self.profile.model_dump(mode="json"),
            "faults": [
                {
                    "id": r.id,
                    "spec": r.spec.model_dump(mode="json"),
                    "origin": r.origin,
                    "starts_at": r.starts_at,
                    "ends_at": r.ends_at,
                    "removed_at": r.removed_at,
                }
                for r in self.faults.records
            ],
            "next": self.faults._next,
        }

    def load_control(self, data: dict[str, Any]) -> None:
        self.epoch = self.faults.epoch = float(data.get("epoch", self.epoch))
        profile = Profile.model_validate(data["profile"])
        self.apply(profile)
        self.faults.records = [
            FaultRecord(
                f["id"],
                Fault.model_validate(f["spec"]),
                f["origin"],
                f["starts_at"],
                f["ends_at"],
                f["removed_at"],
            )
            for f in data["faults"]
        ]
        self.faults._next = data["next"]

    def added_latency_s(self, endpoint: str) -> float:
        spec = (
            self._latency[endpoint]
            if endpoint in self._latency
            else self.profile.latency_for(endpoint)
        )
        return 0.0 if spec is None else sample_ms(spec, self.rng) / 1000.0


def _limiter(old: Limiter | None, spec: Capacity | None) -> Limiter | None:
    """Reconfigure the live limiter in place, so requests holding its slots release them."""
    if spec is None:
        return None
    if old is None:
        return Limiter(spec)
    old.reconfigure(spec)
    return old
