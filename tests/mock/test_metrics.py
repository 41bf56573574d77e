"""The mock's metrics in one process: counts held back between reads show exactly what
counting each one at once would have shown."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from authload import metric_names as names
from authload.mock.metrics import MockMetrics


def _lines(exposition: bytes, metric: str) -> list[str]:
    return [
        line
        for line in exposition.decode().splitlines()
        if line.startswith(metric) and "_created" not in line
    ]


def _split_sum(lines: list[str]) -> tuple[list[str], float]:
    """The lines but the sum's, and the sum."""
    (total,) = [line for line in lines if "_sum{" in line]
    return [line for line in lines if line != total], float(total.rsplit(" ", 1)[1])


def _latencies(rng: random.Random, n: int) -> list[float]:
    """Latencies in every bucket, on every bound and past the last one."""
    bounds = list(names.LATENCY_BUCKETS)
    drawn = [rng.uniform(0, bounds[-1] * 1.5) for _ in range(n)]
    return drawn + bounds + [0.0, bounds[-1] * 10]


def test_held_latencies_expose_as_observed_one_by_one() -> None:
    metrics = MockMetrics()
    assert metrics.deferred
    registry = CollectorRegistry()
    truth = Histogram(
        names.MOCK_LATENCY,
        "reference",
        [names.ENDPOINT],
        buckets=names.LATENCY_BUCKETS,
        registry=registry,
    )
    rng = random.Random(7)
    for read in range(3):  # observations on both sides of each read add up
        for seconds in _latencies(rng, 500):
            metrics.answered("gigma.login", 200, seconds)
            truth.labels("gigma.login").observe(seconds)
        exposed = _split_sum(_lines(metrics.exposition(), names.MOCK_LATENCY))
        expected = _split_sum(_lines(generate_latest(registry), names.MOCK_LATENCY))
        assert exposed[0] == expected[0], read  # every bucket and the count: exact
        # the sum: the same numbers added in another order (rounding apart)
        assert exposed[1] == pytest.approx(expected[1], rel=1e-12), read
    exposed = exposed[0]
    each = 500 + len(names.LATENCY_BUCKETS) + 2
    assert f'{names.MOCK_LATENCY}_count{{endpoint="gigma.login"}} {3.0 * each}' in exposed


def test_in_flight_is_what_is_being_served_when_read() -> None:
    metrics = MockMetrics()
    for _ in range(3):
        metrics.serving("gigma.login", 1)
    metrics.serving("mobile.refresh", 1)
    metrics.serving("gigma.login", -1)
    text = metrics.exposition().decode()
    assert f'{names.MOCK_IN_FLIGHT}{{endpoint="gigma.login"}} 2.0' in text
    assert f'{names.MOCK_IN_FLIGHT}{{endpoint="mobile.refresh"}} 1.0' in text
    metrics.serving("gigma.login", -1)
    metrics.serving("gigma.login", -1)
    metrics.serving("mobile.refresh", -1)
    text = metrics.exposition().decode()
    assert f'{names.MOCK_IN_FLIGHT}{{endpoint="gigma.login"}} 0.0' in text
    assert f'{names.MOCK_IN_FLIGHT}{{endpoint="mobile.refresh"}} 0.0' in text


def test_issued_counts_sessions_and_the_evictions_they_caused() -> None:
    metrics = MockMetrics()
    for evicted in (0, 0, 1, 1, 3):
        metrics.issued("gigma", evicted)
    metrics.issued("mobile")
    events = metrics.snapshot()["events"]
    assert events["tokens_issued.gigma"] == 5
    assert events["sessions_evicted.gigma"] == 5
    assert events["tokens_issued.mobile"] == 1
    assert events.get("sessions_evicted.mobile", 0) == 0
