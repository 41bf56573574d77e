"""Mobile v2 API handlers: ESIA, LKFL, SMS login and refresh-token rotation."""

from __future__ import annotations

import hmac
import time
from dataclasses import replace
from urllib.parse import urlencode

from authload.contracts import mobile as contract
from authload.mock.core import Mock
from authload.mock.http import ApiError, Reply, Request, json_reply, model_reply, parse_body
from authload.mock.population import inn_is_valid
from authload.mock.rate_limits import rate_limit
from authload.mock.store import CodeCheck, NewSession, Pair, Rotation

API = contract.API.name
ESIA_AUTHORIZE_URL = "https://esia.gosuslugi.ru/aas/oauth2/ac"


def _check_secret(mock: Mock, secret: str) -> None:
    if not hmac.compare_digest(secret.encode(), mock.settings.client_secret.encode()):
        raise ApiError(400, "Invalid client_secret.")


def normalize_phone(phone: str) -> str:
    return phone.removeprefix("+")


async def esia_url(mock: Mock, request: Request) -> Reply:
    state = mock.uuid4()
    await mock.store.put_esia_state(state, mock.settings.esia_state_ttl_s)
    query = urlencode(
        {
            "client_id": "AUTHLOAD_MOCK",
            "response_type": "code",
            "access_type": "online",
            "scope": "openid fullname mobile email",
            "redirect_uri": "app://esia/callback",
            "state": state,
        }
    )
    return model_reply(contract.EsiaUrlResponse(url=f"{ESIA_AUTHORIZE_URL}?{query}"))


async def esia_auth(mock: Mock, request: Request) -> Reply:
    body = parse_body(contract.EsiaLoginRequest, request.body, 400)
    _check_secret(mock, body.client_secret)
    index = await mock.store.take_esia_code(body.authorization_code, body.state)
    if index is None:
        raise ApiError(400, "Invalid authorization_code or state: unknown, expired or used.")
    return await _login(mock, index)


async def lkfl_auth(mock: Mock, request: Request) -> Reply:
    body = parse_body(contract.LKFLLoginRequest, request.body, 400)
    _check_secret(mock, body.client_secret)
    if not inn_is_valid(body.inn):
        raise ApiError(400, "Invalid INN: check digits do not match.")
    index = mock.population.index_of_inn(body.inn)
    if index is None or not hmac.compare_digest(
        body.password.encode(), mock.population.lkfl_password(index).encode()
    ):
        raise ApiError(400, "Invalid INN or password.")
    return await _login(mock, index)


async def phone_request(mock: Mock, request: Request) -> Reply:
    body = parse_body(contract.PhoneLoginRequest, request.body, 400)
    _check_secret(mock, body.client_secret)
    phone = normalize_phone(body.phone)
    if mock.population.index_of_phone(phone) is None:
        raise ApiError(400, "Phone number is not registered.")
    await rate_limit(
        mock,
        f"sms:{phone}",
        mock.behaviour.profile.rate_limits.sms_per_phone,
        "Too many SMS to this phone.",
    )
    code = mock.digits(mock.settings.sms_code_length)
    await mock.store.put_code(
        f"sms:{phone}",
        code,
        f"Код для входа: {code}",
        mock.settings.sms_code_ttl_s,
        mock.settings.max_code_attempts,
    )
    return json_reply({})


async def phone_verify(mock: Mock, request: Request) -> Reply:
    body = parse_body(contract.PhoneVerifyRequest, request.body, 400)
    _check_secret(mock, body.client_secret)
    phone = normalize_phone(body.phone)
    index = mock.population.index_of_phone(phone)
    if index is None:
        raise ApiError(400, "Phone number is not registered.")
    check = await mock.store.check_code(f"sms:{phone}", body.code)
    if check is CodeCheck.MISSING:
        raise ApiError(400, "Code expired or not requested: request a new SMS.")
    if check is CodeCheck.EXHAUSTED:
        raise ApiError(400, "Invalid code. Too many attempts: request a new SMS.")
    if check is CodeCheck.WRONG:
        raise ApiError(400, "Invalid code.")
    return await _login(mock, index)


async def refresh(mock: Mock, request: Request) -> Reply:
    body = parse_body(contract.RefreshTokensRequest, request.body, 400)
    _check_secret(mock, body.client_secret)
    pair = Pair(mock.session_id(), mock.uuid4())
    rules = mock.token_rules
    lag = mock.behaviour.faults.revocation_lag(contract.REFRESH.name, time.time())
    if lag > rules.grace:  # a stale view: a rotated token keeps working for the lag
        rules = replace(rules, grace=lag)
    outcome, _ = await mock.store.rotate_refresh(body.refresh_token, pair, rules)
    if outcome is Rotation.GRACE and rules is not mock.token_rules:
        mock.metrics.child(mock.metrics.stale_accepted, API).inc()
    if outcome in (Rotation.REUSED, Rotation.FAMILY_REVOKED):
        mock.metrics.refresh_reuse.inc()
        if outcome is Rotation.FAMILY_REVOKED:
            mock.metrics.families_revoked.inc()
        raise ApiError(400, "Refresh token already used.")
    if outcome is Rotation.UNKNOWN:
        raise ApiError(400, "Invalid or expired refresh token.")
    mock.metrics.issued(API)
    return model_reply(
        contract.RefreshTokensResponse(sessionId=pair.access, refresh_token=pair.refresh)
    )


async def _login(mock: Mock, index: int) -> Reply:
    access, refresh_token = mock.session_id(), mock.uuid4()
    settings = mock.settings
    evicted = await mock.store.open_session(
        NewSession(
            API, index, access, refresh_token, settings.access_ttl_s, settings.refresh_ttl_s
        ),
        settings.max_sessions_per_account,
    )
    mock.metrics.issued(API, evicted)
    a = mock.population.account(index)
    return model_reply(
        contract.LoginResponse(
            sessionId=access,
            refresh_token=refresh_token,
            email=a.email,
            name=a.first_name,
            phone=a.phone,
            region=a.region,
            surname=a.last_name,
        )
    )
