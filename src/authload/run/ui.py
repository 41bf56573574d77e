"""`authload run SCENARIO --ui`, the runner's side: Locust's web UI in front of the run instead
of ``--headless``, and the report where the UI links to it.

The design: Locust runs one test per run. The user presses start in the UI (the scenario's
stages drive the load, as a Locust shape), and when the test stops (the UI's stop button, the
scenario's end, or an abort) the Locust process quits a few seconds later
(:mod:`authload.load.web_ui`), so the runner's ordinary end follows unchanged: records
merged, summary, report and verdict. From the moment Locust has quit, this module serves the
report on the UI's own address (``/authload/report``, the link in the UI: a page that waits
until the report is written, then the report), for ``linger_s`` more seconds or until Ctrl-C.
No deadline runs before the user presses start; from the start, the scenario's length and
:data:`authload.run.locust_process.GRACE_S`, as for a headless run.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from authload.errors import InputError, ResultsError
from authload.load.report_page import REPORT_PATH, STATE_PATH, WRITING, waiting_page
from authload.run.console import Console
from authload.run.defaults import DEFAULT_LINGER_S, DEFAULT_UI_PORT
from authload.rundir.events import ManualControlEvent, StageEvent, of_kind, read_events
from authload.rundir.files import REPORT_FILE, SUMMARY_FILE
from authload.rundir.manifest import UiRecord
from authload.rundir.summary import read_summary

BIND_TRIES_S = 10.0  # Locust's forked processes may hold its port a moment after it quits


@dataclass(frozen=True)
class UiOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_UI_PORT
    linger_s: float = DEFAULT_LINGER_S

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def check(self) -> None:
        """The UI's port is free now (Locust would fail late and obscurely otherwise)."""
        from authload.mock.server import listen

        if not 0 < self.port < 65536:
            raise InputError(f"--ui-port {self.port}: not a port number")
        if self.linger_s < 0:
            raise InputError("--ui-linger must be 0 or more seconds")
        try:
            listen(self.host, self.port).close()
        except InputError as exc:
            raise InputError(f"--ui-host/--ui-port: {exc}") from None

    def locust_args(self) -> list[str]:
        return ["--web-host", self.host, "--web-port", str(self.port)]


@dataclass
class UiSession:
    """One `authload run --ui`: the deadline once the test started, the report server once
    Locust quit, and what the manifest records of the UI."""

    options: UiOptions
    run_dir: Path | None = None
    manual: list[dict[str, Any]] = field(default_factory=list)  # manual control, as recorded
    _started: float | None = None
    console: Console = field(default_factory=Console, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def announce(self) -> None:
        self.console.say(
            f"Locust's web UI at {self.options.url}: press start to run the "
            f"scenario's stages; the authload tab shows its SLOs live; the report follows at "
            f"{self.options.url}{REPORT_PATH} when the test stops"
        )

    def watching(
        self, check: Callable[[], None], run_dir: Path, bound_s: float
    ) -> Callable[[], None]:
        """``check`` (the runner's, while Locust runs) and the run's deadline; the UI's URL
        said once Locust is up."""
        self.announce()

        def both() -> None:
            check()
            self.check_deadline(run_dir, bound_s)

        return both

    def check_deadline(self, run_dir: Path, bound_s: float) -> None:
        """Raise :class:`subprocess.TimeoutExpired` once the test has run ``bound_s`` since
        the user started it (its first stage event); nothing before the start."""
        if self._started is None:
            stages = of_kind(read_events(run_dir), StageEvent)
            if not stages:
                return
            self._started = stages[0].t
        if time.time() - self._started > bound_s:
            raise subprocess.TimeoutExpired("locust", bound_s)

    def record(self, run_dir: Path) -> UiRecord:
        """What the manifest records of the UI."""
        events = of_kind(read_events(run_dir), ManualControlEvent)
        self.manual = [e.model_dump(mode="json", exclude={"kind"}) for e in events]
        return UiRecord(
            url=self.options.url,
            started_by_user=self._started is not None,
            manual_control=self.manual,
        )

    def notes(self) -> list[str]:
        """What a person must read beside the verdict of a run the UI drove."""
        if not self.manual:
            return []
        first = self.manual[0]
        return [
            f"manual control from the UI from {first['elapsed_s']:g} s ({first['users']} users; "
            f"{len(self.manual)} changes in the manifest): the verdict judges the load that "
            f"ran, not the scenario's stages"
        ]

    def serve_report(self, run_dir: Path) -> None:
        """Serve the run's report on the UI's address (Locust has quit); a warning if the
        address cannot be had."""
        self.run_dir = run_dir
        handler = type("Handler", (_ReportHandler,), {"run_dir": run_dir})
        deadline = time.monotonic() + BIND_TRIES_S
        while self._server is None:
            try:
                self._server = ThreadingHTTPServer((self.options.host, self.options.port), handler)
            except OSError as exc:
                if time.monotonic() > deadline:
                    self.console.say(f"the report is not served at {self.options.url}: {exc}")
                    return
                time.sleep(0.2)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def linger(self) -> None:
        """Keep serving the report for ``linger_s`` seconds; Ctrl-C ends it sooner."""
        if self._server is None or self.options.linger_s <= 0:
            return
        self.console.say(
            f"report at {self.options.url}{REPORT_PATH} for "
            f"{self.options.linger_s:g} s more (Ctrl-C ends it)"
        )
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(self.options.linger_s)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _ReportHandler(BaseHTTPRequestHandler):
    run_dir: Path

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(302, b"", "text/plain", {"Location": REPORT_PATH})
        elif path == REPORT_PATH:
            report = self.run_dir / REPORT_FILE
            if report.is_file():
                self._send(200, report.read_bytes(), "text/html; charset=utf-8")
            else:
                page = waiting_page(self.run_dir.name, WRITING)
                self._send(200, page.encode(), "text/html; charset=utf-8")
        elif path == STATE_PATH:
            self._send(200, json.dumps(self._state()).encode(), "application/json")
        else:
            gone = f"not found: the run is over, its report at {REPORT_PATH}"
            self._send(404, gone.encode(), "text/plain")

    def _state(self) -> dict[str, Any]:
        return {
            "run": self.run_dir.name,
            "phase": "over",
            "verdict": self._verdict(),
            "report": REPORT_PATH,
            "report_ready": (self.run_dir / REPORT_FILE).is_file(),
        }

    def _verdict(self) -> str | None:
        """The run's verdict once its summary is written; None before, or if it cannot be
        read (the page then keeps waiting rather than the server failing)."""
        if not (self.run_dir / SUMMARY_FILE).is_file():
            return None
        try:
            return read_summary(self.run_dir).verdict
        except ResultsError:
            return None

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return
