"""The SLO grammar, defined once: ``<stat>(<scope>[, <filter>]) <op> <number><unit>``,
e.g. ``p99(gigma.login, ok) < 800ms``, ``error_rate(*, 5xx) < 1%``,
``journey_p95(sms) < 3s``, ``dropped(*) < 0.1%`` or ``revocation_p99 < 1s``.

Three families of statistics, each with its own scope:

- **requests** (scope: an endpoint or ``*``): ``p50`` ... ``p99.9``, ``max``, ``mean``
  (latency of every attempt; a filter narrows the attempts: ``ok`` the answers the journey
  expected, a status class such as ``2xx`` or ``503``, an error kind such as ``transport``),
  ``error_rate`` (failed attempts over attempts; a filter narrows the failed ones) and
  ``rate``.
- **journeys** (scope: a flow, a timed event's journeys, or ``*``): ``journey_p50`` ...
  ``journey_p99.9``, ``journey_max``, ``journey_mean`` (from a journey's intended start, open
  model, or its start, to its end), ``journey_success`` (journeys that ended as the user
  wanted, over all, dropped arrivals included), ``sessions_lost`` (journeys whose session was
  lost) and ``dropped`` (arrivals never started, open model).
- **revocation** (scope ``*``, may be left out): ``revocation_p50`` ... ``revocation_max``:
  per token revoked by a logout from all devices, the time until the service first refused it.

An ``error_rate`` counts failed attempts (``error`` not null in the records); its filter
narrows them by status or error kind, so an answer the journey expected (a 400 for a
mistyped code, a 401) is never counted. Rates are judged exactly (integer arithmetic): 7 of
100 meets ``<= 7%``.

Scenario validation, the verdict from the records (:mod:`authload.analysis.slo`), the verdict
so far on the master (:mod:`authload.load.run_state`), error budgets and capacity steps all
read SLOs through :func:`parse_slo`, so a filter or a percentile means the same everywhere.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
OPS: dict[str, Callable[[Any, Any], bool]] = {  # floats, or Fractions for exact judgements
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class ErrorFilter:
    """Which failed attempts an ``error_rate`` counts: those with an error (a kind, as the
    records name them) that also has one of ``kinds`` and a status in ``statuses``, when
    given. No constraint: every failed attempt."""

    statuses: tuple[int, int] | None = None  # inclusive
    kinds: frozenset[str] | None = None

    @property
    def any_error(self) -> bool:
        return self.statuses is None and self.kinds is None

    def selects(self, status: int, error: str | None) -> bool:
        if error is None:
            return False  # an answer the journey expected is no failure, whatever its status
        if self.kinds is not None and error not in self.kinds:
            return False
        return self.statuses is None or self.statuses[0] <= status <= self.statuses[1]


TRANSPORT_KINDS = frozenset({"timeout", "connect", "reset"})  # no answer (status 0)
ERROR_FILTERS = {
    "5xx": ErrorFilter(statuses=(500, 599)),
    "503": ErrorFilter(statuses=(503, 503)),
    "4xx": ErrorFilter(statuses=(400, 499)),
    "429": ErrorFilter(statuses=(429, 429)),
    "errors": ErrorFilter(),
    "timeout": ErrorFilter(kinds=frozenset({"timeout"})),
    "transport": ErrorFilter(kinds=TRANSPORT_KINDS),
    "contract": ErrorFilter(kinds=frozenset({"contract"})),
}
DEFAULT_FILTER = "errors"
BUDGET_FILTERS = ("5xx", "errors")  # error-rate SLOs whose count includes every 5xx


@dataclass(frozen=True)
class LatencyFilter:
    """Which attempts a latency statistic is of: the expected answers (``expected``), or a
    status range (any answer in it, expected or not), or the failed attempts of some kinds."""

    expected: bool | None = None  # True: the answers the journey expected; False: failures
    statuses: tuple[int, int] | None = None  # inclusive
    kinds: frozenset[str] | None = None

    def selects(self, status: int, error: str | None) -> bool:
        if self.expected is not None and (error is None) != self.expected:
            return False
        if self.kinds is not None and error not in self.kinds:
            return False
        return self.statuses is None or self.statuses[0] <= status <= self.statuses[1]


LATENCY_FILTERS = {
    "ok": LatencyFilter(expected=True),
    "2xx": LatencyFilter(statuses=(200, 299)),
    "4xx": LatencyFilter(statuses=(400, 499)),
    "5xx": LatencyFilter(statuses=(500, 599)),
    "503": LatencyFilter(statuses=(503, 503)),
    "429": LatencyFilter(statuses=(429, 429)),
    "errors": LatencyFilter(expected=False),
    "timeout": LatencyFilter(kinds=frozenset({"timeout"})),
    "transport": LatencyFilter(kinds=TRANSPORT_KINDS),
    "contract": LatencyFilter(kinds=frozenset({"contract"})),
}

#: Journeys of the timed events, besides the scenario's flows (a journey SLO may name them).
EVENT_JOURNEYS = ("refresh_storm", "mass_logout", "relogin")

REQUESTS, JOURNEYS, REVOCATION = "requests", "journeys", "revocation"
_LATENCY_STATS = (*PERCENTILES, "max", "mean")
_FAMILY = {
    **dict.fromkeys((*_LATENCY_STATS, "error_rate", "rate"), REQUESTS),
    **dict.fromkeys((f"journey_{s}" for s in _LATENCY_STATS), JOURNEYS),
    **dict.fromkeys(("journey_success", "sessions_lost", "dropped"), JOURNEYS),
    **dict.fromkeys((f"revocation_{s}" for s in (*PERCENTILES, "max")), REVOCATION),
}
_FILTERS: dict[str, dict[str, Any]] = {
    **dict.fromkeys(_LATENCY_STATS, LATENCY_FILTERS),
    "error_rate": ERROR_FILTERS,
}
_STATS = sorted(_FAMILY, key=len, reverse=True)  # longest first: p99.9 before p99
SLO_PATTERN = re.compile(
    rf"^\s*(?P<stat>{'|'.join(re.escape(s) for s in _STATS)})\s*"
    r"(?:\(\s*(?P<endpoint>[\w.*]+)\s*(?:,\s*(?P<filter>[\w.]+))?\s*\))?"
    r"\s*(?P<op><=|<|>=|>)\s*(?P<value>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|%|/s)?\s*$"
)
SLO_HELP = (
    "'<stat>(<scope>[, <filter>]) <op> <value><unit>': requests: "
    f"{', '.join(PERCENTILES)}, max, mean (ms or s; filters {', '.join(LATENCY_FILTERS)}), "
    f"error_rate (%; filters {', '.join(ERROR_FILTERS)}), rate (/s) of an endpoint or *; "
    "journeys: journey_p50 ... journey_p99.9, journey_max, journey_mean (ms or s), "
    "journey_success, sessions_lost, dropped (%) of a flow or *; revocation_p50 ... "
    "revocation_p99.9, revocation_max (ms or s); e.g. 'p99(gigma.login, ok) < 800ms', "
    "'error_rate(*, 5xx) < 1%', 'journey_p95(sms) < 3s', 'dropped(*) < 0.1%', "
    "'revocation_p99 < 1s'"
)
_PERCENT_STATS = {"error_rate", "journey_success", "sessions_lost", "dropped"}
_LATENCY_UNITS = {"ms", "s"}


def _units(stat: str) -> set[str]:
    if stat in _PERCENT_STATS:
        return {"%"}
    return {"/s"} if stat == "rate" else _LATENCY_UNITS


@dataclass(frozen=True)
class SloSpec:
    """One parsed SLO. ``threshold`` is in the unit the stat is measured in: ms for
    latencies (``800ms``, ``0.8s`` -> 800), percent for error rates, per second for rates."""

    text: str
    stat: str
    endpoint: str  # the scope: an endpoint (requests), a flow (journeys), or "*"
    filter: str | None
    op: str
    value: float  # as written
    unit: str | None

    @property
    def family(self) -> str:
        """``requests``, ``journeys`` or ``revocation``: what the statistic is of."""
        return _FAMILY[self.stat]

    @property
    def latency_filter(self) -> LatencyFilter | None:
        """The attempts a request latency statistic is of; None: every attempt."""
        return LATENCY_FILTERS[self.filter] if self.filter and self.is_latency else None

    @property
    def quantile(self) -> float | None:
        """The percentile a latency statistic reads (``max``: 1.0); None for the others."""
        base = self.stat.removeprefix("journey_").removeprefix("revocation_")
        if base in PERCENTILES:
            return PERCENTILES[base]
        return 1.0 if base == "max" else None

    @property
    def threshold(self) -> float:
        return self.value * (1000.0 if self.unit == "s" else 1.0)

    @property
    def error_filter(self) -> ErrorFilter:
        return ERROR_FILTERS[self.filter or DEFAULT_FILTER]

    @property
    def is_latency(self) -> bool:
        return self.stat in PERCENTILES or self.stat in ("max", "mean")

    def met(self, measured: float) -> bool:
        return OPS[self.op](measured, self.threshold)

    def error_rate_met(self, failed: int, attempts: int) -> bool:
        """Whether ``failed`` of ``attempts`` (> 0) meets this percentage SLO (an error rate,
        a share of journeys), exactly: no rounding of the rate decides at the threshold."""
        if attempts <= 0:
            raise ValueError("a share of nothing is undefined")
        rate = Fraction(failed * 100, attempts)
        return OPS[self.op](rate, Fraction(repr(self.value)))

    def budget_ratio(self) -> float | None:
        """The error ratio an ``error_rate(..) < X%`` SLO that counts every 5xx allows."""
        if self.stat != "error_rate" or self.op not in ("<", "<="):
            return None
        if (self.filter or DEFAULT_FILTER) not in BUDGET_FILTERS:
            return None
        return self.value / 100.0

    @property
    def is_share(self) -> bool:
        """A percentage judged exactly (:meth:`error_rate_met`)."""
        return self.stat in _PERCENT_STATS

    def scoped(self, endpoint: str) -> SloSpec:
        """The same objective on one endpoint (for an SLO over ``*``)."""
        inner = f"{endpoint}, {self.filter}" if self.filter else endpoint
        text = f"{self.stat}({inner}) {self.op} {self.value:g}{self.unit or ''}"
        return replace(self, text=text, endpoint=endpoint)


def parse_slo(text: str) -> SloSpec:
    """Parse one SLO and check its unit and filter; ValueError says what is allowed.
    (Scenario files also check the scope is one of the contracts' endpoints or flows.)"""
    match = SLO_PATTERN.match(text)
    if match is None:
        raise ValueError(f"not an SLO: {text!r}; write {SLO_HELP}")
    stat, unit, scope, filter_name = (
        match["stat"],
        match["unit"],
        match["endpoint"],
        match["filter"],
    )
    wanted = _units(stat)
    if unit not in wanted:
        raise ValueError(f"{stat} is measured in {' or '.join(sorted(wanted))}, not {unit!r}")
    if scope is None and _FAMILY[stat] != REVOCATION:
        raise ValueError(f"{stat} needs a scope in parentheses: {stat}(<name or *>)")
    if _FAMILY[stat] == REVOCATION and scope not in (None, "*"):
        raise ValueError(f"{stat} is over every revoked token: write {stat}(*) or {stat}")
    allowed = _FILTERS.get(stat, {})
    if filter_name is not None and filter_name not in allowed:
        choices = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"{stat} takes no filter {filter_name!r}; allowed: {choices}")
    return SloSpec(
        text.strip(),
        stat,
        scope or "*",
        filter_name,
        match["op"],
        float(match["value"]),
        unit,
    )
