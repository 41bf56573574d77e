"""The mock's side of a run: its fault history kept in the run directory, and a mock that
outlives the run (a target with ``mock: true`` and URLs: compose, Kubernetes), reset at the
start and counted by the increase of its counters. Spoken to through :class:`MockControl`;
a mock that does not answer is a :class:`TargetError`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from authload.errors import TargetError
from authload.load.config import mock_default_secrets
from authload.mock.control import MockControl
from authload.run.console import Console
from authload.run.targets import Target
from authload.rundir.events import FaultWindow, append_event, fault_event
from authload.rundir.files import MOCK_BEHAVIOUR_FILE, MOCK_FAULTS_FILE
from authload.rundir.jsonfiles import write_json
from authload.scenario.model import Scenario

__all__ = [
    "RunningMock",
    "check_running_mock",
    "counter_delta",
    "keep_fault_history",
    "running_mock_secrets",
]


@contextmanager
def _control(url: str) -> Iterator[MockControl]:
    control = MockControl(url)
    try:
        yield control
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise TargetError(f"{url}: {exc}") from None
    finally:
        control.close()


def keep_fault_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """The mock's fault windows, as it logged them: in mock_faults.json and the events."""
    write_json(run_dir / MOCK_FAULTS_FILE, history)
    for entry in history:
        append_event(run_dir, fault_event(FaultWindow.model_validate(entry)))


def check_running_mock(target: Target) -> None:
    url = target.control_url()
    try:
        with _control(url) as control:
            control.health()
    except TargetError as exc:
        raise TargetError(f"target {target.name}: no mock answers at {url} ({exc})") from None


def running_mock_secrets(target: Target) -> tuple[str, str]:
    """The app token and client secret for a running mock: the target's environment
    variables, else the mock's documented defaults."""
    defaults = mock_default_secrets()
    token = os.environ.get(target.app_token_env) or defaults[0]
    secret = os.environ.get(target.client_secret_env) or defaults[1]
    return token, secret


@dataclass(frozen=True)
class RunningMock:
    """A mock that outlives the run: reset at its start (unless the target says not to), its
    counters read at the start and the end; what the run counts is the difference."""

    url: str
    before: dict[str, Any]
    start: float

    @classmethod
    def begin(
        cls, target: Target, scenario: Scenario, run_dir: Path, console: Console
    ) -> RunningMock:
        url = target.control_url()
        with _control(url) as control:
            if target.reset_mock:
                control.reset()
            write_json(run_dir / MOCK_BEHAVIOUR_FILE, control.behaviour())
            before = control.stats()
        behaviour = scenario.mock.behaviour
        if (behaviour is not None and behaviour != "default") or scenario.mock.settings:
            console.say(
                f"the scenario's mock.behaviour and mock.settings are for the "
                f"embedded mock; the mock at {url} keeps its own (mock_behaviour.json)"
            )
        return cls(url, before, time.time())

    def end(self, run_dir: Path) -> dict[str, Any]:
        """The counters' increase over the run (``mock_stats.json``); its fault history."""
        with _control(self.url) as control:
            after = control.stats()
            end = time.time()
            history = control.fault_history()
        keep_fault_history(run_dir, [h for h in history if self.start <= h["t"] <= end])
        return counter_delta(self.before, after, self.start)


def counter_delta(before: dict[str, Any], after: dict[str, Any], since: float) -> dict[str, Any]:
    """``/_mock/stats`` as the increase from ``before`` to ``after``; a mock restarted in
    between (a new epoch) counts from its restart."""
    restarted = before.get("epoch") != after.get("epoch")
    base: dict[str, Any] = {"requests": {}, "events": {}} if restarted else before
    requests: dict[str, dict[str, int]] = {}
    for endpoint, statuses in after["requests"].items():
        old = base["requests"].get(endpoint, {})
        grown = {s: n - old.get(s, 0) for s, n in statuses.items() if n != old.get(s, 0)}
        if grown:
            requests[endpoint] = grown
    events = {k: v - base["events"].get(k, 0) for k, v in after["events"].items()}
    return {
        "epoch": after.get("epoch"),
        "uptime_s": after.get("uptime_s"),
        "requests": requests,
        "total": sum(n for by_status in requests.values() for n in by_status.values()),
        "events": events,
        "counted": "increase over the run",
        "baseline": {"t": since, "total": before.get("total"), "mock_restarted": restarted},
    }
