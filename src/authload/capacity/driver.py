"""`authload capacity`: find the highest arrival rate of a scenario's traffic mix that meets
its SLOs, or (``closed``) measure throughput over steps of users and fit the Universal
Scalability Law.

Every step is a normal `authload run` (:func:`authload.runner.run`) of a scenario derived
from the given one: the same mix, flows, think time, retry policy, SLOs, abort rule and mock
setup; its load replaced by one level (a warm-up stage, then the measured stage at the same
level); its timed events left out. Steps go under one capacity run directory
(``runs/<UTC time>-capacity-<scenario>/``) beside ``capacity.json``, ``capacity.html`` and
``capacity.log`` (what the steps printed). The maths is in the modules beside
this one; this one runs the steps and keeps the books.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from authload.capacity.options import (
    CapacityOptions,
    resolve_options,
    validate_options,
    within_limits,
)
from authload.capacity.search import Search, search_for
from authload.capacity.stops import SoFar, Stopped, stop_on_failed_step, stop_when_budget_spent
from authload.errors import AuthloadError
from authload.results import read_events, write_json
from authload.scenario import Scenario
from authload.scenario_file import load_scenario
from authload.targets import check_safety, resolve_target

__all__ = [
    "CAPACITY_FILE",
    "CAPACITY_LOG",
    "CapacityResult",
    "describe",
    "run_capacity",
]

CAPACITY_FILE = "capacity.json"
CAPACITY_LOG = "capacity.log"
EXIT_FOUND, EXIT_BELOW_START, EXIT_ERROR = 0, 1, 3


@dataclass(frozen=True)
class CapacityResult:
    directory: Path
    data: dict[str, Any]  # what capacity.json holds
    exit_code: int


def run_capacity(scenario_path: str | Path, options: CapacityOptions) -> CapacityResult:
    """Run the search (or the closed-model steps), write the capacity run directory, and
    return what ``capacity.json`` holds with the exit code: 0 a capacity was found (or the
    closed steps ran), 1 even the first level failed its SLOs, 3 aborted or run error."""
    validate_options(options)
    scenario = load_scenario(scenario_path)
    options = resolve_options(scenario_path, scenario, options)
    target = resolve_target(options.target or scenario.target, options.targets_file)
    options = within_limits(options, target.limits)
    search = search_for(options)
    # refuse before anything runs what a step would be refused: the target's limits, at the
    # highest level the search may reach
    assert options.start is not None
    highest = options.maximum if options.maximum is not None else options.start
    check_safety(target, search.step_scenario(scenario, highest, options), options.confirm)
    return _Driver(scenario, Path(scenario_path), options, search).run()


class _Driver:
    def __init__(
        self, scenario: Scenario, path: Path, options: CapacityOptions, search: Search
    ) -> None:
        self.scenario = scenario
        self.path = path
        self.options = options
        self.search = search
        self.stop = stop_on_failed_step() | stop_when_budget_spent(options.budget_s)
        self.unit = search.unit
        self.steps: list[dict[str, Any]] = []
        self.judged: list[tuple[float, Any]] = []  # (level, StepJudgement)
        self.console: TextIO = sys.stderr
        self.directory = Path()
        self.started = 0.0

    def run(self) -> CapacityResult:
        self.started = time.time()
        self.directory = _new_dir(Path(self.options.out), self.scenario.name)
        self._say(f"capacity run directory {self.directory} ({self.search.description})")
        status, reason, detail = "running", "", ""
        try:
            stopped = self._loop()
            status, reason, detail = stopped.status, stopped.reason, stopped.detail
        except KeyboardInterrupt:
            status, reason, detail = "aborted", "interrupted", "interrupted (Ctrl-C)"
            raise
        except BaseException as exc:
            status, reason, detail = "error", "error", str(exc)
            raise
        finally:
            data = self._write(status, reason, detail)
        self._say(f"done: {data['capacity']['note']}")
        return CapacityResult(self.directory, data, int(data["exit_code"]))

    # ------------------------------------------------------------------------ the loop

    def _loop(self) -> Stopped:
        """Step after step until the search is over or a stop says so. The stops are asked
        after the search, so that a search that is over says why in its own words even when
        its budget is spent too; after a step that failed, the search (asked again with the
        same judged steps) names the same level, and the stop ends it before that runs."""
        while True:
            decision = self.search.next(self.judged)
            if decision.level is None:
                return Stopped("completed", decision.reason)
            stopped = self.stop(SoFar(self.steps, time.time() - self.started))
            if stopped is not None:
                return stopped
            self._step(decision.level, decision.reason)

    def _step(self, level: float, chosen_by: str) -> None:
        from authload.analysis.query import Records
        from authload.capacity.judge import judge_step, step_window
        from authload.runner import run

        options = self.options
        index = len(self.steps) + 1
        scenario = self.search.step_scenario(self.scenario, level, options)
        path = self.directory / "scenarios" / f"step-{index:02d}.yaml"
        path.parent.mkdir(exist_ok=True)
        data = scenario.model_dump(mode="json")
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        self._say(
            f"step {index}: {_level(level, self.unit)} ({chosen_by.replace('_', ' ')}), "
            f"{options.step_s:g} s with {options.warmup_s:g} s warm-up"
        )
        begun = time.time()
        with self._step_output():
            result = run(
                path,
                target_name=options.target,
                out=self.directory,
                processes=options.processes,
                confirm=options.confirm,
                targets_file=options.targets_file,
            )
        step: dict[str, Any] = {
            "index": index,
            "level": level,
            "chosen_by": chosen_by,
            "run_dir": result.run_dir.name,
            "scenario_file": str(path.relative_to(self.directory)),
            "run_verdict": result.verdict,
        }
        if result.verdict in ("aborted", "error"):
            reasons = [
                e.get("reason", "aborted")
                for e in read_events(result.run_dir)
                if e.get("kind") == "abort"
            ] or [f"the step's run ended: {result.verdict}"]
            step.update(verdict=result.verdict, reasons=reasons, wall_s=time.time() - begun)
            self.steps.append(step)
            self._say(f"step {index}: {result.verdict.upper()}: {'; '.join(reasons)}")
            return
        records = Records.of_run(result.run_dir)
        start, end = step_window(
            records,
            options.warmup_s,
            options.step_s - options.warmup_s,
            open_model=self.search.open_model,
        )
        dropped = int(result.summary.get("outcomes", {}).get("dropped_arrivals", 0))
        judgement = judge_step(records, scenario.slos, start, end, dropped)
        self.judged.append((level, judgement))
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
        self.steps.append(step)
        self._say(
            f"step {index}: {_level(level, self.unit)} {step['verdict'].upper()}: "
            f"{_figures(step)}" + (f"; {'; '.join(judgement.reasons)}" if judgement.reasons else "")
        )
        self._write("running", "", "")

    @contextlib.contextmanager
    def _step_output(self) -> Iterator[None]:
        """The step's own output (the run's lines, Locust's) into capacity.log; with
        ``verbose``, on stderr as it comes instead."""
        if self.options.verbose:
            yield
            return
        with (
            (self.directory / CAPACITY_LOG).open("a", encoding="utf-8") as log,
            contextlib.redirect_stderr(log),
        ):
            yield

    def _say(self, line: str) -> None:
        print(f"authload capacity: {line}", file=self.console, flush=True)

    # ----------------------------------------------------------------------- the books

    def _write(self, status: str, reason: str, detail: str) -> dict[str, Any]:
        from authload.capacity.page import write_capacity_report

        data = _clean(self._data(status, reason, detail))
        write_json(self.directory / CAPACITY_FILE, data)
        if status != "running":
            try:  # the page only shows capacity.json: failing to draw it must not lose it
                write_capacity_report(self.directory, data)
            except Exception as exc:
                self._say(f"capacity.html not written: {exc!r}")
        return dict(data)

    def _data(self, status: str, reason: str, detail: str) -> dict[str, Any]:
        from authload.capacity.curve import find_knee, first_breach
        from authload.capacity.search import bracket

        options = self.options
        judged = sorted(self.judged, key=lambda p: p[0])
        has_slos = bool(self.scenario.slos)
        # without SLOs every step passes: there is no capacity to speak of, only the curve
        low, high = bracket([(lv, j.passed) for lv, j in judged]) if has_slos else (None, None)
        by_level = {lv: j for lv, j in judged}
        knee = find_knee(
            [lv for lv, _ in judged], [j.ok_rps for _, j in judged], [j.p99_ms for _, j in judged]
        )
        breach = first_breach(judged)
        found = low is not None
        if status in ("aborted", "error"):
            code = EXIT_ERROR
        elif has_slos and judged and not found:
            code = EXIT_BELOW_START
        else:
            code = EXIT_FOUND
        capacity = {
            "level": low,
            "unit": self.unit,
            "bracket": [low, high],
            "found": found,
            "bounded": high is not None,
            "ok_rps": by_level[low].ok_rps if low is not None else None,
            "p99_ms": by_level[low].p99_ms if low is not None else None,
            "note": self._note(status, reason, low, high, has_slos),
        }
        return {
            "kind": "authload-capacity",
            "version": 1,
            "scenario": self.scenario.name,
            "scenario_file": str(self.path),
            "mode": self.search.mode,
            "unit": self.unit,
            "target": options.target or self.scenario.target,
            "status": status,
            "stop_reason": reason,
            "stop_detail": detail,
            "start": _iso(self.started),
            "end": None if status == "running" else _iso(time.time()),
            "elapsed_s": time.time() - self.started,
            "settings": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in asdict(options).items()
                if k not in ("verbose", "confirm")
            },
            "slos": list(self.scenario.slos),
            "capacity": capacity,
            "knee": None if knee is None else asdict(knee),
            "first_breach": None if breach is None else asdict(breach),
            "usl": self._usl() if self.search.fits_usl else None,
            "steps": self.steps,
            "exit_code": code,
        }

    def _note(
        self, status: str, reason: str, low: float | None, high: float | None, has_slos: bool
    ) -> str:
        unit = self.unit
        if status == "running":
            return "search in progress"
        prefix = "" if status == "completed" else f"search {status}; so far: "
        if not has_slos:
            return prefix + "no SLOs: steps measured for the scalability fit only"
        if low is None and high is None:
            return prefix + "no step finished"
        if low is None:
            assert high is not None
            return prefix + (
                f"capacity below the start: the first step ({_level(high, unit)}) already "
                f"failed its SLOs; try a lower --start"
            )
        if high is None:
            why = {"max_reached": "--max reached", "budget": "--budget used up"}.get(
                reason, "the search stopped before any failed"
            )
            return prefix + f"capacity at least {_level(low, unit)}: every step passed ({why})"
        return prefix + (
            f"capacity {_level(low, unit)}: the highest level that met every SLO; "
            f"{_level(high, unit)} failed (within {high / low - 1:.1%})"
        )

    def _usl(self) -> dict[str, Any] | None:
        from authload.capacity.usl import UslFitError, fit_usl

        judged = sorted(self.judged, key=lambda p: p[0])
        try:
            fit = fit_usl([lv for lv, _ in judged], [j.ok_rps for _, j in judged])
        except UslFitError as exc:
            return {"error": str(exc)}
        return {"model": "Universal Scalability Law (a fit, not a measurement)", **asdict(fit)}


def describe(data: dict[str, Any]) -> list[str]:
    """The lines the CLI prints for a capacity run (capacity.json's content)."""
    unit = data["unit"]
    closed = data["mode"] == "closed"
    head = "users" if closed else "rate /s"
    lines = [
        f"{'step':>4} {head:>9} {'verdict':>8} {'req/s':>8} {'ok/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7}  run"
    ]
    for s in data["steps"]:
        lines.append(
            f"{s['index']:>4} {s['level']:>9.4g} {s['verdict']:>8} {_n(s.get('throughput_rps'))} "
            f"{_n(s.get('ok_rps'))} {_n(s.get('p50_ms'))} {_n(s.get('p99_ms'))} "
            f"{_pct(s.get('error_rate'))}  {s['run_dir']}"
        )
    cap = data["capacity"]
    lines.append(f"capacity: {cap['note']}")
    stop = data["stop_reason"] + (f" ({data['stop_detail']})" if data["stop_detail"] else "")
    lines.append(f"stopped: {stop}")
    knee = data["knee"]
    lines.append(
        "knee: none in the tested range"
        if knee is None
        else f"knee: {_level(knee['level'], unit)} (p99 {knee['latency_ms']:.4g} ms at "
        f"{knee['throughput_rps']:.4g} ok req/s; latency climbed faster than throughput "
        f"by {_level(knee['next_level'], unit)})"
    )
    breach = data["first_breach"]
    if breach is not None:
        if breach["slo"] is None:
            lines.append(
                f"first to break at {_level(breach['level'], unit)}: {'; '.join(breach['reasons'])}"
            )
        else:
            lines.append(
                f"first SLO to break: {breach['slo']} at {_level(breach['level'], unit)}, on "
                f"{breach['endpoint']} (measured {_n(breach['value'], 0).strip()})"
            )
    usl = data.get("usl")
    if usl is not None:
        if "error" in usl:
            lines.append(f"USL model: not fitted: {usl['error']}")
        else:
            peak = (
                f"predicted peak {usl['n_peak']:.3g} users at {usl['x_peak']:.4g} ok req/s"
                if usl["n_peak"] is not None
                else "no predicted peak (kappa 0): throughput levels off"
                + ("" if usl["x_peak"] is None else f" at {usl['x_peak']:.4g} ok req/s")
            )
            lines.append(
                f"USL model (a fit, not a measurement): lambda {usl['lam']:.4g} "
                f"± {_se(usl['lam_se'])} ok req/s, sigma {usl['sigma']:.4g} "
                f"± {_se(usl['sigma_se'])}, kappa {usl['kappa']:.4g} ± {_se(usl['kappa_se'])}, "
                f"R² {usl['r2']:.4f}; {peak}"
            )
    return lines


# ---------------------------------------------------------------------------------- helpers


def _level(level: float, unit: str) -> str:
    return f"{level:g} users" if unit == "users" else f"{level:.4g}/s"


def _figures(step: dict[str, Any]) -> str:
    return (
        f"{step['throughput_rps']:.4g} req/s ({step['ok_rps']:.4g} ok), "
        f"p99 {_n(step['p99_ms'], 0).strip()} ms, errors {_pct(step['error_rate']).strip()}"
    )


def _n(value: Any, width: int = 8) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-".rjust(width)
    return f"{value:>{width}.4g}"


def _se(value: Any) -> str:
    return "?" if value is None else f"{value:.2g}"


def _pct(value: Any) -> str:
    return "-".rjust(7) if value is None else f"{value:>7.2%}"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities as None, tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


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
