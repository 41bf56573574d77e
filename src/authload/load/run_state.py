"""The run's state for Prometheus, as the master (or the only process of a local run) sees
it: the run's identity, the current stage, the users across all processes, and the verdict so
far of each SLO of the scenario.

The verdict so far comes from the statistics Locust already aggregates on the master (the
workers report theirs every few seconds), evaluated with the scenario's own SLO grammar
(:func:`authload.scenario.slo_grammar.parse_slo`) over the run so far:

- ``p50`` ... ``p99.9``, ``max``, ``mean``: Locust's response times of the endpoint (or of
  every request for ``*``). Locust keeps them rounded (to 2 significant digits above 100 ms)
  and counts attempts that got no answer too, so this is the live estimate; the exact figure
  is the summary's, from the records.
- ``error_rate``: failed attempts over attempts, judged exactly
  (:meth:`~authload.scenario.slo_grammar.SloSpec.error_rate_met`). ``errors`` is Locust's failure
  count; the other filters read the failures' kind and status from Locust's error table (each
  failure is reported as ``<endpoint>: <kind> (status <status>)`` by
  :mod:`authload.load.clients`) and select them with
  :meth:`~authload.scenario.slo_grammar.ErrorFilter.selects`, the rule the records' verdict
  uses too:
  ``4xx`` and ``429`` count the 4xx answers the journey did not expect (an expected 401 or
  400 is not a failure), ``transport`` the attempts that got no answer.
- ``rate``: attempts per second since the test started.

An SLO with no request yet is met so far. The verdict of the run (``authload_run_passing``)
is 1 while every SLO is met. ``authload_slo_error_budget{endpoint}`` is the error ratio the
scenario allows an endpoint: the tightest ``error_rate(..., 5xx|errors) <(=) N%`` SLO naming
it (``*`` names every endpoint), for burn-rate alerts on the 5xx ratio (a ``5xx`` or
``errors`` budget bounds the 5xx; a ``503`` or ``4xx`` one does not).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge

from authload import metric_names as names
from authload.contracts import ENDPOINTS
from authload.load import live_counts
from authload.load.failures import FAILURE_PATTERN
from authload.rundir.records import LOST_PREFIXES, journey_ok
from authload.scenario.slo_grammar import (
    DEFAULT_FILTER,
    ERROR_FILTERS,
    JOURNEYS,
    PERCENTILES,
    REQUESTS,
    SloSpec,
    parse_slo,
)

if TYPE_CHECKING:
    from locust.env import Environment

    from authload.load.config import RunConfig

__all__ = ["RunState", "error_budgets", "slo_live", "slo_met"]


def _entry(stats: Any, endpoint: str) -> Any:
    """Locust's stats entry of an endpoint (``*``: the total); None before its first request."""
    if endpoint == "*":
        return stats.total
    return stats.entries.get((endpoint, ENDPOINTS[endpoint].method))


def _failures(stats: Any, endpoint: str, filter_name: str) -> int:
    """Failed attempts of ``endpoint`` (``*``: all) that the SLO filter selects."""
    selected = ERROR_FILTERS[filter_name]
    count = 0
    for error in list(stats.errors.values()):
        if endpoint != "*" and error.name != endpoint:
            continue
        match = FAILURE_PATTERN.search(str(error.error))
        if match is not None and selected.selects(int(match["status"]), match["kind"]):
            count += int(error.occurrences)
    return count


def slo_met(slo: str, stats: Any, elapsed_s: float) -> bool | None:
    """Whether ``slo`` is met by the run so far, as Locust's ``stats`` (a RequestStats) and
    authload's own counts (:mod:`authload.load.live_counts`) show it; None when it cannot be
    judged live (a latency of the expected answers alone, a journey's duration, a
    revocation time: those are judged from the records at the end)."""
    return slo_live(slo, stats, elapsed_s)[1]


def slo_live(slo: str, stats: Any, elapsed_s: float) -> tuple[float | None, bool | None]:
    """The SLO's value so far in its unit (ms, percent, per second; None before its first
    request or journey, or when not judged live) and whether it is met (:func:`slo_met`)."""
    spec = parse_slo(slo)
    if spec.family == JOURNEYS:
        return _journeys_live(spec, live_counts.totals()) if spec.is_share else (None, None)
    if spec.family != REQUESTS or spec.latency_filter is not None:
        return None, None
    entry = _entry(stats, spec.endpoint)
    requests = int(entry.num_requests) if entry is not None else 0
    if requests == 0:
        return None, True  # nothing measured yet: nothing broken so far
    value: float
    if spec.stat == "error_rate":
        filter_name = spec.filter or DEFAULT_FILTER
        failed = (
            int(entry.num_failures)
            if filter_name == DEFAULT_FILTER
            else _failures(stats, spec.endpoint, filter_name)
        )
        return 100.0 * failed / requests, spec.error_rate_met(failed, requests)
    if spec.stat == "rate":
        if elapsed_s <= 0:
            return None, True
        value = requests / elapsed_s
    elif spec.stat == "max":
        value = float(entry.max_response_time)
    elif spec.stat == "mean":
        value = float(entry.avg_response_time)
    else:
        value = float(entry.get_response_time_percentile(PERCENTILES[spec.stat]))
    return value, spec.met(value)


def _journeys_live(spec: SloSpec, counts: live_counts.LiveCounts) -> tuple[float | None, bool]:
    """A journey share so far, from the outcomes counted (``flow:outcome``) and arrivals."""
    if spec.stat == "dropped":
        hits, total = counts.arrivals.dropped, counts.arrivals.due
    else:
        hits = total = 0
        for key, n in counts.outcomes.items():
            flow, _, outcome = key.partition(":")
            if not outcome or (spec.endpoint != "*" and flow != spec.endpoint):
                continue
            total += n
            if spec.stat == "journey_success":
                hits += n if journey_ok(outcome) else 0
            else:
                hits += n if outcome.startswith(LOST_PREFIXES) else 0
        if spec.endpoint == "*":
            total += counts.arrivals.dropped
    if total == 0:
        return None, True
    return 100.0 * hits / total, spec.error_rate_met(hits, total)


def error_budgets(slos: Iterable[str]) -> dict[str, float]:
    """Endpoint -> the error ratio its tightest 5xx-bounding error-rate SLO allows."""
    budgets: dict[str, float] = {}
    for slo in slos:
        spec = parse_slo(slo)
        ratio = spec.budget_ratio()
        if ratio is None:
            continue
        for name in ENDPOINTS if spec.endpoint == "*" else (spec.endpoint,):
            budgets[name] = min(ratio, budgets.get(name, ratio))
    return budgets


class RunState:
    """The master's run-state gauges on a registry; :meth:`sample` updates them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        run = [names.SCENARIO, names.RUN]
        r = registry
        self.info = Gauge(names.RUN_INFO, "1 while the run lives", [*run, names.TARGET], registry=r)
        self.stage = Gauge(names.RUN_STAGE, "0-based index of the current stage", run, registry=r)
        self.users = Gauge(names.RUN_USERS, "Users across all Locust processes", run, registry=r)
        self.slo_passing = Gauge(
            names.SLO_PASSING,
            "1 while the SLO, over the run so far, is met",
            [*run, names.SLO],
            registry=r,
        )
        self.run_passing = Gauge(
            names.RUN_PASSING, "1 while every SLO of the run is met so far", run, registry=r
        )
        self.error_budget = Gauge(
            names.SLO_ERROR_BUDGET,
            "Error ratio the scenario's error-rate SLOs allow the endpoint",
            [*run, names.ENDPOINT],
            registry=r,
        )
        self._stage = 0
        self._elapsed = 0.0  # the test's length so far; kept once it stops

    def sample(
        self,
        environment: Environment,
        config: RunConfig,
        started: float | None,
        now: float,
    ) -> None:
        """Update every gauge; ``started`` is the test's start (None: not started or over)."""
        scenario = config.scenario
        run = (scenario.name, config.run_dir.name)
        self.info.labels(*run, config.target).set(1)
        if started is not None:
            from authload.load.shapes import stage_at  # imports Locust: only where it runs

            self._elapsed = now - started
            stage = stage_at(scenario.load, self._elapsed)
            self._stage = stage if stage is not None else len(scenario.load.stages) - 1
        self.stage.labels(*run).set(self._stage)
        runner = environment.runner
        self.users.labels(*run).set(runner.user_count if runner is not None else 0)
        passing = True
        for slo in scenario.slos:
            met = slo_met(slo, environment.stats, self._elapsed)
            if met is None:
                continue
            passing = passing and met
            self.slo_passing.labels(*run, slo).set(1 if met else 0)
        self.run_passing.labels(*run).set(1 if passing else 0)
        for endpoint, ratio in error_budgets(scenario.slos).items():
            self.error_budget.labels(*run, endpoint).set(ratio)
