"""Prometheus metrics of one Locust process: requests as Locust reports them, the process's
runtime state (users, retries, flow outcomes, sessions lost, arrivals) and, on the master or
the only process of a local run, the run's state (:mod:`authload.load.run_state`).

:func:`register` plugs into Locust as a listener of ``events.request``, as Locust's own
extensions do, on a registry passed in (a fresh one per test). Names, labels and buckets
come from :mod:`authload.metric_names`. Only counters, gauges and a cumulative histogram are
exported: percentiles are computed by Prometheus (``histogram_quantile``) or by
:mod:`authload.analysis`, never exported as gauges.

Every second a greenlet copies the runtime state into the registry: the running users, the
retry policy's counts, and the outcome counts of the process's journeys (monotonic counts:
the exporter adds their increase). Without the authload runtime (a plain locust file) only
the request metrics are exported.

The run's identity. Every client-side metric carries ``scenario`` (the scenario's name) and
``run`` (the run id: the run directory's name), so that several runs can share a Prometheus.
They are taken from the run's configuration when the test starts (and again at the first use
after that), never at import: a remote worker gets its configuration from the master only
then. Without a configuration (a plain locust file) both are empty.

Sum over processes for the whole run; the master exports the run's state and no request or
runtime metrics of its own (its workers do).

Where and how long it serves (ports, host, the final linger): :mod:`authload.load.metrics_endpoint`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from authload import metric_names as names
from authload.load.metrics_endpoint import (
    DEFAULT_HOST,
    LINGER_ENV,
    PORT_MODES,
    host_from_env,
    linger_from_env,
    port_mode_from_env,
    process_port,
    serve_frozen,
)
from authload.load.recorder import error_kind
from authload.load.request_tally import RequestTally
from authload.load.run_state import RunState

if TYPE_CHECKING:
    from locust.env import Environment

    from authload.load.config import RunConfig
    from authload.load.runtime import Runtime

__all__ = ["LoadMetrics", "register"]

log = logging.getLogger(__name__)

SAMPLE_S = 1.0
SESSION_LOST = "session_lost:"
BLANK = ("", "")  # scenario and run of a process without a run configuration


def _current_runtime() -> Runtime | None:
    from authload.load.users import RUNTIME

    return RUNTIME.get("current")


def _current_config() -> RunConfig | None:
    """The run's configuration: the runtime's (a worker or local runner), else the file the
    runner hands to Locust (the master); None without either (a plain locust file)."""
    rt = _current_runtime()
    if rt is not None:
        return rt.config
    from authload.load.config import CONFIG_ENV, load_config

    if not os.environ.get(CONFIG_ENV):
        return None
    try:
        return load_config()
    except Exception as exc:  # metrics must never stop a run: no identity labels then
        log.warning("metrics: cannot read the run configuration: %s", exc)
        return None


def _role(environment: Environment) -> str:
    return type(environment.runner).__name__


def _is_master(environment: Environment) -> bool:
    return _role(environment) == "MasterRunner"


class LoadMetrics:
    """The client-side metrics on one registry; :meth:`on_request` is Locust's listener."""

    def __init__(
        self,
        registry: CollectorRegistry,
        runtime: Callable[[], Runtime | None] = _current_runtime,
        clock: Callable[[], float] = time.time,
        config: Callable[[], RunConfig | None] = _current_config,
    ) -> None:
        self.registry = registry
        r = registry
        run = [names.SCENARIO, names.RUN]
        self.tally = RequestTally()  # requests, latency histogram, errors: see its module
        registry.register(self.tally)
        self.users = Gauge(names.USERS, "Running Locust users of this process", run, registry=r)
        self.retries = Counter(names.RETRIES, "Attempts sent after the first", run, registry=r)
        self.retries_throttled = Counter(
            names.RETRIES_THROTTLED,
            "Attempts rejected locally by the retry policy",
            run,
            registry=r,
        )
        self.flow_outcomes = Counter(
            names.FLOW_OUTCOMES,
            "Journeys ended, by outcome",
            [*run, names.FLOW, names.OUTCOME],
            registry=r,
        )
        self.journeys = Counter(
            names.JOURNEYS, "Journeys of the scenario's mix ended (any outcome)", run, registry=r
        )
        self.journey_duration = Histogram(
            names.JOURNEY_DURATION,
            "Journeys from their intended start (open model) or start to their end",
            [*run, names.FLOW],
            buckets=names.JOURNEY_BUCKETS,
            registry=r,
        )
        self.sessions_lost = Counter(
            names.SESSIONS_LOST, "Sessions lost, by reason", [*run, names.REASON], registry=r
        )
        self.dropped_arrivals = Counter(
            names.DROPPED_ARRIVALS,
            "Open-model arrivals never started: dropped (pool and queue full) or still "
            "waiting at the end",
            run,
            registry=r,
        )
        self.arrivals_waited = Counter(
            names.ARRIVALS_WAITED,
            "Open-model arrivals that waited for a free place (max_in_flight) before starting",
            run,
            registry=r,
        )
        self.target_arrival_rate = Gauge(
            names.TARGET_ARRIVAL_RATE,
            "This process's share of the scenario's arrival rate now, per second",
            run,
            registry=r,
        )
        self.run_state: RunState | None = None  # on the master or a local runner
        self.started: float | None = None  # the test's start, for the current stage
        self._runtime = runtime
        self._config = config
        self._clock = clock
        self._run: tuple[str, str] | None = None  # (scenario, run) once known
        self._run_config: RunConfig | None = None  # the configuration they come from
        self._labelled: tuple[str, str] | None = None  # the labels the caches below carry
        self._seen: dict[str, float] = {}  # last exported value of each monotonic count
        self._server: Any = None

    def start_test(self) -> None:
        """A test starts: take the run's identity afresh at its next use."""
        self.started = self._clock()
        self._run = None

    def run_labels(self) -> tuple[str, str]:
        """(scenario, run) of the run this process is in; empty without a configuration."""
        if self._run is not None:
            return self._run
        config = self._config()
        labels = BLANK if config is None else (config.scenario.name, config.run_dir.name)
        if labels != self._labelled:  # another run: its own series, counts from zero
            self.tally.switch(labels)
            self._seen.clear()
            self._labelled = labels
        if config is not None:
            self._run, self._run_config = labels, config
        return labels

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
        """One attempt (the hot path)."""
        if self._run is None:
            self.run_labels()
        status = int(getattr(response, "status_code", 0) or 0) if response is not None else 0
        kind = (context.get("error") if context else None) or error_kind(exception, status)
        self.tally.observe(name, status, response_time / 1000.0, kind)

    def _add(self, key: str, value: float, counter: Any) -> None:
        """Add the increase of a monotonic count since the last sample."""
        delta = value - self._seen.get(key, 0.0)
        if delta > 0:
            counter.inc(delta)
        self._seen[key] = max(value, self._seen.get(key, 0.0))

    def sample(self, environment: Environment | None = None) -> None:
        """Copy the process's runtime state (and on the master the run's) into the registry."""
        if self.started is None and self._run is None:
            return  # no test yet: the run's identity is not known
        run = self.run_labels()
        if environment is not None and environment.runner is not None:
            if self.run_state is not None and self._run_config is not None:
                self.run_state.sample(environment, self._run_config, self.started, self._clock())
            if _is_master(environment):
                return
            self.users.labels(*run).set(environment.runner.user_count)
        rt = self._runtime()
        if rt is None:
            return
        stats = rt.policy.stats
        self._add("retries", stats.retries, self.retries.labels(*run))
        self._add("throttled", stats.throttled, self.retries_throttled.labels(*run))
        mix = rt.scenario.mix
        for key, count in list(rt.state.outcomes.items()):
            flow, sep, outcome = key.partition(":")
            if not sep:
                if key == "dropped_arrivals":
                    self._add(key, count, self.dropped_arrivals.labels(*run))
                continue
            self._add(key, count, self.flow_outcomes.labels(*run, flow, outcome))
            if flow in mix:
                self._add("journeys:" + key, count, self.journeys.labels(*run))
            if outcome.startswith(SESSION_LOST) or outcome == "token_lost":
                reason = outcome.removeprefix(SESSION_LOST)
                self._add("lost:" + key, count, self.sessions_lost.labels(*run, reason))
        self._add("waited", rt.arrivals.counts.waited, self.arrivals_waited.labels(*run))
        self.dropped_arrivals.labels(*run)  # exported from the start, at 0 until one drops
        durations = rt.state.durations
        while durations:
            flow, seconds = durations.popleft()
            self.journey_duration.labels(*run, flow).observe(seconds)
        self.target_arrival_rate.labels(*run).set(self._target_rate(rt))

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

    def run(
        self,
        environment: Environment,
        base_port: int | None,
        mode: str = "offset",
        host: str = DEFAULT_HOST,
    ) -> None:
        """The sampling loop (a greenlet): samples every second, starts the server when
        this process's port is known."""
        serving = base_port is None
        while True:
            if not serving:
                assert base_port is not None
                port = process_port(environment, base_port, mode)
                if port is not None:
                    self.serve(port, host)
                    serving = True
            try:
                self.sample(environment)
            except Exception:  # a metrics sample must never stop the run
                log.exception("metrics sample failed")
            gevent.sleep(SAMPLE_S)

    @property
    def serving(self) -> bool:
        return self._server is not None

    def serve(self, port: int, host: str = DEFAULT_HOST) -> None:
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        log.info("metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def linger(self, seconds: float) -> None:
        """Serve the final values for ``seconds`` more on this process's port. The whole
        process waits meanwhile (see :func:`serve_frozen`), so whatever the test left running
        sends nothing; the server is left as it is: the process exits next."""
        if self._server is None:
            return
        from gevent import monkey

        body = generate_latest(self.registry)
        socket_class = monkey.get_original("socket", "socket")
        # the server's own listening socket (a second descriptor of it): no moment when the
        # port is closed, and no wait for the server's greenlet to stop
        with socket_class(fileno=os.dup(self._server.socket.fileno())) as listener:
            serve_frozen(listener, body, seconds)


def register(
    environment: Environment,
    registry: CollectorRegistry | None = None,
    port: int | None = None,
    *,
    runtime: Callable[[], Runtime | None] = _current_runtime,
    config: Callable[[], RunConfig | None] = _current_config,
    mode: str | None = None,
    host: str | None = None,
    linger_s: float | None = None,
) -> LoadMetrics:
    """Export this process's metrics on ``registry`` (a new one if None); serve them when a
    base ``port`` is given (see the module docstring for the port scheme). ``mode``, ``host``
    and ``linger_s`` default to their environment variables."""
    mode = port_mode_from_env() if mode is None else mode
    if mode not in PORT_MODES:
        raise ValueError(f"metrics port mode {mode!r}: one of {', '.join(PORT_MODES)}")
    host = host_from_env() if host is None else host
    linger = linger_from_env() if linger_s is None else linger_s
    metrics = LoadMetrics(
        registry if registry is not None else CollectorRegistry(), runtime, config=config
    )
    if _role(environment) != "WorkerRunner":  # the master, or the only process
        metrics.run_state = RunState(metrics.registry)
    environment.events.request.add_listener(metrics.on_request)
    loop = gevent.spawn(metrics.run, environment, port, mode, host)
    _follow_the_test(environment, metrics, loop, linger)
    return metrics


def _follow_the_test(
    environment: Environment, metrics: LoadMetrics, loop: gevent.Greenlet, linger: float
) -> None:
    """Sample at the test's start and stop; at the quit, the final values, served ``linger``
    seconds more for a last scrape."""

    def on_test_start(**_: Any) -> None:
        metrics.start_test()

    def on_test_stop(**_: Any) -> None:
        try:  # the state at the stop, then no current stage any more
            metrics.sample(environment)
        except Exception:
            log.exception("metrics sample failed")
        metrics.started = None

    def on_quitting(**_: Any) -> None:
        # From here on the values are final: the record spool has just closed (its listener
        # was registered after this one, so it runs first), and a request from now on is
        # counted by neither. The linger starts at once, with no greenlet switch since.
        environment.events.request.remove_listener(metrics.on_request)
        loop.kill(block=False)
        metrics.sample(environment)
        if not metrics.serving or linger <= 0:
            return
        if _role(environment) != "WorkerRunner":
            print(
                f"authload: metrics served {linger:g} s more for a final scrape ({LINGER_ENV})",
                file=sys.stderr,
                flush=True,
            )
        try:
            metrics.linger(linger)
        except OSError as exc:
            log.warning("metrics: the final values were not served: %s", exc)

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_test_stop)
    environment.events.quitting.add_listener(on_quitting)
