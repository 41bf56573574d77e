"""The target's side of one run, one class per kind of target: the embedded mock this run
starts, a mock already running elsewhere (compose, Kubernetes), a shared stand. Each says
where Locust sends its requests and with which secrets, checks what it needs before a run
directory exists, and adds what it knows to the run directory at the end. Only
:func:`session_for` tells the kinds apart."""

from __future__ import annotations

import json
import socket
from abc import ABC, abstractmethod
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from authload.errors import TargetError
from authload.mock.control import MockControl
from authload.run.console import Console
from authload.run.running_mock import (
    RunningMock,
    check_running_mock,
    keep_fault_history,
    running_mock_secrets,
)
from authload.run.targets import Limits, Target
from authload.rundir.files import BEHAVIOUR_FILE
from authload.scenario.model import Scenario

if TYPE_CHECKING:
    from authload.mock.server import EmbeddedMock


@dataclass(frozen=True)
class Endpoints:
    """Where one run's Locust processes send, and what they are handed."""

    gigma_url: str
    mobile_url: str
    mock_url: str | None = None  # a mock's /_mock/ control: inboxes, ESIA sign-in
    secrets: tuple[str, str] | None = None  # app token, client secret; None: workers' own
    clock_of: str | None = None  # a mock whose profile fault windows count from the test start


class TargetSession(ABC):
    """One run's use of its target. ``remote_workers``: Locust's workers run elsewhere and read
    their own secrets, so none are asked for here."""

    def __init__(self, target: Target, console: Console, remote_workers: bool = False) -> None:
        self.target = target
        self.console = console
        self.remote_workers = remote_workers

    def safety(
        self, scenario: Scenario, confirmed: bool, confirm_hint: str = "run again with --confirm"
    ) -> list[str]:
        """Refuse what the target's limits forbid; the limits to state before the run. A
        mock's: only the run-time ones it sets, which it enforces without asking to confirm."""
        run_time = ("send_password_budget", "max_request_rate")
        return [s for s in stated_limits(self.target) if s.split("=", 1)[0] in run_time]

    def check(self) -> None:
        """Before anything is created: what the run needs of its target is there."""
        return None

    @abstractmethod
    def begin(self, run_dir: Path, scenario: Scenario) -> Endpoints:
        """The target made ready for the load; where the load goes."""

    def end(self, run_dir: Path) -> dict[str, Any] | None:
        """After the load: what the target counted (``mock_stats.json``), if it can say."""
        return None

    def watch(self) -> str | None:
        """Asked while the load runs: a reason to abort the run, if the target gives one."""
        return None

    def close(self) -> None:
        """Whatever the session started is stopped."""
        return None

    def __enter__(self) -> TargetSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SharedStand(TargetSession):
    """A real environment (beta): its limits enforced and confirmed, its secrets from this
    environment, checked reachable."""

    def safety(
        self, scenario: Scenario, confirmed: bool, confirm_hint: str = "run again with --confirm"
    ) -> list[str]:
        target = self.target
        problems = _out_of_limits(target.limits, scenario)
        if problems:
            raise TargetError(f"target {target.name} refuses this run: " + "; ".join(problems))
        stated = stated_limits(target)
        if not confirmed:
            raise TargetError(
                f"target {target.name} is a shared environment (limits: {', '.join(stated)}); "
                f"{confirm_hint} to send real traffic there"
            )
        return stated

    def check(self) -> None:
        if not self.remote_workers:
            self.target.secrets()
        check_reachable(self.target.name, self.target.urls())

    def begin(self, run_dir: Path, scenario: Scenario) -> Endpoints:
        secrets = None if self.remote_workers else self.target.secrets()
        return Endpoints(*self.target.urls(), secrets=secrets)


class RunningMockSession(TargetSession):
    """A mock that outlives the run: reset at the start, counted by its counters' increase."""

    _mock: RunningMock | None = None

    def check(self) -> None:
        self.target.urls()
        check_running_mock(self.target)

    def begin(self, run_dir: Path, scenario: Scenario) -> Endpoints:
        self._mock = RunningMock.begin(self.target, scenario, run_dir, self.console)
        secrets = None if self.remote_workers else running_mock_secrets(self.target)
        return Endpoints(*self.target.urls(), mock_url=self._mock.url, secrets=secrets)

    def end(self, run_dir: Path) -> dict[str, Any] | None:
        return None if self._mock is None else self._mock.end(run_dir)


class EmbeddedMockSession(TargetSession):
    """The mock this run starts on 127.0.0.1 with the scenario's behaviour and settings, and
    stops at its end; a mock that exits mid-run aborts the run."""

    def __init__(self, target: Target, console: Console, remote_workers: bool = False) -> None:
        if remote_workers:
            raise TargetError(
                "the embedded mock listens on this host's 127.0.0.1, out of remote workers' "
                "reach: start `authload mock` where they reach it and name it as a target "
                "(deploy/targets.yaml: compose-mock, k8s-mock), or use --processes"
            )
        super().__init__(target, console)
        self._stack = ExitStack()
        self._mock: EmbeddedMock | None = None

    def begin(self, run_dir: Path, scenario: Scenario) -> Endpoints:
        settings = scenario.mock.settings
        env = {f"AUTHLOAD_MOCK_{k.upper()}": str(v) for k, v in settings.items()}
        from authload.mock.server import EmbeddedMock  # the mock's web stack: only when used

        mock = EmbeddedMock(env=env, args=_behaviour_args(scenario, run_dir))
        self._mock = self._stack.enter_context(mock)
        self.console.say(f"embedded mock on {mock.url}")
        from authload.mock.settings import load_settings

        loaded = load_settings(**dict(settings))
        secrets = (loaded.app_token, loaded.client_secret)
        return Endpoints(mock.url, mock.url, mock.url, secrets, clock_of=mock.url)

    def end(self, run_dir: Path) -> dict[str, Any] | None:
        """The mock's counters and fault history; None when it died with them."""
        if self._mock is None or self._mock.exit_code() is not None:
            return None
        control = MockControl(self._mock.url)
        try:
            stats = control.stats()
            keep_fault_history(run_dir, control.fault_history())
            return stats
        except httpx.HTTPError as exc:
            self.console.say(f"the embedded mock's counters: {exc}")
            return None
        finally:
            control.close()

    def watch(self) -> str | None:
        code = None if self._mock is None else self._mock.exit_code()
        return None if code is None else f"the embedded mock exited mid-run (code {code})"

    def close(self) -> None:
        self._stack.close()


def session_for(
    target: Target, console: Console | None = None, remote_workers: bool = False
) -> TargetSession:
    """The one place that tells the kinds of target apart."""
    if target.embedded:
        kind: type[TargetSession] = EmbeddedMockSession
    elif target.mock:
        kind = RunningMockSession
    else:
        kind = SharedStand
    return kind(target, console or Console(), remote_workers)


def check_reachable(name: str, urls: tuple[str, str]) -> None:
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


def stated_limits(target: Target) -> list[str]:
    return [f"{k}={v}" for k, v in target.limits.model_dump().items() if v is not None]


def _out_of_limits(limits: Limits, scenario: Scenario) -> list[str]:
    load = scenario.load
    peak_users = max((s.users or 0) for s in load.stages)
    peak_rate = max((s.rate or 0.0) for s in load.stages)
    problems = []
    if limits.scenarios is not None and scenario.name not in limits.scenarios:
        problems.append(
            f"scenario {scenario.name!r} is not allowed (allowed: {', '.join(limits.scenarios)})"
        )
    if limits.max_users is not None and peak_users > limits.max_users:
        problems.append(f"peak users {peak_users} > max_users {limits.max_users}")
    if limits.max_rate is not None and peak_rate > limits.max_rate:
        problems.append(f"peak rate {peak_rate:g}/s > max_rate {limits.max_rate:g}/s")
    if limits.max_duration_s is not None and scenario.duration_s > limits.max_duration_s:
        problems.append(
            f"duration {scenario.duration_s:g} s > max_duration_s {limits.max_duration_s:g} s"
        )
    if "esia" in scenario.mix and scenario.mix["esia"] > 0:
        problems.append("the esia flow needs a person at a browser: only the mock has it")
    return problems


def _behaviour_args(scenario: Scenario, run_dir: Path) -> tuple[str, ...]:
    behaviour = scenario.mock.behaviour
    if behaviour is None or behaviour == "default":
        return ()
    if isinstance(behaviour, dict):
        path = run_dir / BEHAVIOUR_FILE
        path.write_text(json.dumps(behaviour, indent=2), encoding="utf-8")
        return ("--behaviour", str(path))
    return ("--behaviour", behaviour)
