"""The scenario schema: what a scenario file may say (loaded by :mod:`authload.scenario.loader`,
whose errors name the file, line, field and what is allowed)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)

from authload.contracts import ENDPOINTS
from authload.errors import ScenarioError
from authload.scenario.distributions import Distribution, Fixed
from authload.scenario.slo_grammar import EVENT_JOURNEYS, JOURNEYS, REQUESTS, parse_slo

FLOWS = ("password_call", "sms", "esia", "lkfl")
FlowName = Literal["password_call", "sms", "esia", "lkfl"]
RetryPolicyName = Literal["none", "immediate", "backoff", "retry_after", "budget", "adaptive"]
MAX_DEVICES = 10  # the mock keeps at most 10 live sessions per account (one per device)


def _slo(text: str) -> str:
    spec = parse_slo(text)
    names = {REQUESTS: tuple(ENDPOINTS), JOURNEYS: (*FLOWS, *EVENT_JOURNEYS)}.get(spec.family, ())
    if spec.endpoint != "*" and spec.endpoint not in names:
        what = "endpoint" if spec.family == REQUESTS else "flow"
        raise ValueError(f"unknown {what} {spec.endpoint!r}; allowed: *, {', '.join(names)}")
    return spec.text


Slo = Annotated[str, AfterValidator(_slo)]


def _device_count(n: int) -> int:
    if not 1 <= n <= MAX_DEVICES:
        raise ValueError(
            f"a device count is 1..{MAX_DEVICES} (the mock keeps {MAX_DEVICES} live sessions "
            f"per account), not {n}"
        )
    return n


def _setting_value(value: object) -> str | int | float:
    """One value of ``mock.settings`` (the mock's own model checks it further); a boolean
    becomes ``true``/``false``, as the mock's environment variables spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        raise ValueError("a setting is a string, a number or a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


DeviceCount = Annotated[int, AfterValidator(_device_count)]
SettingValue = Annotated[str | int | float, PlainValidator(_setting_value)]
Share = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Stage(_Strict):
    """Closed model: ``users`` reached at ``spawn_rate``/s; open model: ``rate`` arrivals/s."""

    duration_s: float = Field(gt=0)
    users: int | None = Field(None, ge=0)
    spawn_rate: float = Field(10.0, gt=0)
    rate: float | None = Field(None, ge=0)


class Load(_Strict):
    model: Literal["closed", "open"] = "closed"
    stages: list[Stage] = Field(min_length=1)
    max_in_flight: int = Field(
        500, ge=1, description="open model: journeys in flight per process; more arrivals wait"
    )
    when_full: Literal["queue", "drop"] = Field(
        "queue",
        description="open model: an arrival finding max_in_flight journeys in flight waits "
        "for a free place (queue, at most max_queue waiting) or is dropped (drop)",
    )
    max_queue: int = Field(10_000, ge=0, description="open model: arrivals waiting, per process")

    @model_validator(mode="after")
    def _stages_fit_the_model(self) -> Load:
        need, article = ("users", "a") if self.model == "closed" else ("rate", "an")
        for i, stage in enumerate(self.stages):
            if getattr(stage, need) is None:
                raise ValueError(f"stages.{i}: {article} {self.model}-model stage needs {need}")
        return self

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages)


class Accounts(_Strict):
    """Which test accounts the run uses: ``count`` from ``offset`` (mock) or the target's list."""

    count: int = Field(1000, ge=1)
    offset: int = Field(0, ge=0)


class PasswordCallFlow(_Strict):
    devices: dict[DeviceCount, Share] = Field(
        default_factory=lambda: {1: 0.6, 2: 0.3, 3: 0.1}, description="devices -> share"
    )
    logout_all_share: float = Field(0.2, ge=0, le=1)
    session: Distribution = Field(
        default_factory=lambda: Fixed(dist="fixed", ms=2000), description="time logged in"
    )

    @model_validator(mode="after")
    def _some_devices(self) -> PasswordCallFlow:
        if not any(share > 0 for share in self.devices.values()):
            raise ValueError("devices: at least one device count needs a share above 0")
        return self


class SmsFlow(_Strict):
    typo_share: float = Field(0.1, ge=0, le=1, description="first code typed wrong")
    refreshes: tuple[Count, Count] = Field((1, 3), description="refreshes per session, min and max")
    refresh_every: Distribution = Field(default_factory=lambda: Fixed(dist="fixed", ms=1000))

    @model_validator(mode="after")
    def _ordered(self) -> SmsFlow:
        low, high = self.refreshes
        if low > high:
            raise ValueError(f"refreshes: the min ({low}) must not exceed the max ({high})")
        return self


class LkflFlow(_Strict):
    wrong_password_share: float = Field(0.05, ge=0, le=1)


class Flows(_Strict):
    password_call: PasswordCallFlow = Field(default_factory=PasswordCallFlow)
    sms: SmsFlow = Field(default_factory=SmsFlow)
    lkfl: LkflFlow = Field(default_factory=LkflFlow)


class RefreshStorm(_Strict):
    """At ``at_s``, ``sessions`` live sessions refresh within ``window_s`` (open model)."""

    kind: Literal["refresh_storm"]
    at_s: float = Field(ge=0)
    sessions: int = Field(ge=1)
    window_s: float = Field(1.0, gt=0)


class MassLogout(_Strict):
    """At ``at_s``, ``share`` of counterparties log out from all devices; the others' devices
    find their tokens dead, and the users log in again after ``relogin_delay``."""

    kind: Literal["mass_logout"]
    at_s: float = Field(ge=0)
    share: float = Field(gt=0, le=1)
    relogin_delay: Distribution = Field(default_factory=lambda: Fixed(dist="fixed", ms=5000))


Event = Annotated[RefreshStorm | MassLogout, Field(discriminator="kind")]


class Retry(_Strict):
    policy: RetryPolicyName = "backoff"
    max_attempts: int = Field(3, ge=1, le=10)
    base_ms: float = Field(100.0, ge=0)
    cap_ms: float = Field(5000.0, ge=0)
    budget_ratio: float = Field(0.1, ge=0, le=1, description="retries per request, at most")
    k: float = Field(2.0, ge=1, description="adaptive throttling: accepts multiplier")


class Abort(_Strict):
    """Stop the run when the error share over ``window_s`` exceeds ``error_rate``."""

    error_rate: float = Field(0.5, gt=0, le=1)
    window_s: float = Field(10.0, gt=0)
    min_requests: int = Field(50, ge=1)


#: The checks that judge every run unless a scenario turns them off by name (``gates_off``).
GateName = Literal[
    "revoked_token_accepted",
    "rotated_token_accepted",
    "reconciliation",
    "processes",
    "load_offered",
]


class MockSetup(_Strict):
    """For the embedded mock: its behaviour profile (a file, relative to the scenario, or
    inline) and settings (AUTHLOAD_MOCK_* names, lower case)."""

    behaviour: str | dict[str, Any] | None = None
    settings: dict[str, SettingValue] = Field(default_factory=dict)


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)
    description: str = ""
    target: str = "mock"
    seed: int = 1
    accounts: Accounts = Field(default_factory=Accounts)
    mix: dict[FlowName, float] = Field(min_length=1)
    load: Load
    think_time: Distribution = Field(
        default_factory=lambda: Fixed(dist="fixed", ms=500), description="between a user's steps"
    )
    flows: Flows = Field(default_factory=Flows)
    events: list[Event] = Field(default_factory=list)
    retry: Retry = Field(default_factory=Retry)
    request_timeout_s: float = Field(10.0, gt=0)
    slos: list[Slo] = Field(default_factory=list)
    abort: Abort | None = Field(default_factory=Abort)
    mock: MockSetup = Field(default_factory=MockSetup)
    gates_off: list[GateName] = Field(
        default_factory=list, description="default gates this scenario turns off, by name"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if not any(w > 0 for w in self.mix.values()):
            raise ValueError("mix: at least one flow needs a weight above 0")
        if any(w < 0 for w in self.mix.values()):
            raise ValueError("mix: weights must be >= 0")
        for i, slo in enumerate(self.slos):
            if self.load.model == "closed" and parse_slo(slo).stat == "dropped":
                raise ValueError(
                    f"slos.{i}: dropped(...) judges open-model arrivals; this load is closed"
                )
        for i, event in enumerate(self.events):
            if event.at_s >= self.load.duration_s:
                raise ValueError(
                    f"events.{i}.at_s: {event.at_s} is past the end of the load "
                    f"({self.load.duration_s:g} s)"
                )
        return self

    @property
    def duration_s(self) -> float:
        return self.load.duration_s

    def with_duration(self, duration_s: float) -> Scenario:
        """The same scenario stretched or cut to ``duration_s`` (the last stage absorbs it)."""
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ScenarioError(
                f"--duration must be a finite number of seconds above 0, not {duration_s:g}"
            )
        stages = list(self.load.stages)
        before = sum(s.duration_s for s in stages[:-1])
        if duration_s <= before:
            raise ScenarioError(
                f"--duration {duration_s:g} s must exceed the stages before the last ({before:g} s)"
            )
        stages[-1] = stages[-1].model_copy(update={"duration_s": duration_s - before})
        load = self.load.model_copy(update={"stages": stages})
        return self.model_copy(update={"load": load})
