"""A real Prometheus and Pushgateway watching a real run, and the figures pushed at its end.

One `authload run --processes 2` (the embedded mock, a Locust master and two workers, all on
127.0.0.1, metrics on) of a short scenario written here to exercise what the dashboards and
rules show: 5xx and 503 answers with Retry-After and retries, fault windows, timeouts, resets
that lose sessions, shedding, rate limits, evicted sessions, a refresh storm and a mass
logout, an open model that drops arrivals, SLOs that fail. A real ``prometheus`` scrapes it
with the SHIPPED ``dashboards/prometheus/prometheus.yml`` (its targets rewritten to this
test's ports, its intervals shortened to 1 s) and rules, and ``prometheus-pushgateway``
receives the run's figures. Then:

- every PromQL expression of every dashboard under ``dashboards/`` (panels, annotations,
  variables: ``$scenario``, ``$run``, ``$endpoint`` as All, ``$__rate_interval``,
  ``$__interval`` and ``$__range`` a window covering the run) and every rule of ``rules.yml``
  returns data at some time of the run: from the start of `authload run` to its final scrapes
  (its processes seen gone, its pushed figures in), evaluated every second;
- ``authload_requests_total`` per endpoint equals the rows of ``requests.parquet`` exactly;
- the histogram's p95 per endpoint lies in the bucket of the exact p95 of the records;
- the pushed figures are in the Pushgateway, and in Prometheus, with the run's labels.

The Locust processes keep serving their final values for ``AUTHLOAD_METRICS_LINGER_S`` (3 s
here) when they quit, so the last scrape has the final counts. Rule groups that evaluate less
often than the global interval are evaluated every second here (a group evaluated once a
minute might not run at all in a 30-second run), and expressions that compare with an hour
ago (``offset 1h``) get the run's own series copied an hour earlier as their history.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from authload import metric_names as names
from authload.analysis.stats import percentile
from authload.run.pushgateway import (
    PUSHGATEWAY_ENV,
    QUANTILES,
    push_after_run,
    run_grouping_key,
    run_registry,
)
from tests.helpers import documents
from tests.helpers.tools import tool_path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
PROMETHEUS_DIR = DASHBOARDS / "prometheus"
SCRAPE_S = 1
STEP_S = 1  # of the range queries over the run
LINGER_S = 3
#: what the observed run needs: the Prometheus server, promtool, the Pushgateway
E2E_TOOLS = pytest.mark.tools("prometheus", "promtool", "prometheus-pushgateway")
SHIPPED_PORTS = {"mock": 8080, "master": 9646, "worker0": 9647, "worker1": 9648, "push": 9091}

SCENARIO = """
name: prometheus-e2e
description: a short run that exercises what the dashboards and the rules show
seed: 11
accounts: {count: 400}
mix: {password_call: 2, sms: 3, esia: 1, lkfl: 1}
load:
  model: open
  max_in_flight: 12          # per process: arrivals beyond it are dropped
  stages:
    - {duration_s: 8, rate: 10}
    - {duration_s: 14, rate: 20}
think_time: {dist: fixed, ms: 20}
flows:
  password_call:
    devices: {1: 0.3, 2: 0.4, 3: 0.3}
    logout_all_share: 0.5
    session: {dist: fixed, ms: 300}
  sms: {typo_share: 0.2, refreshes: [2, 3], refresh_every: {dist: fixed, ms: 200}}
  lkfl: {wrong_password_share: 0.1}
events:
  - {kind: mass_logout, at_s: 11, share: 0.5, relogin_delay: {dist: fixed, ms: 1000}}
  - {kind: refresh_storm, at_s: 13, sessions: 40, window_s: 2}
retry: {policy: retry_after, max_attempts: 3, base_ms: 50, cap_ms: 500}
request_timeout_s: 1.5
slos:
  - "p95(mobile.refresh) < 500ms"
  - "error_rate(gigma.login, 5xx) < 1%"
  - "error_rate(*) < 50%"
abort: null
mock:
  settings: {max_sessions_per_account: 2}
  behaviour:
    latency:
      default: {dist: uniform, min_ms: 1, max_ms: 20}
      gigma.send_password: {dist: lognormal, median_ms: 40, p99_ms: 250}
      mobile.phone_request: {dist: lognormal, median_ms: 150, p99_ms: 600}
    capacity:                # ~0.6 to 1.3 erlangs on 2 slots, no queue: it sheds
      endpoints:
        mobile.phone_request: {concurrency: 2, queue: 0, retry_after_s: 1}
    faults:
      - {name: login-503, kind: status, status: 503, retry_after_s: 1,
         endpoints: [gigma.login], fraction: 0.7, start_s: 6, duration_s: 12}
      - {name: lkfl-500, kind: status, status: 500,
         endpoints: [mobile.lkfl_auth], fraction: 0.5, start_s: 6, duration_s: 12}
      - {name: refresh-lost, kind: reset,
         endpoints: [mobile.refresh], fraction: 0.15, start_s: 8, duration_s: 12}
      - {name: esia-hang, kind: hang, hang_max_s: 2,
         endpoints: [mobile.esia_url], fraction: 0.3, start_s: 8, duration_s: 8}
      - {name: logout-slow, kind: latency, added_ms: 400,
         endpoints: [gigma.logout], start_s: 8, duration_s: 10}
    rate_limits:
      calls_per_phone: {limit: 1, window_s: 2}
      sms_per_phone: {limit: 2, window_s: 3}
"""


# ---------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(size: int) -> int:
    """A base port with ``size`` consecutive free ports from it."""
    for _ in range(200):
        base = free_port()
        if base + size > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no block of free ports")


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        body: bytes = answer.read()
        return body


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            http_get(url, timeout=2)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"{what} not ready at {url} within {timeout:g} s")


def stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Prometheus:
    """A real prometheus on a free port with its own storage; restartable on that storage."""

    def __init__(self, config: Path, storage: Path, log: Path) -> None:
        self.config, self.storage, self.log = config, storage, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    tool_path("prometheus"),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(self.url + "/-/ready", self.proc, "prometheus")

    def stop(self) -> None:
        stop(self.proc)

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        try:
            body = http_get(f"{self.url}/api/v1/{path}?{query}", timeout=30)
        except urllib.error.HTTPError as exc:
            return {"status": "error", "error": exc.read().decode(errors="replace")}
        return json.loads(body)

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        answer = self.api("query", query=expr, time=f"{at:.3f}")
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def shortened_config(
    shipped: dict[str, Any], ports: dict[str, int], mock_port: int, rules: Path
) -> dict[str, Any]:
    """The shipped scrape config with this test's ports, 1 s intervals and the rules copy."""
    config = json.loads(json.dumps(shipped))
    config["global"].update(
        scrape_interval=f"{SCRAPE_S}s", scrape_timeout=f"{SCRAPE_S}s", evaluation_interval="1s"
    )
    config["rule_files"] = [str(rules)]
    new = {
        SHIPPED_PORTS["mock"]: mock_port,
        SHIPPED_PORTS["master"]: ports["base"],
        SHIPPED_PORTS["worker0"]: ports["base"] + 1,
        SHIPPED_PORTS["worker1"]: ports["base"] + 2,
        SHIPPED_PORTS["push"]: ports["push"],
    }
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            targets = []
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host == "127.0.0.1" and int(port) in new, f"unexpected target {target}"
                targets.append(f"127.0.0.1:{new[int(port)]}")
            static["targets"] = targets
    return config


def rules_evaluated_every_second(shipped: dict[str, Any]) -> dict[str, Any]:
    """The shipped rules, every group on the global 1 s evaluation interval: a group that
    evaluates once a minute might not evaluate at all during a 30-second run."""
    rules = json.loads(json.dumps(shipped))
    for group in rules["groups"]:
        group.pop("interval", None)
    return rules


@dataclass
class Observed:
    """The finished run and what Prometheus and the Pushgateway hold of it."""

    run_dir: Path
    prometheus: Prometheus
    push_url: str
    start: float  # when `authload run` was started
    end: float  # after the final scrapes: the processes seen down, the pushed figures in
    rules: dict[str, Any]
    output: str
    code: int
    backfilled: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def window_s(self) -> int:
        """A range that covers the whole run, from any time of it."""
        return math.ceil(self.end - self.start) + 5

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "summary.json").read_text("utf-8"))
        return data


class OutputReader:
    """Collects a child's output lines in a thread; waits for a line matching a pattern."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        stream.close()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise AssertionError(f"no line matching {pattern!r}:\n{self.text}")
                self._cond.wait(min(left, 0.5))

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=10)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("prometheus")
    ports = {"base": free_port_block(3), "push": free_port()}
    push_url = f"http://127.0.0.1:{ports['push']}"
    pushgateway = run = None
    prometheus = Prometheus(tmp / "prometheus.yml", tmp / "storage", tmp / "prometheus.log")
    try:
        pushgateway = subprocess.Popen(
            [
                tool_path("prometheus-pushgateway"),
                f"--web.listen-address=127.0.0.1:{ports['push']}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ready(push_url + "/-/ready", pushgateway, "prometheus-pushgateway")

        scenario = tmp / "scenario.yaml"
        scenario.write_text(SCENARIO, encoding="utf-8")
        env = {
            **os.environ,
            "AUTHLOAD_METRICS_PORT": str(ports["base"]),
            "AUTHLOAD_METRICS_LINGER_S": str(LINGER_S),
        }
        env.pop("AUTHLOAD_METRICS_PORT_MODE", None)
        env.pop(PUSHGATEWAY_ENV, None)
        start = time.time()
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "authload",
                "run",
                str(scenario),
                "--processes",
                "2",
                "--out",
                str(tmp / "runs"),
                "--pushgateway",
                f"127.0.0.1:{ports['push']}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = OutputReader(run.stdout)
        mock_port = int(output.wait_for(r"embedded mock on http://127\.0\.0\.1:(\d+)", 60)[1])

        # Prometheus with the shipped config and rules, pointed at this run
        shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text("utf-8"))
        shipped_rules = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text("utf-8"))
        rules = rules_evaluated_every_second(shipped_rules)
        (tmp / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False), "utf-8")
        config = shortened_config(shipped, ports, mock_port, tmp / "rules.yml")
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
        prometheus.start()

        code = run.wait(timeout=80)
        output.join()
        text = output.text
        run_dir = Path(output.wait_for(r"^run directory: (.+)$", 1)[1].strip())

        # the final scrapes: every Locust process seen gone, the pushed figures scraped
        def final_scrapes_done() -> bool:
            now = time.time()
            down = prometheus.query('up{job=~"authload_master|authload_workers"} == 0', now)
            pushed = prometheus.query(f'{names.PUSHED_VERDICT}{{run="{run_dir.name}"}}', now)
            return len(down) == 3 and len(pushed) == 1

        wait_until(final_scrapes_done, 20, "the final scrapes")
        # A range query steps from the start: the pushed figures, first scraped within the
        # last second, would fall after its last step unless the range ends a step later.
        time.sleep(STEP_S)
        observed = Observed(
            run_dir, prometheus, push_url, start, time.time(), shipped_rules, text, code
        )
        observed.backfilled = backfill_offsets(observed, tmp)
        yield observed
    finally:
        stop(run)
        prometheus.stop()
        stop(pushgateway)


# ---------------------------------------------------------------------------------------------
# the expressions of the dashboards and the rules


@dataclass(frozen=True)
class Expression:
    where: str  # file and place, for the failure message
    expr: str
    kind: str = "promql"  # or "label_values": a Grafana variable's query


def _walk(node: Any, where: str, found: list[Expression]) -> None:
    if isinstance(node, dict):
        title = node.get("title") or node.get("name")
        here = f"{where} > {title}" if isinstance(title, str) and title else where
        for key, value in node.items():
            if key == "expr" and isinstance(value, str) and value.strip():
                found.append(Expression(here, value))
            else:
                _walk(value, here, found)
    elif isinstance(node, list):
        for item in node:
            _walk(item, where, found)


def dashboard_expressions() -> list[Expression]:
    """Every ``expr`` of every dashboard JSON under dashboards/ (targets of panels and rows,
    annotations), and every query variable's query."""
    found: list[Expression] = []
    for path in sorted(DASHBOARDS.rglob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        name = str(path.relative_to(ROOT))
        _walk({k: v for k, v in dashboard.items() if k != "templating"}, name, found)
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            if isinstance(text, str) and text.strip():
                found.append(
                    Expression(f"{name} > variable {variable.get('name')}", text, "label_values")
                )
    return found


def rule_expressions(rules: dict[str, Any]) -> list[Expression]:
    return [
        Expression(
            f"rules.yml > {group['name']} > {rule.get('record') or rule.get('alert')}",
            rule["expr"],
        )
        for group in rules["groups"]
        for rule in group["rules"]
    ]


_BUILTIN = re.compile(r"\$(?:\{)?(__[a-z_]+)(?:\})?")
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def substitute(expr: str, window_s: int) -> str:
    """Grafana's variables: the scenario, run, endpoint (any variable) -> ``.*`` (All);
    ``$__rate_interval``, ``$__interval``, ``$__range`` -> a window covering the run."""
    builtins = {
        "__rate_interval": f"{window_s}s",
        "__interval": f"{window_s}s",
        "__range": f"{window_s}s",
        "__range_s": str(window_s),
        "__range_ms": str(window_s * 1000),
        "__interval_ms": str(window_s * 1000),
    }

    def builtin(match: re.Match[str]) -> str:
        name = match[1]
        if name not in builtins:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return builtins[name]

    expr = _BUILTIN.sub(builtin, expr)
    return _VARIABLE.sub(".*", expr)


def as_promql(expression: Expression) -> str:
    """A variable's ``label_values(metric{...}, label)`` as the query Grafana runs for it."""
    if expression.kind == "promql":
        return expression.expr
    text = expression.expr.strip()
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\s*\)", text, re.DOTALL)
    if match:
        return f"count by ({match[2]}) ({match[1]})"
    match = re.fullmatch(r"query_result\((.*)\)", text, re.DOTALL)
    if match:
        return match[1]
    raise AssertionError(f"{expression.where}: a variable query this test cannot read: {text!r}")


def has_data(result: list[dict[str, Any]]) -> bool:
    return any(
        not math.isnan(float(value))
        for series in result
        for _, value in series.get("values", [series.get("value", [0, "NaN"])])
    )


def backfill_offsets(observed: Observed, tmp: Path) -> list[str]:
    """Expressions comparing with the past (``offset 1h``) need history the run cannot make
    in a minute: the run's own scraped series, copied that long before (``promtool tsdb
    create-blocks-from openmetrics``), stand in for it. Only offsets longer than the run."""
    exprs = [e.expr for e in dashboard_expressions() + rule_expressions(observed.rules)]
    offsets: set[int] = set()
    for expr in exprs:
        for amount, unit in re.findall(r"offset\s+(\d+)([smhdw])\b", expr):
            seconds = int(amount) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
            if seconds > observed.window_s:
                offsets.add(seconds)
    if not offsets:
        return []
    window = observed.window_s
    series = observed.prometheus.query(f'{{job=~"authload_.+"}}[{window}s]', observed.end)
    families: dict[str, list[tuple[str, float, str]]] = {}
    for s in series:
        metric = dict(s["metric"])
        name = metric.pop("__name__")
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(metric.items()))
        for offset in offsets:
            families.setdefault(name, []).extend(
                (labels, float(t) - offset, value) for t, value in s["values"]
            )
    text = "".join(
        f"{name}{{{labels}}} {value} {t:.3f}\n"
        for name, samples in sorted(families.items())
        for labels, t, value in sorted(samples)
    )
    text += "# EOF\n"
    source = tmp / "history.om"
    source.write_text(text, encoding="utf-8")
    observed.prometheus.stop()
    made = subprocess.run(
        [
            tool_path("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(source),
            str(observed.prometheus.storage),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    observed.prometheus.start()
    return [f"offset {o} s" for o in sorted(offsets)]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ---------------------------------------------------------------------------------------------
# the tests


@pytest.mark.integration
@pytest.mark.slow
@E2E_TOOLS
def test_the_run_finished_with_its_metrics_served_and_its_figures_pushed(
    observed: Observed,
) -> None:
    assert observed.code == 1, observed.output  # the scenario's SLOs fail on purpose
    assert observed.summary()["verdict"] == "fail"
    assert "the run's figures pushed to 127.0.0.1:" in observed.output
    assert "metrics served 3 s more for a final scrape" in observed.output
    assert observed.end - observed.start < 80


@pytest.mark.integration
@pytest.mark.slow
@E2E_TOOLS
def test_every_dashboard_and_rule_expression_returns_data_during_the_run(
    observed: Observed,
) -> None:
    expressions = dashboard_expressions()
    dashboards = {e.where.split(" > ")[0] for e in expressions}
    assert len(dashboards) >= 3, f"dashboards found: {sorted(dashboards)}"
    expressions += rule_expressions(observed.rules)
    problems = []
    for expression in expressions:
        promql = substitute(as_promql(expression), observed.window_s)
        answer = observed.prometheus.api(
            "query_range",
            query=promql,
            start=f"{observed.start:.3f}",
            end=f"{observed.end:.3f}",
            step=str(STEP_S),
        )
        if answer.get("status") != "success":
            problems.append(f"{expression.where}: {expression.expr}\n  error: {answer}")
        elif not has_data(answer["data"]["result"]):
            problems.append(f"{expression.where}: {expression.expr}\n  no data: {promql}")
    assert not problems, f"{len(problems)} of {len(expressions)} expressions:\n" + "\n".join(
        problems
    )


def records_by_endpoint(run_dir: Path) -> dict[str, list[float]]:
    table = pq.read_table(run_dir / "requests.parquet", columns=["endpoint", "latency_ms"])
    latencies: dict[str, list[float]] = {}
    for endpoint, ms in zip(
        table["endpoint"].to_pylist(), table["latency_ms"].to_pylist(), strict=True
    ):
        latencies.setdefault(endpoint, []).append(ms)
    return latencies


@pytest.mark.integration
@pytest.mark.slow
@E2E_TOOLS
def test_prometheus_counts_every_request_of_the_records_exactly(observed: Observed) -> None:
    records = {k: len(v) for k, v in records_by_endpoint(observed.run_dir).items()}
    assert len(records) == 9, "every endpoint is driven"
    result = observed.prometheus.query(
        f"sum by (endpoint) (last_over_time("
        f'{names.REQUESTS}_total{{run="{observed.run_id}"}}[{observed.window_s}s]))',
        observed.end,
    )
    counted = {s["metric"]["endpoint"]: float(s["value"][1]) for s in result}
    assert counted == {k: float(v) for k, v in records.items()}


@pytest.mark.integration
@pytest.mark.slow
@E2E_TOOLS
def test_histogram_p95_lies_in_the_bucket_of_the_exact_p95(observed: Observed) -> None:
    """The histogram saw every attempt (answered or not), as the records hold them."""
    result = observed.prometheus.query(
        f"histogram_quantile(0.95, sum by (endpoint, le) (last_over_time("
        f'{names.LATENCY}_bucket{{run="{observed.run_id}"}}[{observed.window_s}s])))',
        observed.end,
    )
    estimated = {s["metric"]["endpoint"]: float(s["value"][1]) for s in result}
    bounds = (0.0, *names.LATENCY_BUCKETS)
    for endpoint, latencies in records_by_endpoint(observed.run_dir).items():
        exact = percentile(latencies, 0.95) / 1000.0
        index = bisect.bisect_left(bounds, exact)  # first bound >= exact: the bucket's upper
        lower, upper = bounds[index - 1], bounds[index]
        assert lower < exact <= upper
        p95 = estimated[endpoint]
        assert lower - 1e-9 <= p95 <= upper + 1e-9, (endpoint, exact, p95, (lower, upper))
        assert abs(p95 - exact) <= upper - lower


@pytest.mark.integration
@pytest.mark.slow
@E2E_TOOLS
def test_the_pushed_figures_are_in_the_pushgateway_with_the_run_labels(
    observed: Observed,
) -> None:
    groups = json.loads(http_get(observed.push_url + "/api/v1/metrics"))["data"]
    labels = {"job": names.PUSH_JOB, "scenario": "prometheus-e2e", "run": observed.run_id}
    (group,) = [g for g in groups if g["labels"] == labels]
    assert group["last_push_successful"] is True
    pushed = {  # the metric families pushed (not the Pushgateway's own per group)
        name: family
        for name, family in group.items()
        if isinstance(family, dict)
        and "metrics" in family
        and name not in ("push_time_seconds", "push_failure_time_seconds")
    }
    assert set(pushed) == {
        names.PUSHED_REQUESTS,
        names.PUSHED_LATENCY,
        names.PUSHED_ERROR_RATIO,
        names.PUSHED_DURATION,
        names.PUSHED_VERDICT,
        names.PUSHED_FINISHED,
    }
    requests: dict[str, float] = {}
    for metric in pushed[names.PUSHED_REQUESTS]["metrics"]:
        assert {k: metric["labels"][k] for k in labels} == labels
        endpoint = metric["labels"]["endpoint"]
        requests[endpoint] = requests.get(endpoint, 0) + float(metric["value"])
    records = records_by_endpoint(observed.run_dir)
    assert requests == {k: float(len(v)) for k, v in records.items()}
    (verdict,) = pushed[names.PUSHED_VERDICT]["metrics"]
    assert float(verdict["value"]) == 0.0  # the run failed its SLOs
    summary = observed.summary()
    p95 = {
        m["labels"]["endpoint"]: float(m["value"])
        for m in pushed[names.PUSHED_LATENCY]["metrics"]
        if m["labels"]["quantile"] == "0.95"
    }
    assert p95["*"] == pytest.approx(summary["endpoints"]["*"]["p95"] / 1000.0)

    # and Prometheus scraped them with the run's labels (honor_labels)
    in_prometheus = observed.prometheus.query(
        f'sum by (job, scenario, run) ({names.PUSHED_REQUESTS}{{run="{observed.run_id}"}})',
        observed.end,
    )
    assert [s["metric"] for s in in_prometheus] == [labels]
    assert float(in_prometheus[0]["value"][1]) == sum(len(v) for v in records.values())


# ---------------------------------------------------------------------------------------------
# the pushed figures, without a run


def fake_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "20250102T030405Z-soak"
    run_dir.mkdir()
    row = {
        "count": 3,
        "statuses": {"200": 2, "503": 1},
        "error_rate": 1 / 3,
        "p50": 10.0,
        "p90": 20.0,
        "p95": 30.0,
        "p99": 40.0,
        "p99.9": 40.0,
        "max": 40.0,
    }
    endpoints = {"gigma.login": row, "*": {**row, "p95": None}}
    documents.summary(run_dir, scenario="soak", duration_s=12.5, requests=3, endpoints=endpoints)
    documents.manifest(run_dir, {"name": "soak"})
    return run_dir


def test_the_pushed_figures_come_from_the_run_directory(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path)
    assert run_grouping_key(run_dir) == {"scenario": "soak", "run": run_dir.name}
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in run_registry(run_dir).collect()
        for s in family.samples
    }
    login = ("endpoint", "gigma.login")
    assert got[(names.PUSHED_REQUESTS, (login, ("status", "200")))] == 2
    assert got[(names.PUSHED_REQUESTS, (login, ("status", "503")))] == 1
    assert not any(k[0] == names.PUSHED_REQUESTS and ("endpoint", "*") in k[1] for k in got)
    assert got[(names.PUSHED_LATENCY, (login, ("quantile", "0.95")))] == 0.03
    assert got[(names.PUSHED_LATENCY, (("endpoint", "*"), ("quantile", "1")))] == 0.04
    assert (names.PUSHED_LATENCY, (("endpoint", "*"), ("quantile", "0.95"))) not in got
    assert set(QUANTILES.values()) == {"0.5", "0.9", "0.95", "0.99", "0.999", "1"}
    assert got[(names.PUSHED_ERROR_RATIO, (login,))] == pytest.approx(1 / 3)
    assert got[(names.PUSHED_DURATION, ())] == 12.5
    assert got[(names.PUSHED_VERDICT, ())] == 1
    assert got[(names.PUSHED_FINISHED, ())] == 1735787100.0


def test_a_failed_push_is_a_warning_never_a_failed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = fake_run(tmp_path)
    monkeypatch.delenv(PUSHGATEWAY_ENV, raising=False)
    assert push_after_run(run_dir, None) is False  # not configured: nothing, silently
    assert capsys.readouterr().err == ""
    closed = free_port()  # nothing listens there
    monkeypatch.setenv(PUSHGATEWAY_ENV, f"127.0.0.1:{closed}")
    assert push_after_run(run_dir, None) is False
    err = capsys.readouterr().err
    assert f"warning: the run's figures were not pushed to 127.0.0.1:{closed}" in err
