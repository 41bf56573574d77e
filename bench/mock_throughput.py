#!/usr/bin/env python3
"""Requests/s and p99 of the mock against a bare app, granian and an nginx yardstick, of
the mock with its behaviour model against the mock without it, and requests per server
CPU-second of the mock's login against a reference login server (aiohttp, uvloop, orjson).

Every server runs pinned to the server CPU (default 0) and the load generator runs pinned to
the load CPU (default 1): one headless Locust process (FastHttpUser, no wait time), or wrk
for the cases against the reference; all on 127.0.0.1, for a warm-up plus a fixed measuring
window per case. Each case gets a fresh server. See bench/README.md for the cases, the
columns and the goal ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import harness
from harness import BenchError, Proc, Processes, bound_socket, free_port, listening, wait_until

BENCH_DIR = Path(__file__).resolve().parent
APP_TOKEN = "mock-app-token"
CLIENT_SECRET = "mock-client-secret"
PASSWORD = "1111"
LOGIN_PATH = "/counterparty/login"
BARE_BODY = b'{"status":"ok"}'  # what bare_app.py answers and nginx serves
MAX_ACCOUNTS = 10_000  # one /_mock/accounts page
PACKAGES = (
    "uvicorn", "uvloop", "httptools", "granian", "locust", "aiohttp", "orjson", "pydantic"
)  # versions in the report  # fmt: skip
MODEL_GOAL = 0.85  # the mock with its behaviour model keeps this share of the rate without it
REFERENCE_GOAL = 0.80  # the mock's login per server CPU-second against the reference's
WRK_INSTALL = "install it with `apt-get install -y wrk` (Debian package wrk), or give --wrk PATH"
NGINX_INSTALL = "install it with `apt-get install -y nginx`, or give --nginx PATH"
WRK_RESULT = "WRK_RESULT "  # the line the wrk script prints at the end of a run
BUSY_PCT = 90.0  # a CPU this busy (percent of one core) is taken as saturated
OTHER_PCT = 10.0  # more foreign CPU use than this in a window marks the case as disturbed

LoadKind = Literal["login", "refresh"]
LoadTool = Literal["locust", "wrk"]
TICKS = os.sysconf("SC_CLK_TCK")


# --- servers ----------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    procs: list[Proc] = field(default_factory=list)

    @property
    def pgids(self) -> list[int]:
        return [p.pgid for p in self.procs]


def _http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request on a fresh connection; (status, body), or (0, b"") if nothing answered."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2.0) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _login_request(url: str, phone: str = "79000000000") -> tuple[int, bytes]:
    body = json.dumps({"phone": phone, "password": PASSWORD}).encode()
    headers = {"Content-Type": "application/json", "Token": APP_TOKEN}
    return _http(url + LOGIN_PATH, "POST", body, headers)


@dataclass
class Bench:
    args: argparse.Namespace
    procs: Processes
    tmp: Path
    taskset: str
    behaviour: Path  # the "model on" profile
    no_model: Path  # the empty profile {}
    accounts_file: Path | None = None
    login_answer: bytes = b""  # the mock's answer to the first account's login (reference)

    def pinned(self, cpus: str, cmd: Sequence[str]) -> list[str]:
        return harness.pinned(self.taskset, cpus, cmd)

    # the servers under test

    def mock(self, cpus: Sequence[int], model: bool = True) -> Server:
        """One mock process per CPU entry (``authload mock --fd``), each pinned to it, with the
        behaviour model (``model``, the bench profile) or without it (the empty profile).

        With more than one, each process gets its own socket on the same port with
        SO_REUSEPORT, so the kernel spreads new connections over the processes. State is per
        process, which gigma.login with the test password does not need.
        """
        many = len(cpus) > 1
        first = bound_socket(reuse_port=many)
        port = int(first.getsockname()[1])
        socks = [first] + [bound_socket(port, reuse_port=True) for _ in cpus[1:]]
        env = {
            "AUTHLOAD_MOCK_BEHAVIOUR": str(self.behaviour if model else self.no_model),
            "AUTHLOAD_MOCK_STORE": "memory",
            "AUTHLOAD_MOCK_APP_TOKEN": APP_TOKEN,
            "AUTHLOAD_MOCK_CLIENT_SECRET": CLIENT_SECRET,
            "AUTHLOAD_MOCK_TEST_PASSWORD": PASSWORD,
        }
        server = Server(f"http://127.0.0.1:{port}")
        try:
            for cpu, sock in zip(cpus, socks, strict=True):
                cmd = [sys.executable, "-m", "authload", "mock", "--fd", str(sock.fileno())]
                cmd += ["--population", str(self.args.population)]
                server.procs.append(
                    self.procs.start("mock", self.pinned(str(cpu), cmd), [sock.fileno()], env)
                )
        finally:
            for sock in socks:
                sock.close()
        # every process listens on its own socket (SO_REUSEPORT) and the mock answers
        wait_until(
            lambda: listening(port) == len(socks) and _http(server.url + "/healthz")[0] == 200,
            server.procs,
            "the mock",
        )
        return server

    def bare_uvicorn(self) -> Server:
        sock = bound_socket()
        server = Server(f"http://127.0.0.1:{sock.getsockname()[1]}")
        cmd = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--fd", str(sock.fileno())]
        try:
            server.procs.append(
                self.procs.start("bare-uvicorn", self.pinned(self.server_cpu, cmd), [sock.fileno()])
            )
        finally:
            sock.close()
        self._wait_bare(server, "the bare app on uvicorn")
        return server

    def bare_granian(self) -> Server:
        port = free_port()
        server = Server(f"http://127.0.0.1:{port}")
        cmd = [
            sys.executable, "-m", "granian",
            "--interface", "asgi",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
            "--runtime-mode", "st",
            "--runtime-threads", "1",
            "--loop", "uvloop",
            "--http", "1",
            "--no-ws",
            "--no-access-log",
            "--log-level", "warning",
            "--backlog", "4096",
            "--working-dir", str(BENCH_DIR),
            "bare_app:app",
        ]  # fmt: skip
        server.procs.append(self.procs.start("bare-granian", self.pinned(self.server_cpu, cmd)))
        self._wait_bare(server, "the bare app on granian")
        return server

    def nginx(self) -> Server:
        port = free_port()
        root = self.tmp / "nginx"
        (root / "www").mkdir(parents=True, exist_ok=True)
        (root / "www" / "hello.json").write_bytes(BARE_BODY)
        conf = root / "nginx.conf"
        conf.write_text(_nginx_conf(root, port))
        if os.geteuid() == 0:  # the worker runs as nobody: let it read the document root
            for path in (self.tmp, root, root / "www"):
                path.chmod(0o755)
            (root / "www" / "hello.json").chmod(0o644)
        server = Server(f"http://127.0.0.1:{port}")
        cmd = [self.args.nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
        server.procs.append(self.procs.start("nginx", self.pinned(self.server_cpu, cmd)))
        self._wait_bare(server, "nginx")
        return server

    def reference(self) -> Server:
        """bench/reference_app.py: the mock's login answer on aiohttp (uvloop, orjson)."""
        answer = self.tmp / "login-answer.json"
        answer.write_bytes(self.login_answer)
        sock = bound_socket()
        server = Server(f"http://127.0.0.1:{sock.getsockname()[1]}")
        cmd = [
            sys.executable, str(BENCH_DIR / "reference_app.py"),
            "--fd", str(sock.fileno()),
            "--answer", str(answer),
        ]  # fmt: skip
        try:
            server.procs.append(
                self.procs.start("reference", self.pinned(self.server_cpu, cmd), [sock.fileno()])
            )
        finally:
            sock.close()
        phone = self.first_phone()

        def ready() -> bool:
            status, body = _login_request(server.url, phone)
            if status == 200 and not _same_answer(body, self.login_answer):
                raise BenchError(
                    f"the reference answered {body[:300]!r}, not the mock's login answer"
                )
            return status == 200

        wait_until(ready, server.procs, "the reference app")
        return server

    def _wait_bare(self, server: Server, what: str) -> None:
        def ready() -> bool:
            status, body = _login_request(server.url)
            if status == 200 and body.strip() != BARE_BODY:
                raise BenchError(f"{what} answered {body[:200]!r}, not {BARE_BODY!r}")
            return status == 200

        wait_until(ready, server.procs, what)

    @property
    def server_cpu(self) -> str:
        return str(self.args.server_cpu)

    # accounts and load

    def fetch_accounts(self) -> Path:
        """The first accounts of the population, from a short-lived mock's /_mock/accounts."""
        if self.accounts_file is not None:
            return self.accounts_file
        limit = min(self.args.accounts, self.args.population, MAX_ACCOUNTS)
        server = self.mock([self.args.server_cpu])
        try:
            status, body = _http(f"{server.url}/_mock/accounts?limit={limit}&offset=0")
            if status != 200:
                raise BenchError(f"/_mock/accounts answered {status}: {body[:300]!r}")
            accounts = json.loads(body)["accounts"]
            # the answer the reference app gives, taken from the mock itself
            status, body = _login_request(server.url, accounts[0]["phone"])
            if status != 200:
                raise BenchError(f"the mock's login answered {status}: {body[:300]!r}")
            self.login_answer = body
        finally:
            for proc in server.procs:
                self.procs.stop(proc)
        self.accounts_file = self.tmp / "accounts.json"
        self.accounts_file.write_text(json.dumps(accounts))
        return self.accounts_file

    def first_phone(self) -> str:
        accounts: list[dict[str, Any]] = json.loads(self.fetch_accounts().read_text())
        return str(accounts[0]["phone"])

    def load(self, server: Server, kind: LoadKind) -> dict[str, Any]:
        a = self.args
        out = self.tmp / "load-result.json"
        out.unlink(missing_ok=True)
        cmd = [
            sys.executable, str(BENCH_DIR / "locust_load.py"),
            "--url", server.url,
            "--kind", kind,
            "--accounts", str(self.fetch_accounts()),
            "--users", str(a.users),
            "--warmup", str(a.warmup),
            "--seconds", str(a.seconds),
            "--app-token", APP_TOKEN,
            "--password", PASSWORD,
            "--client-secret", CLIENT_SECRET,
            "--out", str(out),
        ]  # fmt: skip
        for pgid in server.pgids:
            cmd += ["--server-pgid", str(pgid)]
        proc = self.procs.start("locust", self.pinned(str(a.load_cpu), cmd))
        try:
            proc.popen.wait(timeout=a.warmup + a.seconds + 60)
        except subprocess.TimeoutExpired:
            raise BenchError(f"Locust did not finish in time:\n{proc.log_tail()}") from None
        finally:
            self.procs.stop(proc)
        if proc.popen.returncode != 0 or not out.exists():
            raise BenchError(f"Locust exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    def wrk_load(self, server: Server) -> dict[str, Any]:
        """wrk, pinned to the load CPU, POSTing the first account's login over ``--users``
        keep-alive connections from one thread: ``--warmup`` s not measured, then
        ``--seconds`` s measured. CPU of the server's processes, of wrk and of the whole
        machine over the measured run, from /proc (wrk's own: its rusage once reaped)."""
        a = self.args
        script = self.tmp / "login.lua"
        script.write_text(_wrk_script(self.first_phone()))
        cmd = [
            a.wrk, "-t1", f"-c{a.users}", "--timeout", "5s", "-s", str(script),
            server.url + LOGIN_PATH,
        ]  # fmt: skip
        warmup = round(a.warmup)
        if warmup > 0:
            self._wrk([*cmd, f"-d{warmup}s"], warmup)
        seconds = max(1, round(a.seconds))
        pgids = server.pgids
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0, srv0, t0 = (
            harness.machine_busy_ticks(),
            harness.group_cpu_ticks(pgids),
            time.monotonic(),
        )
        proc = self._wrk([*cmd, f"-d{seconds}s"], seconds)
        elapsed = time.monotonic() - t0
        srv1, busy = harness.group_cpu_ticks(pgids), harness.machine_busy_ticks() - busy0
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_cpu = (children1.ru_utime - children0.ru_utime) + (
            children1.ru_stime - children0.ru_stime
        )
        found = _wrk_result(proc.log.read_text(errors="replace"))
        if found is None:
            raise BenchError(f"wrk printed no result:\n{proc.log_tail()}")
        server_pct = [100.0 * (srv1[g] - srv0[g]) / TICKS / elapsed for g in pgids]
        requests = int(found["requests"])
        duration = found["duration_us"] / 1e6
        errors = {k: int(found[k]) for k in WRK_ERRORS if found[k]}
        return harness.window_figures(
            endpoint="gigma.login",
            elapsed=duration,  # wrk's own measured span (its start-up left out)
            requests=requests,
            all_requests=requests,
            failures=sum(errors.values()),
            latency_ms=(found["p50_us"] / 1000, found["p99_us"] / 1000, found["max_us"] / 1000),
            users=a.users,
            load_cpu_s=load_cpu,
            server_pct=server_pct,
            machine_pct=100.0 * busy / TICKS / elapsed,
            errors={WRK_ERRORS[k]: n for k, n in errors.items()},
        )

    def _wrk(self, cmd: list[str], seconds: int) -> Proc:
        proc = self.procs.start("wrk", self.pinned(str(self.args.load_cpu), cmd))
        try:
            proc.popen.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not finish in time:\n{proc.log_tail()}") from None
        finally:
            self.procs.stop(proc)
        if proc.popen.returncode != 0:
            raise BenchError(f"wrk exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        return proc


WRK_ERRORS = {  # wrk's error counters -> how the report names them
    "status": "answers not 2xx or 3xx",
    "connect": "connect errors",
    "read": "read errors",
    "write": "write errors",
    "timeout": "timeouts (5 s)",
}


def _wrk_script(phone: str) -> str:
    """wrk's Lua script: the same login request every time (wrk builds it once), and a JSON
    line of the run's figures at the end."""
    body = json.dumps({"phone": phone, "password": PASSWORD})
    fields = ["requests", "duration_us", *WRK_ERRORS, "p50_us", "p99_us", "max_us"]
    template = "{" + ",".join(f'"{f}":%d' for f in fields) + "}"
    return f"""\
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Token"] = "{APP_TOKEN}"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{WRK_RESULT}{template}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _wrk_result(log: str) -> dict[str, float] | None:
    for line in reversed(log.splitlines()):
        if line.startswith(WRK_RESULT):
            found: dict[str, float] = json.loads(line.removeprefix(WRK_RESULT))
            return found
    return None


def _same_answer(body: bytes, mock_answer: bytes) -> bool:
    """The same JSON object as the mock's login answer, all but the access token's value
    (a fresh one per login), and the same length give or take the token id's digits."""

    def shape(raw: bytes) -> Any:
        data = json.loads(raw)
        data["counterparty"]["access_token"]["value"] = ""
        return data

    try:
        return shape(body) == shape(mock_answer) and abs(len(body) - len(mock_answer)) < 8
    except (ValueError, KeyError, TypeError):
        return False


def bench_profile(tmp: Path) -> Path:
    """The behaviour model as the bench runs it: the shipped profile with no added latency
    and no faults, as a file.

    The added latency is a simulation of upstream services, not work: with it, 64 users
    would measure sleeping. Capacity limits and rate limits stay as shipped: every request
    takes and gives back a slot of the shared limiter (512 at once, far above 64 users, so
    nobody waits or is shed), and the fault board and the rate-limit settings are consulted
    (the per-phone limits count only send_password and phone_request, per-IP is off).
    """
    from authload.mock.profile import load_profile, zero_latency

    profile = zero_latency(load_profile(None)).model_copy(update={"faults": []})
    path = tmp / "behaviour-model.json"  # JSON is YAML
    path.write_text(json.dumps(profile.model_dump(mode="json")))
    return path


def no_model_profile(tmp: Path) -> Path:
    """The empty profile ``{}``: no latency, no capacity limits, no faults, no rate limits."""
    path = tmp / "behaviour-empty.json"
    path.write_text("{}\n")
    return path


def _nginx_conf(root: Path, port: int) -> str:
    # POST to a static file is 405 in nginx; error_page turns it into a GET of the file.
    return f"""\
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {root}/access.log combined buffer=256k flush=1s;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root}/www;
        default_type application/json;
        location / {{
            try_files /hello.json =404;
            error_page 405 =200 /hello.json;
        }}
    }}
}}
"""


# --- cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    key: str
    letter: str
    title: str
    stack: str
    kind: LoadKind
    cpus: tuple[int, ...]  # one entry per server process (nginx, granian: master + worker)
    start: Callable[[Bench], Server]
    model: str = ""  # the mock's behaviour model: "on", "off"; "" for other servers
    load: LoadTool = "locust"  # the load generator

    @property
    def placement(self) -> str:
        return f"{len(self.cpus)} @ cpu {','.join(str(c) for c in self.cpus)}"


def cases(args: argparse.Namespace) -> list[Case]:
    s, x2 = args.server_cpu, tuple(args.x2_cpus)
    uv = "uvicorn+uvloop+httptools"
    return [
        Case("login-nomodel", "a0", "mock gigma.login", uv, "login", (s,),
             lambda b: b.mock([s], model=False), "off"),
        Case("login", "a", "mock gigma.login", uv, "login", (s,), lambda b: b.mock([s]), "on"),
        Case("refresh-nomodel", "b0", "mock mobile.refresh", uv, "refresh", (s,),
             lambda b: b.mock([s], model=False), "off"),
        Case("refresh", "b", "mock mobile.refresh", uv, "refresh", (s,), lambda b: b.mock([s]),
             "on"),
        Case("bare-uvicorn", "c", "bare app", uv, "login", (s,), lambda b: b.bare_uvicorn()),
        Case("bare-granian", "d", "bare app", "granian asgi, 1 runtime thread", "login", (s,),
             lambda b: b.bare_granian()),
        Case("nginx", "e", "nginx static file", "nginx, 1 worker", "login", (s,),
             lambda b: b.nginx()),
        Case("login-2p-1cpu", "f1", "mock gigma.login", uv, "login", (s, s),
             lambda b: b.mock([s, s]), "on"),
        Case("login-2p-2cpu", "f2", "mock gigma.login", uv, "login", x2,
             lambda b: b.mock(list(x2)), "on"),
        Case("login-wrk", "g", "mock gigma.login", uv, "login", (s,), lambda b: b.mock([s]),
             "on", "wrk"),
        Case("reference-wrk", "h", "reference login", "aiohttp+uvloop+orjson", "login", (s,),
             lambda b: b.reference(), load="wrk"),
    ]  # fmt: skip


def median_round(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median req/s (the lower one of two), so that all the figures shown
    for a case come from one measurement; the req/s of every round go along."""
    ordered = sorted(measured, key=lambda r: float(r["rps"]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds_rps"] = [r["rps"] for r in measured]
    keep = ("rps", "server_us_per_req", "server_cpu_pct", "load_cpu_pct", "other_cpu_pct")
    chosen["rounds"] = [{k: r[k] for k in keep if k in r} for r in measured]
    return chosen


def run_case(bench: Bench, case: Case) -> dict[str, Any]:
    server = case.start(bench)
    try:
        result = bench.wrk_load(server) if case.load == "wrk" else bench.load(server, case.kind)
    finally:
        for proc in server.procs:
            bench.procs.stop(proc)
    rps = float(result["rps"])
    result.update(
        server_us_per_req=1e4 * result["server_cpu_pct"] / rps if rps else 0.0,
        case=case.key,
        letter=case.letter,
        title=case.title,
        stack=case.stack,
        server_cpus=list(case.cpus),
        placement=case.placement,
        model=case.model,
        load=case.load,
    )
    return result


# --- report -----------------------------------------------------------------------------


@dataclass
class Ratio:
    name: str
    value: float | None
    goal: str
    verdict: str
    note: str = ""
    inputs: tuple[str, ...] = ()  # case keys it is computed from


def _rate(results: dict[str, dict[str, Any]], key: str) -> float | None:
    r = results.get(key)
    return float(r["rps"]) if r else None


def _cost(results: dict[str, dict[str, Any]], key: str) -> float | None:
    """Server CPU microseconds per request: what the server spends, whoever is the limit."""
    r = results.get(key)
    return float(r["server_us_per_req"]) if r and r["server_us_per_req"] else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _by_cost(value: float | None) -> str:
    return "" if value is None else f"by server cpu per request: {value:.2f}"


def ratios(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[Ratio]:
    out: list[Ratio] = []
    login, bare, nginx = (_rate(results, k) for k in ("login", "bare-uvicorn", "nginx"))
    value = _div(login, bare)
    out.append(
        Ratio(
            "mock gigma.login / bare app (uvicorn)",
            value,
            ">= 0.70",
            "n/a" if value is None else ("MET" if value >= 0.70 else "NOT MET"),
            _by_cost(_div(_cost(results, "bare-uvicorn"), _cost(results, "login"))),
            ("login", "bare-uvicorn"),
        )
    )
    out.append(_reference_ratio(results))
    for key, label in (("login", "gigma.login"), ("refresh", "mobile.refresh")):
        value = _div(_rate(results, key), nginx)
        r = results.get(key)
        verdict, note = "n/a", ""
        if value is not None and r is not None:
            note = f"mock cpu {r['server_cpu_pct']:.0f}%, Locust cpu {r['load_cpu_pct']:.0f}%"
            if value >= 1.0:
                verdict = "MET"
            elif r["load_cpu_pct"] >= BUSY_PCT and r["server_cpu_pct"] < BUSY_PCT:
                verdict = "MET"
                note += ": Locust saturated, the mock not, so the mock is not the bottleneck"
            else:
                verdict = "NOT MET"
            cost, limit = _cost(results, key), _rate(results, "nginx")
            if cost and limit:
                note += (
                    f"; one mock core at 100% would serve ~{1e6 / cost:.0f} req/s"
                    f" = {1e6 / cost / limit:.2f} x yardstick"
                )
        out.append(
            Ratio(
                f"mock {label} / nginx yardstick", value, ">= 1.00 or mock not bottleneck",
                verdict, note, (key, "nginx"),
            )
        )  # fmt: skip
    for off, on, label in (
        ("login-nomodel", "login", "gigma.login"),
        ("refresh-nomodel", "refresh", "mobile.refresh"),
    ):
        out.append(_model_ratio(results, off, on, label))
    out.append(
        Ratio(
            "bare app: granian / uvicorn",
            _div(_rate(results, "bare-granian"), bare),
            "info",
            "",
            _by_cost(_div(_cost(results, "bare-uvicorn"), _cost(results, "bare-granian"))),
            ("bare-granian", "bare-uvicorn"),
        )
    )
    out.append(
        Ratio(
            f"2 procs on cpu {args.server_cpu} / 1 proc",
            _div(_rate(results, "login-2p-1cpu"), login),
            "info",
            "",
            "fair (Locust keeps its own core) but no extra CPU: shows the cost of splitting",
            ("login-2p-1cpu", "login"),
        )
    )
    shared = args.load_cpu in args.x2_cpus
    out.append(
        Ratio(
            f"2 procs on cpus {args.x2_cpus[0]},{args.x2_cpus[1]} / 1 proc",
            _div(_rate(results, "login-2p-2cpu"), login),
            "info",
            "",
            f"NOT a scaling figure: cpu {args.load_cpu} runs a mock process and Locust"
            if shared
            else "Locust has its own cpu, but one Locust core may still be the limit",
            ("login-2p-2cpu", "login"),
        )
    )
    per_req_1, per_req_2 = _cost(results, "login"), _cost(results, "login-2p-1cpu")
    out.append(
        Ratio(
            "estimated 2-core / 1-core mock capacity",
            _div(2 * per_req_1, per_req_2) if per_req_1 else None,
            "info",
            "",
            "derived, not measured: 2 x server cpu per request of a / of f1",
            ("login", "login-2p-1cpu"),
        )
    )
    for q in out:
        if q.value is not None and any(
            results[k]["other_cpu_pct"] > OTHER_PCT for k in q.inputs if k in results
        ):
            q.verdict = f"{q.verdict} (disturbed input)".strip()
    return out


def _reference_ratio(results: dict[str, dict[str, Any]]) -> Ratio:
    """The mock's login (g) against the reference login server (h), both under wrk: requests
    per server CPU-second, mock / reference. With several rounds, each round's pair (g then
    h: back to back) gives a ratio and the median one counts, as for the model's cost."""
    mock, ref = "login-wrk", "reference-wrk"
    name = "mock gigma.login / reference, per srv cpu-s"
    goal = f">= {REFERENCE_GOAL:.2f} (issue 18)"
    if mock not in results or ref not in results:
        return Ratio(name, None, goal, "n/a", "", (mock, ref))
    rounds = [
        (b["server_us_per_req"] / a["server_us_per_req"], a["rps"] / b["rps"] if b["rps"] else 0)
        for a, b in zip(results[mock]["rounds"], results[ref]["rounds"], strict=True)
        if a["server_us_per_req"]
    ]
    if not rounds:
        return Ratio(name, None, goal, "n/a", "no requests", (mock, ref))
    value, rate = sorted(rounds)[(len(rounds) - 1) // 2]  # the median (lower of two)
    verdict = "MET" if value >= REFERENCE_GOAL else "NOT MET"
    r_m, r_h = results[mock], results[ref]
    if len(rounds) == 1:
        note = (
            f"{1e6 / r_m['server_us_per_req']:.0f} vs {1e6 / r_h['server_us_per_req']:.0f}"
            f" requests per server cpu-second ({r_m['server_us_per_req']:.1f} vs"
            f" {r_h['server_us_per_req']:.1f} us each); req/s {r_m['rps']:.0f} vs"
            f" {r_h['rps']:.0f} ({rate:.2f}); server cpu {r_m['server_cpu_pct']:.0f}% vs"
            f" {r_h['server_cpu_pct']:.0f}%, wrk cpu {r_m['load_cpu_pct']:.0f}% vs"
            f" {r_h['load_cpu_pct']:.0f}%"
        )
    else:
        note = (
            "round by round (each pair back to back), per server cpu-s: "
            + " / ".join(f"{v:.2f}" for v, _ in rounds)
            + ", req/s: "
            + " / ".join(f"{r:.2f}" for _, r in rounds)
            + f"; the median round's: {value:.2f} per server cpu-s, {rate:.2f} req/s"
        )
    if any(results[k]["server_cpu_pct"] < BUSY_PCT for k in (mock, ref)):
        verdict += " (a server not saturated)"
    return Ratio(name, value, goal, verdict, note, (mock, ref))


def _judge(on: dict[str, Any], off: dict[str, Any]) -> tuple[float, float, float, str]:
    """One pair of measurements, model on and off: (req/s ratio, cpu/req ratio, the ratio
    that decides, which one it is). Locust the limit in both (the mock not): both req/s are
    capped by Locust, so only the server CPU per request (what one mock core would serve at
    100%) shows the model's cost: it decides. The mock the limit in both: the req/s decide.
    Anything else (mixed, or neither busy): the lower of the two."""
    rate = on["rps"] / off["rps"] if off["rps"] else 0.0
    cost = off["server_us_per_req"] / on["server_us_per_req"] if on["server_us_per_req"] else 0.0
    pair = (on, off)
    if all(r["load_cpu_pct"] >= BUSY_PCT > r["server_cpu_pct"] for r in pair):
        return rate, cost, cost, "cpu/req"
    if all(r["server_cpu_pct"] >= BUSY_PCT for r in pair):
        return rate, cost, rate, "req/s"
    return rate, cost, min(rate, cost), "both"


HOW = {
    "cpu/req": "Locust was the limit in both, the mock not: cpu/req decides",
    "req/s": "the mock was the limit in both: req/s decide",
    "both": "not one clear limit in both: the lower of the two decides",
}


def _model_ratio(results: dict[str, dict[str, Any]], off: str, on: str, label: str) -> Ratio:
    """The mock with its behaviour model against the mock without it, same core, same run
    (each model-on case runs right after its model-off case). With several rounds, each
    round's pair is judged on its own and the median round's ratios count."""
    name = f"mock {label}: model on / off"
    goal = f">= {MODEL_GOAL:.2f} (req/s or cpu/req: note)"
    if on not in results or off not in results:
        return Ratio(name, None, goal, "n/a", "", (off, on))
    r_on, r_off = results[on], results[off]
    rounds = list(zip(r_on["rounds"], r_off["rounds"], strict=True))
    judged = sorted((_judge(a, b) for a, b in rounds), key=lambda j: j[2])
    rate, cost, decides, how = judged[(len(judged) - 1) // 2]  # the median (lower of two)
    verdict = "MET" if decides >= MODEL_GOAL else "NOT MET"
    if len(rounds) == 1:
        note = (
            f"{r_on['rps']:.0f} vs {r_off['rps']:.0f} req/s; by server cpu per request:"
            f" {cost:.2f} ({r_on['server_us_per_req']:.0f} vs"
            f" {r_off['server_us_per_req']:.0f} us, one mock core at 100%"
            f" ~{1e6 / r_on['server_us_per_req']:.0f} vs"
            f" ~{1e6 / r_off['server_us_per_req']:.0f} req/s); mock cpu"
            f" {r_on['server_cpu_pct']:.0f}% vs {r_off['server_cpu_pct']:.0f}%, Locust cpu"
            f" {r_on['load_cpu_pct']:.0f}% vs {r_off['load_cpu_pct']:.0f}%: {HOW[how]}"
        )
    else:
        each = [_judge(a, b) for a, b in rounds]
        note = (
            "round by round (each pair back to back), req/s: "
            + " / ".join(f"{j[0]:.2f}" for j in each)
            + ", cpu/req: "
            + " / ".join(f"{j[1]:.2f}" for j in each)
            + ", deciding: "
            + " / ".join(f"{j[2]:.2f} ({j[3]})" for j in each)
            + f"; the median round's: req/s {rate:.2f}, cpu/req {cost:.2f}, deciding"
            f" {decides:.2f}. Locust the limit (the mock not): cpu/req decides; the mock the"
            " limit: req/s; else the lower"
        )
    return Ratio(name, rate, goal, verdict, note, (off, on))


def _per_cpu_s(r: dict[str, Any]) -> float:
    return 1e6 / r["server_us_per_req"] if r["server_us_per_req"] else 0.0


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_report(
    results: dict[str, dict[str, Any]],
    rows: list[Ratio],
    header: list[str],
    load_cpu: int,
    model_on: str,
) -> None:
    print()
    for line in header:
        print(line)
    print()
    print(
        f"{'':3}{'case':<20}{'server':<31}{'model':<6}{'procs':<12}{'load':<7}{'req/s':>7}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'fails':>7}{'srv cpu':>9}{'us/req':>8}{'req/cpu-s':>10}"
        f"{'load cpu':>10}{'other':>7}"
    )
    shared = False
    for r in results.values():
        mark = "*" if load_cpu in r["server_cpus"] else ""
        shared = shared or bool(mark)
        print(
            f"{r['letter']:<3}{r['title']:<20}{r['stack']:<31}{r['model']:<6}"
            f"{r['placement'] + mark:<12}{r['load']:<7}"
            f"{r['rps']:>7.0f}{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}{r['failures']:>7}"
            f"{r['server_cpu_pct']:>8.0f}%{r['server_us_per_req']:>8.1f}"
            f"{_per_cpu_s(r):>10.0f}{r['load_cpu_pct']:>9.0f}%{r['other_cpu_pct']:>6.0f}%"
        )
    print()
    print(f"   model: the mock's behaviour model: on = {model_on}; off = the empty profile {{}}")
    print("   procs: server processes @ their cpus; load: the load generator (Locust or wrk).")
    print("   In % of one core over the measured window: srv cpu: the server's processes")
    print("   together; load cpu: the load generator; other: everything else on the machine")
    print("   (other processes, hypervisor steal). us/req: server cpu microseconds per request;")
    print("   req/cpu-s: requests per server cpu-second (1e6 / us/req). p50/p99: the load")
    print("   generator's, in milliseconds.")
    if shared:
        print(f"   *: cpu {load_cpu} also runs the load, so this server competes with it")
    for r in results.values():
        if r["other_cpu_pct"] > OTHER_PCT:
            print(
                f"   {r['letter']}: DISTURBED: {r['other_cpu_pct']:.0f}% of a core went to other"
                " work during the window; rerun on a quiet machine"
            )
        if len(r["rounds_rps"]) > 1:
            each = " / ".join(f"{x:.0f}" for x in r["rounds_rps"])
            print(f"   {r['letter']}: req/s of the rounds: {each} (the median round is shown)")
        if len(r["server_cpu_pct_per_process"]) > 1:
            shares = " + ".join(f"{p:.0f}%" for p in r["server_cpu_pct_per_process"])
            print(f"   {r['letter']}: srv cpu per process: {shares}")
        if r["failures"]:
            print(f"   {r['letter']}: {r['failures']} failed requests, e.g. {r['errors']}")
    print()
    print(f"{'':3}{'ratio':<44}{'value':>7}  {'goal':<34}verdict")
    for q in rows:
        print(f"{'':3}{q.name:<44}{_fmt(q.value, '.2f'):>7}  {q.goal:<34}{q.verdict}")
        if q.note:
            print(f"{'':5}({q.note})")


def header_lines(args: argparse.Namespace, nginx_version: str, wrk_version: str) -> list[str]:
    versions = ", ".join(f"{name} {version(name)}" for name in PACKAGES)
    return [
        f"mock_throughput: {args.users} Locust FastHttpUser users, no wait, 1 Locust process"
        f" (g, h: wrk, 1 thread, {args.users} connections); "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured per case"
        + (f", {args.rounds} rounds, median shown" if args.rounds > 1 else ""),
        f"servers on cpu {args.server_cpu} (f2: cpus {args.x2_cpus[0]},{args.x2_cpus[1]}), "
        f"Locust on cpu {args.load_cpu}; 127.0.0.1; mock population {args.population}, "
        f"behaviour model on: {model_on_text(args)}, off: {{}}",
        f"python {platform.python_version()}, {versions}, {nginx_version}, {wrk_version}",
    ]


def model_on_text(args: argparse.Namespace) -> str:
    if args.behaviour:
        return str(args.behaviour)
    return "shipped profile without added latency and faults (capacity, rate limits as shipped)"


def _wrk_version(path: str) -> str:
    try:
        done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "wrk not found"
    first = (done.stdout or done.stderr).strip().splitlines()[:1]
    return first[0].split(" Copyright")[0].removesuffix(" [epoll]") if first else "wrk ?"


def _nginx_version(path: str) -> str:
    try:
        done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "nginx not found"
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


# --- main -------------------------------------------------------------------------------


def _cpu_pair(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("give two CPUs, e.g. 0,1")
    return parts[0], parts[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    keys = [c.key for c in cases(argparse.Namespace(server_cpu=0, load_cpu=1, x2_cpus=(0, 1)))]
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per case (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up before each window (2)")
    p.add_argument("--users", type=int, default=64, help="Locust users (64)")
    p.add_argument(
        "--rounds", type=int, default=1, help="run all cases this many times, show medians (1)"
    )
    p.add_argument("--cases", default=",".join(keys), help=f"comma-separated, of: {keys}")
    p.add_argument("--population", type=int, default=10_000, help="mock accounts (10000)")
    p.add_argument("--accounts", type=int, default=MAX_ACCOUNTS, help="accounts to cycle over")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU of the server under test (0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU of the Locust process (1)")
    p.add_argument(
        "--x2-cpus", type=_cpu_pair, default=(0, 1), help="CPUs of the 2 mock processes, f2 (0,1)"
    )
    p.add_argument(
        "--behaviour",
        type=Path,
        metavar="FILE",
        help="mock behaviour profile of the model-on cases (default: the shipped one without"
        " added latency and faults)",
    )
    p.add_argument("--nginx", default="/usr/sbin/nginx", help="nginx binary")
    p.add_argument("--wrk", default="/usr/bin/wrk", help="wrk binary (cases g, h)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    p.add_argument("--keep-temp", action="store_true", help="keep configs and server logs")
    args = p.parse_args(argv)
    chosen = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = sorted(set(chosen) - set(keys))
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {keys}")
    args.case_keys = chosen
    tools = {"wrk": (args.wrk, WRK_INSTALL), "nginx": (args.nginx, NGINX_INSTALL)}
    for case in cases(args):
        needed_tool = "wrk" if case.load == "wrk" else "nginx" if case.key == "nginx" else ""
        if case.key in chosen and needed_tool:
            path, how = tools[needed_tool]
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                p.error(f"case {case.key} needs {needed_tool}, not found at {path}: {how}")
    if args.seconds <= 0 or args.warmup < 0 or args.users < 1 or args.rounds < 1:
        p.error("--seconds must be > 0, --warmup >= 0, --users >= 1, --rounds >= 1")
    usable = os.sched_getaffinity(0)
    needed = {args.server_cpu, args.load_cpu, *args.x2_cpus}
    if not needed <= usable:
        p.error(f"CPUs {sorted(needed - usable)} are not available (have {sorted(usable)})")
    if {"refresh", "refresh-nomodel"} & set(chosen) and min(
        args.accounts, args.population, MAX_ACCOUNTS
    ) < args.users:
        p.error("mobile.refresh needs one account per user: raise --accounts/--population")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = harness.start_bench("mock_throughput")
    if started is None:
        return 2
    taskset, tmp = started
    behaviour = args.behaviour.resolve() if args.behaviour else bench_profile(tmp)
    bench = Bench(args, Processes(tmp / "logs"), tmp, taskset, behaviour, no_model_profile(tmp))
    results: dict[str, dict[str, Any]] = {}
    try:
        print("fetching test accounts from a mock ...", file=sys.stderr, flush=True)
        bench.fetch_accounts()
        chosen = [c for c in cases(args) if c.key in args.case_keys]
        runs: dict[str, list[dict[str, Any]]] = {}
        for n in range(1, args.rounds + 1):
            for case in chosen:
                rounds = f" round {n}/{args.rounds}" if args.rounds > 1 else ""
                print(
                    f"[{case.letter}]{rounds} {case.title} on {case.stack}, {case.placement} ...",
                    file=sys.stderr,
                    flush=True,
                )
                runs.setdefault(case.key, []).append(run_case(bench, case))
        results = {key: median_round(measured) for key, measured in runs.items()}
        rows = ratios(results, args)
        print_report(
            results,
            rows,
            header_lines(args, _nginx_version(args.nginx), _wrk_version(args.wrk)),
            args.load_cpu,
            model_on_text(args),
        )
        if args.json:
            args.json.write_text(json.dumps(_json_doc(args, results, rows), indent=2) + "\n")
    except BenchError as exc:
        print(f"mock_throughput: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("mock_throughput: interrupted", file=sys.stderr)
        return 130
    finally:
        harness.ignore_interrupts()
        bench.procs.stop_all()
        if args.keep_temp:
            print(f"mock_throughput: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _json_doc(
    args: argparse.Namespace, results: dict[str, dict[str, Any]], rows: list[Ratio]
) -> dict[str, Any]:
    return {
        "settings": {
            "users": args.users,
            "warmup_s": args.warmup,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "server_cpu": args.server_cpu,
            "load_cpu": args.load_cpu,
            "x2_cpus": list(args.x2_cpus),
            "population": args.population,
            "behaviour": str(args.behaviour)
            if args.behaviour
            else "shipped, zero latency, no faults",
            "behaviour_model_off": "{}",
        },
        "versions": {
            "python": platform.python_version(),
            **{name: version(name) for name in PACKAGES},
            "nginx": _nginx_version(args.nginx),
            "wrk": _wrk_version(args.wrk),
        },
        "cases": results,
        "ratios": [
            {"name": q.name, "value": q.value, "goal": q.goal, "verdict": q.verdict, "note": q.note}
            for q in rows
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
