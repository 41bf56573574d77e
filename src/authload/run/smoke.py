"""Drive every endpoint of both APIs once through a real HTTP client, checking each reply
against its contract. The quickest proof that a target speaks the APIs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ValidationError

from authload.contracts import ENDPOINTS, Contract
from authload.contracts import gigma as g
from authload.contracts import mobile as m
from authload.mock.control import MockControl


@dataclass(frozen=True)
class Step:
    endpoint: str
    status: int
    latency_ms: float
    problem: str | None  # None when the reply matched the contract

    @property
    def ok(self) -> bool:
        return self.problem is None


class Caller:
    """Calls contract endpoints by name and checks each 200 against the contract."""

    def __init__(self, client: httpx.Client, app_token: str) -> None:
        self.client = client
        self.app_token = app_token
        self.steps: list[Step] = []

    def call(
        self, name: str, body: dict[str, Any] | None = None, bearer: str | None = None
    ) -> Contract | None:
        endpoint = ENDPOINTS[name]
        headers = {"Token": self.app_token} if endpoint.api.app_header else {}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        started = time.perf_counter()
        response = self.client.request(endpoint.method, endpoint.path, json=body, headers=headers)
        latency_ms = (time.perf_counter() - started) * 1000
        parsed, problem = None, None
        if response.status_code != 200:
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
        else:
            try:
                parsed = endpoint.parse_response(response.content)
            except ValidationError as exc:
                problem = f"contract: {exc.errors()[0]['msg']}"
        self.steps.append(Step(name, response.status_code, latency_ms, problem))
        if problem is not None:
            raise SmokeFailed(name, problem)
        return parsed


class SmokeFailed(Exception):
    pass


def run_smoke(base_url: str, app_token: str, client_secret: str) -> list[Step]:
    """Every endpoint once, in journey order; stops at the first failure."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        control = MockControl(base_url, client)
        caller = Caller(client, app_token)
        account = control.accounts(limit=1)[0]
        phone, secret = account["phone"], client_secret
        try:
            caller.call("gigma.send_password", {"phone": phone})
            login = caller.call(
                "gigma.login", {"phone": phone, "password": control.call_password(phone)}
            )
            assert isinstance(login, g.CounterpartyLoginResponse)
            caller.call(
                "gigma.logout",
                {"from_all_devices": True},
                bearer=login.counterparty.access_token.value,
            )
            url = caller.call("mobile.esia_url")
            assert isinstance(url, m.EsiaUrlResponse)
            state = parse_qs(urlsplit(url.url).query)["state"][0]
            code = control.esia_authorize(state, phone=phone)
            caller.call(
                "mobile.esia_auth",
                {"authorization_code": code, "state": state, "client_secret": secret},
            )
            caller.call(
                "mobile.lkfl_auth",
                {
                    "inn": account["inn"],
                    "password": account["lkfl_password"],
                    "client_secret": secret,
                },
            )
            caller.call(
                "mobile.phone_request",
                {"phone": phone, "captcha": "smoke", "os": "android", "client_secret": secret},
            )
            verified = caller.call(
                "mobile.phone_verify",
                {"phone": phone, "code": control.sms_code(phone), "client_secret": secret},
            )
            assert isinstance(verified, m.LoginResponse)
            caller.call(
                "mobile.refresh", {"refresh_token": verified.refresh_token, "client_secret": secret}
            )
        except SmokeFailed:
            pass
        return caller.steps
