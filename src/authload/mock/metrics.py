"""The mock's Prometheus metrics, on a registry of its own; also the source of /_mock/stats.

With several mock processes (``--workers``), prometheus-client's multiprocess mode sums the
processes' values, so /metrics and /_mock/stats answer for the whole mock from any process.

A single process counts what every API request counts (requests, in flight, latency, tokens
issued, sessions evicted) as plain numbers and adds them to its Prometheus metrics whenever
these are read: /metrics and /_mock/stats show exactly what they would have shown, and a
request pays a dictionary or list update instead of a locked Prometheus update per count.
Several processes add at once, since the others read the values from the shared files.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from authload import metric_names as names

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MockMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            names.MOCK_REQUESTS,
            "API requests answered, by status",
            [names.ENDPOINT, names.STATUS],
            registry=r,
        )
        self.latency = Histogram(
            names.MOCK_LATENCY,
            "Server-side time from request to reply",
            [names.ENDPOINT],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            names.MOCK_IN_FLIGHT,
            "Requests being served",
            [names.ENDPOINT],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queued = Gauge(
            names.MOCK_QUEUED,
            "Requests waiting for capacity",
            [names.ENDPOINT],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            names.MOCK_SHED,
            "Requests refused with 503 for lack of capacity",
            [names.ENDPOINT],
            registry=r,
        )
        self.rate_limited = Counter(
            names.MOCK_RATE_LIMITED, "Requests refused with 429", [names.ENDPOINT], registry=r
        )
        self.fault_active = Gauge(
            names.MOCK_FAULT_ACTIVE,
            "1 while a fault window is open",
            [names.ENDPOINT, names.KIND],
            registry=r,
            multiprocess_mode="max",
        )
        self.faults_applied = Counter(
            names.MOCK_FAULTS_APPLIED,
            "Requests a fault hit (latency: answers it delayed)",
            [names.ENDPOINT, names.KIND],
            registry=r,
        )
        self.tokens_issued = Counter(
            names.MOCK_TOKENS_ISSUED, "Sessions opened or refreshed", [names.API], registry=r
        )
        self.tokens_revoked = Counter(
            names.MOCK_TOKENS_REVOKED, "Tokens ended by logout", [names.API], registry=r
        )
        self.refresh_reuse = Counter(
            names.MOCK_REFRESH_REUSE, "Rotated refresh tokens presented again", registry=r
        )
        self.families_revoked = Counter(
            names.MOCK_FAMILIES_REVOKED,
            "Sessions ended because a rotated refresh token of theirs was reused",
            registry=r,
        )
        self.stale_accepted = Counter(
            names.MOCK_STALE_ACCEPTED,
            "Revoked or rotated tokens accepted under a stale_revocation fault",
            [names.API],
            registry=r,
        )
        self.sessions_evicted = Counter(
            names.MOCK_SESSIONS_EVICTED,
            "Oldest sessions ended by the per-account cap",
            [names.API],
            registry=r,
        )
        self._children: dict[tuple[str, tuple[Any, ...]], Any] = {}
        # counts not yet added to their metric (child -> amount); only in a single process
        self.deferred = not os.environ.get(MULTIPROC_ENV)
        self._pending: dict[Any, float] = {}
        self._serving: dict[str, int] = {}  # endpoint -> requests being served
        self._held: dict[str, HeldObservations] = {}  # endpoint -> latencies
        self._answered: dict[tuple[str, int], tuple[Any, Any]] = {}  # requests, latency
        self._issued: dict[str, tuple[Any, Any]] = {}  # tokens issued, sessions evicted

    def child(self, metric: Any, *labels: Any) -> Any:
        """``metric.labels(*labels)``, cached: every API request uses a few of these."""
        key = (metric._name, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def add(self, child: Any, amount: float = 1.0) -> None:
        """``child.inc(amount)`` (a counter's or a gauge's child), added when the metrics are
        next read (see the module's docstring)."""
        if self.deferred:
            pending = self._pending
            pending[child] = pending.get(child, 0.0) + amount
        else:
            child.inc(amount)

    def issued(self, api: str, evicted: int = 0) -> None:
        """A session opened (or its tokens rotated) on ``api``; ``evicted``: old sessions
        the per-account cap ended for it."""
        found = self._issued.get(api)
        if found is None:
            found = self._issued[api] = (
                self.child(self.tokens_issued, api),
                self.child(self.sessions_evicted, api),
            )
        self.add(found[0])
        if evicted:
            self.add(found[1], evicted)

    def serving(self, endpoint: str, change: int) -> None:
        """Requests of ``endpoint`` being served: one more (+1) or one fewer (-1)."""
        if self.deferred:
            serving = self._serving
            serving[endpoint] = serving.get(endpoint, 0) + change
        else:
            self.child(self.in_flight, endpoint).inc(change)

    def flush(self) -> None:
        """Add the counts held back to their metrics."""
        pending, self._pending = self._pending, {}
        for child, amount in pending.items():
            if amount:
                child.inc(amount)
        for endpoint, now in self._serving.items():
            self.child(self.in_flight, endpoint).set(now)
        for held in self._held.values():
            held.flush()

    def answered(self, endpoint: str, status: int, seconds: float) -> None:
        """One API request answered."""
        found = self._answered.get((endpoint, status))
        if found is None:
            latency = self.child(self.latency, endpoint)
            if self.deferred:  # one held for each endpoint, whatever the status
                latency = self._held.setdefault(endpoint, HeldObservations(latency))
            found = self._answered[(endpoint, status)] = (
                self.child(self.requests, endpoint, status),
                latency,
            )
        self.add(found[0])
        found[1].observe(seconds)

    def exposition_registry(self) -> CollectorRegistry:
        """The registry to expose: all processes' values in multiprocess mode."""
        self.flush()
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return merged

    def exposition(self) -> bytes:
        return generate_latest(self.exposition_registry())

    def snapshot(self) -> dict[str, Any]:
        """Counters as plain numbers: requests by endpoint and status, and events."""
        requests: dict[str, dict[str, int]] = {}
        events: dict[str, int] = {}
        prefix = "authload_mock_"
        for family in self.exposition_registry().collect():
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if sample.name == names.MOCK_REQUESTS + "_total":
                    by_status = requests.setdefault(sample.labels[names.ENDPOINT], {})
                    status = sample.labels[names.STATUS]
                    by_status[status] = by_status.get(status, 0) + int(sample.value)
                    continue
                key = sample.name.removeprefix(prefix).removesuffix("_total")
                label = sample.labels.get(names.API) or sample.labels.get(names.ENDPOINT)
                if label:
                    key = f"{key}.{label}"
                events[key] = events.get(key, 0) + int(sample.value)
        return {
            "requests": {k: dict(sorted(v.items())) for k, v in sorted(requests.items())},
            "total": sum(n for v in requests.values() for n in v.values()),
            "events": dict(sorted(events.items())),
        }


class HeldObservations:
    """A histogram child's observations, held back as the count of each of its buckets and
    their sum until :meth:`flush` adds them to it (see the module's docstring): the same
    buckets, count and sum as observing each one, at a fifth of the cost (0.09 against
    0.47 us).

    prometheus-client offers no way to add many observations at once, so :meth:`flush`
    adds to the child's own values (``_sum``, ``_buckets``); the lock pins the version and
    the mock's tests compare the exposition with observing one by one."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, amount: float) -> None:
        """What ``child.observe(amount)`` counts: the first bucket whose bound is at least
        ``amount``, and the sum."""
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def flush(self) -> None:
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.total = self.total, 0.0
        if not any(counts):
            return
        self.child._sum.inc(total)
        for bucket, count in zip(self.child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
