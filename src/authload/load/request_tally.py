"""The per-request metrics of one Locust process (requests by status, the latency histogram,
errors by kind), counted in plain dicts and exported by a prometheus-client collector.

Why not ``Counter.labels(...).inc()`` and ``Histogram.observe``: each of those takes a lock,
and under Locust's gevent patching every lock is a gevent lock; a request paid several of
them in the listener Locust calls on every request, a large share of the generator's CPU.
A Locust process runs its greenlets one at a time and nothing here yields, so counting needs
no lock; :meth:`RequestTally.collect` (a scrape) copies the dicts before reading them. The
exposition is the same as the metric classes': ``authload_requests_total``, the cumulative
``authload_request_duration_seconds_bucket`` with ``le`` up to ``+Inf``, ``_sum``, ``_count``,
``authload_errors_total``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from authload import metric_names as names

__all__ = ["RequestTally"]


class RequestTally(Collector):
    def __init__(self, buckets: Sequence[float] = names.LATENCY_BUCKETS) -> None:
        self.bounds = list(buckets)
        self._le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.labels: tuple[str, str] = ("", "")  # (scenario, run) being counted
        self.requests: dict[tuple[str, int], int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self._latency: dict[str, list[float]] = {}  # per bucket (not cumulative), then the sum
        self._runs = {self.labels: (self.requests, self.errors, self._latency)}

    def switch(self, labels: tuple[str, str]) -> None:
        """Count for another run from now on (its own series; earlier runs' stay exported,
        as a labelled metric's children do)."""
        if labels not in self._runs:
            self._runs[labels] = ({}, {}, {})
        self.labels = labels
        self.requests, self.errors, self._latency = self._runs[labels]

    def observe(self, endpoint: str, status: int, seconds: float, kind: str | None) -> None:
        """One attempt (the hot path)."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        counts = self._latency.get(endpoint)
        if counts is None:
            counts = self._latency[endpoint] = [0.0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, seconds)] += 1  # the first bound >= seconds: le
        counts[-1] += seconds
        if kind is not None:
            error = (endpoint, kind)
            self.errors[error] = self.errors.get(error, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            names.REQUESTS,
            "HTTP attempts by status as the client saw them (0 = no answer)",
            labels=[names.SCENARIO, names.RUN, names.ENDPOINT, names.STATUS],
        )
        latency = HistogramMetricFamily(
            names.LATENCY,
            "Client-side time from request to answer or failure",
            labels=[names.SCENARIO, names.RUN, names.ENDPOINT],
        )
        errors = CounterMetricFamily(
            names.ERRORS,
            "Failed attempts by kind",
            labels=[names.SCENARIO, names.RUN, names.ENDPOINT, names.KIND],
        )
        for run, (by_status, by_kind, by_bucket) in list(self._runs.items()):
            for (endpoint, status), count in list(by_status.items()):
                requests.add_metric([*run, endpoint, str(status)], count)
            for endpoint, counts in list(by_bucket.items()):
                latency.add_metric([*run, endpoint], self._cumulative(counts), counts[-1])
            for (endpoint, kind), count in list(by_kind.items()):
                errors.add_metric([*run, endpoint, kind], count)
        yield from (requests, latency, errors)

    def _cumulative(self, counts: list[float]) -> list[tuple[str, float]]:
        buckets: list[tuple[str, float]] = []
        total = 0.0
        for le, in_bucket in zip(self._le, counts[:-1], strict=True):
            total += in_bucket
            buckets.append((le, total))
        return buckets
