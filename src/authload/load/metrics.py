"""Prometheus metrics of one Locust process: requests as Locust reports them, and the
process's runtime state (users, retries, flow outcomes, sessions lost, arrivals).

:func:`register` plugs into Locust as a listener of ``events.request``, as Locust's own
extensions do, on a registry passed in (a fresh one per test). Names, labels and buckets
come from :mod:`authload.metric_names`. Only counters, gauges and a cumulative histogram are
exported: percentiles are computed by Prometheus (``histogram_quantile``) or by
:mod:`authload.analysis`, never exported as gauges.

Every second a greenlet copies the runtime state into the registry: the running users, the
retry policy's counts, and the outcome counts of the process's journeys (monotonic counts:
the exporter adds their increase). Without the authload runtime (a plain locust file) only
the request metrics are exported.

Ports. Each Locust process serves its own ``/metrics`` on 127.0.0.1 when a base port is
given (``AUTHLOAD_METRICS_PORT``, read by :func:`port_from_env`): the master or a local
runner on the base port, worker ``i`` (Locust's worker index, 0-based) on base + i + 1. So
``--processes 2`` with ``AUTHLOAD_METRICS_PORT=9646`` serves the master on 9646 and the
workers on 9647 and 9648 (``dashboards/prometheus/prometheus.yml`` scrapes those). A
worker learns its index from the master after Locust's init event, so its server starts
once the index is known. Sum over processes for the whole run; the master exports no
request or runtime metrics of its own (its workers do).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from authload import metric_names as names
from authload.load.recorder import error_kind

if TYPE_CHECKING:
    from locust.env import Environment

    from authload.load.runtime import Runtime

__all__ = ["PORT_ENV", "LoadMetrics", "port_from_env", "register"]

log = logging.getLogger(__name__)

PORT_ENV = "AUTHLOAD_METRICS_PORT"
SAMPLE_S = 1.0
SESSION_LOST = "session_lost:"


def port_from_env() -> int | None:
    """The base port from ``AUTHLOAD_METRICS_PORT``; None when unset or empty."""
    value = os.environ.get(PORT_ENV, "").strip()
    return int(value) if value else None


def _current_runtime() -> Runtime | None:
    from authload.load.users import RUNTIME

    return RUNTIME.get("current")


def _is_master(environment: Environment) -> bool:
    return type(environment.runner).__name__ == "MasterRunner"


def process_port(environment: Environment, base: int) -> int | None:
    """This process's port: the base for a master or local runner, base + index + 1 for a
    worker; None while a worker's index is not known yet."""
    runner = environment.runner
    if type(runner).__name__ != "WorkerRunner":
        return base
    index = int(getattr(runner, "worker_index", -1))
    return base + index + 1 if index >= 0 else None


class LoadMetrics:
    """The client-side metrics on one registry; :meth:`on_request` is Locust's listener."""

    def __init__(
        self,
        registry: CollectorRegistry,
        runtime: Callable[[], Runtime | None] = _current_runtime,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        r = registry
        self.requests = Counter(
            names.REQUESTS,
            "HTTP attempts by status as the client saw them (0 = no answer)",
            [names.ENDPOINT, names.STATUS],
            registry=r,
        )
        self.latency = Histogram(
            names.LATENCY,
            "Client-side time from request to answer or failure",
            [names.ENDPOINT],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            names.ERRORS, "Failed attempts by kind", [names.ENDPOINT, names.KIND], registry=r
        )
        self.users = Gauge(names.USERS, "Running Locust users of this process", registry=r)
        self.retries = Counter(names.RETRIES, "Attempts sent after the first", registry=r)
        self.retries_throttled = Counter(
            names.RETRIES_THROTTLED, "Attempts rejected locally by the retry policy", registry=r
        )
        self.flow_outcomes = Counter(
            names.FLOW_OUTCOMES,
            "Journeys ended, by outcome",
            [names.FLOW, names.OUTCOME],
            registry=r,
        )
        self.journeys = Counter(
            names.JOURNEYS, "Journeys of the scenario's mix ended (any outcome)", registry=r
        )
        self.sessions_lost = Counter(
            names.SESSIONS_LOST, "Sessions lost, by reason", [names.REASON], registry=r
        )
        self.dropped_arrivals = Counter(
            names.DROPPED_ARRIVALS,
            "Open-model arrivals dropped: the in-flight pool was full",
            registry=r,
        )
        self.target_arrival_rate = Gauge(
            names.TARGET_ARRIVAL_RATE,
            "This process's share of the scenario's arrival rate now, per second",
            registry=r,
        )
        self.started: float | None = None  # the test's start, for the current stage
        self._runtime = runtime
        self._clock = clock
        self._requests: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        self._errors: dict[tuple[str, str], Any] = {}
        self._seen: dict[str, float] = {}  # last exported value of each monotonic count
        self._server: Any = None

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        """One attempt (hot path: label children are cached)."""
        status = int(getattr(response, "status_code", 0) or 0) if response is not None else 0
        child = self._requests.get((name, status))
        if child is None:
            child = self._requests[(name, status)] = self.requests.labels(name, str(status))
        child.inc()
        hist = self._latency.get(name)
        if hist is None:
            hist = self._latency[name] = self.latency.labels(name)
        hist.observe(response_time / 1000.0)
        kind = (context.get("error") if context else None) or error_kind(exception, status)
        if kind is not None:
            errors = self._errors.get((name, kind))
            if errors is None:
                errors = self._errors[(name, kind)] = self.errors.labels(name, kind)
            errors.inc()

    def _add(self, key: str, value: float, counter: Any) -> None:
        """Add the increase of a monotonic count since the last sample."""
        delta = value - self._seen.get(key, 0.0)
        if delta > 0:
            counter.inc(delta)
        self._seen[key] = max(value, self._seen.get(key, 0.0))

    def sample(self, environment: Environment | None = None) -> None:
        """Copy the process's runtime state into the registry."""
        if environment is not None and environment.runner is not None:
            if _is_master(environment):
                return
            self.users.set(environment.runner.user_count)
        rt = self._runtime()
        if rt is None:
            return
        stats = rt.policy.stats
        self._add("retries", stats.retries, self.retries)
        self._add("throttled", stats.throttled, self.retries_throttled)
        mix = rt.scenario.mix
        for key, count in list(rt.state.outcomes.items()):
            flow, sep, outcome = key.partition(":")
            if not sep:
                if key == "dropped_arrivals":
                    self._add(key, count, self.dropped_arrivals)
                continue
            self._add(key, count, self.flow_outcomes.labels(flow, outcome))
            if flow in mix:
                self._add("journeys:" + key, count, self.journeys)
            if outcome.startswith(SESSION_LOST) or outcome == "token_lost":
                reason = outcome.removeprefix(SESSION_LOST)
                self._add("lost:" + key, count, self.sessions_lost.labels(reason))
        self.target_arrival_rate.set(self._target_rate(rt))

    def _target_rate(self, rt: Runtime) -> float:
        load = rt.scenario.load
        if load.model != "open" or self.started is None:
            return 0.0
        elapsed, end = self._clock() - self.started, 0.0
        for stage in load.stages:
            end += stage.duration_s
            if elapsed < end:
                return (stage.rate or 0.0) / rt.share()[1]
        return 0.0

    def run(self, environment: Environment, base_port: int | None) -> None:
        """The sampling loop (a greenlet): samples every second, starts the server when
        this process's port is known."""
        serving = base_port is None
        while True:
            if not serving:
                assert base_port is not None
                port = process_port(environment, base_port)
                if port is not None:
                    self.serve(port)
                    serving = True
            try:
                self.sample(environment)
            except Exception:  # a metrics sample must never stop the run
                log.exception("metrics sample failed")
            gevent.sleep(SAMPLE_S)

    def serve(self, port: int) -> None:
        server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        log.info("metrics on http://127.0.0.1:%d/metrics", port)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def register(
    environment: Environment,
    registry: CollectorRegistry | None = None,
    port: int | None = None,
    *,
    runtime: Callable[[], Runtime | None] = _current_runtime,
) -> LoadMetrics:
    """Export this process's metrics on ``registry`` (a new one if None); serve them on
    127.0.0.1 when a base ``port`` is given (see the module docstring for the port scheme)."""
    metrics = LoadMetrics(registry if registry is not None else CollectorRegistry(), runtime)
    environment.events.request.add_listener(metrics.on_request)
    loop = gevent.spawn(metrics.run, environment, port)

    def on_test_start(**_: Any) -> None:
        metrics.started = time.time()

    def on_test_stop(**_: Any) -> None:
        metrics.started = None

    def on_quitting(**_: Any) -> None:
        loop.kill(block=False)
        try:
            metrics.sample(environment)
        finally:
            metrics.close()

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_test_stop)
    environment.events.quitting.add_listener(on_quitting)
    return metrics
