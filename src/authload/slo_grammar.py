"""The SLO grammar, defined once: ``<stat>(<endpoint or *>[, <filter>]) <op> <number><unit>``,
e.g. ``p99(gigma.login) < 800ms`` or ``error_rate(*, 5xx) < 1%``.

An ``error_rate`` counts failed attempts (``error`` not null in the records, a failure in
Locust's statistics) over all attempts; a filter narrows the failed attempts by their status
or error kind, so an answer the journey expected (a 400 for a mistyped code, a 401) is never
counted. It is judged exactly (integer arithmetic): 7 of 100 meets ``<= 7%``.

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

_STATS = (*PERCENTILES, "max", "mean", "error_rate", "rate")
SLO_PATTERN = re.compile(
    rf"^\s*(?P<stat>{'|'.join(re.escape(s) for s in _STATS)})\s*"
    rf"\(\s*(?P<endpoint>[\w.*]+)\s*(?:,\s*(?P<filter>{'|'.join(ERROR_FILTERS)}))?\s*\)"
    r"\s*(?P<op><=|<|>=|>)\s*(?P<value>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|%|/s)?\s*$"
)
SLO_HELP = (
    f"'<stat>(<endpoint>|*[, {'|'.join(ERROR_FILTERS)}]) <op> <value><unit>', "
    f"stat one of {', '.join(PERCENTILES)}, max, mean (ms or s), error_rate (%), rate (/s); "
    "e.g. 'p99(gigma.login) < 800ms', 'error_rate(*, 5xx) < 1%'"
)
_UNITS = {"error_rate": {"%"}, "rate": {"/s"}}
_LATENCY_UNITS = {"ms", "s"}


@dataclass(frozen=True)
class SloSpec:
    """One parsed SLO. ``threshold`` is in the unit the stat is measured in: ms for
    latencies (``800ms``, ``0.8s`` -> 800), percent for error rates, per second for rates."""

    text: str
    stat: str
    endpoint: str  # an endpoint name or "*"
    filter: str | None
    op: str
    value: float  # as written
    unit: str | None

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
        """Whether ``failed`` of ``attempts`` (> 0) meets this ``error_rate`` SLO, exactly:
        no rounding of the rate decides at the threshold."""
        if attempts <= 0:
            raise ValueError("an error rate of no attempts is undefined")
        rate = Fraction(failed * 100, attempts)
        return OPS[self.op](rate, Fraction(repr(self.value)))

    def budget_ratio(self) -> float | None:
        """The error ratio an ``error_rate(..) < X%`` SLO that counts every 5xx allows."""
        if self.stat != "error_rate" or self.op not in ("<", "<="):
            return None
        if (self.filter or DEFAULT_FILTER) not in BUDGET_FILTERS:
            return None
        return self.value / 100.0

    def scoped(self, endpoint: str) -> SloSpec:
        """The same objective on one endpoint (for an SLO over ``*``)."""
        inner = f"{endpoint}, {self.filter}" if self.filter else endpoint
        text = f"{self.stat}({inner}) {self.op} {self.value:g}{self.unit or ''}"
        return replace(self, text=text, endpoint=endpoint)


def parse_slo(text: str) -> SloSpec:
    """Parse one SLO and check its unit; ValueError says what is allowed. (Scenario files
    also check the endpoint is one of the contracts'.)"""
    match = SLO_PATTERN.match(text)
    if match is None:
        raise ValueError(f"not an SLO: {text!r}; write {SLO_HELP}")
    stat, unit = match["stat"], match["unit"]
    wanted = _UNITS.get(stat, _LATENCY_UNITS)
    if unit not in wanted:
        raise ValueError(f"{stat} is measured in {' or '.join(sorted(wanted))}, not {unit!r}")
    return SloSpec(
        text.strip(),
        stat,
        match["endpoint"],
        match["filter"],
        match["op"],
        float(match["value"]),
        unit,
    )
