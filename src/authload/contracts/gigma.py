"""Gigma counterparty auth API (beta host https://beta.api.gigma.ru).

Every call carries the application header ``Token``. The service is a Laravel application
(its access tokens are Sanctum tokens), so errors are Laravel's JSON: ``{"message": ...}``,
with ``errors`` per field on validation failures (422).
"""

from __future__ import annotations

from pydantic import Field, StrictBool

from authload.contracts.base import Api, Auth, Contract, Endpoint, ErrorStyle

API = Api(
    name="gigma",
    title="Gigma counterparty auth",
    error_style=ErrorStyle.JSON_MESSAGE,
    app_header="Token",
)

PHONE_PATTERN = r"^7[0-9]{10}$"
# Sanctum: "<token id>|<40 random alphanumerics><crc32b of them, 8 hex>"
ACCESS_TOKEN_PATTERN = r"^[0-9]+\|[A-Za-z0-9]{48}$"
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"

PASSWORD_SENT = "Password successfully send"
LOGGED_OUT = "User successfully logout"
LOGGED_OUT_ALL = "User successfully logout from all devices"


class SendPasswordRequest(Contract):
    phone: str = Field(pattern=PHONE_PATTERN, examples=["79999999990"])


class CounterpartyLoginRequest(Contract):
    phone: str = Field(pattern=PHONE_PATTERN, examples=["79999999990"])
    password: str = Field(pattern=r"^[0-9]{4}$", examples=["1111"])


class LogoutRequest(Contract):
    from_all_devices: StrictBool = False


class Message(Contract):
    message: str


class ValidationErrorBody(Contract):
    message: str
    errors: dict[str, list[str]]


class CounterpartyType(Contract):
    id: int
    name: str
    created_at: str = Field(pattern=TIMESTAMP_PATTERN)


class Manager(Contract):
    id: int
    first_name: str
    last_name: str
    middle_name: str | None
    name: str


class AccessToken(Contract):
    value: str = Field(pattern=ACCESS_TOKEN_PATTERN)


class Counterparty(Contract):
    id: int
    type: CounterpartyType
    manager: Manager | None
    avatar: str | None
    first_name: str
    last_name: str
    middle_name: str | None
    birthday: str | None
    address: str | None
    phone_1: str
    phone_2: str | None
    email: str | None
    created_at: str = Field(pattern=TIMESTAMP_PATTERN)
    updated_at: str = Field(pattern=TIMESTAMP_PATTERN)
    access_token: AccessToken


class CounterpartyLoginResponse(Contract):
    counterparty: Counterparty


_APP_TOKEN_ERRORS = {403: "the application `Token` header is missing or wrong"}

SEND_PASSWORD = Endpoint(
    name="gigma.send_password",
    api=API,
    method="POST",
    path="/counterparty/send_password",
    summary="Place a call-reset; the last 4 digits of the calling number are the password",
    request=SendPasswordRequest,
    response=Message,
    errors={404: "unknown phone", 422: "invalid parameters", **_APP_TOKEN_ERRORS},
)

LOGIN = Endpoint(
    name="gigma.login",
    api=API,
    method="POST",
    path="/counterparty/login",
    summary="Log in with the call-reset password; opens a session for a new device",
    request=CounterpartyLoginRequest,
    response=CounterpartyLoginResponse,
    errors={
        401: "wrong, expired or used password",
        404: "unknown phone",
        422: "invalid parameters",
        **_APP_TOKEN_ERRORS,
    },
)

LOGOUT = Endpoint(
    name="gigma.logout",
    api=API,
    method="POST",
    path="/counterparty/logout",
    summary="End this device's session, or every session of the counterparty",
    request=LogoutRequest,
    response=Message,
    errors={
        401: "missing, unknown or revoked Bearer token",
        422: "invalid parameters",
        **_APP_TOKEN_ERRORS,
    },
    auth=Auth.BEARER,
)

ENDPOINTS = (SEND_PASSWORD, LOGIN, LOGOUT)
