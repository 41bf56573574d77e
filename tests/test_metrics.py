"""The client-side Prometheus exporter, and the Prometheus config and rules under
``dashboards/prometheus``.

Importing Locust monkey-patches the process with gevent, so the exporter's tests that need
Locust's ``Environment`` run a ``child_*`` function of this module in a fresh interpreter
that imports Locust first (as in tests/test_recorder.py) and print what was exported.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from authload import metric_names as names
from authload.load.metrics import PORT_ENV, port_from_env, process_port
from tests import locust_child

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "dashboards" / "prometheus"


def run_child(main: str, *args: str) -> subprocess.CompletedProcess[str]:
    return locust_child.run_child("test_metrics", main, *args)


class FakeResponse:
    def __init__(self, status_code: int | None) -> None:
        self.status_code = status_code


def fake_runtime() -> Any:
    """What the exporter reads of authload's Runtime: outcomes, retry stats, the scenario."""
    from authload.load.retry import RetryStats
    from authload.scenario import Load, Stage

    load = Load(model="open", stages=[Stage(duration_s=60, rate=10), Stage(duration_s=60, rate=4)])
    return SimpleNamespace(
        state=SimpleNamespace(outcomes=Counter[str]()),
        policy=SimpleNamespace(stats=RetryStats()),
        scenario=SimpleNamespace(load=load, mix={"sms": 1.0, "esia": 1.0}),
        share=lambda: (0, 2),
    )


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
    """Fire request events of each kind, sample a fake runtime twice, serve, quit."""
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
    exporter = metrics.register(environment, registry, int(port), runtime=lambda: rt)
    exporter._clock = lambda: clock[0]

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

    environment.events.test_start.fire(environment=environment)
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
    environment.events.quitting.fire(environment=environment)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).close()
        closed = False
    except urllib.error.URLError:
        closed = True
    result = {"first": first, "last": samples(registry), "served": served, "closed": closed}
    print(json.dumps(result))


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
    assert requests == {
        'authload_requests_total{endpoint="gigma.login",status="200"}': 5.0,
        'authload_requests_total{endpoint="gigma.login",status="503"}': 2.0,
        'authload_requests_total{endpoint="mobile.refresh",status="0"}': 3.0,
        'authload_requests_total{endpoint="mobile.refresh",status="401"}': 1.0,
    }


@pytest.mark.integration
def test_latency_is_a_histogram_in_seconds(exported: dict[str, Any]) -> None:
    got = exported["last"]
    login = 'endpoint="gigma.login"'
    assert got[f"authload_request_duration_seconds_count{{{login}}}"] == 7.0
    assert got[f"authload_request_duration_seconds_sum{{{login}}}"] == pytest.approx(0.552)
    assert got[f'authload_request_duration_seconds_bucket{{{login},le="0.05"}}'] == 6.0
    assert got[f'authload_request_duration_seconds_bucket{{{login},le="0.25"}}'] == 6.0
    assert got[f'authload_request_duration_seconds_bucket{{{login},le="0.4"}}'] == 7.0
    buckets = [k for k in got if k.startswith("authload_request_duration_seconds_bucket{" + login)]
    assert len(buckets) == len(names.LATENCY_BUCKETS) + 1  # and +Inf
    assert not any("quantile" in k for k in got)  # never percentiles


@pytest.mark.integration
def test_errors_are_counted_by_kind(exported: dict[str, Any]) -> None:
    errors = {k: v for k, v in exported["last"].items() if k.startswith("authload_errors_total")}
    assert errors == {
        'authload_errors_total{endpoint="gigma.login",kind="http"}': 2.0,
        'authload_errors_total{endpoint="gigma.login",kind="contract"}': 2.0,
        'authload_errors_total{endpoint="mobile.refresh",kind="timeout"}': 1.0,
        'authload_errors_total{endpoint="mobile.refresh",kind="connect"}': 1.0,
        'authload_errors_total{endpoint="mobile.refresh",kind="reset"}': 1.0,
        'authload_errors_total{endpoint="mobile.refresh",kind="http"}': 1.0,
    }


def runtime_samples(got: dict[str, float]) -> dict[str, float]:
    prefixes = ("authload_requests", "authload_request_duration", "authload_errors")
    return {k: v for k, v in got.items() if not k.startswith(prefixes)}


@pytest.mark.integration
def test_runtime_state_is_exported_as_counters_of_its_increase(
    exported: dict[str, Any],
) -> None:
    assert runtime_samples(exported["first"]) == {
        "authload_users{}": 0.0,
        "authload_retries_total{}": 4.0,
        "authload_retries_throttled_total{}": 1.0,
        'authload_flow_outcomes_total{flow="sms",outcome="completed"}': 5.0,
        'authload_flow_outcomes_total{flow="sms",outcome="session_lost:rotation"}': 2.0,
        'authload_flow_outcomes_total{flow="refresh_storm",outcome="session_lost:invalid"}': 1.0,
        'authload_flow_outcomes_total{flow="gigma_login",outcome="token_lost"}': 1.0,
        "authload_journeys_total{}": 7.0,  # sms journeys: the mix's flows only
        'authload_sessions_lost_total{reason="rotation"}': 2.0,
        'authload_sessions_lost_total{reason="invalid"}': 1.0,
        'authload_sessions_lost_total{reason="token_lost"}': 1.0,
        "authload_dropped_arrivals_total{}": 3.0,
        "authload_target_arrival_rate{}": 5.0,  # 10/s shared by 2 processes
    }
    last = runtime_samples(exported["last"])
    assert last["authload_retries_total{}"] == 6.0
    assert last['authload_flow_outcomes_total{flow="sms",outcome="completed"}'] == 7.0
    assert last['authload_flow_outcomes_total{flow="esia",outcome="completed"}'] == 1.0
    assert last["authload_journeys_total{}"] == 10.0
    assert last["authload_dropped_arrivals_total{}"] == 4.0
    assert last["authload_target_arrival_rate{}"] == 2.0  # second stage: 4/s shared by 2


@pytest.mark.integration
def test_the_registry_is_served_on_the_port(exported: dict[str, Any]) -> None:
    served = exported["served"]
    assert 'authload_requests_total{endpoint="gigma.login",status="200"} 5.0' in served
    assert "authload_target_arrival_rate 2.0" in served
    assert exported["closed"], "the server still answers after quitting"


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


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus'")
    return subprocess.run(
        [exe, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules_test.yml"),
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def known_names() -> set[str]:
    values = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    return {v for v in values if v.startswith("authload_")}


def used_names(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w:])authload_\w+", text))


def test_rules_and_config_use_only_names_from_metric_names() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text(encoding="utf-8"))
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
    config = (PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8")
    jobs = {j["job_name"] for j in yaml.safe_load(config)["scrape_configs"]}
    assert jobs == {"authload_mock", "authload_master", "authload_workers"}
    assert used_names(config) <= jobs  # no metric names in the scrape config


def test_the_mock_is_scraped_where_it_serves_metrics() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["authload_mock"]["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    assert jobs["authload_mock"].get("metrics_path", "/metrics") == "/metrics"
    assert config["rule_files"] == ["rules.yml"]
