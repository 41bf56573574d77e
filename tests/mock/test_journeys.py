"""Whole user journeys across calls, as the load flows will drive them."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from authload.mock.control import MockControl
from tests.helpers.mock_server import APP_TOKEN, CLIENT_SECRET

H = {"Token": APP_TOKEN}
S = CLIENT_SECRET


def test_call_reset_login_on_two_devices_then_logout_everywhere(
    client: httpx.Client, control: MockControl, account: dict[str, Any]
) -> None:
    phone = account["phone"]
    tokens = []
    for _ in range(2):  # each device asks for its own call
        assert (
            client.post("/counterparty/send_password", json={"phone": phone}, headers=H).status_code
            == 200
        )
        r = client.post(
            "/counterparty/login",
            json={"phone": phone, "password": control.call_password(phone)},
            headers=H,
        )
        assert r.status_code == 200
        tokens.append(r.json()["counterparty"]["access_token"]["value"])
    assert tokens[0] != tokens[1]
    r = client.post(
        "/counterparty/logout",
        json={"from_all_devices": True},
        headers={**H, "Authorization": f"Bearer {tokens[0]}"},
    )
    assert r.json() == {"message": "User successfully logout from all devices"}
    for token in tokens:
        r = client.post(
            "/counterparty/logout",
            json={"from_all_devices": False},
            headers={**H, "Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 401


def test_sms_verify_refresh_then_old_refresh_refused(
    client: httpx.Client, control: MockControl, account: dict[str, Any]
) -> None:
    phone = account["phone"]
    client.post(
        "/v2/auth/phone/request",
        json={"phone": phone, "captcha": "c", "os": "android", "client_secret": S},
    )
    login = client.post(
        "/v2/auth/phone/verify",
        json={"phone": phone, "code": control.sms_code(phone), "client_secret": S},
    ).json()
    refreshed = client.post(
        "/v2/mobile/users/refresh",
        json={"refresh_token": login["refresh_token"], "client_secret": S},
    )
    assert refreshed.status_code == 200
    again = client.post(
        "/v2/mobile/users/refresh",
        json={"refresh_token": login["refresh_token"], "client_secret": S},
    )
    assert again.status_code == 400
    assert again.text == "Refresh token already used."


def test_esia_round_trip_and_replayed_code_refused(
    client: httpx.Client, control: MockControl
) -> None:
    url = client.get("/v2/mobile/users/esia/auth/url").json()["url"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    code = control.esia_authorize(state)
    body = {"authorization_code": code, "state": state, "client_secret": S}
    assert client.post("/v2/mobile/users/esia/auth", json=body).status_code == 200
    replay = client.post("/v2/mobile/users/esia/auth", json=body)
    assert replay.status_code == 400
    assert "Invalid authorization_code or state" in replay.text


def test_lkfl_right_and_wrong_password(client: httpx.Client, account: dict[str, Any]) -> None:
    right = {"inn": account["inn"], "password": account["lkfl_password"], "client_secret": S}
    assert client.post("/v2/mobile/users/lkfl/auth", json=right).status_code == 200
    wrong = {**right, "password": account["lkfl_password"] + "x"}
    assert client.post("/v2/mobile/users/lkfl/auth", json=wrong).status_code == 400


def test_stats_count_requests_by_endpoint_and_status(
    client: httpx.Client, control: MockControl, account: dict[str, Any]
) -> None:
    before = control.stats()["requests"]
    for password in ("1111", "1111", "12"):
        client.post(
            "/counterparty/login", json={"phone": account["phone"], "password": password}, headers=H
        )
    after = control.stats()["requests"]["gigma.login"]
    was = before.get("gigma.login", {})
    assert after.get("200", 0) - was.get("200", 0) == 2
    assert after.get("422", 0) - was.get("422", 0) == 1
