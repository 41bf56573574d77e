"""Mobile v2 API on a real mock: success paths and every documented error (plain text)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authload.contracts import mobile
from authload.mock.control import MockControl
from tests.helpers.mock_server import CLIENT_SECRET

S = CLIENT_SECRET
SESSION_ID = re.compile(
    r"[0-9a-f]{24}:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


def _text_error(r: httpx.Response, status: int, fragment: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert fragment in r.text


def _state(client: httpx.Client) -> str:
    r = client.get("/v2/mobile/users/esia/auth/url")
    assert r.status_code == 200
    url = mobile.EsiaUrlResponse.model_validate_json(r.content).url
    return parse_qs(urlsplit(url).query)["state"][0]


def _lkfl(client: httpx.Client, account: dict[str, Any]) -> httpx.Response:
    return client.post(
        "/v2/mobile/users/lkfl/auth",
        json={"inn": account["inn"], "password": account["lkfl_password"], "client_secret": S},
    )


def test_esia_url_carries_a_fresh_state_each_time(client: httpx.Client) -> None:
    r = client.get("/v2/mobile/users/esia/auth/url")
    assert r.json()["url"].startswith("https://esia.gosuslugi.ru/aas/oauth2/ac?")
    assert _state(client) != _state(client)


def test_esia_login_with_the_code_for_its_state(
    client: httpx.Client, control: MockControl, account: dict[str, Any]
) -> None:
    state = _state(client)
    code = control.esia_authorize(state, phone=account["phone"])
    r = client.post(
        "/v2/mobile/users/esia/auth",
        json={"authorization_code": code, "state": state, "client_secret": S},
    )
    assert r.status_code == 200
    body = mobile.LoginResponse.model_validate_json(r.content)
    assert SESSION_ID.fullmatch(body.sessionId)
    assert body.phone == account["phone"]


def test_esia_code_only_with_its_own_state(client: httpx.Client, control: MockControl) -> None:
    state_a, state_b = _state(client), _state(client)
    code_a = control.esia_authorize(state_a)
    r = client.post(
        "/v2/mobile/users/esia/auth",
        json={"authorization_code": code_a, "state": state_b, "client_secret": S},
    )
    _text_error(r, 400, "Invalid authorization_code or state")


def test_esia_authorize_needs_a_known_state(client: httpx.Client) -> None:
    assert client.get("/_mock/esia/authorize", params={"state": "nope"}).status_code == 404
    assert client.get("/_mock/esia/authorize").status_code == 400


def test_lkfl_right_password_logs_in(client: httpx.Client, account: dict[str, Any]) -> None:
    r = _lkfl(client, account)
    assert r.status_code == 200
    body = mobile.LoginResponse.model_validate_json(r.content)
    assert body.phone == account["phone"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"password": "wrong-password"}, "Invalid INN or password"),
        ({"inn": "770000000000"}, "Invalid INN: check digits"),
        ({"client_secret": "wrong"}, "Invalid client_secret"),
        ({"inn": "12345"}, "inn"),
    ],
)
def test_lkfl_errors(
    client: httpx.Client, account: dict[str, Any], change: dict[str, str], fragment: str
) -> None:
    body = {
        "inn": account["inn"],
        "password": account["lkfl_password"],
        "client_secret": S,
        **change,
    }
    _text_error(client.post("/v2/mobile/users/lkfl/auth", json=body), 400, fragment)


def test_lkfl_unknown_inn_with_valid_check_digits(client: httpx.Client) -> None:
    from authload.mock.population import inn_check_digits

    inn = "5000000000" + inn_check_digits("5000000000")
    r = client.post(
        "/v2/mobile/users/lkfl/auth", json={"inn": inn, "password": "x", "client_secret": S}
    )
    _text_error(r, 400, "Invalid INN or password")


def _request_sms(client: httpx.Client, phone: str) -> httpx.Response:
    return client.post(
        "/v2/auth/phone/request",
        json={"phone": phone, "captcha": "ok", "os": "ios", "client_secret": S},
    )


def _verify(client: httpx.Client, phone: str, code: str) -> httpx.Response:
    return client.post(
        "/v2/auth/phone/verify", json={"phone": phone, "code": code, "client_secret": S}
    )


def test_sms_login(client: httpx.Client, control: MockControl, account: dict[str, Any]) -> None:
    phone = account["phone"]
    assert _request_sms(client, phone).status_code == 200
    sms = control.inbox(phone)["sms"]
    assert sms["code"] in sms["text"]
    r = _verify(client, "+" + phone, sms["code"])
    assert r.status_code == 200
    assert mobile.LoginResponse.model_validate_json(r.content).phone == phone
    _text_error(_verify(client, phone, sms["code"]), 400, "expired or not requested")


def test_sms_code_void_after_five_wrong_tries(
    client: httpx.Client, control: MockControl, account: dict[str, Any]
) -> None:
    phone = account["phone"]
    _request_sms(client, phone)
    code = control.sms_code(phone)
    wrong = "0000" if code != "0000" else "0001"
    for _ in range(4):
        _text_error(_verify(client, phone, wrong), 400, "Invalid code.")
    _text_error(_verify(client, phone, wrong), 400, "Too many attempts")
    _text_error(_verify(client, phone, code), 400, "expired or not requested")


def test_sms_for_unregistered_phone_and_bad_os(client: httpx.Client) -> None:
    _text_error(_request_sms(client, "79999999990"), 400, "not registered")
    r = client.post(
        "/v2/auth/phone/request",
        json={"phone": "79000104730", "captcha": "x", "os": "windows", "client_secret": S},
    )
    _text_error(r, 400, "os")


def test_refresh_rotates_and_refuses_the_old_token(
    client: httpx.Client, control: MockControl, account: dict[str, Any]
) -> None:
    first = _lkfl(client, account).json()
    before = control.stats()["events"].get("refresh_reuse_refused", 0)
    r = client.post(
        "/v2/mobile/users/refresh",
        json={"refresh_token": first["refresh_token"], "client_secret": S},
    )
    assert r.status_code == 200
    second = mobile.RefreshTokensResponse.model_validate_json(r.content)
    assert second.refresh_token != first["refresh_token"]
    assert second.sessionId != first["sessionId"]
    reused = client.post(
        "/v2/mobile/users/refresh",
        json={"refresh_token": first["refresh_token"], "client_secret": S},
    )
    _text_error(reused, 400, "already used")
    assert control.stats()["events"]["refresh_reuse_refused"] == before + 1
    ok = client.post(
        "/v2/mobile/users/refresh", json={"refresh_token": second.refresh_token, "client_secret": S}
    )
    assert ok.status_code == 200


def test_refresh_with_a_token_never_issued(client: httpx.Client) -> None:
    r = client.post(
        "/v2/mobile/users/refresh",
        json={"refresh_token": "6f1c1f5e-2b7a-4c1e-9a43-7d1a5b0f9e11", "client_secret": S},
    )
    _text_error(r, 400, "Invalid or expired refresh token")


def test_mobile_unknown_path_is_plain_text_404(client: httpx.Client) -> None:
    _text_error(client.get("/v2/nope"), 404, "No route")
