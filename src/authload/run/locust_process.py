"""Locust run to its end for one run: started as ``python -m locust -f
authload/load/locustfile.py`` (so that its own engine, ``--processes``, master and workers,
CSV and HTML reports, is used as Locust intends, and gevent's monkey-patching stays out of
this process), watched while it runs, stopped cleanly on an abort or a Ctrl-C, and killed
with every process it forked when it overstays."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from authload.children import die_with_parent
from authload.errors import AuthloadError
from authload.load.config import (
    APP_TOKEN_ENV,
    CLIENT_SECRET_ENV,
    CONFIG_ENV,
    MOCK_CLOCK_ENV,
    STOP_GRACE_S,
    RunConfig,
)
from authload.load.report_page import UI_ENV
from authload.run.console import Console
from authload.run.launchers import WORKER_FINISH_S, Launcher
from authload.run.sessions import Endpoints
from authload.run.ui import UiSession
from authload.rundir.events import AbortEvent, LocustEvent, append_event
from authload.rundir.files import ABORT_FILE
from authload.scenario.model import Scenario
from authload.tempdirs import owned_temp_dir

LOCUSTFILE = Path(__file__).parent.parent / "load" / "locustfile.py"
GRACE_S = 120.0  # beyond the scenario's duration before the run is killed
ABORT_GRACE_S = 30.0  # for Locust to stop on an abort the runner asked for


@dataclass
class LocustProcess:
    """One run's Locust: ``watch`` is asked twice a second while it runs; a reason it gives
    stops the run as aborted (the run's watcher in Locust stops the test as the abort rule
    does, so the requests failing meanwhile are recorded)."""

    config: RunConfig
    launcher: Launcher
    endpoints: Endpoints
    console: Console
    watch: Callable[[], str | None] = lambda: None
    ui: UiSession | None = None

    @property
    def scenario(self) -> Scenario:
        return self.config.scenario

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    def run(self) -> int:
        """Locust's exit code, once it and what it started have ended."""
        with owned_temp_dir("authload-run-") as tmp:
            config_path = tmp / "config.json"  # outside the run directory: it may hold
            config_path.write_text(json.dumps(self.config.to_json()), encoding="utf-8")
            os.chmod(config_path, 0o600)  # passwords
            started = time.monotonic()
            proc = self._start(config_path)
            code = self._wait(proc)
        (self.run_dir / ABORT_FILE).unlink(missing_ok=True)
        if self.ui is not None:
            self.ui.serve_report(self.run_dir)
        self.launcher.finish(
            self.run_dir, self.scenario, code, time.monotonic() - started, self.console
        )
        return code

    def command(self) -> list[str]:
        scenario = self.scenario
        front = ["--headless"] if self.ui is None else self.ui.options.locust_args()
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            *front,
            *self.launcher.locust_args(self.run_dir),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
            "--stop-timeout",
            str(math.ceil(scenario.request_timeout_s + STOP_GRACE_S) + 1),
        ]

    def environment(self, config_path: Path) -> dict[str, str]:
        env = {**os.environ, CONFIG_ENV: str(config_path), "PYTHONUNBUFFERED": "1"}
        endpoints = self.endpoints
        if endpoints.secrets is not None:
            env.update(
                {APP_TOKEN_ENV: endpoints.secrets[0], CLIENT_SECRET_ENV: endpoints.secrets[1]}
            )
        if endpoints.clock_of is not None:
            env[MOCK_CLOCK_ENV] = endpoints.clock_of
        if self.ui is not None:
            env[UI_ENV] = "1"
        return env

    def _start(self, config_path: Path) -> subprocess.Popen[bytes]:
        # a session of its own: a Ctrl-C reaches this process, which stops the test cleanly
        proc = subprocess.Popen(
            self.command(),
            env=self.environment(config_path),
            stdout=self.console.stream,
            stderr=self.console.stream,
            start_new_session=True,
            preexec_fn=die_with_parent,  # this process killed: Locust stops, records closed
        )
        append_event(self.run_dir, LocustEvent(host=socket.gethostname(), pid=proc.pid))
        self.launcher.started(proc, self.console)
        return proc

    def _wait(self, proc: subprocess.Popen[bytes]) -> int:
        check: Callable[[], None] = _Aborter(proc, self.run_dir, self.watch)
        wait_s = self.scenario.duration_s + GRACE_S + self.launcher.wait_extra_s
        if self.ui is not None:  # no deadline until the user starts the test
            check, wait_s = self.ui.watching(check, self.run_dir, wait_s), math.inf
        try:
            return self._wait_until(proc, wait_s, check)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise AuthloadError(
                f"Locust did not finish within {GRACE_S:g} s of the scenario's "
                f"end; killed (records so far are kept)"
            ) from None
        except KeyboardInterrupt:
            return self._interrupted(proc)

    def _wait_until(
        self, proc: subprocess.Popen[bytes], timeout_s: float, check: Callable[[], None]
    ) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return proc.wait(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise
                check()
                self.launcher.poll(proc)

    def _interrupted(self, proc: subprocess.Popen[bytes]) -> int:
        """Ctrl-C: the test stops as on an abort (the run's watcher stops it, every request
        recorded, summary and report written); a second Ctrl-C, or no end within the stop's
        bound, kills Locust's processes at once (what they recorded so far is kept)."""
        self.console.say("interrupted: stopping the test (Ctrl-C again to stop at once)")
        with contextlib.suppress(OSError):
            (self.run_dir / ABORT_FILE).write_text("interrupted (Ctrl-C)", encoding="utf-8")
        bound = self.scenario.request_timeout_s + STOP_GRACE_S + WORKER_FINISH_S
        try:
            return proc.wait(timeout=bound)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            _kill_group(proc)
            with contextlib.suppress(OSError):
                reason = "interrupted twice: stopped at once"
                append_event(self.run_dir, AbortEvent(reason=reason))
            return 130


class _Aborter:
    """What checks ``watch`` while Locust runs: on its first reason, the run's watcher in
    Locust is asked to abort (``ABORT_FILE``); if Locust has not ended :data:`ABORT_GRACE_S`
    later, it is told to shut down (SIGTERM: records closed)."""

    def __init__(
        self, proc: subprocess.Popen[bytes], run_dir: Path, watch: Callable[[], str | None]
    ) -> None:
        self.proc = proc
        self.run_dir = run_dir
        self.watch = watch
        self.asked_at: float | None = None
        self.terminated = False

    def __call__(self) -> None:
        if self.asked_at is None:
            reason = self.watch()
            if reason is not None:
                self.asked_at = time.monotonic()
                (self.run_dir / ABORT_FILE).write_text(reason, encoding="utf-8")
        elif not self.terminated and time.monotonic() - self.asked_at > ABORT_GRACE_S:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill Locust and the processes it forked (its session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
