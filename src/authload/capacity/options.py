"""The options of a capacity search: what the command line gives, refused when unusable
(naming the option), and the mode's defaults filled in once the scenario is known."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from authload.capacity.judge import TAIL_S
from authload.errors import InputError
from authload.run.targets import Limits
from authload.scenario.model import Scenario

__all__ = ["CapacityOptions", "capped_by_target", "resolve_options", "validate_options"]


@dataclass(frozen=True)
class CapacityOptions:
    """The search's settings; None means the documented default for the mode."""

    closed: bool = False
    start: float | None = None  # open: arrivals/s (default: the scenario's peak rate, else 5)
    factor: float | None = None  # step-up multiplier (default 1.5 open, 2 closed)
    maximum: float | None = None  # highest level tried (closed default 64 users)
    precision: float = 0.05  # open: stop when last pass and first fail are this close
    budget_s: float = 1800.0
    step_s: float = 60.0  # each step, warm-up included
    warmup_s: float = 15.0
    target: str | None = None
    targets_file: str | Path | None = None
    out: str | Path = "runs"
    processes: int = 1
    confirm: bool = False
    verbose: bool = False  # the steps' own output on stderr too, not only in capacity.log


def validate_options(options: CapacityOptions) -> None:
    """Refuse unusable options with an :class:`InputError` naming the option."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise InputError(message)

    need(
        0.001 <= options.precision <= 0.5,
        f"--precision must be from 0.001 to 0.5 (0.05 = 5%), not {options.precision:g}",
    )
    if options.factor is not None:
        need(
            1.0 < options.factor <= 10.0,
            f"--factor must be above 1 and at most 10, not {options.factor:g}",
        )
    if options.start is not None:
        need(0 < options.start < math.inf, f"--start must be above 0, not {options.start:g}")
        if options.closed:
            need(options.start == int(options.start), "--start: users must be a whole number")
    if options.maximum is not None:
        need(0 < options.maximum < math.inf, f"--max must be above 0, not {options.maximum:g}")
        if options.closed:
            need(options.maximum == int(options.maximum), "--max: users must be a whole number")
    if options.start is not None and options.maximum is not None:
        need(
            options.maximum >= options.start,
            f"--max ({options.maximum:g}) must be at least --start ({options.start:g})",
        )
    need(0 < options.step_s < math.inf, f"--step must be above 0 s, not {options.step_s:g}")
    room = options.step_s - TAIL_S - 1.0  # at least 1 s judged after warm-up and tail
    need(
        0 <= options.warmup_s <= room,
        f"--warmup must be from 0 to --step minus {TAIL_S + 1.0:g} s ({room:g} s; the last "
        f"{TAIL_S:g} s of a step is not judged either), not {options.warmup_s:g}",
    )
    need(
        options.budget_s >= options.step_s,
        f"--budget ({options.budget_s:g} s) must be at "
        f"least one step (--step {options.step_s:g} s)",
    )
    need(options.processes >= 1, f"--processes must be at least 1, not {options.processes}")


def resolve_options(
    scenario_path: str | Path, scenario: Scenario, options: CapacityOptions
) -> CapacityOptions:
    """The options as the search uses them, once the scenario is read: an open search of a
    scenario without SLOs refused (no rate could fail), the mode's defaults filled in."""
    if not options.closed and not scenario.slos:
        raise InputError(
            f"{scenario_path}: slos: the scenario sets no SLOs, so no rate can fail; "
            f"capacity needs at least one (e.g. 'p99(*) < 500ms')"
        )
    return _defaults(scenario, options)


def capped_by_target(options: CapacityOptions, limits: Limits) -> CapacityOptions:
    """Without ``--max``, the target's own ceiling on the mode's level (``max_users``,
    ``max_rate``) is the highest level tried: a step above it would be refused."""
    limit = limits.max_users if options.closed else limits.max_rate
    if limit is None or options.maximum is not None:
        return options
    return replace(options, maximum=float(limit))


def _defaults(scenario: Scenario, options: CapacityOptions) -> CapacityOptions:
    if options.closed:
        start = options.start or 1.0
        maximum = options.maximum or max(64.0, start)
        return replace(options, start=start, factor=options.factor or 2.0, maximum=maximum)
    peak = max((s.rate or 0.0) for s in scenario.load.stages)
    start = options.start or (peak if scenario.load.model == "open" and peak > 0 else 5.0)
    if options.maximum is not None and options.maximum < start:
        raise InputError(
            f"--max ({options.maximum:g}) must be at least the start rate "
            f"({start:g}/s; set --start)"
        )
    return replace(options, start=start, factor=options.factor or 1.5)
