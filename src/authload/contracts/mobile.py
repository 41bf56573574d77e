"""Mobile v2 auth API: ESIA (Gosuslugi OAuth2), LKFL (taxpayer cabinet), SMS login, refresh.

Errors are plain-string bodies with the statuses the seed lists (400, 500, 503).
Token shapes observed on the real service: ``sessionId`` is ``<24 hex>:<uuid4>``,
``refresh_token`` is a uuid4.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from authload.contracts.base import Api, Contract, Endpoint, ErrorStyle

API = Api(name="mobile", title="Mobile v2 auth", error_style=ErrorStyle.PLAIN_TEXT)

UUID4_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
SESSION_ID_PATTERN = rf"^[0-9a-f]{{24}}:{UUID4_PATTERN}$"
REFRESH_TOKEN_PATTERN = rf"^{UUID4_PATTERN}$"
PHONE_PATTERN = r"^\+?7[0-9]{10}$"
INN_PATTERN = r"^[0-9]{12}$"

_SECRET = Field(min_length=1, max_length=256)
_TEXT = Field(min_length=1, max_length=512)


class EsiaUrlResponse(Contract):
    url: str = Field(pattern=r"^https://.*[?&]state=[^&]+")


class EsiaLoginRequest(Contract):
    authorization_code: str = _TEXT
    state: str = _TEXT
    client_secret: str = _SECRET


class LKFLLoginRequest(Contract):
    inn: str = Field(pattern=INN_PATTERN)
    password: str = Field(min_length=1, max_length=128)
    client_secret: str = _SECRET


class PhoneLoginRequest(Contract):
    phone: str = Field(pattern=PHONE_PATTERN)
    captcha: str = _TEXT
    os: Literal["android", "ios"]
    client_secret: str = _SECRET


class PhoneVerifyRequest(Contract):
    phone: str = Field(pattern=PHONE_PATTERN)
    code: str = Field(pattern=r"^[0-9]{4,8}$")
    client_secret: str = _SECRET


class LoginResponse(Contract):
    sessionId: str = Field(pattern=SESSION_ID_PATTERN)
    refresh_token: str = Field(pattern=REFRESH_TOKEN_PATTERN)
    email: str | None = None
    name: str | None = None
    phone: str | None = None
    region: str | None = None
    surname: str | None = None


class RefreshTokensRequest(Contract):
    refresh_token: str = _TEXT
    client_secret: str = _SECRET


class RefreshTokensResponse(Contract):
    sessionId: str = Field(pattern=SESSION_ID_PATTERN)
    refresh_token: str = Field(pattern=REFRESH_TOKEN_PATTERN)


_SERVER_ERRORS = {
    500: "the server could not handle the request",
    503: "the service is temporarily unavailable",
}
_ERRORS = {400: "invalid request parameters", **_SERVER_ERRORS}

ESIA_URL = Endpoint(
    name="mobile.esia_url",
    api=API,
    method="GET",
    path="/v2/mobile/users/esia/auth/url",
    summary="ESIA OAuth2 authorisation URL, carrying a fresh state",
    request=None,
    response=EsiaUrlResponse,
    errors=dict(_SERVER_ERRORS),
)

ESIA_AUTH = Endpoint(
    name="mobile.esia_auth",
    api=API,
    method="POST",
    path="/v2/mobile/users/esia/auth",
    summary="Log in with the authorization code ESIA returned for a state",
    request=EsiaLoginRequest,
    response=LoginResponse,
    errors=dict(_ERRORS),
)

LKFL_AUTH = Endpoint(
    name="mobile.lkfl_auth",
    api=API,
    method="POST",
    path="/v2/mobile/users/lkfl/auth",
    summary="Log in with the taxpayer cabinet's INN and password",
    request=LKFLLoginRequest,
    response=LoginResponse,
    errors=dict(_ERRORS),
)

PHONE_REQUEST = Endpoint(
    name="mobile.phone_request",
    api=API,
    method="POST",
    path="/v2/auth/phone/request",
    summary="Send an SMS with a login code to the phone",
    request=PhoneLoginRequest,
    response=None,
    errors=dict(_ERRORS),
)

PHONE_VERIFY = Endpoint(
    name="mobile.phone_verify",
    api=API,
    method="POST",
    path="/v2/auth/phone/verify",
    summary="Log in with the code from the SMS",
    request=PhoneVerifyRequest,
    response=LoginResponse,
    errors=dict(_ERRORS),
)

REFRESH = Endpoint(
    name="mobile.refresh",
    api=API,
    method="POST",
    path="/v2/mobile/users/refresh",
    summary="Exchange a refresh token for a new pair; the old refresh token stops working",
    request=RefreshTokensRequest,
    response=RefreshTokensResponse,
    errors=dict(_ERRORS),
)

ENDPOINTS = (ESIA_URL, ESIA_AUTH, LKFL_AUTH, PHONE_REQUEST, PHONE_VERIFY, REFRESH)
