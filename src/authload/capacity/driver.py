"""The capacity search's loop: it runs the steps and keeps the books.

Every step is a normal `authload run` (:func:`authload.run.runner.run`) of a scenario derived
from the given one: the same mix, flows, think time, retry policy, SLOs, abort rule and mock
setup; its load replaced by one level (a warm-up stage, then the measured stage at the same
level); its timed events left out. Steps go under one capacity run directory
(``runs/<UTC time>-capacity-<scenario>/``) beside ``capacity.json``, ``capacity.html`` and
``capacity.log`` (what the steps printed). Which level comes next is the search's
(:mod:`~authload.capacity.search`), when to give up the stops' (:mod:`~authload.capacity.stops`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from authload.analysis.query import Records
from authload.capacity.document import Ledger, document, level_text, step_figures
from authload.capacity.judge import judge_step, step_window
from authload.capacity.options import (
    CapacityOptions,
    capped_by_target,
    resolve_options,
    validate_options,
)
from authload.capacity.search import search_for
from authload.capacity.stops import (
    FAILED,
    SoFar,
    Stopped,
    stop_on_failed_step,
    stop_when_budget_spent,
)
from authload.errors import AuthloadError
from authload.run.console import Console
from authload.run.sessions import session_for
from authload.run.targets import resolve_target
from authload.rundir.capacity import CapacityDocument, write_capacity
from authload.rundir.events import AbortEvent, of_kind, read_events
from authload.rundir.files import CAPACITY_LOG, CAPACITY_REPORT_FILE
from authload.scenario.loader import load_scenario
from authload.scenario.model import Scenario

if TYPE_CHECKING:
    from authload.run.runner import RunResult

__all__ = ["CapacityResult", "run_capacity"]


@dataclass(frozen=True)
class CapacityResult:
    directory: Path
    document: CapacityDocument  # what capacity.json holds
    exit_code: int


def run_capacity(
    scenario_path: str | Path, options: CapacityOptions, console: Console | None = None
) -> CapacityResult:
    """Run the search (or the closed-model steps), write the capacity run directory, and
    return what ``capacity.json`` holds with the exit code: 0 a capacity was found (or the
    closed steps ran), 1 even the first level failed its SLOs, 3 aborted or run error.
    ``console``: where the search says how it goes (stderr by default), as ``authload
    capacity``; the steps' own runs say theirs on ``capacity.log`` (with ``verbose``, on the
    console's stream)."""
    validate_options(options)
    scenario = load_scenario(scenario_path)
    options = resolve_options(scenario_path, scenario, options)
    target = resolve_target(options.target or scenario.target, options.targets_file)
    options = capped_by_target(options, target.limits)
    search = search_for(options)
    # refuse before anything runs what a step would be refused: the target's limits, at the
    # highest level the search may reach
    assert options.start is not None
    highest = options.maximum if options.maximum is not None else options.start
    step = search.step_scenario(scenario, highest, options)
    session_for(target).safety(step, options.confirm)
    ledger = Ledger(scenario, Path(scenario_path), options, search, 0.0)
    return _Driver(ledger, (console or Console()).named("authload capacity")).run()


class _Driver:
    """One search in its capacity run directory: its steps, and capacity.json after each."""

    def __init__(self, ledger: Ledger, console: Console) -> None:
        self.ledger = ledger
        self.options = ledger.options
        self.search = ledger.search
        self.stop = stop_on_failed_step() | stop_when_budget_spent(self.options.budget_s)
        self.console = console
        self.directory = Path()

    def run(self) -> CapacityResult:
        self.ledger.started = time.time()
        self.directory = _new_dir(Path(self.options.out), self.ledger.scenario.name)
        self.console.say(f"capacity run directory {self.directory} ({self.search.description})")
        stopped: Stopped | None = None
        try:
            stopped = self._loop()
        except KeyboardInterrupt:
            stopped = Stopped("aborted", "interrupted", "interrupted (Ctrl-C)")
            raise
        except BaseException as exc:
            stopped = Stopped("error", "error", str(exc))
            raise
        finally:
            data = self._write(stopped)
        self.console.say(f"done: {data.capacity.note}")
        return CapacityResult(self.directory, data, data.exit_code)

    def _loop(self) -> Stopped:
        """Step after step until the search is over or a stop says so. The stops are asked
        after the search, so that a search that is over says why in its own words even when
        its budget is spent too; after a step that failed, the search (asked again with the
        same judged steps) names the same level, and the stop ends it before that runs."""
        while True:
            decision = self.search.next(self.ledger.judged)
            if decision.level is None:
                return Stopped("completed", decision.reason)
            stopped = self.stop(SoFar(self.ledger.steps, time.time() - self.ledger.started))
            if stopped is not None:
                return stopped
            self._step(decision.level, decision.reason)

    # ----------------------------------------------------------------------- one step

    def _step(self, level: float, chosen_by: str) -> None:
        """Run one step at ``level``, judge it (unless its run aborted or errored) and book it."""
        index = len(self.ledger.steps) + 1
        scenario = self.search.step_scenario(self.ledger.scenario, level, self.options)
        path = self._step_file(index, scenario)
        self.console.say(
            f"step {index}: {level_text(level, self.search.unit)} "
            f"({chosen_by.replace('_', ' ')}), {self.options.step_s:g} s with "
            f"{self.options.warmup_s:g} s warm-up"
        )
        begun = time.time()
        result = self._run(path)
        step: dict[str, Any] = {
            "index": index,
            "level": level,
            "chosen_by": chosen_by,
            "run_dir": result.run_dir.name,
            "scenario_file": str(path.relative_to(self.directory)),
            "run_verdict": result.verdict,
        }
        if result.verdict in FAILED:
            self._book_failed(step, result, begun)
        else:
            self._book_judged(step, result, scenario, begun)

    def _step_file(self, index: int, scenario: Scenario) -> Path:
        """``scenarios/step-NN.yaml``: the step's scenario, to `authload run` it again."""
        path = self.directory / "scenarios" / f"step-{index:02d}.yaml"
        path.parent.mkdir(exist_ok=True)
        data = scenario.model_dump(mode="json")
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        return path

    def _run(self, path: Path) -> RunResult:
        from authload.run.runner import run

        options = self.options
        with self._step_console() as console:
            return run(
                path,
                target_name=options.target,
                out=self.directory,
                processes=options.processes,
                confirm=options.confirm,
                targets_file=options.targets_file,
                console=console,
            )

    def _book_failed(self, step: dict[str, Any], result: RunResult, begun: float) -> None:
        aborts = of_kind(read_events(result.run_dir), AbortEvent)
        reasons = [e.reason for e in aborts] or [f"the step's run ended: {result.verdict}"]
        step.update(verdict=result.verdict, reasons=reasons, wall_s=time.time() - begun)
        self.ledger.steps.append(step)
        self.console.say(f"step {step['index']}: {result.verdict.upper()}: {'; '.join(reasons)}")

    def _book_judged(
        self, step: dict[str, Any], result: RunResult, scenario: Scenario, begun: float
    ) -> None:
        options = self.options
        records = Records.of_run(result.run_dir)
        start, end = step_window(
            records,
            options.warmup_s,
            options.step_s - options.warmup_s,
            open_model=self.search.open_model,
        )
        dropped = result.summary.outcomes.get("dropped_arrivals", 0)
        judgement = judge_step(records, scenario.slos, start, end, dropped)
        self.ledger.judged.append((step["level"], judgement))
        body = asdict(judgement)
        body.pop("passed")
        step.update(
            verdict="pass" if judgement.passed else "fail",
            dropped_arrivals=dropped,
            warmup_s=options.warmup_s,
            window_s=judgement.window_s,
            **body,
            wall_s=time.time() - begun,
        )
        self.ledger.steps.append(step)
        why = f"; {'; '.join(judgement.reasons)}" if judgement.reasons else ""
        self.console.say(
            f"step {step['index']}: {level_text(step['level'], self.search.unit)} "
            f"{step['verdict'].upper()}: {step_figures(step)}{why}"
        )
        self._write(None)

    @contextlib.contextmanager
    def _step_console(self) -> Iterator[Console]:
        """The step's console: its run's lines and Locust's output into capacity.log; with
        ``verbose``, on the search's own stream as they come instead."""
        if self.options.verbose:
            yield self.console.named("authload")
            return
        with (self.directory / CAPACITY_LOG).open("a", encoding="utf-8") as log:
            yield Console(log)

    def _write(self, stopped: Stopped | None) -> CapacityDocument:
        """capacity.json as the search stands (``stopped`` None: still running); once it has
        ended, capacity.html too."""
        from authload.capacity.page import write_capacity_report

        data = document(self.ledger, stopped)
        write_capacity(self.directory, data)
        if stopped is not None:
            try:  # the page only shows capacity.json: failing to draw it must not lose it
                write_capacity_report(self.directory, data)
            except Exception as exc:
                self.console.say(f"{CAPACITY_REPORT_FILE} not written: {exc!r}")
        return data


def _new_dir(out: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        path = out / (f"{stamp}-capacity-{name}" + (f"-{n}" if n else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise AuthloadError(f"cannot create a capacity run directory under {out}")
