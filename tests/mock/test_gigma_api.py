"""Gigma counterparty API on a real mock: success paths and every documented error."""

from __future__ import annotations

import random
import re
import string
import zlib
from collections import Counter

import httpx

from authload.contracts import gigma
from authload.mock.control import MockControl
from authload.mock.core import Mock
from authload.mock.settings import MockSettings
from tests.helpers.mock_server import APP_TOKEN

H = {"Token": APP_TOKEN}


def _login(client: httpx.Client, phone: str, password: str = "1111") -> httpx.Response:
    return client.post(
        "/counterparty/login", json={"phone": phone, "password": password}, headers=H
    )


def _logout(client: httpx.Client, token: str, all_devices: bool = False) -> httpx.Response:
    return client.post(
        "/counterparty/logout",
        json={"from_all_devices": all_devices},
        headers={**H, "Authorization": f"Bearer {token}"},
    )


def test_send_password_places_a_call_whose_last_four_digits_are_the_password(
    client: httpx.Client, control: MockControl, account: dict[str, str]
) -> None:
    r = client.post("/counterparty/send_password", json={"phone": account["phone"]}, headers=H)
    assert r.status_code == 200
    assert r.json() == {"message": "Password successfully send"}
    call = control.inbox(account["phone"])["call"]
    assert re.fullmatch(r"7[0-9]{10}", call["from"])
    assert call["password"] == call["from"][-4:]
    assert 299 < call["expires_in_s"] <= 300


def test_login_returns_the_full_counterparty_and_a_sanctum_token(
    client: httpx.Client, control: MockControl, account: dict[str, str]
) -> None:
    client.post("/counterparty/send_password", json={"phone": account["phone"]}, headers=H)
    r = _login(client, account["phone"], control.call_password(account["phone"]))
    assert r.status_code == 200
    body = gigma.CounterpartyLoginResponse.model_validate_json(r.content)
    cp = body.counterparty
    assert cp.phone_1 == account["phone"]
    assert cp.id == account["id"]
    assert re.fullmatch(r"[0-9]+\|[A-Za-z0-9]{48}", cp.access_token.value)
    assert set(r.json()["counterparty"]) >= {
        "id",
        "type",
        "manager",
        "avatar",
        "first_name",
        "last_name",
        "middle_name",
        "birthday",
        "address",
        "phone_1",
        "phone_2",
        "email",
        "created_at",
        "updated_at",
        "access_token",
    }


def test_sanctum_secrets_are_alphanumerics_drawn_alike_and_their_crc32() -> None:
    mock = Mock(MockSettings(population=1), rng=random.Random(5))
    secrets = [mock.sanctum_secret() for _ in range(5000)]
    for secret in secrets:
        chars, crc = secret[:40], secret[40:]
        assert re.fullmatch(r"[A-Za-z0-9]{40}", chars), secret
        assert crc == f"{zlib.crc32(chars.encode()):08x}", secret
    drawn = Counter(c for secret in secrets for c in secret[:40])
    assert set(drawn) == set(string.ascii_letters + string.digits)
    expected = 5000 * 40 / 62  # each character equally likely: 3226 each
    assert all(abs(n - expected) < 5 * expected**0.5 for n in drawn.values()), drawn
    assert len(set(secrets)) == len(secrets)


def test_password_is_single_use(
    client: httpx.Client, control: MockControl, account: dict[str, str]
) -> None:
    client.post("/counterparty/send_password", json={"phone": account["phone"]}, headers=H)
    password = control.call_password(account["phone"])
    assert _login(client, account["phone"], password).status_code == 200
    again = _login(client, account["phone"], password)
    if password != "1111":
        assert again.status_code == 401
        assert "expired or not requested" in again.json()["message"]


def test_test_password_1111_is_always_accepted(
    client: httpx.Client, account: dict[str, str]
) -> None:
    assert _login(client, account["phone"]).status_code == 200
    assert _login(client, account["phone"]).status_code == 200


def test_wrong_password_is_refused_and_the_fifth_wrong_try_voids_it(
    client: httpx.Client, control: MockControl, account: dict[str, str]
) -> None:
    phone = account["phone"]
    client.post("/counterparty/send_password", json={"phone": phone}, headers=H)
    password = control.call_password(phone)
    wrong = "0000" if password != "0000" else "0001"
    for attempt in range(1, 6):
        r = _login(client, phone, wrong)
        assert r.status_code == 401
        assert ("Too many attempts" in r.json()["message"]) == (attempt == 5)
    assert control.inbox(phone)["call"] is None
    assert _login(client, phone, password).status_code == 401


def test_unknown_phone_gets_404(client: httpx.Client) -> None:
    r = client.post("/counterparty/send_password", json={"phone": "79999999990"}, headers=H)
    assert r.status_code == 404
    assert r.json() == {"message": "Counterparty not found."}
    assert _login(client, "79999999990").status_code == 404


def test_missing_or_wrong_app_token_is_refused(
    client: httpx.Client, account: dict[str, str]
) -> None:
    for headers in ({}, {"Token": "wrong"}):
        r = client.post(
            "/counterparty/login",
            json={"phone": account["phone"], "password": "1111"},
            headers=headers,
        )
        assert r.status_code == 403
        assert r.json() == {"message": "Invalid application token."}


def test_validation_errors_are_laravel_422_naming_each_field(client: httpx.Client) -> None:
    r = client.post("/counterparty/login", json={"phone": "12345"}, headers=H)
    assert r.status_code == 422
    body = r.json()
    assert set(body["errors"]) == {"phone", "password"}
    assert body["errors"]["password"] == ["The password field is required."]
    assert body["message"].startswith("The phone field is invalid")


def test_logout_this_device_leaves_the_other_devices_logged_in(
    client: httpx.Client, account: dict[str, str]
) -> None:
    a, b = (
        _login(client, account["phone"]).json()["counterparty"]["access_token"]["value"]
        for _ in range(2)
    )
    r = _logout(client, a)
    assert r.status_code == 200
    assert r.json() == {"message": "User successfully logout"}
    assert _logout(client, a).status_code == 401
    assert _logout(client, b).status_code == 200


def test_logout_requires_a_live_bearer_token(client: httpx.Client) -> None:
    r = client.post("/counterparty/logout", json={"from_all_devices": False}, headers=H)
    assert r.status_code == 401
    assert r.json() == {"message": "Unauthenticated."}
    assert _logout(client, "1|" + "a" * 48).status_code == 401


def test_logout_with_a_non_boolean_flag_is_422(
    client: httpx.Client, account: dict[str, str]
) -> None:
    token = _login(client, account["phone"]).json()["counterparty"]["access_token"]["value"]
    r = client.post(
        "/counterparty/logout",
        json={"from_all_devices": "yes"},
        headers={**H, "Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 422
    assert "from_all_devices" in r.json()["errors"]


def test_token_ids_increase(client: httpx.Client, account: dict[str, str]) -> None:
    ids = [
        int(
            _login(client, account["phone"])
            .json()["counterparty"]["access_token"]["value"]
            .split("|")[0]
        )
        for _ in range(3)
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    assert client.post("/counterparty/nope", headers=H).status_code == 404
    r = client.get("/counterparty/login", headers=H)
    assert r.status_code == 405
    assert "POST" in r.json()["message"]
