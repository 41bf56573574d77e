"""`authload run`, the story of a run: the scenario checked against its target, the target
made ready (:mod:`authload.run.sessions`), Locust run to its end in the layout asked for
(:mod:`authload.run.launchers`, :mod:`authload.run.locust_process`), then the records merged
and the run directory completed with a summary, a report and a verdict.

A distributed run's records come from workers elsewhere, through the run directory (a volume
mounted at the same path everywhere); once the master has quit, the run waits for each
worker's counts file (its last act) before merging them. A mock already running (``mock:
true`` with URLs) is reset at the start and counted by the increase of its counters, so
reconciliation holds on a long-lived mock that served other runs before.
"""

from __future__ import annotations

import contextlib
import errno
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authload.errors import InputError, ResultsError
from authload.load.config import RunConfig
from authload.load.run_limits import limits_used
from authload.run import book
from authload.run.console import Console
from authload.run.launchers import Launcher, MasterOptions, launcher_for
from authload.run.locust_process import LocustProcess
from authload.run.sessions import TargetSession, session_for
from authload.run.targets import (
    Target,
    accounts_for,
    resolve_target,
    run_limits,
    within_limits,
)
from authload.run.ui import UiSession
from authload.rundir.events import Event, RunErrorEvent, append_event, read_events
from authload.rundir.files import (
    MOCK_STATS_FILE,
    RECORDS_DIR,
    RECORDS_FILE,
)
from authload.rundir.jsonfiles import write_json
from authload.rundir.manifest import Manifest, Status, write_manifest
from authload.rundir.records import finalize_records
from authload.rundir.summary import Summary, Verdict, write_summary
from authload.scenario.loader import load_scenario
from authload.scenario.model import Scenario


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    verdict: Verdict
    exit_code: int
    summary: Summary


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
    console: Console | None = None,
) -> RunResult:
    """``master``: a distributed run, Locust's master here and its workers elsewhere.
    ``ui``: Locust's web UI in front instead of headless (:mod:`authload.run.ui`). ``console``:
    where the run's lines and Locust's output go (stderr by default)."""
    console = console or Console()
    scenario = load_scenario(scenario_path)
    if duration_s is not None:
        scenario = scenario.with_duration(duration_s)
    launcher = launcher_for(processes, master)
    if ui is not None:
        _check_ui(ui, launcher)
    target = resolve_target(target_name or scenario.target, targets_file)
    session = session_for(target, console, launcher.remote_workers)
    stated = session.safety(scenario, confirm)
    if stated:
        console.say(f"target {target.name} limits: {', '.join(stated)}")
    scenario = within_limits(scenario, target)
    session.check()  # fail on missing secrets or URLs before anything is created
    run_dir = book.new_run_dir(Path(out), scenario.name)
    console.say(f"run directory {run_dir}")
    try:
        return _Run(run_dir, scenario, session, launcher, ui, console).conduct(pushgateway)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise ResultsError(
            f"{run_dir}: no space left on device: the run stopped; what was recorded so far "
            f"stays readable there ({RECORDS_FILE}, or the Arrow streams in {RECORDS_DIR}/)"
        ) from None


@dataclass
class _Run:
    """One run in its directory."""

    run_dir: Path
    scenario: Scenario
    session: TargetSession
    launcher: Launcher
    ui: UiSession | None
    console: Console

    def conduct(self, pushgateway: str | None) -> RunResult:
        """The load, then the records merged, summary and report."""
        target = self.session.target
        manifest = book.manifest(self.scenario, target, self.launcher.processes)
        manifest.distributed = self.launcher.distributed()
        write_manifest(self.run_dir, manifest)
        try:
            code, mock_stats = self._load()
            events = read_events(self.run_dir)  # all there are: the load is over
            aborted = book.aborted(events)
            status: Status = "aborted" if aborted else ("completed" if code == 0 else "error")
        except BaseException as exc:
            _keep_what_failed(self.run_dir, manifest, exc)
            raise
        self._complete(manifest, status, code, mock_stats, events)
        return conclude(
            self.run_dir, self.scenario, target, status, pushgateway, self.console, events
        )

    def _load(self) -> tuple[int, dict[str, Any] | None]:
        """Locust's exit code, and what the target counted."""
        with self.session as session:
            endpoints = session.begin(self.run_dir, self.scenario)
            config = RunConfig(
                self.scenario,
                self.run_dir,
                session.target.name,
                endpoints.gigma_url,
                endpoints.mobile_url,
                endpoints.mock_url,
                self.launcher.processes,
                accounts_for(session.target, remote=self.launcher.remote_workers),
                remote_workers=self.launcher.remote_workers,
                app_token_env=session.target.app_token_env,
                client_secret_env=session.target.client_secret_env,
                limits=run_limits(session.target),
            )
            locust = LocustProcess(
                config, self.launcher, endpoints, self.console, session.watch, self.ui
            )
            code = locust.run()
            return code, session.end(self.run_dir)

    def _complete(
        self,
        manifest: Manifest,
        status: Status,
        code: int,
        mock_stats: dict[str, Any] | None,
        events: list[Event],
    ) -> None:
        finalized = finalize_records(self.run_dir)
        if finalized.torn:
            self.console.say(
                f"record spools cut mid-write (a process died writing): "
                f"{', '.join(finalized.torn)}; every complete batch kept"
            )
        if mock_stats is not None:
            write_json(self.run_dir / MOCK_STATS_FILE, mock_stats)
        manifest.end, manifest.status, manifest.locust_exit = book.now(), status, code
        manifest.records, manifest.torn_spools = finalized.rows, finalized.torn
        manifest.died = book.died(self.run_dir, finalized.unclosed, events)
        manifest.workers = book.workers(events)
        manifest.ui = self.ui.record(self.run_dir) if self.ui is not None else None
        write_manifest(self.run_dir, manifest)


def _keep_what_failed(run_dir: Path, manifest: Manifest, exc: BaseException) -> None:
    """After a failed run: its error into the events and manifest, its records merged, as far
    as the disk lets (a full disk must not hide the error that stopped the run)."""
    with contextlib.suppress(OSError):
        append_event(run_dir, RunErrorEvent(error=str(exc)))
    manifest.end, manifest.status, manifest.error = book.now(), "error", str(exc)
    with contextlib.suppress(OSError, ResultsError):
        manifest.workers = book.workers(read_events(run_dir))
    with contextlib.suppress(OSError):
        write_manifest(run_dir, manifest)
    with contextlib.suppress(OSError):
        finalize_records(run_dir)


def conclude(
    run_dir: Path,
    scenario: Scenario,
    target: Target,
    status: Status,
    pushgateway: str | None,
    console: Console,
    events: list[Event],
) -> RunResult:
    """Summary, target limits used, Pushgateway, report; the verdict. ``events``: the run's,
    all of them (the load is over)."""
    from authload.analysis.summary import summarize

    summary = summarize(run_dir, scenario, status, events)
    used = limits_used(events)
    summary.limits = used
    write_summary(run_dir, summary)
    _state_limits_used(target, used, console)
    from authload.run.pushgateway import push_after_run

    push_after_run(run_dir, pushgateway, console)  # when configured; a failure is only a warning
    try:  # the report only shows the run: failing to write it must not lose the run
        from authload.analysis.report import write_report

        write_report(run_dir)
    except Exception as exc:
        console.say(f"report.html not written: {exc!r}")
    code = {"pass": 0, "fail": 1}.get(summary.verdict, 3)
    return RunResult(run_dir, summary.verdict, code, summary)


def _check_ui(ui: UiSession, launcher: Launcher) -> None:
    if launcher.remote_workers:
        raise InputError(
            "--ui with --expect-workers is not supported: the UI runs with --processes N"
        )
    ui.options.check()


def _state_limits_used(target: Target, used: dict[str, Any] | None, console: Console) -> None:
    if used is None:
        return
    budget, ceiling = used.get("send_password_budget"), used.get("max_request_rate")
    if budget is not None:
        console.say(
            f"target {target.name} send_password budget: used {budget['used']} of "
            f"{target.limits.send_password_budget} ({budget['refused']} calls refused locally)"
        )
    if ceiling is not None:
        console.say(
            f"target {target.name} max_request_rate "
            f"{target.limits.max_request_rate:g}/s: {ceiling['waited']} requests waited for "
            f"it, the longest {ceiling['longest_wait_s']:.3f} s"
        )
