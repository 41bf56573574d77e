"""The contracts: endpoint names and paths pinned, OpenAPI generated from them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import authload.contracts as contracts
import authload.errors as errors
from authload.contracts import ENDPOINTS, gigma, mobile
from authload.contracts.openapi import openapi_document

EXPECTED = {
    "gigma.send_password": ("POST", "/counterparty/send_password"),
    "gigma.login": ("POST", "/counterparty/login"),
    "gigma.logout": ("POST", "/counterparty/logout"),
    "mobile.esia_url": ("GET", "/v2/mobile/users/esia/auth/url"),
    "mobile.esia_auth": ("POST", "/v2/mobile/users/esia/auth"),
    "mobile.lkfl_auth": ("POST", "/v2/mobile/users/lkfl/auth"),
    "mobile.phone_request": ("POST", "/v2/auth/phone/request"),
    "mobile.phone_verify": ("POST", "/v2/auth/phone/verify"),
    "mobile.refresh": ("POST", "/v2/mobile/users/refresh"),
}


def test_endpoint_names_methods_and_paths_are_the_seeds() -> None:
    assert {n: (e.method, e.path) for n, e in ENDPOINTS.items()} == EXPECTED


def test_public_api_is_pinned() -> None:
    assert set(contracts.__all__) == {
        "APIS",
        "ENDPOINTS",
        "Api",
        "Auth",
        "Contract",
        "Endpoint",
        "ErrorStyle",
        "gigma",
        "mobile",
    }
    assert set(errors.__all__) == {
        "AuthloadError",
        "ContractError",
        "InputError",
        "MockStartError",
        "ProfileError",
        "ResultsError",
        "ScenarioError",
        "TargetError",
    }


def test_openapi_has_every_endpoint_with_its_errors() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.")
    ops = {
        op["operationId"]: (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    assert {k: v[:2] for k, v in ops.items()} == EXPECTED
    refresh = ops["mobile.refresh"][2]["responses"]
    assert set(refresh) == {"200", "400", "429", "500", "502", "503", "504"}
    assert "text/plain" in refresh["400"]["content"]
    # the seed's own statuses, then what the behaviour model adds (marked as such)
    assert [s for s, r in refresh.items() if r.get("x-authload-behaviour")] == ["429", "502", "504"]
    send = ops["gigma.send_password"][2]["responses"]
    assert set(send) == {"200", "403", "404", "422", "429", "500", "502", "503", "504"}
    assert send["503"]["x-authload-behaviour"] is True
    assert "Message" in send["429"]["content"]["application/json"]["schema"]["$ref"]
    login = ops["gigma.login"][2]
    assert login["security"] == [{"appToken": []}]
    assert ops["gigma.logout"][2]["security"] == [{"appToken": [], "bearer": []}]
    assert (
        "ValidationErrorBody"
        in login["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    )
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_seed_login_example_matches_the_contract() -> None:
    body = {
        "counterparty": {
            "id": 1,
            "type": {"id": 2, "name": "Розница", "created_at": "2024-03-23T10:27:06.000000Z"},
            "manager": {
                "id": 1,
                "first_name": "Артём",
                "last_name": "Полищук",
                "middle_name": "Николаевич",
                "name": "Полищук Артём",
            },
            "avatar": None,
            "first_name": "Алексей",
            "last_name": "Петров",
            "middle_name": "Викторович",
            "birthday": "1980-04-02",
            "address": "630073, ...",
            "phone_1": "79999999990",
            "phone_2": "78888888888",
            "email": "support@itecho.ru",
            "created_at": "2024-03-22T14:01:37.000000Z",
            "updated_at": "2024-03-23T10:48:33.000000Z",
            "access_token": {"value": "2|k8InFzsVIDB3sumslYax1hWJcZDglKptEgIWzxWo21bdb3d6"},
        }
    }
    parsed = gigma.CounterpartyLoginResponse.model_validate(body)
    assert parsed.counterparty.access_token.value.startswith("2|")


@pytest.mark.parametrize("token", ["2|short", "x|" + "a" * 48, "2|" + "a" * 47 + "!"])
def test_malformed_access_token_breaks_the_contract(token: str) -> None:
    with pytest.raises(ValidationError):
        gigma.AccessToken(value=token)


def test_mobile_token_shapes() -> None:
    ok = {
        "sessionId": "0123456789abcdef01234567:6f1c1f5e-2b7a-4c1e-9a43-7d1a5b0f9e11",
        "refresh_token": "6f1c1f5e-2b7a-4c1e-9a43-7d1a5b0f9e11",
    }
    mobile.RefreshTokensResponse.model_validate(ok)
    with pytest.raises(ValidationError):
        mobile.RefreshTokensResponse.model_validate({**ok, "sessionId": "abc"})
    with pytest.raises(ValidationError):
        mobile.LoginResponse.model_validate({"sessionId": ok["sessionId"]})
