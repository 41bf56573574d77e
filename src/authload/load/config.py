"""The resolved run as the runner hands it to Locust processes: ``config.json`` for the
processes it starts itself (kept out of the run directory since configured test accounts may
carry passwords), and a Locust custom message (:data:`CONFIG_MESSAGE`) from the master to
workers on other hosts (``authload worker``), which carries no secret: workers read the app
token, the client secret and test-account passwords from their own environment, by the
names the message gives. No Locust here."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from authload.scenario.model import Scenario


@dataclass(frozen=True)
class TestAccount:
    phone: str
    inn: str | None = None
    lkfl_password: str | None = None
    devices: int = 1
    call_password: str | None = None  # fixed call-reset password on a test stand (e.g. 1111)
    sms_code: str | None = None  # fixed SMS code of a test phone
    lkfl_password_env: str | None = None  # where a remote worker reads lkfl_password from


CONFIG_ENV = "AUTHLOAD_RUN_CONFIG"  # path of the run's config.json
APP_TOKEN_ENV = "AUTHLOAD_APP_TOKEN"
CLIENT_SECRET_ENV = "AUTHLOAD_CLIENT_SECRET"
MOCK_CLOCK_ENV = "AUTHLOAD_MOCK_CLOCK"  # the embedded mock's URL: its faults count from test start
WORKER_ENV = "AUTHLOAD_WORKER_MASTER_TIMEOUT"  # set by `authload worker`: s to wait for a master
CONFIG_MESSAGE = "authload_config"  # master -> workers when the test starts: the run
WORKER_FAILED_MESSAGE = "authload_worker_failed"  # worker -> master: it cannot take part
WORKER_UNFIT_EXIT = 4  # exit code of a remote worker that could not take part in its run
#: While the test stops, journeys go on this long (Locust's graceful stop), then start no
#: request: Locust's stop timeout is this plus the request timeout and a second, so it never
#: kills a user with a request in flight (the service would count it, the records not).
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class RunLimits:
    """A target's run-time limits over all Locust processes; each process enforces its share
    (``load/run_limits.py``)."""

    send_password_budget: int | None = None  # gigma.send_password attempts in the whole run
    max_request_rate: float | None = None  # attempts/s of every endpoint, all processes

    @property
    def any(self) -> bool:
        return self.send_password_budget is not None or self.max_request_rate is not None


class WorkerConfigError(Exception):
    """A remote worker cannot take part in the run it was sent (secrets, run directory)."""


@dataclass
class RunConfig:
    """The resolved run, as the runner hands it to Locust processes (``config.json``)."""

    scenario: Scenario
    run_dir: Path
    target: str
    gigma_url: str
    mobile_url: str
    mock_url: str | None  # the mock's /_mock/ control, when the target is the mock
    processes: int = 1  # Locust worker processes (1: a local runner)
    accounts: list[TestAccount] = field(default_factory=list)  # configured test accounts
    remote_workers: bool = False  # workers elsewhere: the master sends them the run
    app_token_env: str = APP_TOKEN_ENV  # where remote workers read the secrets from
    client_secret_env: str = CLIENT_SECRET_ENV
    limits: RunLimits = field(default_factory=RunLimits)  # the target's run-time limits

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.model_dump(mode="json"),
            "run_dir": str(self.run_dir),
            "target": self.target,
            "gigma_url": self.gigma_url,
            "mobile_url": self.mobile_url,
            "mock_url": self.mock_url,
            "processes": self.processes,
            "accounts": [vars(a) for a in self.accounts],
            "remote_workers": self.remote_workers,
            "app_token_env": self.app_token_env,
            "client_secret_env": self.client_secret_env,
            "limits": asdict(self.limits),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        return cls(
            Scenario.model_validate(data["scenario"]),
            Path(data["run_dir"]),
            data["target"],
            data["gigma_url"],
            data["mobile_url"],
            data["mock_url"],
            data["processes"],
            [TestAccount(**a) for a in data["accounts"]],
            data.get("remote_workers", False),
            data.get("app_token_env", APP_TOKEN_ENV),
            data.get("client_secret_env", CLIENT_SECRET_ENV),
            RunLimits(**data.get("limits") or {}),
        )

    def to_wire(self) -> dict[str, Any]:
        """The run as the master sends it to remote workers: no password, the run directory
        as an absolute path (workers mount the run volume at the same path)."""
        data = self.to_json()
        data["run_dir"] = str(self.run_dir.absolute())
        data["accounts"] = [{**vars(a), "lkfl_password": None} for a in self.accounts]
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any], environ: Mapping[str, str]) -> RunConfig:
        """The run a remote worker was sent, with test-account passwords from ``environ``."""
        config = cls.from_json(data)
        accounts = [
            replace(a, lkfl_password=environ.get(a.lkfl_password_env)) if a.lkfl_password_env else a
            for a in config.accounts
        ]
        return replace(config, accounts=accounts)

    def worker_secrets(self, environ: Mapping[str, str]) -> tuple[str, str]:
        """A remote worker's app token and client secret, from its own environment; on a mock,
        the mock's documented defaults where the environment has none."""
        names = (self.app_token_env, self.client_secret_env)
        values = [environ.get(n, "") for n in names]
        if self.mock_url is not None:
            defaults = mock_default_secrets()
            values = [v or d for v, d in zip(values, defaults, strict=True)]
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise WorkerConfigError(
                f"target {self.target}: set {' and '.join(missing)} in this worker's "
                f"environment (secrets never travel from the master)"
            )
        return values[0], values[1]


def mock_default_secrets() -> tuple[str, str]:
    """The app token and client secret a mock accepts unless told otherwise (documented
    defaults of its settings, never read from the environment here)."""
    from authload.mock.settings import MockSettings

    fields = MockSettings.model_fields
    return str(fields["app_token"].default), str(fields["client_secret"].default)


def load_config() -> RunConfig:
    """The configuration of this Locust process's run."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start load runs with `authload run`")
    return RunConfig.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
