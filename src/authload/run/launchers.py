"""How a run's Locust processes are laid out, one class per kind: one process, local worker
processes (Locust's ``--processes``), or a master here for workers started elsewhere with
`authload worker`. Each gives its Locust arguments, what the manifest records of it, and what
is waited for once Locust's main process has exited."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authload.errors import AuthloadError, InputError, TargetError
from authload.run.console import Console
from authload.run.defaults import DEFAULT_MASTER_PORT, DEFAULT_WORKERS_TIMEOUT_S
from authload.rundir.events import (
    AbortEvent,
    Event,
    WorkerConnectedEvent,
    WorkerJoinedEvent,
    WorkersEvent,
    of_kind,
    read_events,
)
from authload.rundir.files import LOCUST_COUNTS_DIR
from authload.rundir.manifest import Distributed
from authload.scenario.model import Scenario

WORKER_FINISH_S = 60.0  # beyond the stop timeout, for workers to finish once the master quit


@dataclass(frozen=True)
class MasterOptions:
    """A distributed run: the Locust master here, ``workers`` workers elsewhere."""

    workers: int
    bind_host: str = "0.0.0.0"
    port: int = DEFAULT_MASTER_PORT
    timeout_s: int = DEFAULT_WORKERS_TIMEOUT_S


class Launcher:
    """One layout of Locust's processes for a run."""

    processes = 1  # processes that run users
    remote_workers = False  # they read their own secrets and passwords
    wait_extra_s = 0.0  # beyond the scenario's length, before the test starts

    def locust_args(self, run_dir: Path) -> list[str]:
        return locust_reports(run_dir, partial=False)

    def distributed(self) -> Distributed | None:
        """What the manifest records of a distributed run."""
        return None

    def started(self, proc: subprocess.Popen[bytes], console: Console) -> None:
        """Locust's main process has started."""

    def poll(self, proc: subprocess.Popen[bytes]) -> None:
        """Asked twice a second while Locust's main process runs."""

    def finish(
        self, run_dir: Path, scenario: Scenario, code: int, waited_s: float, console: Console
    ) -> None:
        """Once Locust's main process has exited: what else must end before the records are
        merged."""


class OneProcess(Launcher):
    """Locust alone in one process."""


class LocalProcesses(Launcher):
    """Locust's master and ``processes`` workers it forks here (``--processes``). Its exit does
    not wait for them (Locust's kill_workers drops a child still running) and they may still be
    writing their records: they are noted while it runs and waited for after."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._forked: dict[int, Any] = {}

    def locust_args(self, run_dir: Path) -> list[str]:
        port = str(_free_port())  # so parallel runs never collide
        return [
            *locust_reports(run_dir, partial=True),
            "--enable-rebalancing",  # a worker lost: its users go to the others
            "--processes",
            str(self.processes),
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            port,
            "--master-host",
            "127.0.0.1",
            "--master-port",
            port,
        ]

    def poll(self, proc: subprocess.Popen[bytes]) -> None:
        import psutil  # type: ignore[import-untyped]

        try:
            for child in psutil.Process(proc.pid).children():
                self._forked.setdefault(child.pid, child)
        except psutil.Error:
            pass

    def finish(
        self, run_dir: Path, scenario: Scenario, code: int, waited_s: float, console: Console
    ) -> None:
        """Wait, bounded, for the forked workers to finish (they were told to quit)."""
        import psutil

        bound = scenario.request_timeout_s + 1 + WORKER_FINISH_S
        _, alive = psutil.wait_procs(list(self._forked.values()), timeout=bound)
        if alive:
            console.say(
                f"Locust workers {sorted(p.pid for p in alive)} still running "
                f"{bound:g} s after the master quit; their records so far are kept"
            )


class RemoteWorkers(Launcher):
    """The Locust master here; it waits (bounded by Locust's ``--expect-workers-max-wait``)
    for workers started elsewhere, sends them the run when the test starts, and they write
    their record spools and counts into the run directory (a volume mounted at the same path
    everywhere)."""

    remote_workers = True

    def __init__(self, master: MasterOptions) -> None:
        self.master = master
        self.processes = master.workers
        self.wait_extra_s = float(master.timeout_s)

    def locust_args(self, run_dir: Path) -> list[str]:
        master = self.master
        return [
            *locust_reports(run_dir, partial=True),
            "--enable-rebalancing",
            "--master",
            "--expect-workers",
            str(master.workers),
            "--expect-workers-max-wait",
            str(master.timeout_s),
            "--master-bind-host",
            master.bind_host,
            "--master-bind-port",
            str(master.port),
        ]

    def distributed(self) -> Distributed:
        master = self.master
        return Distributed(
            expect_workers=master.workers,
            master_bind_host=master.bind_host,
            master_port=master.port,
            workers_timeout_s=master.timeout_s,
        )

    def started(self, proc: subprocess.Popen[bytes], console: Console) -> None:
        master = self.master
        console.say(
            f"Locust master on {master.bind_host}:{master.port} waiting up to "
            f"{master.timeout_s} s for {master.workers} workers (`authload worker "
            f"--master-host <this host> --master-port {master.port}`)"
        )

    def finish(
        self, run_dir: Path, scenario: Scenario, code: int, waited_s: float, console: Console
    ) -> None:
        """A clear error if the test never started (no workers came), else wait, bounded, for
        each worker's last act (its counts file, written after its record spool is closed);
        one that never finishes is reported and shows in ``died``."""
        events = read_events(run_dir)
        started = of_kind(events, WorkersEvent)
        if not started:
            if code != 130:
                raise self._no_test(events, code, waited_s)
            return
        unfit = {e.worker for e in of_kind(events, AbortEvent)}
        names = {w.worker for e in started for w in e.workers}
        names |= {e.worker for e in of_kind(events, WorkerJoinedEvent)}
        deadline = time.monotonic() + scenario.request_timeout_s + 1 + WORKER_FINISH_S
        pending = sorted(names - unfit)
        while pending and time.monotonic() < deadline:
            time.sleep(0.2)
            counts = run_dir / LOCUST_COUNTS_DIR
            pending = [w for w in pending if not (counts / f"{w}.json").is_file()]
        if pending:
            console.say(
                f"workers {', '.join(pending)} did not finish within "
                f"{WORKER_FINISH_S:g} s of the master's end; their records so far are kept"
            )

    def _no_test(self, events: list[Event], code: int, waited_s: float) -> AuthloadError:
        master = self.master
        if waited_s < master.timeout_s:
            return AuthloadError(
                f"the Locust master exited (code {code}) before the test started: see its "
                f"messages above"
            )
        connected = {e.client_id for e in of_kind(events, WorkerConnectedEvent)}
        return AuthloadError(
            f"no test ran: the Locust master waited {master.timeout_s} s for "
            f"{master.workers} workers on port {master.port} and {len(connected)} "
            f"connected; start `authload worker --master-host <this host> --master-port "
            f"{master.port}` where the workers run (or raise --workers-timeout)"
        )


def launcher_for(processes: int, master: MasterOptions | None) -> Launcher:
    """The one place that tells the layouts apart; refuses options that do not fit."""
    if processes < 1:
        raise TargetError("--processes must be at least 1")
    if master is None:
        return OneProcess() if processes == 1 else LocalProcesses(processes)
    if master.workers < 1:
        raise InputError("--expect-workers must be at least 1")
    if processes > 1:
        raise InputError(
            "--processes starts Locust workers here, --expect-workers waits for workers "
            "elsewhere: use one of them"
        )
    if master.timeout_s < 1:
        raise InputError("--workers-timeout must be at least 1 s")
    if not 0 < master.port < 65536:
        raise InputError(f"--master-port {master.port}: not a port number")
    return RemoteWorkers(master)


def locust_reports(run_dir: Path, *, partial: bool) -> list[str]:
    """Locust's own CSV, HTML and JSON reports, never its terminal table (authload prints the
    table from the records). With several processes Locust's master misses the workers'
    last reports, so its files are named as the partial view they are."""
    name = "locust-partial" if partial else "locust"
    return [
        "--csv",
        str(run_dir / name),
        "--html",
        str(run_dir / f"{name}.html"),
        "--json-file",
        str(run_dir / f"{name}_stats"),
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
