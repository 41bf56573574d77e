"""``capacity.json``'s content, and the lines the command prints from it.

:func:`document` builds what ``capacity.json`` holds from the books a search keeps
(:class:`Ledger`); the driver rewrites the file after each step, so that a search cut short
still leaves every step it ran. :func:`describe` turns that content, and only that, into the
lines ``authload capacity`` prints, so that what is printed and what is kept never differ.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authload.capacity.curve import find_knee, first_breach
from authload.capacity.judge import StepJudgement
from authload.capacity.options import CapacityOptions
from authload.capacity.search import Search, bracket
from authload.capacity.stops import FAILED, Stopped
from authload.capacity.usl import UslFitError, fit_usl
from authload.rundir.capacity import (
    EXIT_BELOW_START,
    EXIT_ERROR,
    EXIT_FOUND,
    CapacityAnswer,
    CapacityDocument,
)
from authload.rundir.jsonfiles import plain
from authload.scenario.model import Scenario

__all__ = [
    "Ledger",
    "describe",
    "document",
    "level_text",
    "step_figures",
]

Judged = list[tuple[float, StepJudgement]]


@dataclass
class Ledger:
    """The books of one search: what it was asked, and the steps it ran so far."""

    scenario: Scenario
    scenario_path: Path
    options: CapacityOptions  # defaults filled in, as the search ran
    search: Search
    started: float  # unix s
    steps: list[dict[str, Any]] = field(default_factory=list)  # as capacity.json has them
    judged: Judged = field(default_factory=list)  # (level, judgement) of the judged steps


def document(ledger: Ledger, stopped: Stopped | None) -> CapacityDocument:
    """What ``capacity.json`` holds, JSON-safe; ``stopped`` is None while the search runs."""
    ended = stopped if stopped is not None else Stopped("running", "")
    judged = sorted(ledger.judged, key=lambda p: p[0])
    capacity = _capacity(ledger, judged, ended)
    below_start = bool(ledger.scenario.slos) and bool(judged) and not capacity.found
    knee = find_knee(
        [lv for lv, _ in judged], [j.ok_rps for _, j in judged], [j.p99_ms for _, j in judged]
    )
    breach = first_breach(judged)
    now = time.time()
    data = {
        "scenario": ledger.scenario.name,
        "scenario_file": str(ledger.scenario_path),
        "mode": ledger.search.mode,
        "unit": ledger.search.unit,
        "target": ledger.options.target or ledger.scenario.target,
        "status": ended.status,
        "stop_reason": ended.reason,
        "stop_detail": ended.detail,
        "start": _iso(ledger.started),
        "end": None if stopped is None else _iso(now),
        "elapsed_s": now - ledger.started,
        "settings": _settings(ledger.options),
        "slos": list(ledger.scenario.slos),
        "capacity": capacity,
        "knee": None if knee is None else asdict(knee),
        "first_breach": None if breach is None else asdict(breach),
        "usl": _usl(judged) if ledger.search.fits_usl else None,
        "steps": ledger.steps,
        "exit_code": _exit_code(ended.status, below_start),
    }
    return CapacityDocument.model_validate(plain(data))


def _capacity(ledger: Ledger, judged: Judged, ended: Stopped) -> CapacityAnswer:
    has_slos = bool(ledger.scenario.slos)
    # without SLOs every step passes: there is no capacity to speak of, only the curve
    low, high = bracket([(lv, j.passed) for lv, j in judged]) if has_slos else (None, None)
    by_level = {lv: j for lv, j in judged}
    unit = ledger.search.unit
    return CapacityAnswer(
        level=low,
        unit=unit,
        bracket=[low, high],
        found=low is not None,
        bounded=high is not None,
        ok_rps=plain(by_level[low].ok_rps) if low is not None else None,
        p99_ms=plain(by_level[low].p99_ms) if low is not None else None,
        note=_note(ended, low, high, has_slos, unit),
    )


def _exit_code(status: str, below_start: bool) -> int:
    if status in FAILED:
        return EXIT_ERROR
    return EXIT_BELOW_START if below_start else EXIT_FOUND


def _settings(options: CapacityOptions) -> dict[str, Any]:
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(options).items()
        if k not in ("verbose", "confirm")
    }


def _note(ended: Stopped, low: float | None, high: float | None, has_slos: bool, unit: str) -> str:
    if ended.status == "running":
        return "search in progress"
    prefix = "" if ended.status == "completed" else f"search {ended.status}; so far: "
    if not has_slos:
        return prefix + "no SLOs: steps measured for the scalability fit only"
    if low is None and high is None:
        return prefix + "no step finished"
    if low is None:
        assert high is not None
        return prefix + (
            f"capacity below the start: the first step ({level_text(high, unit)}) already "
            f"failed its SLOs; try a lower --start"
        )
    if high is None:
        why = {"max_reached": "--max reached", "budget": "--budget used up"}.get(
            ended.reason, "the search stopped before any failed"
        )
        return prefix + f"capacity at least {level_text(low, unit)}: every step passed ({why})"
    return prefix + (
        f"capacity {level_text(low, unit)}: the highest level that met every SLO; "
        f"{level_text(high, unit)} failed (within {high / low - 1:.1%})"
    )


def _usl(judged: Judged) -> dict[str, Any]:
    try:
        fit = fit_usl([lv for lv, _ in judged], [j.ok_rps for _, j in judged])
    except UslFitError as exc:
        return {"error": str(exc)}
    return {"model": "Universal Scalability Law (a fit, not a measurement)", **asdict(fit)}


# ------------------------------------------------------------------------- what is printed


def describe(data: CapacityDocument) -> list[str]:
    """The lines the CLI prints for a capacity run (capacity.json's content)."""
    unit = data.unit
    closed = data.mode == "closed"
    head = "users" if closed else "rate /s"
    lines = [
        f"{'step':>4} {head:>9} {'verdict':>8} {'req/s':>8} {'ok/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7}  run"
    ]
    for s in data.steps:
        lines.append(
            f"{s['index']:>4} {s['level']:>9.4g} {s['verdict']:>8} {_n(s.get('throughput_rps'))} "
            f"{_n(s.get('ok_rps'))} {_n(s.get('p50_ms'))} {_n(s.get('p99_ms'))} "
            f"{_pct(s.get('error_rate'))}  {s['run_dir']}"
        )
    lines.append(f"capacity: {data.capacity.note}")
    stop = data.stop_reason + (f" ({data.stop_detail})" if data.stop_detail else "")
    lines.append(f"stopped: {stop}")
    lines.append(_knee_line(data.knee, unit))
    if data.first_breach is not None:
        lines.append(_breach_line(data.first_breach, unit))
    if data.usl is not None:
        lines.append(_usl_line(data.usl))
    return lines


def _knee_line(knee: dict[str, Any] | None, unit: str) -> str:
    if knee is None:
        return "knee: none in the tested range"
    return (
        f"knee: {level_text(knee['level'], unit)} (p99 {knee['latency_ms']:.4g} ms at "
        f"{knee['throughput_rps']:.4g} ok req/s; latency climbed faster than throughput "
        f"by {level_text(knee['next_level'], unit)})"
    )


def _breach_line(breach: dict[str, Any], unit: str) -> str:
    if breach["slo"] is None:
        return (
            f"first to break at {level_text(breach['level'], unit)}: {'; '.join(breach['reasons'])}"
        )
    return (
        f"first SLO to break: {breach['slo']} at {level_text(breach['level'], unit)}, on "
        f"{breach['endpoint']} (measured {_n(breach['value'], 0).strip()})"
    )


def _usl_line(usl: dict[str, Any]) -> str:
    if "error" in usl:
        return f"USL model: not fitted: {usl['error']}"
    peak = (
        f"predicted peak {usl['n_peak']:.3g} users at {usl['x_peak']:.4g} ok req/s"
        if usl["n_peak"] is not None
        else "no predicted peak (kappa 0): throughput levels off"
        + ("" if usl["x_peak"] is None else f" at {usl['x_peak']:.4g} ok req/s")
    )
    return (
        f"USL model (a fit, not a measurement): lambda {usl['lam']:.4g} "
        f"± {_se(usl['lam_se'])} ok req/s, sigma {usl['sigma']:.4g} "
        f"± {_se(usl['sigma_se'])}, kappa {usl['kappa']:.4g} ± {_se(usl['kappa_se'])}, "
        f"R² {usl['r2']:.4f}; {peak}"
    )


def level_text(level: float, unit: str) -> str:
    """A level as said and printed: ``8 users``, ``78.9/s``."""
    return f"{level:g} users" if unit == "users" else f"{level:.4g}/s"


def step_figures(step: dict[str, Any]) -> str:
    """A judged step's figures as said when it ends."""
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


# --------------------------------------------------------------------------------- helpers


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
