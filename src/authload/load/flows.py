"""User journeys, as a person does them: the calls, the waits between them, the tokens kept.

A journey ends ``completed`` or with an outcome naming what went wrong; the per-process
``Outcomes`` counter collects them (written to the run's events at the end).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from authload.contracts import gigma as g
from authload.contracts import mobile as m
from authload.distributions import Distribution, sample_ms
from authload.load.accounts import CodeSource, CodeUnavailable
from authload.load.clients import Answer, AuthClient, FlowContext, RunStopping
from authload.load.limits import LimitRefused
from authload.load.retry import CallError, Throttled
from authload.runconfig import TestAccount
from authload.scenario import Scenario

REFUSED = frozenset({400})
LOGOUT = frozenset({200, 401})
REUSED_TEXT = "already used"


class FlowFailed(Exception):
    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


@dataclass(slots=True)
class MobileSession:
    account: TestAccount  # the process's own account object, shared, not a copy
    refresh_token: str


@dataclass
class GigmaSession:
    account: TestAccount
    tokens: list[str]
    revoked_at: float | None = None  # set by a mass logout


@dataclass
class SharedState:
    """What the journeys of one process share: live sessions (for storms and mass logouts)
    and the outcome counters. ``idle_mobile`` keeps the newest sessions the journeys ended,
    as many as the scenario's refresh storms take (the Runtime sizes it): none without one."""

    outcomes: Counter[str] = field(default_factory=Counter)
    idle_mobile: deque[MobileSession] = field(default_factory=lambda: deque(maxlen=0))
    gigma: dict[int, GigmaSession] = field(default_factory=dict)  # in session, by id()


@dataclass
class Journey:
    client: AuthClient
    codes: CodeSource
    account: TestAccount
    scenario: Scenario
    state: SharedState
    ctx: FlowContext
    rng: random.Random
    secret: str

    def call(
        self,
        name: str,
        body: dict[str, Any] | None = None,
        bearer: str | None = None,
        expect: frozenset[int] = frozenset({200}),
    ) -> Answer:
        try:
            return self.client.call(name, self.ctx, body, bearer, expect)
        except CallError as exc:
            raise FlowFailed(f"failed:{name}:{exc.kind}") from None
        except Throttled:
            raise FlowFailed(f"throttled:{name}") from None
        except LimitRefused as refused:  # the target's limits: nothing was sent
            raise FlowFailed(refused.outcome) from None

    def wait(self, dist: Distribution | None = None) -> None:
        time.sleep(sample_ms(dist or self.scenario.think_time, self.rng) / 1000.0)

    def code(self, get: Callable[[], str], what: str) -> str:
        try:
            return get()
        except CodeUnavailable:
            raise FlowFailed(f"no_{what}") from None


def password_call(j: Journey) -> str:
    """Call-reset and login on each of the user's devices, a session, then logout (this device,
    or sometimes all devices at once, after which the others must be refused)."""
    params = j.scenario.flows.password_call
    devices = j.rng.choices(list(params.devices), weights=list(params.devices.values()))[0]
    tokens = [gigma_login(j) for _ in range(devices)]
    session = GigmaSession(j.account, tokens)
    key = id(session)
    j.state.gigma[key] = session  # greenlets switch only on I/O: no lock needed
    try:
        j.wait(params.session)
        if session.revoked_at is not None:
            return "ended_by_mass_logout"
        if j.rng.random() < params.logout_all_share:
            j.call("gigma.logout", {"from_all_devices": True}, bearer=tokens[0])
            return verify_revoked(j, tokens[1:])
        for token in tokens:
            if (
                j.call(
                    "gigma.logout", {"from_all_devices": False}, bearer=token, expect=LOGOUT
                ).status
                == 401
                and session.revoked_at is None
            ):
                return "token_lost"
        return "completed"
    finally:
        j.state.gigma.pop(key, None)


def gigma_login(j: Journey) -> str:
    phone = j.account.phone
    j.call("gigma.send_password", {"phone": phone})
    j.wait()  # the call rings; the user reads the number
    password = j.code(lambda: j.codes.call_password(j.account), "call")
    answer = j.call("gigma.login", {"phone": phone, "password": password})
    assert isinstance(answer.body, g.CounterpartyLoginResponse)
    return answer.body.counterparty.access_token.value


def verify_revoked(j: Journey, tokens: list[str]) -> str:
    """Every other device's token must now be refused."""
    for token in tokens:
        if (
            j.call("gigma.logout", {"from_all_devices": False}, bearer=token, expect=LOGOUT).status
            == 200
        ):
            return "revoked_token_accepted"
    return "completed"


def sms(j: Journey) -> str:
    """SMS request, the code arrives, verify (sometimes a typo first), refresh when due."""
    params = j.scenario.flows.sms
    phone = j.account.phone
    j.call(
        "mobile.phone_request",
        {
            "phone": phone,
            "captcha": "load-test",
            "os": j.rng.choice(("android", "ios")),
            "client_secret": j.secret,
        },
    )
    j.wait()
    code = j.code(lambda: j.codes.sms_code(j.account), "sms")
    if j.rng.random() < params.typo_share:
        typo = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
        j.call(
            "mobile.phone_verify",
            {"phone": phone, "code": typo, "client_secret": j.secret},
            expect=REFUSED,
        )
        j.wait()
    answer = j.call(
        "mobile.phone_verify", {"phone": phone, "code": code, "client_secret": j.secret}
    )
    assert isinstance(answer.body, m.LoginResponse)
    refresh_token = answer.body.refresh_token
    for _ in range(j.rng.randint(*params.refreshes)):
        j.wait(params.refresh_every)
        refresh_token, outcome = refresh(j, refresh_token)
        if outcome is not None:
            return outcome
    keep_idle(j, refresh_token)
    return "completed"


def refresh(j: Journey, refresh_token: str) -> tuple[str, str | None]:
    """One rotation; a refused refresh means the session is lost, and why."""
    answer = j.call(
        "mobile.refresh",
        {"refresh_token": refresh_token, "client_secret": j.secret},
        expect=frozenset({200, 400}),
    )
    if answer.status == 400:
        reason = "rotation" if REUSED_TEXT in answer.text else "invalid"
        return refresh_token, f"session_lost:{reason}"
    assert isinstance(answer.body, m.RefreshTokensResponse)
    return answer.body.refresh_token, None


def esia(j: Journey) -> str:
    """The ESIA URL, the user signs in at ESIA, the app exchanges the code."""
    answer = j.call("mobile.esia_url")
    assert isinstance(answer.body, m.EsiaUrlResponse)
    state = parse_qs(urlsplit(answer.body.url).query)["state"][0]
    j.wait()
    code = j.code(lambda: j.codes.esia_code(state, j.account), "esia_code")
    login = j.call(
        "mobile.esia_auth", {"authorization_code": code, "state": state, "client_secret": j.secret}
    )
    assert isinstance(login.body, m.LoginResponse)
    keep_idle(j, login.body.refresh_token)
    return "completed"


def lkfl(j: Journey) -> str:
    """INN and password of the taxpayer cabinet; a small share types the password wrong."""
    account = j.account
    if account.inn is None or account.lkfl_password is None:
        raise FlowFailed("no_lkfl_account")
    body = {"inn": account.inn, "password": account.lkfl_password, "client_secret": j.secret}
    if j.rng.random() < j.scenario.flows.lkfl.wrong_password_share:
        j.call(
            "mobile.lkfl_auth", {**body, "password": account.lkfl_password + "x"}, expect=REFUSED
        )
        j.wait()
    login = j.call("mobile.lkfl_auth", body)
    assert isinstance(login.body, m.LoginResponse)
    keep_idle(j, login.body.refresh_token)
    return "completed"


def keep_idle(j: Journey, refresh_token: str) -> None:
    """The app goes to the background with a live session (what a refresh storm wakes)."""
    if j.state.idle_mobile.maxlen:
        j.state.idle_mobile.append(MobileSession(j.account, refresh_token))


FLOWS: dict[str, Callable[[Journey], str]] = {
    "password_call": password_call,
    "sms": sms,
    "esia": esia,
    "lkfl": lkfl,
}


def run_journey(flow: str, j: Journey) -> str:
    """Run one journey; its outcome is counted, never raised."""
    try:
        outcome = FLOWS[flow](j)
    except FlowFailed as failed:
        outcome = failed.outcome
    except RunStopping:  # cut short by the end of the test: not an outcome of the journey
        return "stopped"
    j.state.outcomes[f"{flow}:{outcome}"] += 1
    return outcome
