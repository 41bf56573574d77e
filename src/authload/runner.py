"""`authload run`: validate, start the embedded mock if the target is the mock, run Locust
headless in child processes, and leave a complete run directory with a verdict.
`authload worker`: a Locust worker for a distributed run's master on another host.

Locust runs as ``python -m locust -f authload/load/locustfile.py`` so that its own engine
(``--processes``, master and workers, CSV and HTML reports) is used as Locust intends, and so
that gevent's monkey-patching stays out of this process.

Distributed runs (``expect_workers``): the Locust here is a master only; it waits (bounded by
Locust's ``--expect-workers-max-wait``) for workers started elsewhere with `authload worker`,
sends them the run when the test starts (see ``load/locustfile.py``), and they write their
record spools and counts into the run directory (a volume mounted at the same path
everywhere). Once the master has quit, the runner waits for each worker's counts file (its
last act) before merging the records.

A target that is a mock already running (``mock: true`` with URLs): at the start its state is
reset (codes, sessions, rate-limit windows; ``reset_mock: false`` keeps them) and its counters
are read; ``mock_stats.json`` holds their increase over the run, so reconciliation holds on a
long-lived mock that served other runs before (not one serving another run at the same time).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from authload.children import die_with_parent
from authload.control import MockControl
from authload.errors import AuthloadError, InputError, ResultsError, TargetError
from authload.load.run_limits import limits_used
from authload.mock.server import EmbeddedMock
from authload.results import (
    ABORT_FILE,
    LOCUST_COUNTS_DIR,
    MANIFEST_FILE,
    MOCK_STATS_FILE,
    RECORDS_DIR,
    RECORDS_FILE,
    SPOOL_SUFFIX,
    SUMMARY_FILE,
    append_event,
    finalize_records,
    read_events,
    read_json,
    write_json,
)
from authload.runconfig import (
    APP_TOKEN_ENV,
    CLIENT_SECRET_ENV,
    CONFIG_ENV,
    MOCK_CLOCK_ENV,
    STOP_GRACE_S,
    WORKER_ENV,
    WORKER_UNFIT_EXIT,
    RunConfig,
    RunLimits,
    TestAccount,
)
from authload.running_mock import (
    RunningMock,
    check_running_mock,
    keep_fault_history,
    running_mock_secrets,
)
from authload.scenario import Scenario
from authload.scenario_file import load_scenario
from authload.targets import Target, check_safety, resolve_target
from authload.ui import UI_ENV, UiSession

LOCUSTFILE = Path(__file__).parent / "load" / "locustfile.py"
GRACE_S = 120.0  # beyond the scenario's duration before the run is killed
DEFAULT_MASTER_PORT = 5557  # Locust's
DEFAULT_WORKERS_TIMEOUT_S = 300  # a distributed run's master waits this long for its workers
DEFAULT_MASTER_TIMEOUT_S = 300  # a worker waits this long for its master (Locust's 60 x 5 s)
MAX_MASTER_TIMEOUT_S = 3600  # Locust's connection loop recurses once per 5 s try
WORKER_FINISH_S = 60.0  # beyond the stop timeout, for workers to finish once the master quit
ABORT_GRACE_S = 30.0  # for Locust to stop on an abort the runner asked for


@dataclass(frozen=True)
class MasterOptions:
    """A distributed run: the Locust master here, ``workers`` workers elsewhere."""

    workers: int
    bind_host: str = "0.0.0.0"
    port: int = DEFAULT_MASTER_PORT
    timeout_s: int = DEFAULT_WORKERS_TIMEOUT_S


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    verdict: str  # pass, fail, aborted, error
    exit_code: int
    summary: dict[str, Any]


def run(
    scenario_path: str | Path,
    target_name: str | None = None,
    out: str | Path = "runs",
    processes: int = 1,
    duration_s: float | None = None,
    confirm: bool = False,
    targets_file: str | Path | None = None,
    pushgateway: str | None = None,
    master: MasterOptions | None = None,
    ui: UiSession | None = None,
) -> RunResult:
    """``master``: a distributed run, Locust's master here and its workers elsewhere.
    ``ui``: Locust's web UI in front instead of headless (:mod:`authload.ui`)."""
    scenario = load_scenario(scenario_path)
    if duration_s is not None:
        scenario = scenario.with_duration(duration_s)
    if processes < 1:
        raise TargetError("--processes must be at least 1")
    _check_master(master, processes)
    if ui is not None:
        _check_ui(ui, master)
    target = resolve_target(target_name or scenario.target, targets_file)
    if master is not None and target.embedded:
        raise TargetError(
            "the embedded mock listens on this host's 127.0.0.1, out of remote workers' "
            "reach: start `authload mock` where they reach it and name it as a target "
            "(deploy/targets.yaml: compose-mock, k8s-mock), or use --processes"
        )
    stated = check_safety(target, scenario, confirm)
    if stated:
        print(f"authload: target {target.name} limits: {', '.join(stated)}", file=sys.stderr)
    scenario = _apply_limits(scenario, target)
    if not target.embedded:  # fail on missing secrets or URLs before anything is created
        if not target.mock and master is None:  # remote workers read their own secrets
            target.secrets()
        urls = target.urls()
        if target.mock:
            check_running_mock(target)
        else:
            _check_reachable(target.name, urls)
    run_dir = _new_run_dir(Path(out), scenario.name)
    print(f"authload: run directory {run_dir}", file=sys.stderr, flush=True)
    try:
        return _conduct(run_dir, scenario, target, processes, master, pushgateway, ui)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise ResultsError(
            f"{run_dir}: no space left on device: the run stopped; what was recorded so far "
            f"stays readable there ({RECORDS_FILE}, or the Arrow streams in {RECORDS_DIR}/)"
        ) from None


def _conduct(
    run_dir: Path,
    scenario: Scenario,
    target: Target,
    processes: int,
    master: MasterOptions | None,
    pushgateway: str | None,
    ui: UiSession | None = None,
) -> RunResult:
    """The run in its directory: the load, then the records merged, summary and report."""
    manifest = _manifest(scenario, target, processes if master is None else master.workers)
    if master is not None:
        manifest["distributed"] = {
            "expect_workers": master.workers,
            "master_bind_host": master.bind_host,
            "master_port": master.port,
            "workers_timeout_s": master.timeout_s,
        }
    write_json(run_dir / MANIFEST_FILE, manifest)
    try:
        exit_status, aborted, mock_stats = _execute(
            scenario, target, processes, run_dir, master, ui
        )
        status = "aborted" if aborted else ("completed" if exit_status == 0 else "error")
    except BaseException as exc:
        _keep_what_failed(run_dir, manifest, exc)
        raise
    finalized = finalize_records(run_dir)
    if finalized.torn:
        print(
            f"authload: record spools cut mid-write (a process died writing): "
            f"{', '.join(finalized.torn)}; every complete batch kept",
            file=sys.stderr,
            flush=True,
        )
    if mock_stats is not None:
        write_json(run_dir / MOCK_STATS_FILE, mock_stats)
    manifest.update(
        end=_now(),
        status=status,
        locust_exit=exit_status,
        records=finalized.rows,
        torn_spools=finalized.torn,
        died=_died(run_dir, finalized.unclosed),
        workers=_workers(run_dir),
        **(ui.manifest_fields(run_dir) if ui is not None else {}),
    )
    write_json(run_dir / MANIFEST_FILE, manifest)
    return _conclude(run_dir, scenario, target, status, pushgateway)


def _keep_what_failed(run_dir: Path, manifest: dict[str, Any], exc: BaseException) -> None:
    """After a failed run: its error into the events and manifest, its records merged, as far
    as the disk lets (a full disk must not hide the error that stopped the run)."""
    with contextlib.suppress(OSError):
        append_event(run_dir, {"t": time.time(), "kind": "run_error", "error": str(exc)})
    manifest.update(end=_now(), status="error", error=str(exc), workers=_workers(run_dir))
    with contextlib.suppress(OSError):
        write_json(run_dir / MANIFEST_FILE, manifest)
    with contextlib.suppress(OSError):
        finalize_records(run_dir)


def _conclude(
    run_dir: Path, scenario: Scenario, target: Target, status: str, pushgateway: str | None
) -> RunResult:
    """Summary, target limits used, Pushgateway, report; the verdict."""
    from authload.analysis.summary import summarize

    summary = summarize(run_dir, scenario, status)
    used = limits_used(run_dir)
    if used is not None:
        summary["limits"] = used
    write_json(run_dir / SUMMARY_FILE, summary)
    _state_limits_used(target, used)
    from authload.pushgateway import push_after_run

    push_after_run(run_dir, pushgateway)  # when configured; a failure is only a warning
    try:  # the report only shows the run: failing to write it must not lose the run
        from authload.analysis.report import write_report

        write_report(run_dir)
    except Exception as exc:
        print(f"authload: report.html not written: {exc!r}", file=sys.stderr, flush=True)
    verdict = summary["verdict"]
    code = {"pass": 0, "fail": 1}.get(verdict, 3)
    return RunResult(run_dir, verdict, code, summary)


def _check_reachable(name: str, urls: tuple[str, str]) -> None:
    """A target that refuses connections is refused before any run directory or load: no
    empty run dressed as a result. (Only a TCP connection: nothing is sent.)"""
    for url in dict.fromkeys(urls):
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "", port), timeout=5).close()
        except OSError as exc:
            raise TargetError(
                f"target {name}: cannot connect to {url} ({exc.strerror or exc}): is it up?"
            ) from None


def _apply_limits(scenario: Scenario, target: Target) -> Scenario:
    """A shared target's abort level overrides a laxer one in the scenario, and its window
    and minimum of requests are at most the default rule's, so that a scenario cannot make
    the abort unreachable (a huge window or minimum)."""
    level = target.limits.abort_error_rate
    if level is None:
        return scenario
    from authload.scenario import Abort

    default = Abort()
    abort = scenario.abort or default
    rule = abort.model_copy(
        update={
            "error_rate": min(abort.error_rate, level),
            "window_s": min(abort.window_s, default.window_s),
            "min_requests": min(abort.min_requests, default.min_requests),
        }
    )
    return scenario if rule == scenario.abort else scenario.model_copy(update={"abort": rule})


def _test_accounts(target: Target, remote: bool) -> list[TestAccount]:
    """The target's configured accounts, with passwords from this environment (none for
    remote workers: they read their own)."""
    return [
        TestAccount(
            phone=a.phone,
            inn=a.inn,
            lkfl_password=None if remote else os.environ.get(a.lkfl_password_env or "", None),
            call_password=a.call_password,
            sms_code=a.sms_code,
            lkfl_password_env=a.lkfl_password_env,
        )
        for a in target.accounts
    ]


def _run_limits(target: Target) -> RunLimits:
    """The target's limits the Locust processes enforce while the run goes."""
    limits = target.limits
    return RunLimits(limits.send_password_budget, limits.max_request_rate)


def _state_limits_used(target: Target, used: dict[str, Any] | None) -> None:
    if used is None:
        return
    budget, ceiling = used.get("send_password_budget"), used.get("max_request_rate")
    if budget is not None:
        print(
            f"authload: target {target.name} send_password budget: used {budget['used']} of "
            f"{target.limits.send_password_budget} ({budget['refused']} calls refused locally)",
            file=sys.stderr,
            flush=True,
        )
    if ceiling is not None:
        print(
            f"authload: target {target.name} max_request_rate "
            f"{target.limits.max_request_rate:g}/s: {ceiling['waited']} requests waited for "
            f"it, the longest {ceiling['longest_wait_s']:.3f} s",
            file=sys.stderr,
            flush=True,
        )


def _execute(
    scenario: Scenario,
    target: Target,
    processes: int,
    run_dir: Path,
    master: MasterOptions | None = None,
    ui: UiSession | None = None,
) -> tuple[int, bool, dict[str, Any] | None]:
    if not target.embedded:
        gigma_url, mobile_url = target.urls()
        if not target.mock:
            secrets = None if master is not None else target.secrets()
            code = _locust(
                scenario,
                target,
                processes,
                run_dir,
                gigma_url,
                mobile_url,
                None,
                secrets,
                master,
                ui=ui,
            )
            return code, _aborted(run_dir), None
        running = RunningMock.begin(target, scenario, run_dir)
        secrets = None if master is not None else running_mock_secrets(target)
        urls = (gigma_url, mobile_url, running.url)
        code = _locust(scenario, target, processes, run_dir, *urls, secrets, master, ui=ui)
        return code, _aborted(run_dir), running.end(run_dir)
    env = {f"AUTHLOAD_MOCK_{k.upper()}": str(v) for k, v in scenario.mock.settings.items()}
    args = _behaviour_args(scenario, run_dir)
    with EmbeddedMock(env=env, args=args) as mock:
        print(f"authload: embedded mock on {mock.url}", file=sys.stderr, flush=True)
        from authload.mock.settings import load_settings

        settings = load_settings(**{k: v for k, v in scenario.mock.settings.items()})
        code = _locust(
            scenario,
            target,
            processes,
            run_dir,
            mock.url,
            mock.url,
            mock.url,
            (settings.app_token, settings.client_secret),
            clock_of=mock.url,
            watch=lambda: _mock_died(mock),
            ui=ui,
        )
        return code, _aborted(run_dir), _embedded_mock_stats(mock, run_dir)


def _embedded_mock_stats(mock: EmbeddedMock, run_dir: Path) -> dict[str, Any] | None:
    """The embedded mock's counters and fault history; None when it died with them."""
    if mock.exit_code() is not None:
        return None
    control = MockControl(mock.url)
    try:
        stats = control.stats()
        keep_fault_history(run_dir, control.fault_history())
        return stats
    except httpx.HTTPError as exc:
        print(f"authload: the embedded mock's counters: {exc}", file=sys.stderr, flush=True)
        return None
    finally:
        control.close()


def _mock_died(mock: EmbeddedMock) -> str | None:
    code = mock.exit_code()
    return None if code is None else f"the embedded mock exited mid-run (code {code})"


def _behaviour_args(scenario: Scenario, run_dir: Path) -> tuple[str, ...]:
    behaviour = scenario.mock.behaviour
    if behaviour is None or behaviour == "default":
        return ()
    if isinstance(behaviour, dict):
        path = run_dir / "behaviour.json"
        path.write_text(json.dumps(behaviour, indent=2), encoding="utf-8")
        return ("--behaviour", str(path))
    return ("--behaviour", behaviour)


def _locust(
    scenario: Scenario,
    target: Target,
    processes: int,
    run_dir: Path,
    gigma_url: str,
    mobile_url: str,
    mock_url: str | None,
    secrets: tuple[str, str] | None,
    master: MasterOptions | None = None,
    clock_of: str | None = None,
    watch: Callable[[], str | None] | None = None,
    ui: UiSession | None = None,
) -> int:
    """Run Locust to the end: here alone, with ``processes`` local workers, or as the master
    of remote workers (``master``; they read secrets and passwords from their environment,
    so none are handed to the master). ``clock_of``: the embedded mock, whose profile fault
    windows then count from the test's start. ``watch``: asked twice a second while Locust
    runs; a reason it gives stops the run as aborted (Locust is told to shut down, so every
    process closes its records)."""
    config = RunConfig(
        scenario,
        run_dir,
        target.name,
        gigma_url,
        mobile_url,
        mock_url,
        processes if master is None else master.workers,
        _test_accounts(target, remote=master is not None),
        remote_workers=master is not None,
        app_token_env=target.app_token_env,
        client_secret_env=target.client_secret_env,
        limits=_run_limits(target),
    )
    with tempfile.TemporaryDirectory(prefix="authload-run-") as tmp:
        config_path = Path(tmp) / "config.json"  # outside the run directory: it may hold
        config_path.write_text(json.dumps(config.to_json()), encoding="utf-8")  # passwords
        os.chmod(config_path, 0o600)
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            *(["--headless"] if ui is None else ui.options.locust_args()),
            *_locust_reports(run_dir, partial=master is not None or processes > 1),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
            "--stop-timeout",
            str(math.ceil(scenario.request_timeout_s + STOP_GRACE_S) + 1),
        ]
        if master is not None or processes > 1:  # a worker lost: its users go to the others
            cmd.append("--enable-rebalancing")
        if master is not None:
            cmd += [
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
            print(
                f"authload: Locust master on {master.bind_host}:{master.port} waiting up to "
                f"{master.timeout_s} s for {master.workers} workers (`authload worker "
                f"--master-host <this host> --master-port {master.port}`)",
                file=sys.stderr,
                flush=True,
            )
        elif processes > 1:  # a free port for the master, so parallel runs never collide
            port = str(_free_port())
            cmd += [
                "--processes",
                str(processes),
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                port,
                "--master-host",
                "127.0.0.1",
                "--master-port",
                port,
            ]
        env = {**os.environ, CONFIG_ENV: str(config_path), "PYTHONUNBUFFERED": "1"}
        if secrets is not None:
            env.update({APP_TOKEN_ENV: secrets[0], CLIENT_SECRET_ENV: secrets[1]})
        if clock_of is not None:
            env[MOCK_CLOCK_ENV] = clock_of
        if ui is not None:
            env[UI_ENV] = "1"
        wait_s = scenario.duration_s + GRACE_S + (master.timeout_s if master else 0)
        started = time.monotonic()
        forked: dict[int, Any] | None = {} if master is None and processes > 1 else None
        # a session of its own: a Ctrl-C reaches this process, which stops the test cleanly
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=sys.stderr,
            stderr=sys.stderr,
            start_new_session=True,
            preexec_fn=die_with_parent,  # this process killed: Locust stops, records closed
        )
        append_event(run_dir, {"kind": "locust", "host": socket.gethostname(), "pid": proc.pid})
        check = _aborter(proc, run_dir, watch)
        if ui is not None:  # no deadline until the user starts the test
            check, wait_s = ui.watching(check, run_dir, wait_s), math.inf
        try:
            code = _wait_locust(proc, wait_s, forked, check)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise AuthloadError(
                f"Locust did not finish within {GRACE_S:g} s of the scenario's "
                f"end; killed (records so far are kept)"
            ) from None
        except KeyboardInterrupt:
            code = _interrupted(proc, run_dir, scenario)
        (run_dir / ABORT_FILE).unlink(missing_ok=True)
        if ui is not None:
            ui.serve_report(run_dir)
        if forked:
            _await_forked(forked, scenario)
        if master is not None:
            _await_workers(run_dir, scenario, master, code, time.monotonic() - started)
        return code


def _locust_reports(run_dir: Path, *, partial: bool) -> list[str]:
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


def _interrupted(proc: subprocess.Popen[bytes], run_dir: Path, scenario: Scenario) -> int:
    """Ctrl-C: the test stops as on an abort (the run's watcher stops it, every request
    recorded, summary and report written); a second Ctrl-C, or no end within the stop's
    bound, kills Locust's processes at once (what they recorded so far is kept)."""
    print(
        "authload: interrupted: stopping the test (Ctrl-C again to stop at once)",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(OSError):
        (run_dir / ABORT_FILE).write_text("interrupted (Ctrl-C)", encoding="utf-8")
    bound = scenario.request_timeout_s + STOP_GRACE_S + WORKER_FINISH_S
    try:
        return proc.wait(timeout=bound)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        _kill_group(proc)
        with contextlib.suppress(OSError):
            reason = "interrupted twice: stopped at once"
            append_event(run_dir, {"t": time.time(), "kind": "abort", "reason": reason})
        return 130


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill Locust and the processes it forked (its session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _aborter(
    proc: subprocess.Popen[bytes], run_dir: Path, watch: Callable[[], str | None] | None
) -> Callable[[], None]:
    """What checks ``watch`` while Locust runs: on its first reason, the run's watcher in
    Locust is asked to abort (``ABORT_FILE``: it stops the test as the abort rule does, so
    the requests failing meanwhile are recorded); if Locust has not ended
    :data:`ABORT_GRACE_S` later, it is told to shut down."""
    asked: list[float] = []

    def check() -> None:
        if asked:
            if time.monotonic() - asked[0] > ABORT_GRACE_S and len(asked) == 1:
                asked.append(time.monotonic())
                proc.send_signal(signal.SIGTERM)  # Locust shuts down: records closed
            return
        reason = watch() if watch is not None else None
        if reason is not None:
            asked.append(time.monotonic())
            (run_dir / ABORT_FILE).write_text(reason, encoding="utf-8")

    return check


def _wait_locust(
    proc: subprocess.Popen[bytes],
    timeout_s: float,
    forked: dict[int, Any] | None,
    check: Callable[[], None] = lambda: None,
) -> int:
    """Wait for Locust's process, calling ``check`` twice a second; meanwhile note into
    ``forked`` the worker processes it forks (``--processes``): its exit does not wait for
    them (Locust's kill_workers drops a child still running), and they may still be writing
    their records."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return proc.wait(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
            check()
            if forked is not None:
                import psutil  # type: ignore[import-untyped]

                try:
                    for child in psutil.Process(proc.pid).children():
                        forked.setdefault(child.pid, child)
                except psutil.Error:
                    pass


def _await_forked(forked: dict[int, Any], scenario: Scenario) -> None:
    """Wait, bounded, for Locust's forked workers to finish (they were told to quit)."""
    import psutil

    bound = scenario.request_timeout_s + 1 + WORKER_FINISH_S
    _, alive = psutil.wait_procs(list(forked.values()), timeout=bound)
    if alive:
        print(
            f"authload: Locust workers {sorted(p.pid for p in alive)} still running "
            f"{bound:g} s after the master quit; their records so far are kept",
            file=sys.stderr,
            flush=True,
        )


def _check_ui(ui: UiSession, master: MasterOptions | None) -> None:
    if master is not None:
        raise InputError(
            "--ui with --expect-workers is not supported: the UI runs with --processes N"
        )
    ui.options.check()


def _check_master(master: MasterOptions | None, processes: int) -> None:
    if master is None:
        return
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


def _await_workers(
    run_dir: Path, scenario: Scenario, master: MasterOptions, code: int, waited_s: float
) -> None:
    """Once the master quit: a clear error if the test never started (no workers came), else
    wait, bounded, for each worker's last act (its counts file, written after its record
    spool is closed); one that never finishes is reported and shows in ``died``."""
    events = read_events(run_dir)
    started = [e for e in events if e.get("kind") == "workers"]
    if not started:
        if code == 130:
            return
        connected = {e["client_id"] for e in events if e.get("kind") == "worker_connected"}
        if waited_s >= master.timeout_s:
            raise AuthloadError(
                f"no test ran: the Locust master waited {master.timeout_s} s for "
                f"{master.workers} workers on port {master.port} and {len(connected)} "
                f"connected; start `authload worker --master-host <this host> --master-port "
                f"{master.port}` where the workers run (or raise --workers-timeout)"
            )
        raise AuthloadError(
            f"the Locust master exited (code {code}) before the test started: see its "
            f"messages above"
        )
    unfit = {e.get("worker") for e in events if e.get("kind") == "abort"}
    names = {w["worker"] for e in started for w in e["workers"]}
    names |= {e["worker"] for e in events if e.get("kind") == "worker_joined"}
    deadline = time.monotonic() + scenario.request_timeout_s + 1 + WORKER_FINISH_S
    pending = sorted(names - unfit)
    while pending and time.monotonic() < deadline:
        time.sleep(0.2)
        pending = [w for w in pending if not (run_dir / LOCUST_COUNTS_DIR / f"{w}.json").is_file()]
    if pending:
        print(
            f"authload: workers {', '.join(pending)} did not finish within "
            f"{WORKER_FINISH_S:g} s of the master's end; their records so far are kept",
            file=sys.stderr,
            flush=True,
        )


def _workers(run_dir: Path) -> list[dict[str, Any]]:
    """The Locust processes that ran users: a distributed run's workers as the master listed
    them (index name, host, Locust client id), else the local processes' names."""
    events = read_events(run_dir)
    fields = ("worker", "host", "client_id")
    listed = [w for e in events if e.get("kind") == "workers" for w in e["workers"]]
    listed += [{k: e.get(k) for k in fields} for e in events if e.get("kind") == "worker_joined"]
    if listed:
        return listed
    local = {str(e["worker"]) for e in events if e.get("kind") == "outcomes"}
    return [{"worker": w} for w in sorted(local)]


# ---------------------------------------------------------------------------------------------
# `authload worker`


def worker(
    master_host: str,
    master_port: int = DEFAULT_MASTER_PORT,
    master_timeout_s: int = DEFAULT_MASTER_TIMEOUT_S,
) -> int:
    """A Locust worker running authload's locustfile for the master at ``master_host``: it
    gets the run from the master when the test starts, and exits when the master quits (0).
    Gives up when no master answers within ``master_timeout_s``."""
    if not 1 <= master_timeout_s <= MAX_MASTER_TIMEOUT_S:
        raise InputError(f"--master-timeout must be between 1 and {MAX_MASTER_TIMEOUT_S} s")
    if not 0 < master_port < 65536:
        raise InputError(f"--master-port {master_port}: not a port number")
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env.update({WORKER_ENV: str(master_timeout_s), "PYTHONUNBUFFERED": "1"})
    print(
        f"authload worker: waiting up to {master_timeout_s} s for the Locust master at "
        f"{master_host}:{master_port}",
        file=sys.stderr,
        flush=True,
    )
    proc = subprocess.Popen(cmd, env=env)
    # compose and Kubernetes stop a container with SIGTERM: Locust shuts down on it
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached Locust too (one process group)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code == 0:
        print("authload worker: the master ended the run", file=sys.stderr, flush=True)
        return 0
    if code == 255:  # Locust's exit when its connection loop gives up
        raise AuthloadError(
            f"no Locust master answered at {master_host}:{master_port} within "
            f"{master_timeout_s} s: start `authload run SCENARIO --expect-workers N` there "
            f"(or raise --master-timeout)"
        )
    if code == WORKER_UNFIT_EXIT:
        raise InputError("this worker could not take part in the run (see above)")
    raise AuthloadError(f"the Locust worker exited with code {code}")


def _died(run_dir: Path, unclosed: list[str]) -> list[dict[str, Any]]:
    """Processes whose record spool was never closed: they died. When: their last record,
    and when Locust's master found them missing (no heartbeat), if it did."""
    if not unclosed:
        return []
    from authload.analysis.query import Records

    ends = Records.of_run(run_dir).sql("SELECT worker, max(t) AS t FROM {records} GROUP BY worker")
    lasts = {str(w): float(t) for w, t in zip(ends["worker"], ends["t"], strict=True)}
    missing = {
        e["worker"]: e["t"] for e in read_events(run_dir) if e.get("kind") == "worker_missing"
    }
    died = []
    for spool in unclosed:
        worker = spool.removesuffix(SPOOL_SUFFIX)
        last = lasts.get(worker)
        died.append(
            {
                "worker": worker,
                "last_record_t": last,
                "last_record": None if last is None else _iso(last),
                "missing_at": None if worker not in missing else _iso(missing[worker]),
            }
        )
    return died


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _aborted(run_dir: Path) -> bool:
    return any(e.get("kind") == "abort" for e in read_events(run_dir))


def _new_run_dir(out: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        run_dir = out / (f"{stamp}-{name}" if n == 0 else f"{stamp}-{name}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise AuthloadError(f"cannot create a run directory under {out}")


def _manifest(scenario: Scenario, target: Target, processes: int) -> dict[str, Any]:
    return {
        "scenario": scenario.model_dump(mode="json"),
        "target": target.name,
        "versions": {name: _version(name) for name in ("authload", "locust", "pyarrow")}
        | {"python": platform.python_version()},
        "git_revision": _git_revision(),
        "start": _now(),
        "end": None,
        "status": "running",
        "seed": scenario.seed,
        "processes": processes,
        "runner": {"host": socket.gethostname(), "pid": os.getpid()},
    }


def salvage(run_dir: Path) -> bool:
    """Finish the run directory of a run that never finished (its `authload run` was
    killed): merge what its processes recorded and summarize it as ``incomplete``. False
    when the run had finished; an :class:`InputError` while its runner still lives."""
    if not (run_dir / MANIFEST_FILE).is_file():
        return False  # not a run directory: the report says so
    manifest = read_json(run_dir / MANIFEST_FILE)
    if manifest.get("status") != "running":
        return False
    here = socket.gethostname()
    started = [manifest.get("runner") or {}]
    started += [e for e in read_events(run_dir) if e.get("kind") == "locust"]
    going = [p["pid"] for p in started if p.get("host") == here and _alive(p.get("pid"))]
    if going:
        raise InputError(f"{run_dir}: its run is still going (pid {going[0]})")
    scenario = Scenario.model_validate(manifest["scenario"])
    finalized = finalize_records(run_dir)
    manifest.update(
        status="incomplete",
        records=finalized.rows,
        torn_spools=finalized.torn,
        died=_died(run_dir, finalized.unclosed),
        workers=_workers(run_dir),
    )
    write_json(run_dir / MANIFEST_FILE, manifest)
    from authload.analysis.summary import summarize

    write_json(run_dir / SUMMARY_FILE, summarize(run_dir, scenario, "incomplete"))
    return True


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
