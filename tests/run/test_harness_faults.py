"""The harness under its own faults, each caused for real on 127.0.0.1: a run that lost part of
itself never says PASS, ends in bounded time, and leaves a readable run directory.

(A Locust worker killed mid-run: ``tests/run/test_run_crash.py``; a spool cut mid-record:
``tests/load/test_recorder.py``.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psutil  # type: ignore[import-untyped]
import pytest

from tests.helpers.runs import REPO, authload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ON_MOCK = """
name: faults
accounts: {count: 500}
mix: {lkfl: 1, esia: 1}
load:
  stages: [{duration_s: DURATION, users: 6, spawn_rate: 6}]
think_time: {dist: fixed, ms: 50}
abort: null
mock: {behaviour: {}}
"""

ON_STAND = """
name: stand-faults
mix: {password_call: 1}
load:
  stages: [{duration_s: 6, users: 2, spawn_rate: 2}]
think_time: {dist: fixed, ms: 100}
request_timeout_s: 1
retry: {policy: none}
abort: {error_rate: 0.5, window_s: 4, min_requests: 2}
"""


def _stand(tmp_path: Path, url: str) -> tuple[Path, Path, dict[str, str]]:
    """A scenario and a targets file naming a shared stand at ``url`` (nothing real)."""
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        f"stand:\n  gigma_url: {url}\n  mobile_url: {url}\n"
        f"  app_token_env: STAND_TOKEN\n  client_secret_env: STAND_SECRET\n"
        f"  limits: {{max_users: 4, max_duration_s: 30}}\n"
        f'  accounts:\n    - {{phone: "79990000001", call_password: "1111"}}\n',
        encoding="utf-8",
    )
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(ON_STAND, encoding="utf-8")
    return scenario, targets, {"STAND_TOKEN": "t", "STAND_SECRET": "s"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _silent_server() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def _run_dir(out: Path) -> Path:
    [run_dir] = list(out.iterdir())
    return run_dir


def _events(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_a_target_that_refuses_connections_is_refused_before_any_load(tmp_path: Path) -> None:
    scenario, targets, env = _stand(tmp_path, f"http://127.0.0.1:{_free_port()}")
    out = tmp_path / "runs"
    args = ("run", scenario, "--target", "stand", "--targets", targets, "--confirm")
    result = authload(*args, "--out", out, env=env)
    assert result.returncode == 2, result.stderr
    assert "target stand: cannot connect to http://127.0.0.1:" in result.stderr
    assert not out.exists() or not any(out.iterdir())  # no empty run dressed as a result


def test_a_target_that_never_answers_times_out_per_attempt_and_aborts(tmp_path: Path) -> None:
    with _silent_server() as url:
        scenario, targets, env = _stand(tmp_path, url)
        out = tmp_path / "runs"
        args = ("run", scenario, "--target", "stand", "--targets", targets, "--confirm")
        started = time.monotonic()
        result = authload(*args, "--out", out, env=env, timeout=90)
        took = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert took < 6 + 40, took  # on time: the load's 6 s, start-up and the stop's bounds
    run_dir = _run_dir(out)
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert len(records) > 0
    assert set(records["error"]) == {"timeout"}
    assert set(records["status"]) == {0}
    assert (records["latency_ms"] >= 900).all()  # each attempt waited its 1 s timeout
    assert any(e["kind"] == "abort" for e in _events(run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "aborted"


def _spawn(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "authload", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, as a terminal's job
    )


def _wait_for_load(out: Path, proc: subprocess.Popen[str], seconds: float = 60) -> Path:
    """The run directory once its records started coming in."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        dirs = list(out.iterdir()) if out.is_dir() else []
        if dirs and any((dirs[0] / "records").glob("*.arrows")):
            return dirs[0]
        time.sleep(0.2)
    raise AssertionError("the load never started")


def _interrupted(
    tmp_path: Path, duration_s: int, act: Callable[[subprocess.Popen[str]], None]
) -> tuple[subprocess.Popen[str], Path, str, str, float]:
    """`authload run` on the embedded mock; ``act`` on it 3 s into the load; its end (exit
    code, output) and how long it took after ``act``."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(ON_MOCK.replace("DURATION", str(duration_s)), encoding="utf-8")
    out = tmp_path / "runs"
    proc = _spawn("run", scenario, "--out", out)
    try:
        run_dir = _wait_for_load(out, proc)
        time.sleep(3)
        act(proc)
        started = time.monotonic()
        stdout, stderr = proc.communicate(timeout=90)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc, run_dir, stdout, stderr, took


def _kill_the_mock(proc: subprocess.Popen[str]) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    mocks = [p for p in children if "mock" in p.cmdline()]
    assert mocks, "no embedded mock found"
    for mock in mocks:
        mock.kill()


def _ctrl_c(times: int) -> Callable[[subprocess.Popen[str]], None]:
    def press(proc: subprocess.Popen[str]) -> None:
        for _ in range(times):
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole job
            time.sleep(0.3)

    return press


def test_the_embedded_mock_killed_mid_run_aborts_with_its_errors_recorded(tmp_path: Path) -> None:
    proc, run_dir, stdout, stderr, _ = _interrupted(tmp_path, 30, _kill_the_mock)
    assert proc.returncode == 3, stdout + stderr
    assert "the embedded mock exited mid-run" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "aborted"
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert (records["error"] == "connect").any() or (records["error"] == "reset").any()
    assert (run_dir / "report.html").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "aborted"


def test_ctrl_c_once_stops_cleanly_with_summary_report_and_records(tmp_path: Path) -> None:
    proc, run_dir, stdout, stderr, _ = _interrupted(tmp_path, 60, _ctrl_c(1))
    assert proc.returncode == 3, stdout + stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "aborted"
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert summary["requests"] == len(records) > 0
    assert summary["reconciliation"]["match"], summary["reconciliation"]  # every record kept
    assert (run_dir / "report.html").is_file()
    assert not (run_dir / "records").exists()


def test_ctrl_c_twice_stops_fast_and_leaves_readable_records(tmp_path: Path) -> None:
    proc, run_dir, stdout, stderr, took = _interrupted(tmp_path, 60, _ctrl_c(2))
    assert proc.returncode != 0, stdout + stderr
    assert took < 20, took
    records = pd.read_parquet(run_dir / "requests.parquet")
    assert len(records) > 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] in ("aborted", "error")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB filesystem of its own (tmpfs; needs root, as CI runs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (run as root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_naming_the_directory(tmp_path: Path, small_disk: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(ON_MOCK.replace("DURATION", "60"), encoding="utf-8")
    out = small_disk / "runs"
    started = time.monotonic()
    result = authload("run", scenario, "--out", out, timeout=150)
    assert time.monotonic() - started < 120
    assert result.returncode == 3, result.stdout + result.stderr
    assert "no space left" in result.stderr.lower()
    assert str(out) in result.stderr
    run_dir = _run_dir(out)
    spools = sorted((run_dir / "records").glob("*.arrows"))
    merged = run_dir / "requests.parquet"
    if merged.is_file():
        assert len(pd.read_parquet(merged)) > 0
    else:  # the records written so far stay readable where they were written
        import pyarrow.ipc as ipc

        rows = 0
        for spool in spools:
            with contextlib.suppress(Exception), ipc.open_stream(str(spool)) as reader:
                for batch in reader:
                    rows += batch.num_rows
        assert rows > 0


def test_a_run_whose_runner_was_killed_is_reported_as_incomplete(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(ON_MOCK.replace("DURATION", "8"), encoding="utf-8")
    out = tmp_path / "runs"
    proc = _spawn("run", scenario, "--out", out)
    try:
        run_dir = _wait_for_load(out, proc)
        time.sleep(3)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()  # the runner alone, for real: its Locust and mock stop as it dies
        proc.communicate(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    report = authload("report", run_dir)
    assert report.returncode == 3, report.stdout + report.stderr
    assert "the run never finished" in report.stdout
    assert "verdict: INCOMPLETE" in report.stdout
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "incomplete"
    assert len(pd.read_parquet(run_dir / "requests.parquet")) > 0
    assert "INCOMPLETE" in (run_dir / "report.html").read_text(encoding="utf-8")
    again = authload("report", run_dir)  # now an ordinary finished run directory
    assert again.returncode == 3 and "never finished" not in again.stdout
