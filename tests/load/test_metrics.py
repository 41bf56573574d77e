"""The client-side Prometheus exporter, and the Prometheus config and rules under
``dashboards/prometheus``.

Importing Locust monkey-patches the process with gevent, so the exporter's tests that need
Locust's ``Environment`` run a ``child_*`` function of this module in a fresh interpreter
that imports Locust first (as in tests/load/test_recorder.py) and print what was exported.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from authload import metric_names as names
from authload.load.metrics_endpoint import (
    HOST_ENV,
    LINGER_ENV,
    PORT_ENV,
    PORT_MODE_ENV,
    host_from_env,
    linger_from_env,
    port_from_env,
    port_mode_from_env,
    process_port,
)
from authload.load.run_state import error_budgets
from tests.helpers import locust_child
from tests.helpers.tools import tool_path

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "dashboards" / "prometheus"


def run_child(main: str, *args: str) -> subprocess.CompletedProcess[str]:
    return locust_child.run_child(__name__, main, *args)


class FakeResponse:
    def __init__(self, status_code: int | None) -> None:
        self.status_code = status_code


def fake_runtime() -> Any:
    """What the exporter reads of authload's Runtime: outcomes, retry stats, the scenario."""
    from authload.load.retry import RetryStats
    from authload.scenario.model import Load, Stage

    load = Load(model="open", stages=[Stage(duration_s=60, rate=10), Stage(duration_s=60, rate=4)])
    return SimpleNamespace(
        state=SimpleNamespace(outcomes=Counter[str](), durations=deque([("sms", 2.5)])),
        policy=SimpleNamespace(stats=RetryStats()),
        arrivals=SimpleNamespace(counts=SimpleNamespace(waited=2)),
        scenario=SimpleNamespace(load=load, mix={"sms": 1.0, "esia": 1.0}),
        share=lambda: (0, 2),
    )


SCENARIO = "smoke"
RUN = "20250101T000000Z-smoke"
RUN_LABELS = {"scenario": SCENARIO, "run": RUN}


def fake_config(scenario: str = SCENARIO, run: str = RUN, slos: tuple[str, ...] = ()) -> Any:
    """What the exporter reads of the run's configuration."""
    from authload.scenario.model import Load, Stage

    load = Load(stages=[Stage(duration_s=60, users=2), Stage(duration_s=60, users=4)])
    return SimpleNamespace(
        scenario=SimpleNamespace(name=scenario, slos=list(slos), load=load),
        run_dir=Path("/runs") / run,
        target="mock",
    )


def key(name: str, **labels: str) -> str:
    """A sample's key as :func:`samples` writes it, with the run's identity labels."""
    labels = {**RUN_LABELS, **labels}
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def samples(registry: Any) -> dict[str, float]:
    """Every sample as ``name{label="value",...}`` (labels sorted) -> value."""
    out: dict[str, float] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def child_exporter(port: str) -> None:
    """Fire request events of each kind, sample a fake runtime twice, serve, quit (the
    server lingers a second when Locust quits)."""
    import gevent
    from locust.env import Environment
    from locust.event import Events
    from locust.exception import CatchResponseError
    from prometheus_client import CollectorRegistry

    from authload.errors import ContractError
    from authload.load import metrics

    environment = Environment(events=Events())
    registry = CollectorRegistry()
    rt = fake_runtime()
    clock = [1000.0]
    exporter = metrics.register(
        environment,
        registry,
        int(port),
        runtime=lambda: rt,
        config=fake_config,
        mode="offset",
        host="127.0.0.1",
        linger_s=1.0,
    )
    exporter._clock = lambda: clock[0]
    environment.events.test_start.fire(environment=environment)

    def fire(**overrides: Any) -> None:
        meta: dict[str, Any] = {
            "request_type": "POST",
            "name": "gigma.login",
            "response_time": 42.0,
            "response_length": 120,
            "response": FakeResponse(200),
            "context": {},
            "exception": None,
            "start_time": 1.7e9,
            "url": "http://127.0.0.1:1/counterparty/login",
        }
        environment.events.request.fire(**{**meta, **overrides})

    fire()
    fire(response_time=300.0)
    fire(context=None, start_time=None)
    fire(response=FakeResponse(503), exception=CatchResponseError("503"), context={"error": "http"})
    fire(response=FakeResponse(503), exception=CatchResponseError("503"))
    fire(response=FakeResponse(200), context={"error": "contract"})
    fire(response=FakeResponse(200), exception=ContractError("gigma.login", "bad body"))
    fire(name="mobile.refresh", response=FakeResponse(None), exception=TimeoutError("timed out"))
    fire(name="mobile.refresh", response=None, exception=ConnectionRefusedError(111, "refused"))
    fire(name="mobile.refresh", response=FakeResponse(0), exception=ConnectionResetError(104, "x"))
    fire(name="mobile.refresh", response=FakeResponse(401), exception=CatchResponseError("401"))

    exporter.started = 1000.0
    rt.state.outcomes.update(
        {
            "sms:completed": 5,
            "sms:session_lost:rotation": 2,
            "refresh_storm:session_lost:invalid": 1,
            "gigma_login:token_lost": 1,
            "dropped_arrivals": 3,
        }
    )
    rt.policy.stats.retries, rt.policy.stats.throttled = 4, 1
    exporter.sample(environment)
    first = samples(registry)
    rt.state.outcomes.update({"sms:completed": 2, "esia:completed": 1, "dropped_arrivals": 1})
    rt.policy.stats.retries = 6
    clock[0] = 1070.0  # the second stage
    exporter.sample(environment)
    exporter.sample(environment)  # nothing new: the counters stay
    served = ""
    for _ in range(100):  # the sampling greenlet starts the server
        gevent.sleep(0.05)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                served = answer.read().decode()
            break
        except urllib.error.URLError:
            continue

    # a scrape from another process while the server lingers, and a greenlet due meanwhile
    scraper = subprocess.Popen(
        [sys.executable, "-c", SCRAPE_LATER, f"http://127.0.0.1:{port}/metrics"],
        stdout=subprocess.PIPE,
        text=True,
    )
    gevent.sleep(0.1)
    ran: list[float] = []
    gevent.spawn_later(0.2, lambda: ran.append(time.monotonic()))
    quit_started = time.monotonic()
    environment.events.quitting.fire(environment=environment)  # the values final; linger
    quit_ended = time.monotonic()
    lingered = quit_ended - quit_started
    fire(name="gigma.logout")  # after quitting: not counted
    scraped, _ = scraper.communicate(timeout=10)
    gevent.sleep(0.3)
    exporter.close()  # (a Locust process exits instead)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).close()
        closed = False
    except urllib.error.URLError:
        closed = True
    result = {
        "first": first,
        "last": samples(registry),
        "served": served,
        "closed": closed,
        "lingered": lingered,
        "scraped_while_lingering": scraped,
        "frozen": bool(ran) and ran[0] >= quit_ended,  # nothing else ran while it lingered
    }
    print(json.dumps(result))


SCRAPE_LATER = """
import sys, time, urllib.request
time.sleep(0.5)
with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:
    print(answer.read().decode())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def exported() -> dict[str, Any]:
    child = run_child("child_exporter", str(free_port()))
    assert child.returncode == 0, child.stderr
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.integration  # one Locust child, which serves /metrics on 127.0.0.1
def test_requests_are_counted_by_endpoint_and_status(exported: dict[str, Any]) -> None:
    got = exported["last"]
    requests = {k: v for k, v in got.items() if k.startswith("authload_requests_total")}
    total = "authload_requests_total"
    assert requests == {
        key(total, endpoint="gigma.login", status="200"): 5.0,
        key(total, endpoint="gigma.login", status="503"): 2.0,
        key(total, endpoint="mobile.refresh", status="0"): 3.0,
        key(total, endpoint="mobile.refresh", status="401"): 1.0,
    }


@pytest.mark.integration
def test_latency_is_a_histogram_in_seconds(exported: dict[str, Any]) -> None:
    got = exported["last"]
    hist = "authload_request_duration_seconds"
    login = {"endpoint": "gigma.login"}
    assert got[key(f"{hist}_count", **login)] == 7.0
    assert got[key(f"{hist}_sum", **login)] == pytest.approx(0.552)
    assert got[key(f"{hist}_bucket", **login, le="0.05")] == 6.0
    assert got[key(f"{hist}_bucket", **login, le="0.25")] == 6.0
    assert got[key(f"{hist}_bucket", **login, le="0.4")] == 7.0
    buckets = [k for k in got if k.startswith(f"{hist}_bucket") and 'endpoint="gigma.login"' in k]
    assert len(buckets) == len(names.LATENCY_BUCKETS) + 1  # and +Inf
    assert not any("quantile" in k for k in got)  # never percentiles


@pytest.mark.integration
def test_errors_are_counted_by_kind(exported: dict[str, Any]) -> None:
    errors = {k: v for k, v in exported["last"].items() if k.startswith("authload_errors_total")}
    name = "authload_errors_total"
    assert errors == {
        key(name, endpoint="gigma.login", kind="http"): 2.0,
        key(name, endpoint="gigma.login", kind="contract"): 2.0,
        key(name, endpoint="mobile.refresh", kind="timeout"): 1.0,
        key(name, endpoint="mobile.refresh", kind="connect"): 1.0,
        key(name, endpoint="mobile.refresh", kind="reset"): 1.0,
        key(name, endpoint="mobile.refresh", kind="http"): 1.0,
    }


def runtime_samples(got: dict[str, float]) -> dict[str, float]:
    prefixes = (
        "authload_requests",
        "authload_request_duration",
        "authload_errors",
        "authload_journey_duration",
    )
    return {k: v for k, v in got.items() if not k.startswith(prefixes)}


@pytest.mark.integration
def test_runtime_state_is_exported_as_counters_of_its_increase(
    exported: dict[str, Any],
) -> None:
    first = exported["first"]  # the journey that ended (sms, 2.5 s) went into the histogram
    assert first[key("authload_journey_duration_seconds_count", flow="sms")] == 1.0
    assert first[key("authload_journey_duration_seconds_sum", flow="sms")] == 2.5
    assert first[key("authload_journey_duration_seconds_bucket", flow="sms", le="2.0")] == 0.0
    assert first[key("authload_journey_duration_seconds_bucket", flow="sms", le="3.0")] == 1.0
    assert runtime_samples(exported["first"]) == {  # no runner here: no users
        key("authload_retries_total"): 4.0,
        key("authload_retries_throttled_total"): 1.0,
        key("authload_flow_outcomes_total", flow="sms", outcome="completed"): 5.0,
        key("authload_flow_outcomes_total", flow="sms", outcome="session_lost:rotation"): 2.0,
        key(
            "authload_flow_outcomes_total", flow="refresh_storm", outcome="session_lost:invalid"
        ): 1.0,
        key("authload_flow_outcomes_total", flow="gigma_login", outcome="token_lost"): 1.0,
        key("authload_journeys_total"): 7.0,  # sms journeys: the mix's flows only
        key("authload_sessions_lost_total", reason="rotation"): 2.0,
        key("authload_sessions_lost_total", reason="invalid"): 1.0,
        key("authload_sessions_lost_total", reason="token_lost"): 1.0,
        key("authload_dropped_arrivals_total"): 3.0,
        key("authload_arrivals_waited_total"): 2.0,
        key("authload_target_arrival_rate"): 5.0,  # 10/s shared by 2 processes
    }
    last = runtime_samples(exported["last"])
    assert last[key("authload_retries_total")] == 6.0
    assert last[key("authload_flow_outcomes_total", flow="sms", outcome="completed")] == 7.0
    assert last[key("authload_flow_outcomes_total", flow="esia", outcome="completed")] == 1.0
    assert last[key("authload_journeys_total")] == 10.0
    assert last[key("authload_dropped_arrivals_total")] == 4.0
    assert last[key("authload_target_arrival_rate")] == 2.0  # second stage: 4/s shared by 2


@pytest.mark.integration
def test_the_registry_is_served_on_the_port(exported: dict[str, Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    served = {
        key(s.name, **{k: v for k, v in s.labels.items() if k not in RUN_LABELS}): s.value
        for family in text_string_to_metric_families(exported["served"])
        for s in family.samples
        if s.labels.keys() >= RUN_LABELS.keys()
    }
    assert served[key("authload_requests_total", endpoint="gigma.login", status="200")] == 5.0
    assert served[key("authload_target_arrival_rate")] == 2.0
    lingering = list(text_string_to_metric_families(exported["scraped_while_lingering"]))
    final = [s for f in lingering for s in f.samples if s.name == "authload_requests_total"]
    assert sum(s.value for s in final) == 11.0, "the final values, while lingering"
    assert exported["frozen"], "another greenlet ran while the metrics lingered"
    assert 1.0 <= exported["lingered"] < 5.0
    assert exported["closed"], "the server still answers once closed"


class WorkerRunner:  # named as Locust's: the port scheme goes by the runner's class
    def __init__(self, index: int) -> None:
        self.worker_index = index


class MasterRunner:
    pass


def test_each_process_has_its_own_port(monkeypatch: pytest.MonkeyPatch) -> None:
    def env(runner: object) -> Any:
        return SimpleNamespace(runner=runner)

    assert process_port(env(MasterRunner()), 9646) == 9646
    assert process_port(env(None), 9646) == 9646  # a local run
    assert process_port(env(WorkerRunner(0)), 9646) == 9647
    assert process_port(env(WorkerRunner(1)), 9646) == 9648
    assert process_port(env(WorkerRunner(-1)), 9646) is None  # index not known yet
    monkeypatch.delenv(PORT_ENV, raising=False)
    assert port_from_env() is None
    monkeypatch.setenv(PORT_ENV, "9646")
    assert port_from_env() == 9646
    monkeypatch.setenv(PORT_ENV, "nine")
    with pytest.raises(ValueError, match=PORT_ENV):
        port_from_env()


def test_fixed_port_mode_serves_every_process_on_the_base_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def env(runner: object) -> Any:
        return SimpleNamespace(runner=runner)

    for runner in (MasterRunner(), None, WorkerRunner(0), WorkerRunner(3), WorkerRunner(-1)):
        assert process_port(env(runner), 9647, "fixed") == 9647
    monkeypatch.delenv(PORT_MODE_ENV, raising=False)
    assert port_mode_from_env() == "offset"
    monkeypatch.setenv(PORT_MODE_ENV, "fixed")
    assert port_mode_from_env() == "fixed"
    monkeypatch.setenv(PORT_MODE_ENV, "random")
    with pytest.raises(ValueError, match="offset, fixed"):
        port_mode_from_env()


def test_host_and_linger_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOST_ENV, raising=False)
    assert host_from_env() == "127.0.0.1"
    monkeypatch.setenv(HOST_ENV, "0.0.0.0")
    assert host_from_env() == "0.0.0.0"
    monkeypatch.delenv(LINGER_ENV, raising=False)
    assert linger_from_env() == 10.0  # twice the shipped scrape interval
    monkeypatch.setenv(LINGER_ENV, "0")
    assert linger_from_env() == 0.0
    monkeypatch.setenv(LINGER_ENV, "2.5")
    assert linger_from_env() == 2.5
    for bad in ("-1", "soon", "nan"):
        monkeypatch.setenv(LINGER_ENV, bad)
        with pytest.raises(ValueError, match=LINGER_ENV):
            linger_from_env()


def child_identity() -> None:
    """A remote worker: no configuration until its master sends it, then a second run."""
    from locust.env import Environment
    from locust.event import Events
    from prometheus_client import CollectorRegistry

    from authload.load import metrics

    environment = Environment(events=Events())
    registry = CollectorRegistry()
    current: list[Any] = [None]
    metrics.register(
        environment,
        registry,
        runtime=lambda: None,
        config=lambda: current[0],
        mode="offset",
        host="127.0.0.1",
        linger_s=0,
    )

    def fire(name: str) -> None:
        environment.events.request.fire(
            request_type="POST",
            name=name,
            response_time=5.0,
            response_length=2,
            response=FakeResponse(200),
            context={},
            exception=None,
        )

    fire("gigma.login")  # a plain locust file: no configuration at all
    current[0] = fake_config("first", "run-1")  # the master's message arrives
    environment.events.test_start.fire(environment=environment)
    fire("gigma.login")
    fire("gigma.login")
    current[0] = fake_config("second", "run-2")  # the same process in another run
    fire("gigma.login")  # the first run's test is still the current one
    environment.events.test_start.fire(environment=environment)
    fire("gigma.login")
    environment.events.quitting.fire(environment=environment)
    print(json.dumps(samples(registry)))


@pytest.mark.integration
def test_the_run_identity_is_taken_when_the_test_starts() -> None:
    child = run_child("child_identity")
    assert child.returncode == 0, child.stderr
    got = json.loads(child.stdout.strip().splitlines()[-1])
    requests = {k: v for k, v in got.items() if k.startswith("authload_requests_total")}
    series = 'authload_requests_total{endpoint="gigma.login",run="%s",scenario="%s",status="200"}'
    assert requests == {
        series % ("", ""): 1.0,
        series % ("run-1", "first"): 3.0,
        series % ("run-2", "second"): 1.0,
    }


def child_run_state() -> None:
    """The master's run state from Locust's own aggregated stats."""
    from locust.exception import CatchResponseError
    from locust.stats import RequestStats
    from prometheus_client import CollectorRegistry

    from authload.load.run_state import RunState, slo_met
    from authload.scenario.model import Load, Stage

    stats = RequestStats()
    for ms in [100] * 36 + [900] * 3 + [3000]:  # gigma.login: p95 900 ms, max 3 s
        stats.log_request("POST", "gigma.login", ms, 10)
    for _ in range(4):  # 4 of 40 failed with 503: 10% of 5xx
        stats.log_error("POST", "gigma.login", CatchResponseError("gigma.login: http (status 503)"))
    # as a master receives them from its workers: the error's repr, as text
    stats.log_error("POST", "gigma.login", "CatchResponseError('gigma.login: http (status 401)')")
    for ms in [5] * 9 + [10_000]:
        stats.log_request("POST", "mobile.refresh", ms, 10)
    stats.log_error(
        "POST", "mobile.refresh", "CatchResponseError('mobile.refresh: timeout (status 0)')"
    )
    slos = [
        "p95(gigma.login) < 1s",  # met: 900 ms
        "p95(gigma.login) < 800ms",  # broken
        "max(gigma.login) <= 3s",  # met
        "mean(gigma.login) < 200ms",  # broken: 232.5 ms
        "error_rate(gigma.login, 5xx) < 25%",  # met: 10%
        "error_rate(gigma.login, 503) < 5%",  # broken
        "error_rate(gigma.login, 4xx) < 10%",  # met: 2.5%
        "error_rate(gigma.login) < 15%",  # met: 5 of 40 failed
        "error_rate(mobile.refresh, timeout) < 5%",  # broken: 10%
        "error_rate(mobile.refresh, transport) < 10%",  # broken: exactly 10%
        "error_rate(mobile.refresh, transport) <= 10%",  # met: exactly 10%
        "error_rate(gigma.login, transport) < 0.1%",  # met: 503s and a 401, no timeout
        "error_rate(*, contract) < 0.1%",  # met
        "rate(*) > 4/s",  # met: 50 in 10 s
        "p99(mobile.phone_verify) < 1ms",  # no request yet: nothing broken so far
    ]
    verdicts = {slo: slo_met(slo, stats, 10.0) for slo in slos}
    registry = CollectorRegistry()
    state = RunState(registry)
    load = Load(stages=[Stage(duration_s=5, users=2), Stage(duration_s=60, users=4)])
    config = SimpleNamespace(
        scenario=SimpleNamespace(
            name="gate", slos=["p95(gigma.login) < 1s", "error_rate(*, 5xx) < 1%"], load=load
        ),
        run_dir=Path("/runs/r1"),
        target="mock",
    )
    environment = SimpleNamespace(runner=SimpleNamespace(user_count=6), stats=stats)
    state.sample(environment, config, started=100.0, now=107.0)  # type: ignore[arg-type]
    during = samples(registry)
    environment.runner.user_count = 0
    state.sample(environment, config, started=None, now=200.0)  # type: ignore[arg-type]
    print(json.dumps({"verdicts": verdicts, "during": during, "after": samples(registry)}))


@pytest.mark.integration
def test_the_master_exports_the_run_state_and_the_verdict_so_far() -> None:
    child = run_child("child_run_state")
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["verdicts"] == {
        "p95(gigma.login) < 1s": True,
        "p95(gigma.login) < 800ms": False,
        "max(gigma.login) <= 3s": True,
        "mean(gigma.login) < 200ms": False,
        "error_rate(gigma.login, 5xx) < 25%": True,
        "error_rate(gigma.login, 503) < 5%": False,
        "error_rate(gigma.login, 4xx) < 10%": True,
        "error_rate(gigma.login) < 15%": True,
        "error_rate(mobile.refresh, timeout) < 5%": False,
        "error_rate(mobile.refresh, transport) < 10%": False,
        "error_rate(mobile.refresh, transport) <= 10%": True,
        "error_rate(gigma.login, transport) < 0.1%": True,
        "error_rate(*, contract) < 0.1%": True,
        "rate(*) > 4/s": True,
        "p99(mobile.phone_verify) < 1ms": True,
    }
    run = 'run="r1",scenario="gate"'
    during = result["during"]
    assert during[f'authload_run_info{{{run},target="mock"}}'] == 1.0
    assert during[f"authload_run_stage{{{run}}}"] == 1.0  # 7 s in: the second stage
    assert during[f"authload_run_users{{{run}}}"] == 6.0
    assert during[f'authload_slo_passing{{{run},slo="p95(gigma.login) < 1s"}}'] == 1.0
    assert during[f'authload_slo_passing{{{run},slo="error_rate(*, 5xx) < 1%"}}'] == 0.0
    assert during[f"authload_run_passing{{{run}}}"] == 0.0
    budgets = {k: v for k, v in during.items() if k.startswith("authload_slo_error_budget")}
    assert len(budgets) == 9 and set(budgets.values()) == {0.01}  # every endpoint
    after = result["after"]
    assert after[f"authload_run_stage{{{run}}}"] == 1.0  # the last stage it was in
    assert after[f"authload_run_users{{{run}}}"] == 0.0
    assert after[f'authload_run_info{{{run},target="mock"}}'] == 1.0


def test_error_budgets_come_from_the_error_rate_slos_that_bound_the_5xx() -> None:
    budgets = error_budgets(
        [
            "error_rate(*, 5xx) < 1%",
            "error_rate(gigma.login) <= 0.5%",  # errors: every 5xx is one
            "error_rate(gigma.logout, 5xx) < 2%",  # looser than * : * wins
            "error_rate(mobile.refresh, 503) < 0.1%",  # 503 only: bounds no other 5xx
            "error_rate(mobile.refresh, 4xx) < 0.1%",
            "error_rate(mobile.esia_url, 5xx) > 0.1%",  # not a budget
            "p99(mobile.refresh) < 1s",
        ]
    )
    assert budgets == {
        "gigma.send_password": 0.01,
        "gigma.login": 0.005,
        "gigma.logout": 0.01,
        "mobile.esia_url": 0.01,
        "mobile.esia_auth": 0.01,
        "mobile.lkfl_auth": 0.01,
        "mobile.phone_request": 0.01,
        "mobile.phone_verify": 0.01,
        "mobile.refresh": 0.01,
    }
    assert error_budgets(["error_rate(mobile.refresh, 5xx) < 5%"]) == {"mobile.refresh": 0.05}
    assert error_budgets([]) == {}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool_path("promtool"), *args],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "config", "prometheus-compose.yml"),
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules_test.yml"),
    ],
    ids=["check-config", "check-compose-config", "check-rules", "test-rules"],
)
@pytest.mark.tools("promtool")
def test_promtool(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def rules_file() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load((PROMETHEUS / "rules.yml").read_text(encoding="utf-8"))
    return rules


def test_every_rule_and_alert_has_a_unit_test() -> None:
    rules = rules_file()
    tests = yaml.safe_load((PROMETHEUS / "rules_test.yml").read_text(encoding="utf-8"))
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested_exprs = " ".join(
        t["expr"] for case in tests["tests"] for t in case.get("promql_expr_test", [])
    )
    tested_alerts = {
        t["alertname"]
        for case in tests["tests"]
        for t in case.get("alert_rule_test", [])
        if t["exp_alerts"]  # firing at least once, not only silent
    }
    assert {
        r for r in recorded if not re.search(rf"(?<![\w:]){re.escape(r)}\b", tested_exprs)
    } == set()
    assert alerts - tested_alerts == set()


def test_client_aggregations_keep_the_run_identity() -> None:
    """Every aggregation of the client-side metrics keeps scenario and run, so that runs
    sharing a Prometheus never mix."""
    for group in rules_file()["groups"]:
        for rule in group["rules"]:
            for clause in re.findall(r"\b(?:sum|count|avg|max|min) by \(([^)]*)\)", rule["expr"]):
                labels = {label.strip() for label in clause.split(",")}
                assert {"scenario", "run"} <= labels, (rule.get("record") or rule["alert"], clause)


def known_names() -> set[str]:
    values = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    return {v for v in values if v.startswith("authload_")}


def used_names(text: str) -> set[str]:
    """The authload metric names in a PromQL expression (label values are not names)."""
    return set(re.findall(r"(?<![\w:])authload_\w+", re.sub(r'"[^"]*"', '""', text)))


def test_rules_and_config_use_only_names_from_metric_names() -> None:
    rules = rules_file()
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    expressions = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    suffixes = ("_total", "_bucket", "_sum", "_count")
    known = known_names()
    used = set().union(*map(used_names, expressions))
    assert used, "no authload metric in the rules?"
    unknown = {
        n for n in used if n not in known and not any(n.removesuffix(s) in known for s in suffixes)
    }
    assert not unknown, f"not in authload.metric_names: {sorted(unknown)}"
    for name in recorded:  # level:metric:operations, named after the metric it derives from
        assert any(k in name for k in known), name
    jobs = {"authload_mock", "authload_master", "authload_workers", "authload_pushgateway"}
    for name in ("prometheus.yml", "prometheus-compose.yml"):
        config = (PROMETHEUS / name).read_text(encoding="utf-8")
        assert {j["job_name"] for j in yaml.safe_load(config)["scrape_configs"]} == jobs, name
        # no metric names in the scrape configs, only jobs (and the pushed runs' job)
        assert used_names(config) <= jobs | {names.PUSH_JOB}, name


def test_the_mock_is_scraped_where_it_serves_metrics() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["authload_mock"]["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    assert jobs["authload_mock"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["authload_master"]["static_configs"][0]["targets"] == ["127.0.0.1:9646"]
    workers = jobs["authload_workers"]["static_configs"][0]["targets"]
    assert workers == ["127.0.0.1:9647", "127.0.0.1:9648"]
    pushgateway = jobs["authload_pushgateway"]
    assert pushgateway["static_configs"][0]["targets"] == ["127.0.0.1:9091"]
    assert pushgateway["honor_labels"] is True  # the pushed job and grouping labels stay
    assert config["rule_files"] == ["rules.yml"]


def test_the_compose_config_finds_the_services_by_name() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus-compose.yml").read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["authload_mock"]["static_configs"][0]["targets"] == ["mock:8080"]
    assert jobs["authload_master"]["static_configs"][0]["targets"] == ["master:9646"]
    (dns,) = jobs["authload_workers"]["dns_sd_configs"]
    assert (dns["names"], dns["type"], dns["port"]) == (["worker"], "A", 9647)
    pushgateway = jobs["authload_pushgateway"]
    assert pushgateway["static_configs"][0]["targets"] == ["pushgateway:9091"]
    assert pushgateway["honor_labels"] is True
    assert config["rule_files"] == ["rules.yml"]
