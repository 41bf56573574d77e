"""The run's watcher, on the master (or the only process): progress lines for the terminal,
stage changes into the events, and the scenario's abort rule."""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

import gevent
from locust.env import Environment

from authload.load.shapes import stage_at
from authload.results import append_event
from authload.scenario import Scenario

PROGRESS_EVERY_S = 5.0


def watch(environment: Environment, scenario: Scenario, run_dir: Path) -> None:
    runner = environment.runner
    assert runner is not None
    started = time.time()
    stage: int | None = -1
    window: deque[tuple[float, int, int]] = deque()  # (time, requests, failures)
    last_print = started
    while runner.state not in ("stopped", "quitting"):
        now = time.time()
        elapsed = now - started
        current = stage_at(scenario.load, elapsed)
        if current != stage and current is not None:
            stage = current
            append_event(
                run_dir,
                {
                    "t": now,
                    "kind": "stage",
                    "stage": current,
                    **scenario.load.stages[current].model_dump(),
                },
            )
        total = environment.stats.total
        window.append((now, total.num_requests, total.num_failures))
        if _should_abort(scenario, window, now):
            append_event(run_dir, {"t": now, "kind": "abort", "reason": _abort_reason(scenario)})
            print(f"authload: aborting: {_abort_reason(scenario)}", file=sys.stderr, flush=True)
            runner.quit()
            return
        if now - last_print >= PROGRESS_EVERY_S:
            last_print = now
            _print_progress(environment, elapsed)
        gevent.sleep(1.0)


def _should_abort(scenario: Scenario, window: deque[tuple[float, int, int]], now: float) -> bool:
    rule = scenario.abort
    if rule is None:
        return False
    while window and window[0][0] < now - rule.window_s:
        window.popleft()
    if len(window) < 2:
        return False
    requests = window[-1][1] - window[0][1]
    failures = window[-1][2] - window[0][2]
    return requests >= rule.min_requests and failures / requests > rule.error_rate


def _abort_reason(scenario: Scenario) -> str:
    rule = scenario.abort
    assert rule is not None
    return (
        f"more than {rule.error_rate:.0%} of requests failed over {rule.window_s:g} s (abort rule)"
    )


def _print_progress(environment: Environment, elapsed: float) -> None:
    total = environment.stats.total
    runner = environment.runner
    users = runner.user_count if runner is not None else 0
    p95 = total.get_current_response_time_percentile(0.95) or 0
    errors = total.num_failures / total.num_requests if total.num_requests else 0.0
    print(
        f"[{elapsed:6.0f} s] users {users:5d}  rps {total.current_rps:8.1f}  "
        f"p95 {p95:7.0f} ms  errors {errors:6.2%}  requests {total.num_requests}",
        file=sys.stderr,
        flush=True,
    )
