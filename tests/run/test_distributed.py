"""Distributed runs: the processes docker compose and Kubernetes start, started here directly
on 127.0.0.1 as separate processes: `authload mock --workers 2 --store redis://...` (kept
running across runs), `authload run ... --expect-workers N` (the Locust master) and
`authload worker --master-host ...` (Locust workers). What a run leaves behind must reconcile
exactly: records == Locust == the mock's own counters over the run."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from authload.errors import TargetError
from authload.load import config as runconfig
from authload.load.config import (
    APP_TOKEN_ENV,
    CLIENT_SECRET_ENV,
    RunConfig,
    WorkerConfigError,
    mock_default_secrets,
)
from authload.run.running_mock import counter_delta
from authload.run.targets import load_targets, resolve_target
from authload.scenario.model import Scenario
from tests.helpers.runs import REPO, Run, authload

SCENARIO = """
name: distributed
seed: 11
accounts: {count: 3000}
mix: {password_call: 2, sms: 2, esia: 1, lkfl: 1}
load:
  model: closed
  stages: [{duration_s: 6, users: 4, spawn_rate: 4}]
think_time: {dist: fixed, ms: 20}
flows:
  password_call: {devices: {1: 0.5, 2: 0.5}, session: {dist: fixed, ms: 100}}
  sms: {typo_share: 0, refreshes: [1, 1], refresh_every: {dist: fixed, ms: 50}}
retry: {policy: none}
slos: ["error_rate(*, 5xx) < 0.1%"]
"""
RUN_TIMEOUT_S = 6 + 60  # the load, workers connecting (Locust retries every 5 s), finalizing
SECRET_ENVS = (APP_TOKEN_ENV, CLIENT_SECRET_ENV, "STAND_APP_TOKEN", "STAND_CLIENT_SECRET")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    """An `authload` process started in the background, its output in a file."""

    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, log: Path, *args: str | Path | int, env: dict[str, str] | None = None) -> Proc:
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "authload", *map(str, args)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
            )
        return cls(popen, log)

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.log.name}: still running after {timeout} s") from None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@pytest.fixture(scope="module")
def running_mock(
    redis_url: str, functional_profile: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`authload mock` as compose runs it: two processes sharing Redis, kept for every run."""
    port = _free_port()
    log = tmp_path_factory.mktemp("mock") / "mock.log"
    mock = Proc.start(
        log,
        "mock", "--host", "127.0.0.1", "--port", port, "--workers", "2",
        "--store", redis_url, "--behaviour", functional_profile,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            assert mock.popen.poll() is None, mock.output
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the mock did not come up: {mock.output}"
            time.sleep(0.2)
        yield url
    finally:
        mock.stop()


@pytest.fixture(scope="module")
def targets(running_mock: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("targets") / "targets.yaml"
    path.write_text(
        f"here:\n  mock: true\n  gigma_url: {running_mock}\n  mobile_url: {running_mock}\n"
        f"  mock_url: {running_mock}\n",
        encoding="utf-8",
    )
    return path


def _without_secrets() -> dict[str, str]:
    """This environment without the secrets: the master never needs them."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENVS}


def _worker(log: Path, port: int, env: dict[str, str] | None = None, wait_s: int = 60) -> Proc:
    return Proc.start(
        log, "worker", "--master-host", "127.0.0.1", "--master-port", port,
        "--master-timeout", wait_s, env=env,
    )  # fmt: skip


def _master(
    directory: Path, port: int, *args: str | Path, scenario: str = SCENARIO, timeout: int = 60
) -> Proc:
    path = directory / "scenario.yaml"
    path.write_text(scenario, encoding="utf-8")
    return Proc.start(
        directory / "master.log",
        "run", path, "--out", directory / "runs", "--expect-workers", args[0],
        "--master-bind-host", "127.0.0.1", "--master-port", port,
        "--workers-timeout", timeout, *args[1:],
        env=_without_secrets(),
    )  # fmt: skip


def _finished(master: Proc, workers: list[Proc], directory: Path) -> Run:
    code = master.wait(RUN_TIMEOUT_S)
    output = master.output
    for w in workers:  # each exits once the master quits
        assert w.wait(30) == 0, w.output
    run_dirs = sorted((directory / "runs").iterdir())
    assert len(run_dirs) == 1, output
    proc = subprocess.CompletedProcess(master.popen.args, code, output, "")
    return Run(proc, run_dirs[0], directory / "runs")


def _check_reconciled(run: Run, workers: int) -> None:
    assert run.code == 0, run.describe()
    assert "verdict: PASS" in run.output
    records = run.records
    assert set(records["worker"]) == {f"w{i}" for i in range(workers)}, "every worker recorded"
    recorded = {str(k): int(v) for k, v in records.groupby("endpoint").size().items()}
    assert len(recorded) == 9, "every endpoint was driven"
    assert run.locust_counts() == recorded
    assert run.mock_counts() == recorded, "the mock's counters over the run"
    assert run.mock_stats["total"] == len(records)
    assert run.summary["reconciliation"]["match"] is True
    assert records["error"].isna().all()

    manifest = run.manifest
    assert manifest["status"] == "completed"
    assert manifest["died"] == []
    assert manifest["processes"] == workers
    assert manifest["distributed"]["expect_workers"] == workers
    assert [w["worker"] for w in manifest["workers"]] == [f"w{i}" for i in range(workers)]
    assert all(w["host"] == socket.gethostname() for w in manifest["workers"])
    outcomes = [e["worker"] for e in run.events if e["kind"] == "outcomes"]
    assert sorted(outcomes) == [f"w{i}" for i in range(workers)]
    tuned = [e["worker"] for e in run.events if e["kind"] == "generator" and e["gc"] == "tuned"]
    assert sorted(tuned) == [f"w{i}" for i in range(workers)], "each worker, not the master"
    assert run.run_dir is not None
    assert not (run.run_dir / "records").exists(), "the workers' spools are merged"


# ---------------------------------------------------------------------------------------------
# the processes compose starts


@pytest.mark.integration
@pytest.mark.slow
def test_workers_started_before_the_master_run_it_and_counts_reconcile(
    tmp_path: Path, targets: Path
) -> None:
    port = _free_port()
    workers = [_worker(tmp_path / f"worker{i}.log", port) for i in range(2)]
    try:
        time.sleep(1)
        master = _master(tmp_path, port, "2", "--targets", targets, "--target", "here")
        run = _finished(master, workers, tmp_path)
    finally:
        for w in workers:
            w.stop()
    _check_reconciled(run, 2)
    for w in workers:
        assert "authload worker w" in w.output and "done," in w.output, w.output
        assert "the master ended the run" in w.output


@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_master_leaves_workers_that_give_up_and_a_run_reported_incomplete(
    tmp_path: Path, targets: Path
) -> None:
    import psutil  # type: ignore[import-untyped]

    port = _free_port()
    long_run = SCENARIO.replace("duration_s: 6", "duration_s: 60")
    worker = _worker(tmp_path / "worker.log", port, wait_s=8)
    master = _master(
        tmp_path, port, "1", "--targets", targets, "--target", "here", scenario=long_run
    )
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "runs").glob("*/records/*.arrows")):
            assert time.monotonic() < deadline, master.output
            time.sleep(0.2)
        time.sleep(3)
        runner = psutil.Process(master.popen.pid)
        for process in [*runner.children(recursive=True), runner]:  # the master, for real
            process.kill()
        killed = time.monotonic()
        assert worker.wait(8 + 30) == 0, worker.output  # it gave up within its timeout
        assert time.monotonic() - killed < 8 + 30
    finally:
        worker.stop()
        master.stop()
    [run_dir] = list((tmp_path / "runs").iterdir())
    report = authload("report", run_dir, timeout=120)
    assert report.returncode == 3, report.stdout + report.stderr
    assert "verdict: INCOMPLETE" in report.stdout
    run = Run(report, run_dir, tmp_path / "runs")
    assert run.manifest["status"] == "incomplete"
    assert set(run.records["worker"]) == {"w0"}  # the worker's records, merged
    assert [e["worker"] for e in run.events if e["kind"] == "outcomes"] == ["w0"]


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_started_after_the_master_joins_and_a_reused_mock_still_reconciles(
    tmp_path: Path, targets: Path, running_mock: str
) -> None:
    served_before = httpx.get(running_mock + "/_mock/stats").json()["total"]
    port = _free_port()
    early = _worker(tmp_path / "early.log", port)
    late: Proc | None = None
    try:
        master = _master(tmp_path, port, "2", "--targets", targets, "--target", "here")
        time.sleep(4)  # the master is up and waiting for its second worker
        assert master.popen.poll() is None, master.output
        late = _worker(tmp_path / "late.log", port)
        run = _finished(master, [early, late], tmp_path)
    finally:
        for w in (early, late):
            if w is not None:
                w.stop()
    _check_reconciled(run, 2)
    # the mock served other runs before this one: its counters are taken over the run only
    baseline = run.mock_stats["baseline"]
    assert baseline["total"] == served_before > 0
    assert baseline["mock_restarted"] is False
    assert run.run_dir is not None
    assert (run.run_dir / "mock_behaviour.json").is_file()


@pytest.mark.integration
@pytest.mark.slow
def test_secrets_come_from_the_workers_environment_never_from_the_master(
    tmp_path: Path, running_mock: str
) -> None:
    """A non-mock target: the master has neither the secrets nor the passwords; the worker
    reads them from its own environment, and they reach the stand (every answer a 200)."""
    with httpx.Client(base_url=running_mock, timeout=10) as client:
        accounts = client.get("/_mock/accounts", params={"limit": 20, "offset": 9000}).json()
    rows = accounts["accounts"]
    token, secret = mock_default_secrets()
    passwords = {f"STAND_LKFL_{i}": a["lkfl_password"] for i, a in enumerate(rows)}
    account_lines = "".join(
        f'    - {{phone: "{a["phone"]}", inn: "{a["inn"]}", lkfl_password_env: STAND_LKFL_{i}, '
        f'call_password: "1111"}}\n'
        for i, a in enumerate(rows)
    )
    stand = tmp_path / "targets.yaml"
    stand.write_text(
        f"stand:\n  gigma_url: {running_mock}\n  mobile_url: {running_mock}\n"
        f"  app_token_env: STAND_APP_TOKEN\n  client_secret_env: STAND_CLIENT_SECRET\n"
        f"  accounts:\n{account_lines}",
        encoding="utf-8",
    )
    scenario = """
name: stand-distributed
mix: {password_call: 1, lkfl: 1}
load:
  model: closed
  stages: [{duration_s: 3, users: 2, spawn_rate: 4}]
think_time: {dist: fixed, ms: 50}
flows:
  password_call: {devices: {1: 1.0}, session: {dist: fixed, ms: 100}}
  lkfl: {wrong_password_share: 0}
retry: {policy: none}
"""
    port = _free_port()
    env = {
        **_without_secrets(),
        "STAND_APP_TOKEN": token,
        "STAND_CLIENT_SECRET": secret,
        **passwords,
    }
    worker = _worker(tmp_path / "worker.log", port, env=env)
    try:
        master = _master(
            tmp_path, port, "1", "--targets", stand, "--target", "stand", "--confirm",
            scenario=scenario,
        )  # fmt: skip
        run = _finished(master, [worker], tmp_path)
    finally:
        worker.stop()
    assert run.code == 0, run.describe()
    assert set(run.records["status"]) == {200}, "the secrets reached the stand"
    assert run.outcomes["password_call:completed"] > 0
    assert run.outcomes["lkfl:completed"] > 0
    assert run.summary["reconciliation"]["match"] is True
    assert run.run_dir is not None
    for path in run.run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes().decode("utf-8", "replace")
            assert not any(p in data for p in passwords.values()), path


@pytest.mark.integration
def test_a_master_without_workers_gives_up_with_a_clear_message(
    tmp_path: Path, targets: Path
) -> None:
    port = _free_port()
    started = time.monotonic()
    master = _master(tmp_path, port, "2", "--targets", targets, "--target", "here", timeout=3)
    code = master.wait(3 + 30)
    assert time.monotonic() - started < 3 + 30
    assert code == 3, master.output
    message = master.output
    assert "no test ran: the Locust master waited 3 s for 2 workers" in message
    assert "and 0 connected" in message
    assert f"authload worker --master-host <this host> --master-port {port}" in message
    [run_dir] = (tmp_path / "runs").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "error"
    assert "no test ran" in manifest["error"]


@pytest.mark.integration
def test_a_worker_whose_master_never_appears_gives_up_with_a_clear_message(
    tmp_path: Path,
) -> None:
    port = _free_port()
    started = time.monotonic()
    worker = _worker(tmp_path / "worker.log", port, wait_s=3)
    code = worker.wait(3 + 30)
    assert time.monotonic() - started < 3 + 30
    assert code == 3, worker.output
    assert f"no Locust master answered at 127.0.0.1:{port} within 3 s" in worker.output


# ---------------------------------------------------------------------------------------------
# refusals, before anything starts


def test_distributed_refuses_the_embedded_mock_and_processes(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "runs"
    embedded = authload("run", path, "--out", out, "--expect-workers", "2")
    assert embedded.returncode == 2, embedded.stderr
    assert "the embedded mock listens on this host's 127.0.0.1" in embedded.stderr
    both = authload("run", path, "--out", out, "--expect-workers", "2", "--processes", "2")
    assert both.returncode == 2, both.stderr
    assert "use one of them" in both.stderr
    assert not out.exists()


def test_a_running_mock_target_that_does_not_answer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    url = f"http://127.0.0.1:{_free_port()}"
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"gone:\n  mock: true\n  gigma_url: {url}\n  mobile_url: {url}\n")
    out = tmp_path / "runs"
    result = authload("run", path, "--out", out, "--targets", targets, "--target", "gone")
    assert result.returncode == 2, result.stderr
    assert f"target gone: no mock answers at {url}" in result.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# the shipped targets, the wire, the counters


def test_shipped_targets_name_the_compose_and_kubernetes_mocks() -> None:
    path = REPO / "deploy" / "targets.yaml"
    for name, host in (("compose-mock", "mock"), ("k8s-mock", "authload-mock")):
        target = resolve_target(name, path)
        assert target.mock and not target.embedded
        assert target.urls() == (f"http://{host}:8080", f"http://{host}:8080")
        assert target.control_url() == f"http://{host}:8080"
        assert target.reset_mock is True


def test_a_mock_in_a_targets_file_needs_its_urls(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text("nowhere:\n  mock: true\n", encoding="utf-8")
    with pytest.raises(TargetError, match="set its gigma_url and mobile_url"):
        load_targets(path)


def _config(**changes: object) -> RunConfig:
    scenario = Scenario.model_validate(
        {"name": "wire", "mix": {"lkfl": 1}, "load": {"stages": [{"duration_s": 1, "users": 1}]}}
    )
    fields: dict[str, object] = {
        "scenario": scenario,
        "run_dir": Path("runs/x"),
        "target": "stand",
        "gigma_url": "http://g",
        "mobile_url": "http://m",
        "mock_url": None,
        "processes": 2,
        "accounts": [
            runconfig.TestAccount(
                "79990000001", "1234", "pw-" + secrets.token_hex(8), 1, "1111", None, "PW"
            )
        ],
        "remote_workers": True,
        "app_token_env": "STAND_APP_TOKEN",
        "client_secret_env": "STAND_CLIENT_SECRET",
    }
    fields.update(changes)
    return RunConfig(**fields)  # type: ignore[arg-type]


def test_the_run_sent_to_workers_carries_no_secret_and_workers_read_their_own() -> None:
    config = _config()
    password = config.accounts[0].lkfl_password
    assert password is not None
    wire = config.to_wire()
    text = json.dumps(wire)
    assert password not in text
    assert wire["run_dir"] == str(Path("runs/x").absolute())
    assert wire["app_token_env"] == "STAND_APP_TOKEN"

    got = RunConfig.from_wire(wire, {"PW": "from-the-worker"})
    assert got.accounts[0].lkfl_password == "from-the-worker"
    assert got.remote_workers and got.processes == 2
    assert got.worker_secrets({"STAND_APP_TOKEN": "t", "STAND_CLIENT_SECRET": "s"}) == ("t", "s")
    with pytest.raises(WorkerConfigError, match="STAND_APP_TOKEN and STAND_CLIENT_SECRET"):
        got.worker_secrets({})
    # on a mock, the mock's documented defaults where the worker's environment has none
    mock = RunConfig.from_wire(_config(mock_url="http://mock:8080").to_wire(), {})
    defaults = ("mock-app-token", "mock-client-secret")
    assert mock.worker_secrets({}) == mock_default_secrets() == defaults
    assert mock.worker_secrets({"STAND_APP_TOKEN": "t"}) == ("t", "mock-client-secret")


def test_mock_counters_count_the_increase_over_the_run() -> None:
    before = {
        "epoch": 1.0,
        "total": 7,
        "requests": {"gigma.login": {"200": 5, "401": 1}, "mobile.refresh": {"200": 1}},
        "events": {"tokens_issued.gigma": 5, "refresh_reuse_refused": 0},
    }
    after = {
        "epoch": 1.0,
        "uptime_s": 9.0,
        "total": 12,
        "requests": {"gigma.login": {"200": 9, "401": 1}, "mobile.refresh": {"200": 1},
                     "gigma.logout": {"200": 1}},
        "events": {"tokens_issued.gigma": 9, "refresh_reuse_refused": 0},
    }  # fmt: skip
    delta = counter_delta(before, after, 100.0)
    assert delta["requests"] == {"gigma.login": {"200": 4}, "gigma.logout": {"200": 1}}
    assert delta["total"] == 5
    assert delta["events"] == {"tokens_issued.gigma": 4, "refresh_reuse_refused": 0}
    assert delta["baseline"] == {"t": 100.0, "total": 7, "mock_restarted": False}
    restarted = counter_delta(before, {**after, "epoch": 2.0}, 100.0)
    assert restarted["total"] == 12 and restarted["baseline"]["mock_restarted"] is True
