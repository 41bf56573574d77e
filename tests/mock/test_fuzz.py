"""Fuzzing the mock: every documented endpoint under schemathesis, then hand-picked hostile input.

Part one generates requests from the OpenAPI document the mock serves, both schema-valid
(positive) and schema-violating (negative), and checks each response: never a 5xx, a status
the document lists, a body matching the documented schema, errors in the API's own shape, and
negative data always refused with a 4xx. Valid credentials (the ``Token`` header, a fresh Bearer
token, the client secret) and, for some positive cases, a real account's identity are put in,
so generated data reaches the handlers behind authentication and the success paths too.

Part two sends what a generator rarely produces: malformed and non-UTF-8 JSON, JSON that is
not an object, wrong types, odd Unicode, huge numbers, deep nesting and oversized bodies.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext
from schemathesis import Response as StResponse

from authload.contracts import ENDPOINTS, Endpoint, ErrorStyle
from authload.contracts.openapi import openapi_document
from authload.mock.control import MockControl
from authload.mock.server import EmbeddedMock
from tests.helpers.mock_server import APP_TOKEN, CLIENT_SECRET, AccountPool

# Generated cases per operation in the fuzzing phase; the examples and coverage phases add
# their own deterministic cases on top. Nine operations at this size take a few seconds.
MAX_EXAMPLES = 60

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        "operations": [
            {
                # The mobile API answers every refusal with 400, wrong credentials included
                # (an unknown INN, a used refresh token): for it, a 400 to schema-valid data
                # is an answer, not a rejection. `_valid_data_passes_validation` still checks
                # that such a 400 never comes from the request validator.
                "include-tag": "mobile",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404"]
                    }
                },
            }
        ],
    }
)
SCHEMA = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)

# What the request validator says (authload.mock.http): a 400 that starts like this to
# schema-valid data means the mock's validation disagrees with its own OpenAPI document.
VALIDATION_MESSAGES = ("The ", "Malformed JSON body")
OVERSIZED = 64 * 1024 + 1


def _endpoint(path: str, method: str = "POST") -> Endpoint:
    return next(e for e in ENDPOINTS.values() if e.path == path and e.method == method)


def _coin(case: Case, salt: str, sides: int = 2) -> bool:
    """A fair, reproducible choice derived from the generated body."""
    return zlib.crc32(f"{salt}:{case.body!r}".encode("utf-8", "surrogatepass")) % sides == 0


@dataclass
class Identity:
    """Real accounts of the test population, and fresh credentials for them on demand.

    One account logs in over and over; calls and SMS each go to a fresh account, so the
    mock's per-phone limits on those never turn a fuzzed request into a 429.
    """

    client: httpx.Client
    control: MockControl
    pool: AccountPool
    account: dict[str, object]

    @property
    def phone(self) -> str:
        return str(self.account["phone"])

    def fresh_phone(self) -> str:
        return str(self.pool.take(self.control, 1)[0]["phone"])

    def gigma_token(self) -> str:
        r = self.client.post(
            "/counterparty/login",
            json={"phone": self.phone, "password": "1111"},
            headers={"Token": APP_TOKEN},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["counterparty"]["access_token"]["value"])

    def lkfl(self) -> tuple[str, str]:
        return str(self.account["inn"]), str(self.account["lkfl_password"])

    def refresh_token(self) -> str:
        inn, password = self.lkfl()
        r = self.client.post(
            "/v2/mobile/users/lkfl/auth",
            json={"inn": inn, "password": password, "client_secret": CLIENT_SECRET},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["refresh_token"])

    def esia_code(self) -> tuple[str, str]:
        """(authorization_code, state) as ESIA hands them back after sign-in."""
        r = self.client.get("/v2/mobile/users/esia/auth/url")
        assert r.status_code == 200, r.text
        state = parse_qs(urlsplit(r.json()["url"]).query)["state"][0]
        return self.control.esia_authorize(state, phone=self.phone), state

    def sms_code(self, phone: str) -> str:
        r = self.client.post(
            "/v2/auth/phone/request",
            json={
                "phone": phone,
                "captcha": "fuzz",
                "os": "android",
                "client_secret": CLIENT_SECRET,
            },
        )
        assert r.status_code == 200, r.text
        return self.control.sms_code(phone)


@pytest.fixture
def identity(client: httpx.Client, control: MockControl, accounts: AccountPool) -> Identity:
    return Identity(client, control, accounts, accounts.take(control, 1)[0])


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def _use_real_identity(case: Case, who: Identity) -> None:
    """Swap parts of a schema-valid body for real credentials, so success paths get fuzzed.

    Only positive bodies are touched, and only with values that are schema-valid themselves,
    so the case stays positive; each swap happens for about half of the cases, keeping the
    generated (mostly wrong) values in the rest.
    """
    body = case.body
    meta = case.meta
    if not isinstance(body, dict) or meta is None or meta.generation.mode.is_negative:
        return
    name = _endpoint(case.operation.path, case.operation.method.upper()).name
    if "client_secret" in body and not _coin(case, "secret", 4):
        body["client_secret"] = CLIENT_SECRET
    if name == "gigma.send_password" and _coin(case, "phone"):
        body["phone"] = who.fresh_phone()
    if name == "gigma.login" and _coin(case, "phone"):
        body["phone"] = who.phone
    if name == "gigma.login" and _coin(case, "password"):
        body["password"] = "1111"
    if name == "mobile.lkfl_auth" and _coin(case, "inn"):
        body["inn"], body["password"] = who.lkfl()
    if name == "mobile.refresh" and _coin(case, "refresh"):
        body["refresh_token"] = who.refresh_token()
    if name == "mobile.esia_auth" and _coin(case, "esia"):
        body["authorization_code"], body["state"] = who.esia_code()
    if name == "mobile.phone_request" and _coin(case, "phone"):
        body["phone"] = who.fresh_phone()
    if name == "mobile.phone_verify" and _coin(case, "phone"):
        body["phone"] = who.fresh_phone()
        if _coin(case, "code"):
            body["code"] = who.sms_code(body["phone"])


def _credentials(case: Case, who: Identity) -> dict[str, str]:
    """Valid auth headers, sent as explicit credentials.

    Schemathesis still leaves out a header the case omits on purpose, and its `ignored_auth`
    check re-sends successful requests without and with wrong credentials. A generated
    Authorization that is not Bearer-shaped is kept, so malformed ones reach the server.
    """
    endpoint = _endpoint(case.operation.path, case.operation.method.upper())
    headers = {"Token": APP_TOKEN} if endpoint.api.app_header else {}
    if str((case.headers or {}).get("Authorization", "")).startswith("Bearer "):
        headers["Authorization"] = f"Bearer {who.gigma_token()}"
    return headers


# statuses seen per operation in the fuzzing run, for `test_fuzzing_reached_...` below
REACHED: dict[str, Counter[int]] = defaultdict(Counter)


def _record_status(ctx: CheckContext, response: StResponse, case: Case) -> bool | None:
    if case.method.upper() == case.operation.method.upper():
        REACHED[_endpoint(case.operation.path, case.method.upper()).name][response.status_code] += 1
    return None


def _error_in_api_shape(ctx: CheckContext, response: StResponse, case: Case) -> bool | None:
    """Every 4xx carries a message in its API's shape, documented status or not."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if case.operation.path.startswith("/v2/"):
        assert content_type.startswith("text/plain"), f"mobile error as {content_type!r}"
        assert response.content.decode("utf-8").strip(), "mobile error with an empty body"
        return True
    assert content_type.startswith("application/json"), f"Gigma error as {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict), f"Gigma error body is not an object: {body!r}"
    assert isinstance(body.get("message"), str), f"Gigma error body has no message: {body!r}"
    assert body["message"].strip(), "Gigma error with an empty message"
    if response.status_code == 422:
        errors = body.get("errors")
        assert isinstance(errors, dict), f"422 without per-field errors: {body!r}"
        assert errors, "422 with an empty errors map"
        assert all(
            isinstance(v, list) and v and all(isinstance(m, str) for m in v)
            for v in errors.values()
        ), f"malformed errors map: {errors!r}"
    return True


def _valid_data_passes_validation(
    ctx: CheckContext, response: StResponse, case: Case
) -> bool | None:
    """Schema-valid data must never be refused by the request validator itself."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative or response.status_code not in (400, 422):
        return None
    if case.method.upper() != case.operation.method.upper():
        return None  # a probe with an undocumented method, not data
    text = response.content.decode("utf-8", "replace")
    if case.operation.path.startswith("/counterparty/"):
        text = str(json.loads(text).get("message", ""))
    assert not text.startswith(VALIDATION_MESSAGES), (
        f"schema-valid request refused by validation: {response.status_code} {text!r}"
    )
    return True


@SCHEMA.parametrize()
# `identity` holds one account and an HTTP client for all examples of an operation: sharing
# it between examples is intended.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_endpoint_survives_generated_requests(
    case: Case, mock_server: EmbeddedMock, identity: Identity, session: requests.Session
) -> None:
    _use_real_identity(case, identity)
    case.call_and_validate(
        base_url=mock_server.url,
        session=session,
        headers=_credentials(case, identity),
        additional_checks=[_record_status, _error_in_api_shape, _valid_data_passes_validation],
        timeout=10,
    )


def test_fuzzing_reached_success_and_refusal_paths() -> None:
    """The credentials put in work: every operation answered 200 as well as 4xx."""
    if set(REACHED) != set(ENDPOINTS):
        pytest.skip("the fuzzing run did not complete for every operation")
    for name, statuses in sorted(REACHED.items()):
        assert statuses[200] > 0, f"{name} never succeeded under fuzzing: {dict(statuses)}"
        if ENDPOINTS[name].request is None and ENDPOINTS[name].api.app_header is None:
            continue  # takes no input at all: nothing to refuse
        refused = sum(n for status, n in statuses.items() if 400 <= status < 500)
        assert refused > 0, f"{name} never refused anything under fuzzing: {dict(statuses)}"


def test_fuzzed_document_is_the_one_the_mock_serves(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == openapi_document()


# --- hand-written hostile input ---------------------------------------------------------


@dataclass(frozen=True)
class Target:
    path: str
    auth: bool = False  # needs a Bearer token (Gigma logout)


TARGETS = [
    Target("/counterparty/send_password"),
    Target("/counterparty/login"),
    Target("/counterparty/logout", auth=True),
    Target("/v2/mobile/users/esia/auth"),
    Target("/v2/mobile/users/lkfl/auth"),
    Target("/v2/auth/phone/request"),
    Target("/v2/auth/phone/verify"),
    Target("/v2/mobile/users/refresh"),
]

_FULLWIDTH = {ord(d): 0xFF10 + int(d) for d in "0123456789"}  # "7" -> U+FF17
_PHONE_FIELDS = {"phone": "79000000000", "password": "1111", "inn": "770000000000"}

HOSTILE: dict[str, bytes] = {
    "malformed JSON": b'{"phone": "79',
    "empty body": b"",
    "JSON array": b'["phone", "79000000000"]',
    "JSON string": b'"79000000000"',
    "JSON null": b"null",
    "wrong types": json.dumps(
        {
            "phone": 79000000000,
            "password": 1111,
            "inn": 770000000000,
            "from_all_devices": "yes",
            "refresh_token": ["x"],
            "authorization_code": {"a": 1},
            "state": 1.5,
            "captcha": None,
            "os": 1,
            "code": 1234,
            "client_secret": True,
        }
    ).encode(),
    "missing fields": b'{"unrelated": 1}',
    "lone surrogate escape": b'{"phone": "\\ud800", "password": "\\udfff", "inn": "\\ud800",'
    b' "from_all_devices": "\\ud800", "client_secret": "\\ud800"}',
    "fullwidth digits": json.dumps(
        {k: v.translate(_FULLWIDTH) for k, v in _PHONE_FIELDS.items()}, ensure_ascii=False
    ).encode(),
    "RTL and zero-width marks": json.dumps(
        {k: f"\u200f{v}\u200b" for k, v in _PHONE_FIELDS.items()}, ensure_ascii=False
    ).encode(),
    "NUL characters": json.dumps(
        {
            **{k: f"{v}\u0000" for k, v in _PHONE_FIELDS.items()},
            "client_secret": f"{CLIENT_SECRET}\u0000",
            "refresh_token": "\u0000",
        }
    ).encode(),
    "non-UTF-8 bytes": b'{"phone": "\xff\xfe\xfa", "password": "\xc3\x28"}',
    "UTF-16 JSON": json.dumps({"phone": "79000000000"}).encode("utf-16"),
    "huge integers": json.dumps(
        {
            "phone": 10**30,
            "password": 2**64,
            "inn": -(2**63) - 1,
            "from_all_devices": 2**64 + 1,
            "refresh_token": 10**300,
            "client_secret": 1e308,
        }
    ).encode(),
    "number literals too big to parse": b'{"phone": '
    + b"9" * 5000
    + b', "from_all_devices": 1e999999, "client_secret": -1e999999}',
    "NaN and Infinity": b'{"phone": NaN, "from_all_devices": Infinity, "client_secret": -Infinity}',
    "deeply nested arrays": b"[" * 20_000 + b"]" * 20_000,
    "deeply nested objects": b'{"phone":' * 5_000 + b"1" + b"}" * 5_000,
    "trailing garbage": b'{"phone": "79000000000"} trailing',
}


def _fresh_bearer(client: httpx.Client, control: MockControl, accounts: AccountPool) -> str:
    phone = accounts.take(control, 1)[0]["phone"]
    r = client.post(
        "/counterparty/login",
        json={"phone": phone, "password": "1111"},
        headers={"Token": APP_TOKEN},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["counterparty"]["access_token"]["value"])


@pytest.fixture
def headers_for(
    client: httpx.Client, control: MockControl, accounts: AccountPool
) -> Callable[[Target], dict[str, str]]:
    """Valid headers for a target, so hostile bodies get past authentication."""

    def make(target: Target) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if target.path.startswith("/counterparty/"):
            headers["Token"] = APP_TOKEN
        if target.auth:
            headers["Authorization"] = f"Bearer {_fresh_bearer(client, control, accounts)}"
        return headers

    return make


def _valid_logout_body(body: bytes) -> bool:
    """Logout's only field is optional: any JSON object without it is a valid body."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "from_all_devices" not in data


def assert_refused_in_api_shape(r: httpx.Response, endpoint: Endpoint) -> None:
    """A 4xx, with a non-empty message in the endpoint's API error shape."""
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]!r}"
    content_type = r.headers.get("content-type", "")
    if endpoint.api.error_style is ErrorStyle.PLAIN_TEXT:
        assert content_type.startswith("text/plain"), content_type
        assert r.content.decode("utf-8").strip()
    else:
        assert content_type.startswith("application/json"), content_type
        body = r.json()
        assert isinstance(body, dict), body
        assert isinstance(body.get("message"), str), body
        assert body["message"].strip(), body
        if r.status_code == 422:
            assert isinstance(body.get("errors"), dict), body
            assert body["errors"], body


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.path)
@pytest.mark.parametrize("payload", list(HOSTILE), ids=str)
def test_hostile_body_is_refused_with_a_documented_4xx(
    client: httpx.Client,
    headers_for: Callable[[Target], dict[str, str]],
    target: Target,
    payload: str,
) -> None:
    endpoint = _endpoint(target.path)
    body = HOSTILE[payload]
    if target.auth and _valid_logout_body(body):
        pytest.skip("a valid logout body: its only field is optional")
    r = client.post(target.path, content=body, headers=headers_for(target))
    assert_refused_in_api_shape(r, endpoint)
    documented = sorted(endpoint.errors)
    assert r.status_code in documented, f"{r.status_code}: {r.text[:200]!r}"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.path)
def test_request_without_body_is_answered_as_the_document_says(
    client: httpx.Client, headers_for: Callable[[Target], dict[str, str]], target: Target
) -> None:
    """A required body missing is a documented 4xx; an optional one missing is no error."""
    endpoint = _endpoint(target.path)
    operation = openapi_document()["paths"][target.path]["post"]
    required = operation["requestBody"].get("required", False)
    headers = {k: v for k, v in headers_for(target).items() if k != "Content-Type"}
    r = client.post(target.path, headers=headers)
    if required:
        assert_refused_in_api_shape(r, endpoint)
        documented = sorted(endpoint.errors)
        assert r.status_code in documented, f"{r.status_code}: {r.text[:200]!r}"
    else:
        assert r.status_code == 200, f"{r.status_code}: {r.text[:200]!r}"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.path)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_refused_with_413(
    client: httpx.Client,
    headers_for: Callable[[Target], dict[str, str]],
    target: Target,
    chunked: bool,
) -> None:
    body = json.dumps({"phone": "7" * OVERSIZED, "client_secret": CLIENT_SECRET}).encode()
    assert len(body) > 64 * 1024
    content: bytes | Iterator[bytes] = body
    if chunked:  # no Content-Length: the limit must hold while reading, not only up front
        content = iter([body[i : i + 8192] for i in range(0, len(body), 8192)])
    r = client.post(target.path, content=content, headers=headers_for(target))
    assert r.status_code == 413, r.text[:200]
    assert_refused_in_api_shape(r, _endpoint(target.path))


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/counterparty/login", "GET"),
        ("/counterparty/logout", "PUT"),
        ("/v2/mobile/users/refresh", "DELETE"),
        ("/v2/mobile/users/esia/auth/url", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow_header(
    client: httpx.Client, path: str, method: str
) -> None:
    r = client.request(method, path, headers={"Token": APP_TOKEN})
    assert r.status_code == 405, r.text
    assert_refused_in_api_shape(r, _endpoint(path, "GET" if path.endswith("/url") else "POST"))
    # RFC 9110, 15.5.6: a 405 response MUST carry Allow with the supported methods.
    documented = {e.method for e in ENDPOINTS.values() if e.path == path}
    allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
    assert allow == documented, f"Allow: {r.headers.get('allow')!r}"


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "bearer",
        "Basic bW9jazptb2Nr",
        "Bearer 1|" + "a" * 48,
        "Bearer 0|" + "A" * 48,
        "Bearer " + "9" * 5000 + "|x",
        "Bearer \u0445\u0430\u043a",
    ],
    ids=range(8),
)
def test_bad_bearer_on_logout_is_401(client: httpx.Client, authorization: str) -> None:
    headers = [(b"Token", APP_TOKEN.encode()), (b"Content-Type", b"application/json")]
    if authorization:
        headers.append((b"Authorization", authorization.encode("utf-8")))
    r = client.post("/counterparty/logout", content=b"{}", headers=headers)
    assert r.status_code == 401, r.text
    assert_refused_in_api_shape(r, _endpoint("/counterparty/logout"))


@pytest.mark.parametrize(
    "token",
    [None, "", "MOCK-APP-TOKEN", APP_TOKEN + "-x", APP_TOKEN + "\u0416", f"Bearer {APP_TOKEN}"],
    ids=range(6),
)
@pytest.mark.parametrize("path", ["/counterparty/send_password", "/counterparty/login"])
def test_missing_or_wrong_app_token_is_403(
    client: httpx.Client, path: str, token: str | None
) -> None:
    headers = [(b"Content-Type", b"application/json")]
    if token is not None:
        headers.append((b"Token", token.encode("utf-8")))
    r = client.post(path, content=b'{"phone": "79000000000", "password": "1111"}', headers=headers)
    assert r.status_code == 403, r.text
    assert_refused_in_api_shape(r, _endpoint(path))
