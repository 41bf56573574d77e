"""The mock's behaviour profile: latency, capacity, faults and rate limits (YAML, validated).

The field-by-field reference is the README's "Behaviour profile" section and the shipped
``profiles/default.yaml``; this module is the schema both are checked against.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from authload.contracts import ENDPOINTS
from authload.errors import ProfileError
from authload.scenario.distributions import Distribution


def _known_endpoint(name: str) -> str:
    if name not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {name!r}; allowed: {', '.join(ENDPOINTS)}")
    return name


def _latency_key(name: str) -> str:
    return name if name == "default" else _known_endpoint(name)


def _fault_scope(name: str) -> str:
    return name if name == "*" else _known_endpoint(name)


EndpointName = Annotated[str, AfterValidator(_known_endpoint)]
LatencyKey = Annotated[str, AfterValidator(_latency_key)]
FaultScope = Annotated[str, AfterValidator(_fault_scope)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Capacity(_Strict):
    """At most ``concurrency`` requests served at once, ``queue`` more waiting; beyond, 503."""

    concurrency: int = Field(ge=1)
    queue: int = Field(0, ge=0)
    queue_timeout_s: float | None = Field(None, gt=0, description="503 after waiting this long")
    retry_after_s: int = Field(1, ge=0, description="Retry-After on a shed request; 0 = none")


class CapacityConfig(_Strict):
    shared: Capacity | None = None  # one limit over all API endpoints
    endpoints: dict[EndpointName, Capacity] = Field(default_factory=dict)


FaultKind = Literal[
    "status", "latency", "hang", "reset", "truncate", "malformed", "stale_revocation"
]
#: Faults that change no answer on their own (the others end or delay the request they hit).
STATE_FAULTS = frozenset({"stale_revocation"})


class Fault(_Strict):
    """One fault window: ``kind`` on a ``fraction`` of requests to ``endpoints``."""

    name: str = Field("", max_length=100)
    kind: FaultKind
    endpoints: list[FaultScope] = Field(default_factory=lambda: ["*"], min_length=1)
    fraction: float = Field(1.0, ge=0, le=1)
    start_s: float = Field(0.0, ge=0, description="from mock start (profile) or now (admin)")
    duration_s: float | None = Field(None, gt=0, description="none: until removed")
    status: Literal[500, 502, 503, 504] = 503
    retry_after_s: int | None = Field(None, ge=0, description="Retry-After on status faults")
    added_ms: float = Field(0.0, ge=0, description="latency faults: extra time")
    hang_max_s: float = Field(300.0, gt=0, description="hang: answer nothing for this long")
    lag_s: float = Field(
        0.0,
        ge=0,
        description="stale_revocation: a token logged out or rotated keeps working this long",
    )

    @model_validator(mode="after")
    def _needs(self) -> Fault:
        if self.kind == "latency" and self.added_ms <= 0:
            raise ValueError("a latency fault needs added_ms > 0")
        if self.kind == "stale_revocation" and self.lag_s <= 0:
            raise ValueError("a stale_revocation fault needs lag_s > 0")
        return self

    def applies_to(self, endpoint: str) -> bool:
        return "*" in self.endpoints or endpoint in self.endpoints


class Window(_Strict):
    limit: int = Field(ge=1)
    window_s: float = Field(gt=0)


class RateLimits(_Strict):
    calls_per_phone: Window | None = None  # gigma.send_password per phone
    sms_per_phone: Window | None = None  # mobile.phone_request per phone
    per_ip: Window | None = None  # every API request per client address


class Profile(_Strict):
    latency: dict[LatencyKey, Distribution] = Field(default_factory=dict)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)
    faults: list[Fault] = Field(default_factory=list)
    rate_limits: RateLimits = Field(default_factory=RateLimits)

    def latency_for(self, endpoint: str) -> Distribution | None:
        return self.latency.get(endpoint) or self.latency.get("default")


def zero_latency(profile: Profile) -> Profile:
    """The same profile with no added latency (used by the benchmark)."""
    return profile.model_copy(update={"latency": {}})


def parse_profile(data: Any, source: str) -> Profile:
    """Validate a profile; errors name the source, the field and what is allowed."""
    try:
        return Profile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ProfileError(f"{source}: " + "; ".join(_explain(e) for e in exc.errors())) from None


def _explain(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"] if p != "[key]")
    ctx = error.get("ctx") or {}
    allowed = ctx.get("expected")
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown field"
    if error["type"] == "literal_error" and allowed:
        return f"{loc}: must be one of {allowed}"
    if error["type"] == "union_tag_invalid":
        return f"{loc}: dist must be one of {ctx.get('expected_tags')}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc or 'profile'}: {message}"


def load_profile(path: str | Path | None) -> Profile:
    """A profile file, or the shipped default when ``path`` is None."""
    if path is None:
        text = (
            resources.files("authload.mock.profiles")
            .joinpath("default.yaml")
            .read_text(encoding="utf-8")
        )
        source = "default profile"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read the profile: {exc.strerror}") from None
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from None
    return parse_profile(data, source)
