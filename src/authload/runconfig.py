"""The resolved run as the runner hands it to Locust processes (``config.json``, kept out of
the run directory since configured test accounts may carry passwords). No Locust here."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authload.scenario import Scenario


@dataclass(frozen=True)
class TestAccount:
    phone: str
    inn: str | None = None
    lkfl_password: str | None = None
    devices: int = 1
    call_password: str | None = None  # fixed call-reset password on a test stand (e.g. 1111)
    sms_code: str | None = None  # fixed SMS code of a test phone


CONFIG_ENV = "AUTHLOAD_RUN_CONFIG"  # path of the run's config.json
APP_TOKEN_ENV = "AUTHLOAD_APP_TOKEN"
CLIENT_SECRET_ENV = "AUTHLOAD_CLIENT_SECRET"


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
        )


def load_config() -> RunConfig:
    """The configuration of this Locust process's run."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: start load runs with `authload run`")
    return RunConfig.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
