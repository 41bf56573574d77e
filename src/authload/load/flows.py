"""User journeys, as a person does them: the calls, the waits between them, the tokens kept.

A journey ends ``completed`` or with an outcome naming what went wrong; the per-process
``Outcomes`` counter collects them (written to the run's events at the end), and the journey
spool keeps each journey with its start and end (:mod:`authload.load.journal`).

After a logout from all devices every other device's token must be refused. Each is checked
at once and, while it is still accepted (as a lagging cache or replica would let it be),
again every :data:`REVOCATION_POLL_S` up to :data:`REVOCATION_BOUND_S` after the logout:
the time until the first refusal is the token's revocation time.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from authload.contracts import gigma as g
from authload.contracts import mobile as m
from authload.load.accounts import CodeSource, CodeUnavailable
from authload.load.clients import OK, Answer, AuthClient, FlowContext, RunStopping
from authload.load.config import TestAccount
from authload.load.retry import CallError, Throttled
from authload.load.run_limits import LimitRefused
from authload.rundir.records import (
    JOURNEY,
    NEVER_REVOKED,
    REVOCATION,
    REVOKED_AT_ONCE,
    REVOKED_LATE,
    STOPPED,
)
from authload.scenario.distributions import Distribution, sample_ms
from authload.scenario.model import Scenario

if TYPE_CHECKING:
    from authload.load.journal import JourneySpool

REFUSED = frozenset({400})
LOGOUT = frozenset({200, 401})
REUSED_TEXT = "already used"
REVOCATION_POLL_S = 0.1
REVOCATION_BOUND_S = 10.0


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
    """What the journeys of one process share: live sessions (for storms and mass logouts),
    the outcome counters and the journey spool (None: journeys are counted, not kept).
    ``idle_mobile`` keeps the newest sessions the journeys ended, as many as the scenario's
    refresh storms take (the Runtime sizes it): none without one."""

    outcomes: Counter[str] = field(default_factory=Counter)
    idle_mobile: deque[MobileSession] = field(default_factory=lambda: deque(maxlen=0))
    gigma: dict[int, GigmaSession] = field(default_factory=dict)  # in session, by id()
    journal: JourneySpool | None = None
    # journeys ended since the metrics last took them: (flow, seconds), bounded
    durations: deque[tuple[str, float]] = field(default_factory=lambda: deque(maxlen=100_000))

    def record(
        self,
        flow: str,
        outcome: str,
        t_start: float,
        ctx: FlowContext | None = None,
        waited_ms: float | None = None,
        kind: str = JOURNEY,
        t_end: float | None = None,
    ) -> None:
        """Count a journey's outcome (not a revocation's, nor a journey the test's end cut
        short) and keep it, ending at ``t_end`` (default: now)."""
        end = time.time() if t_end is None else t_end
        if kind == JOURNEY and outcome != STOPPED:
            self.outcomes[f"{flow}:{outcome}"] += 1
            self.durations.append((flow, end - t_start))
        if self.journal is not None:
            flow_id = ctx.flow_id if ctx is not None else None
            self.journal.add(
                t_start,
                end,
                flow,
                outcome,
                flow_id=flow_id,
                waited_ms=waited_ms,
                kind=kind,
            )


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
        """The user thinks (or keeps a session); cut short when the test stops."""
        seconds = sample_ms(dist or self.scenario.think_time, self.rng) / 1000.0
        self.client.gate.pause(seconds, self.client.user_stop)

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
            return logout_everywhere(j, tokens)
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


def logout_everywhere(j: Journey, tokens: list[str], expect: frozenset[int] = OK) -> str:
    """Logout from all devices with the first device's token; then every other device's
    token must be refused."""
    sent = time.time()
    j.call("gigma.logout", {"from_all_devices": True}, bearer=tokens[0], expect=expect)
    return verify_revoked(j, tokens[1:], sent)


def verify_revoked(j: Journey, tokens: list[str], revoked_at: float) -> str:
    """Every other device's token must now be refused. Each is checked at once; those still
    accepted are checked again every :data:`REVOCATION_POLL_S` until refused, at most until
    :data:`REVOCATION_BOUND_S` after the logout; each token's revocation time is kept."""
    pending, first, accepted = list(tokens), True, False
    while pending:
        checked = {token: _check_revoked(j, token) for token in pending}
        refused = [token for token, (status, _) in checked.items() if status == 401]
        for token in refused:
            outcome = REVOKED_AT_ONCE if first else REVOKED_LATE
            j.state.record(
                j.ctx.flow, outcome, revoked_at, j.ctx, kind=REVOCATION, t_end=checked[token][1]
            )
        pending = [token for token in pending if token not in refused]
        accepted = accepted or bool(pending)
        first = False
        if pending and time.time() - revoked_at >= REVOCATION_BOUND_S:
            for token in pending:
                j.state.record(
                    j.ctx.flow,
                    NEVER_REVOKED,
                    revoked_at,
                    j.ctx,
                    kind=REVOCATION,
                    t_end=checked[token][1],
                )
            break
        if pending:
            time.sleep(REVOCATION_POLL_S)
    return "revoked_token_accepted" if accepted else "completed"


def _check_revoked(j: Journey, token: str) -> tuple[int, float]:
    """The status of a logout of this device with ``token`` (401: refused), and when sent."""
    sent = time.time()
    return j.call(
        "gigma.logout", {"from_all_devices": False}, bearer=token, expect=LOGOUT
    ).status, sent


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
    """Run one journey; its outcome is counted and kept, never raised. It starts at its
    intended start when it has one (open model), so the time it waited counts."""
    started = time.time()
    t_start = j.ctx.t_intended if j.ctx.t_intended is not None else started
    waited_ms = None  # closed model: no arrival to wait
    if j.ctx.t_intended is not None:
        waited_ms = (started - t_start) * 1000.0 if j.ctx.queued else 0.0
    outcome = run_steps(FLOWS[flow], j)
    j.state.record(flow, outcome, t_start, j.ctx, waited_ms)
    return outcome


def run_steps(steps: Callable[[Journey], str], j: Journey) -> str:
    """The outcome of a journey's steps: theirs, the failure's, or :data:`STOPPED`."""
    try:
        return steps(j)
    except FlowFailed as failed:
        return failed.outcome
    except RunStopping:
        return STOPPED
