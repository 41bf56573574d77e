"""Helpers of the `authload run --ui` tests: the real command in the background, its Locust
web UI on a free 127.0.0.1 port, what it printed, and the run directory it left."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.helpers.runs import REPO, STARTUP_S

T = TypeVar("T")

# two closed stages, 8 s in all, and a fault window that slows refreshes a little: every
# default gate and SLO can pass
SHORT = """
name: ui-check
mix: {password_call: 1, sms: 1, lkfl: 1}
load:
  model: closed
  stages:
    - {duration_s: 3, users: 3, spawn_rate: 3}
    - {duration_s: 5, users: 5, spawn_rate: 5}
think_time: {dist: fixed, ms: 50}
flows:
  password_call: {devices: {1: 1.0}, session: {dist: fixed, ms: 100}}
  sms: {refreshes: [1, 1], refresh_every: {dist: fixed, ms: 200}}
retry: {policy: none}
slos:
  - "error_rate(*, 5xx) < 1%"
  - "journey_success(*) > 95%"
  - "p99(gigma.login, ok) < 2s"
mock:
  behaviour:
    faults:
      - {kind: latency, endpoints: [mobile.refresh], added_ms: 20, start_s: 1, duration_s: 3}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, probe: Callable[[], T | None], timeout_s: float) -> T:
    """``probe()`` until it gives something (errors count as nothing yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError, KeyError, IndexError):
            value = probe()
            if value is not None:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.3)


@dataclass
class UiRun:
    """One `authload run --ui` going on in the background."""

    proc: subprocess.Popen[bytes]
    url: str
    out: Path
    stdout: Path
    stderr: Path

    @property
    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8") + self.stderr.read_text(encoding="utf-8")

    def describe(self) -> str:
        return f"exit {self.proc.poll()}\n{self.output}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(self.url + path, data=data, timeout=5)

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/authload/state").raise_for_status().json()
        return data

    def tab(self) -> dict[tuple[str, str], tuple[str, str]]:
        """The authload tab's rows as Locust's UI gets them: (what, item) -> (now, status)."""
        answer = self.get("/stats/requests").raise_for_status().json()
        (tab,) = [t for t in answer["extended_stats"] if t["key"] == "authload"]
        return {(r["what"], r["item"]): (r["now"], r["status"]) for r in tab["data"]}

    def wait_up(self) -> None:
        wait_until("Locust's web UI", lambda: self.get("/").status_code == 200 or None, STARTUP_S)

    def wait_printed(self, text: str, timeout_s: float = STARTUP_S) -> None:
        wait_until(f"{text!r} printed", lambda: text in self.output or None, timeout_s)

    def wait_exit(self, timeout_s: float = STARTUP_S) -> int:
        return self.proc.wait(timeout=timeout_s)

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    @property
    def run_dir(self) -> Path:
        match = re.search(r"^run directory: (.+)$", self.output, re.MULTILINE)
        assert match, self.describe()
        return Path(match[1].strip())


@contextmanager
def ui_run(
    tmp_path: Path, scenario: str = SHORT, *args: str, linger_s: float = 0
) -> Iterator[UiRun]:
    """`authload run --ui` of ``scenario`` (YAML text) on a free port; killed if still
    running when the test leaves."""
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario, encoding="utf-8")
    port = free_port()
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "authload", "run", str(path), "--out", str(out), "--ui"]
    cmd += ["--ui-port", str(port), "--ui-linger", f"{linger_s:g}", *args]
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as o, stderr.open("wb") as e:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=o, stderr=e, env=dict(os.environ))
    run = UiRun(proc, f"http://127.0.0.1:{port}", out, stdout, stderr)
    try:
        yield run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
