"""Gigma counterparty API handlers: call-reset password, login, logout."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from functools import lru_cache

from authload.contracts import gigma as contract
from authload.mock.core import Mock
from authload.mock.http import ApiError, Reply, Request, model_reply, parse_body
from authload.mock.population import Account, Population
from authload.mock.rate_limits import rate_limit
from authload.mock.store import CodeCheck, NewSession

API = contract.API.name


def _check_app_token(mock: Mock, request: Request) -> None:
    if request.headers.get("token") != mock.settings.app_token:
        raise ApiError(403, "Invalid application token.")


def _account_index(mock: Mock, phone: str) -> int:
    index = mock.population.index_of_phone(phone)
    if index is None:
        raise ApiError(404, "Counterparty not found.")
    return index


async def send_password(mock: Mock, request: Request) -> Reply:
    _check_app_token(mock, request)
    body = parse_body(contract.SendPasswordRequest, request.body, 422)
    _account_index(mock, body.phone)
    await rate_limit(
        mock,
        f"calls:{body.phone}",
        mock.behaviour.profile.rate_limits.calls_per_phone,
        "Too many calls to this phone.",
    )
    caller = "7" + mock.digits(10)
    await mock.store.put_code(
        f"call:{body.phone}",
        caller[-4:],
        caller,
        mock.settings.password_ttl_s,
        mock.settings.max_code_attempts,
    )
    return model_reply(contract.Message(message=contract.PASSWORD_SENT))


async def login(mock: Mock, request: Request) -> Reply:
    _check_app_token(mock, request)
    body = parse_body(contract.CounterpartyLoginRequest, request.body, 422)
    index = _account_index(mock, body.phone)
    if not (mock.settings.test_password and body.password == mock.settings.test_password):
        check = await mock.store.check_code(f"call:{body.phone}", body.password)
        if check is CodeCheck.MISSING:
            raise ApiError(401, "Password expired or not requested: request a new call.")
        if check is CodeCheck.EXHAUSTED:
            raise ApiError(401, "Invalid password. Too many attempts: request a new call.")
        if check is CodeCheck.WRONG:
            raise ApiError(401, "Invalid password.")
    token = f"{await mock.store.next_id('gigma_token')}|{mock.sanctum_secret()}"
    evicted = await mock.store.open_session(
        NewSession(API, index, token, None, mock.settings.gigma_token_ttl_s),
        mock.settings.max_sessions_per_account,
    )
    mock.metrics.issued(API, evicted)
    before, after = _login_answers(mock.population)(index)
    return Reply(200, b"".join((before, token.encode(), after)))


async def logout(mock: Mock, request: Request) -> Reply:
    _check_app_token(mock, request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    index = await mock.store.session_account(API, token) if token else None
    if index is None:
        if token and mock.stale.accepts(API, token):  # revoked, but the stale view lags
            mock.metrics.child(mock.metrics.stale_accepted, API).inc()
            return model_reply(contract.Message(message=contract.LOGGED_OUT))
        raise ApiError(401, "Unauthenticated.")
    body = parse_body(contract.LogoutRequest, request.body or b"{}", 422)
    lag = mock.behaviour.faults.revocation_lag(contract.LOGOUT.name, time.time())
    if body.from_all_devices:
        revoked = await mock.store.account_tokens(API, index) if lag else []
        ended = await mock.store.close_all_sessions(API, index)
        message = contract.LOGGED_OUT_ALL
    else:
        revoked = [token]
        ended = int(await mock.store.close_session(API, token))
        message = contract.LOGGED_OUT
    if lag:
        mock.stale.remember(API, revoked, lag)
    mock.metrics.child(mock.metrics.tokens_revoked, API).inc(ended)
    return model_reply(contract.Message(message=message))


# A valid Sanctum token that cannot occur in an account's fields: the answer is encoded once
# per account with it, and split around it.
_TOKEN_SLOT = "0|" + "Tk" * 24
_ANSWERS: weakref.WeakKeyDictionary[Population, Callable[[int], tuple[bytes, bytes]]] = (
    weakref.WeakKeyDictionary()
)
_LAST_ANSWERS: list[tuple[weakref.ref[Population], Callable[[int], tuple[bytes, bytes]]] | None] = [
    None
]  # the last one asked for


def _login_answers(population: Population) -> Callable[[int], tuple[bytes, bytes]]:
    """Account index -> its login answer, encoded, before and after the token's value.

    An account's fields never change, so its answer is built and checked against the
    contract (``CounterpartyLoginResponse``) once, and each login only puts its token in:
    the same bytes as encoding the whole answer every time (the token's characters need no
    escaping in JSON), at a fraction of the cost. As many accounts as the population keeps
    built (``Population.account``).
    """
    last = _LAST_ANSWERS[0]
    if last is not None and last[0]() is population:  # the usual case: one mock per process
        return last[1]
    found = _ANSWERS.get(population)
    if found is None:

        def encode(index: int) -> tuple[bytes, bytes]:
            answer = contract.CounterpartyLoginResponse(
                counterparty=_counterparty(population.account(index), _TOKEN_SLOT)
            )
            before, slot, after = answer.model_dump_json().encode().partition(_TOKEN_SLOT.encode())
            if not slot or _TOKEN_SLOT.encode() in after:
                raise RuntimeError(f"account {index}: no single token slot in the login answer")
            return before, after

        found = _ANSWERS[population] = lru_cache(maxsize=65_536)(encode)
    _LAST_ANSWERS[0] = (weakref.ref(population), found)
    return found


def _counterparty(a: Account, token: str) -> contract.Counterparty:
    manager = a.manager
    return contract.Counterparty(
        id=a.id,
        type=contract.CounterpartyType(
            id=a.type_id, name=a.type_name, created_at="2024-03-23T10:27:06.000000Z"
        ),
        manager=contract.Manager(
            id=manager.id,
            first_name=manager.first_name,
            last_name=manager.last_name,
            middle_name=manager.middle_name,
            name=f"{manager.last_name} {manager.first_name}",
        ),
        avatar=None,
        first_name=a.first_name,
        last_name=a.last_name,
        middle_name=a.middle_name,
        birthday=a.birthday,
        address=a.address,
        phone_1=a.phone,
        phone_2=a.phone_2,
        email=a.email,
        created_at=a.created_at,
        updated_at=a.updated_at,
        access_token=contract.AccessToken(value=token),
    )
