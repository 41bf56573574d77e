"""Named targets: where the APIs are, where their secrets come from, and the safety limits of
shared environments. Built in: ``mock`` (the embedded mock) and ``beta``; more in a targets
file (``--targets FILE``, YAML mapping name -> target), among them mocks already running
elsewhere (``mock: true`` with URLs, as in ``deploy/targets.yaml``)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from authload.errors import TargetError
from authload.load.config import RunLimits, TestAccount
from authload.scenario.model import Abort, Scenario


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """What a run may do to a shared environment."""

    max_users: int | None = Field(None, ge=1, description="closed model: peak users")
    max_rate: float | None = Field(None, gt=0, description="open model: peak arrivals/s")
    max_duration_s: float | None = Field(None, gt=0)
    scenarios: list[str] | None = Field(None, description="scenario names allowed; none: any")
    abort_error_rate: float | None = Field(None, gt=0, le=1, description="abort above this")
    send_password_budget: int | None = Field(
        None, ge=0, description="gigma.send_password attempts per run (each a real phone call)"
    )
    max_request_rate: float | None = Field(
        None, gt=0, description="attempts/s over all processes, retries included, enforced"
    )


class ConfiguredAccount(_Strict):
    phone: str
    inn: str | None = None
    lkfl_password_env: str | None = Field(None, description="env variable holding it")
    call_password: str | None = None
    sms_code: str | None = None


class Target(_Strict):
    name: str
    mock: bool = Field(
        False, description="an authload mock: the embedded one, or one running at the URLs"
    )
    gigma_url: str = ""
    mobile_url: str = ""
    mobile_url_env: str | None = Field(None, description="env variable with the mobile URL")
    mock_url: str = Field("", description="a running mock's /_mock/ control; default gigma_url")
    reset_mock: bool = Field(
        True, description="a running mock: forget codes, sessions, rate-limit windows at start"
    )
    app_token_env: str = "AUTHLOAD_APP_TOKEN"
    client_secret_env: str = "AUTHLOAD_CLIENT_SECRET"
    accounts: list[ConfiguredAccount] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)

    @property
    def embedded(self) -> bool:
        """The mock `authload run` starts itself (no URLs given)."""
        return self.mock and not (self.gigma_url or self.mobile_url or self.mobile_url_env)

    def control_url(self) -> str:
        """A running mock's /_mock/ control (its inbox, stats, faults)."""
        return (self.mock_url or self.urls()[0]).rstrip("/")

    def urls(self) -> tuple[str, str]:
        mobile = self.mobile_url
        if self.mobile_url_env:
            mobile = os.environ.get(self.mobile_url_env, mobile)
        if not self.gigma_url or not mobile:
            raise TargetError(
                f"target {self.name}: set gigma_url and mobile_url"
                + (f" (or ${self.mobile_url_env})" if self.mobile_url_env else "")
            )
        return self.gigma_url.rstrip("/"), mobile.rstrip("/")

    def secrets(self) -> tuple[str, str]:
        """The app token and client secret, from the environment only."""
        token = os.environ.get(self.app_token_env)
        secret = os.environ.get(self.client_secret_env)
        missing = [
            n for n, v in ((self.app_token_env, token), (self.client_secret_env, secret)) if not v
        ]
        if missing:
            raise TargetError(
                f"target {self.name}: set {' and '.join(missing)} in the "
                f"environment (secrets are never read from files)"
            )
        assert token is not None and secret is not None
        return token, secret


BUILTIN: dict[str, Target] = {
    "mock": Target(name="mock", mock=True),
    "beta": Target(
        name="beta",
        gigma_url="https://beta.api.gigma.ru",
        mobile_url_env="AUTHLOAD_BETA_MOBILE_URL",
        app_token_env="AUTHLOAD_BETA_APP_TOKEN",
        client_secret_env="AUTHLOAD_BETA_CLIENT_SECRET",
        accounts=[ConfiguredAccount(phone="79999999990", call_password="1111")],
        limits=Limits(
            max_users=20,
            max_rate=5.0,
            max_duration_s=600,
            scenarios=["beta-smoke"],
            abort_error_rate=0.2,
            send_password_budget=10,
            max_request_rate=20.0,
        ),
    ),
}


def load_targets(path: str | Path | None) -> dict[str, Target]:
    targets = dict(BUILTIN)
    if path is None:
        return targets
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TargetError(f"{path}: cannot read targets: {exc}") from None
    if not isinstance(data, dict):
        raise TargetError(f"{path}: a mapping of target name -> target")
    for name, spec in data.items():
        if name == "mock":
            raise TargetError(f"{path}: 'mock' is built in and cannot be redefined")
        try:
            target = Target.model_validate({**(spec or {}), "name": name})
        except ValidationError as exc:
            problems = "; ".join(
                f"{name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise TargetError(f"{path}: {problems}") from None
        if target.embedded:
            raise TargetError(
                f"{path}: {name}: a mock in a targets file is one already running: "
                f"set its gigma_url and mobile_url (and mock_url if its control is elsewhere)"
            )
        if target.mock:
            _check_one_origin(path, target)
        targets[name] = target
    return targets


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, the default port filled in."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _check_one_origin(path: str | Path, target: Target) -> None:
    """A running mock is exempt from the safety limits, so it must really be one mock: one
    authload mock serves both APIs and its /_mock/ control on one origin. A mock target whose
    gigma_url or mobile_url points elsewhere (a shared stand) is refused."""
    control_field = "mock_url" if target.mock_url else "gigma_url"
    control = target.mock_url or target.gigma_url
    origin = _origin(control)
    if origin is None:
        raise TargetError(
            f"{path}: target {target.name}: {control_field} {control!r} is not an http(s) URL"
        )
    mobile, mobile_field = target.mobile_url, "mobile_url"
    env_url = os.environ.get(target.mobile_url_env) if target.mobile_url_env else None
    if env_url:
        mobile, mobile_field = env_url, f"mobile_url (${target.mobile_url_env})"
    for field, url in (("gigma_url", target.gigma_url), (mobile_field, mobile)):
        if url and _origin(url) != origin:
            raise TargetError(
                f"{path}: target {target.name}: {field} {url!r} is not on the mock's origin "
                f"({control_field} {control!r}): a mock target (mock: true) skips the safety "
                f"limits, so both APIs must be that one mock; a shared environment needs "
                f"mock: false"
            )


def resolve_target(name: str, path: str | Path | None = None) -> Target:
    targets = load_targets(path)
    if name not in targets:
        raise TargetError(f"unknown target {name!r}; known: {', '.join(sorted(targets))}")
    return targets[name]


def within_limits(scenario: Scenario, target: Target) -> Scenario:
    """A shared target's abort level overrides a laxer one in the scenario, and its window
    and minimum of requests are at most the default rule's, so that a scenario cannot make
    the abort unreachable (a huge window or minimum)."""
    level = target.limits.abort_error_rate
    if level is None:
        return scenario
    default = Abort()
    abort = scenario.abort or default
    rule = abort.model_copy(
        update={
            "error_rate": min(abort.error_rate, level),
            "window_s": min(abort.window_s, default.window_s),
            "min_requests": min(abort.min_requests, default.min_requests),
        }
    )
    return scenario if rule == scenario.abort else scenario.model_copy(update={"abort": rule})


def accounts_for(target: Target, remote: bool) -> list[TestAccount]:
    """The target's configured accounts, with passwords from this environment (none for
    remote workers: they read their own)."""
    return [
        TestAccount(
            phone=a.phone,
            inn=a.inn,
            lkfl_password=None if remote else os.environ.get(a.lkfl_password_env or "", None),
            call_password=a.call_password,
            sms_code=a.sms_code,
            lkfl_password_env=a.lkfl_password_env,
        )
        for a in target.accounts
    ]


def run_limits(target: Target) -> RunLimits:
    """The target's limits the Locust processes enforce while the run goes."""
    limits = target.limits
    return RunLimits(limits.send_password_budget, limits.max_request_rate)
