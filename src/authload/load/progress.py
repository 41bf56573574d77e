"""The run's watcher, on the master (or the only process): progress lines for the terminal,
stage changes into the events, the scenario's abort rule, and the Locust processes' own
memory and CPU into ``resources.jsonl``.

Resource samples: every :data:`RESOURCES_EVERY_S` (and once at the start and the end), one
JSON line per Locust process, appended in one write so a crash loses nothing already
sampled::

    {"t": 1700000000.0, "process": "w1", "role": "worker", "rss_bytes": 81264640,
     "cpu_percent": 12.5, "source": "heartbeat", "state": "running", "users": 4}

``process`` is the name the records use (``w<index>``), or ``master``. ``role`` is
``local`` (the only process), ``master`` or ``worker``. The master and a local process
sample themselves with psutil (``source: psutil``; CPU is the share of one core since the
previous sample). A worker's figures are the ones it sends the master with every heartbeat
(``source: heartbeat``): Locust's own monitor, which measures them every 10 s, so a worker's
figures are up to 10 s old, and null until its first measurement.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
import psutil  # type: ignore[import-untyped]
from locust.env import Environment
from locust.runners import LocalRunner, MasterRunner, Runner

from authload.load import live_counts
from authload.load.recorder import recording
from authload.load.shapes import stage_at
from authload.rundir.events import (
    AbortEvent,
    OfferedEvent,
    StageEvent,
    WorkerMissingEvent,
    append_event,
)
from authload.rundir.files import ABORT_FILE, RESOURCES_FILE
from authload.scenario.model import Scenario

PROGRESS_EVERY_S = 5.0
RESOURCES_EVERY_S = 10.0  # Locust's own CPU and memory monitor measures every 10 s


def watch(environment: Environment, scenario: Scenario, run_dir: Path) -> None:
    runner = environment.runner
    assert runner is not None
    resources = ResourceSampler(runner, run_dir)
    # the last sample: when the test stops (the process may exit before this loop wakes up)
    environment.events.test_stop.add_listener(lambda **_: resources.close())
    try:
        with recording(environment, run_dir / "events"):  # a full disk stops the run, said
            _watch(environment, runner, scenario, run_dir, resources)
    finally:
        resources.close()


def _watch(
    environment: Environment,
    runner: Runner,
    scenario: Scenario,
    run_dir: Path,
    resources: ResourceSampler,
) -> None:
    started = time.time()
    window: deque[tuple[float, int, int]] = deque()  # (time, requests, failures)
    last_print = started
    progress = Progress(scenario, started)
    missing: set[str] = set()
    stage: int | None = -1
    while runner.state not in ("stopped", "quitting"):
        now = time.time()
        elapsed = now - started
        current = stage_at(scenario.load, elapsed)
        if current != stage and current is not None:
            stage = current
            stage_plan = scenario.load.stages[current].model_dump()
            append_event(run_dir, StageEvent(t=now, stage=current, **stage_plan))
        total = environment.stats.total
        window.append((now, total.num_requests, total.num_failures))
        reason = _asked_to_abort(run_dir) or (
            _abort_reason(scenario) if _should_abort(scenario, window, now) else None
        )
        if reason is not None:
            append_event(run_dir, AbortEvent(t=now, reason=reason))
            print(f"authload: aborting: {reason}", file=sys.stderr, flush=True)
            runner.quit()
            return
        if now - last_print >= PROGRESS_EVERY_S:
            last_print = now
            print(progress.line(environment, now), file=sys.stderr, flush=True)
            _offered(run_dir, runner, scenario, elapsed, now)
        if resources.due(now):
            resources.sample(now)
        _note_missing(runner, run_dir, missing, now)
        gevent.sleep(1.0)


class ResourceSampler:
    """Appends each Locust process's memory (RSS) and CPU to ``run_dir/resources.jsonl``."""

    def __init__(self, runner: Runner, run_dir: Path, every_s: float = RESOURCES_EVERY_S) -> None:
        self.runner = runner
        self.path = run_dir / RESOURCES_FILE
        self.every_s = every_s
        self.own = psutil.Process()
        self.own.cpu_percent(None)  # the first call only starts the measurement
        self.primed = False
        self.measured: set[str] = set()  # workers whose figures have come in
        self.last = 0.0
        self.closed = False
        self.sample(time.time())

    def due(self, now: float) -> bool:
        return now - self.last >= self.every_s

    def close(self) -> None:
        """Take the last sample (once)."""
        if not self.closed:
            self.sample(time.time())
            self.closed = True

    def sample(self, now: float) -> None:
        if self.closed:
            return
        self.last = now
        try:
            rows = self._rows(now)
            text = "".join(
                json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n" for row in rows
            )
            with self.path.open("a", encoding="utf-8") as f:
                f.write(text)
        except Exception as exc:  # sampling must never stop the run
            print(f"authload: resource sample failed: {exc!r}", file=sys.stderr, flush=True)

    def _rows(self, now: float) -> list[dict[str, Any]]:
        runner = self.runner
        master = isinstance(runner, MasterRunner)
        role = "master" if master else "local" if isinstance(runner, LocalRunner) else "worker"
        name = "master" if master else f"w{getattr(runner, 'worker_index', 0)}"
        cpu = self.own.cpu_percent(None)
        rows = [
            {
                "t": now,
                "process": name,
                "role": role,
                "pid": self.own.pid,
                "rss_bytes": int(self.own.memory_info().rss),
                "cpu_percent": float(cpu) if self.primed else None,
                "source": "psutil",
                "users": None if master else runner.user_count,
            }
        ]
        self.primed = True
        if master:
            assert isinstance(runner, MasterRunner)
            for node in list(runner.clients.values()):
                memory = int(getattr(node, "memory_usage", 0) or 0)  # 0: not measured yet
                # a worker's first CPU figure is psutil's first call: 0, meaningless
                cpu = float(node.cpu_usage) if memory and node.id in self.measured else None
                if memory:
                    self.measured.add(node.id)
                rows.append(
                    {
                        "t": now,
                        "process": f"w{runner.get_worker_index(node.id)}",
                        "role": "worker",
                        "rss_bytes": memory or None,
                        "cpu_percent": cpu,
                        "source": "heartbeat",
                        "state": str(node.state),
                        "users": int(node.user_count),
                    }
                )
        return rows


def _asked_to_abort(run_dir: Path) -> str | None:
    """The reason the runner gave for aborting (it watches what Locust cannot see, such as
    the embedded mock's process), if it asked."""
    try:
        return (run_dir / ABORT_FILE).read_text(encoding="utf-8").strip() or "asked to abort"
    except OSError:
        return None


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


def _note_missing(runner: Runner, run_dir: Path, noted: set[str], now: float) -> None:
    """A worker Locust's master found missing (no heartbeat): when, into the events, once."""
    if not isinstance(runner, MasterRunner):
        return
    for node in list(runner.clients.values()):
        if node.state == "missing" and node.id not in noted:
            noted.add(node.id)
            worker = f"w{runner.get_worker_index(node.id)}"
            append_event(run_dir, WorkerMissingEvent(t=now, worker=worker))


def _offered(run_dir: Path, runner: Runner, scenario: Scenario, elapsed: float, now: float) -> None:
    """What load is offered now against the plan (closed model: users), for the verdict's
    check that the planned load was offered (:class:`authload.analysis.gates.LoadOffered`)."""
    stage = stage_at(scenario.load, elapsed)
    if scenario.load.model != "closed" or stage is None:
        return
    planned = scenario.load.stages[stage].users
    event = OfferedEvent(t=now, stage=stage, users=runner.user_count, planned_users=planned)
    append_event(run_dir, event)


class Progress:
    """The progress line: each figure over the window since the previous line (requests/s,
    errors) or now (users, p95 of Locust's last seconds), and by the load model: users
    planned and running (closed), arrivals/s planned and started, dropped and waiting (open).
    On the master the workers' figures arrive with their reports, every few seconds."""

    def __init__(self, scenario: Scenario, started: float) -> None:
        self.scenario = scenario
        self.started = started
        self.last = (started, 0, 0, 0)  # time, requests, failures, arrivals started

    def line(self, environment: Environment, now: float) -> str:
        total = environment.stats.total
        t0, requests0, failures0, started0 = self.last
        span = max(now - t0, 1e-9)
        requests = total.num_requests - requests0
        failures = total.num_failures - failures0
        counts = live_counts.totals().arrivals
        self.last = (now, total.num_requests, total.num_failures, counts.started)
        p95 = total.get_current_response_time_percentile(0.95) or 0
        errors = failures / requests if requests else 0.0
        head = f"[{now - self.started:6.0f} s] "
        tail = (
            f"rps {requests / span:8.1f}  p95 {p95:7.0f} ms  errors {errors:6.2%}  "
            f"requests {total.num_requests}"
        )
        stage = stage_at(self.scenario.load, now - self.started)
        plan = self.scenario.load.stages[stage if stage is not None else -1]
        if self.scenario.load.model == "open":
            achieved = (counts.started - started0) / span
            return (
                f"{head}arrivals/s {achieved:6.1f} of {plan.rate or 0:g}  dropped "
                f"{counts.dropped}  waiting {counts.waiting}  in flight {counts.in_flight}  {tail}"
            )
        runner = environment.runner
        users = runner.user_count if runner is not None else 0
        return f"{head}users {users:5d} of {plan.users or 0}  {tail}"
