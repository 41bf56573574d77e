"""Test accounts and where the codes a real phone or ESIA would show come from.

On the mock: its inbox and ESIA sign-in under /_mock/ (read with a plain HTTP client, so these
reads are not load and never appear in Locust's statistics or the records). On any other
target: the test accounts configured for it (Gigma's test password, fixed SMS codes of test
phones); nothing is ever guessed.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL

from authload.load.config import TestAccount


class CodeSource(Protocol):
    def call_password(self, account: TestAccount) -> str: ...
    def sms_code(self, account: TestAccount) -> str: ...
    def esia_code(self, state: str, account: TestAccount) -> str: ...


class CodeUnavailable(Exception):
    """The code did not arrive (or the target cannot provide it)."""


class MockInbox:
    """Reads the mock's /_mock/ control: the phone's inbox and the ESIA sign-in."""

    def __init__(self, base_url: str, concurrency: int = 64) -> None:
        self._client = HTTPClient.from_url(
            URL(base_url), concurrency=concurrency, connection_timeout=10, network_timeout=10
        )

    def _get(self, path: str) -> Any:
        response = self._client.get(path)
        body = response.read()
        if response.status_code != 200:
            raise CodeUnavailable(f"GET {path}: {response.status_code} {body[:200]!r}")
        return json.loads(body)

    def call_password(self, account: TestAccount) -> str:
        call = self._get(f"/_mock/inbox/{quote(account.phone)}")["call"]
        if call is None:
            raise CodeUnavailable(f"no call-reset reached {account.phone}")
        return str(call["password"])

    def sms_code(self, account: TestAccount) -> str:
        sms = self._get(f"/_mock/inbox/{quote(account.phone)}")["sms"]
        if sms is None:
            raise CodeUnavailable(f"no SMS reached {account.phone}")
        return str(sms["code"])

    def esia_code(self, state: str, account: TestAccount) -> str:
        query = urlencode({"state": state, "phone": account.phone})
        return str(self._get(f"/_mock/esia/authorize?{query}")["code"])

    def accounts(self, count: int, offset: int) -> list[TestAccount]:
        rows: list[TestAccount] = []
        while len(rows) < count:
            limit = min(10_000, count - len(rows))
            page = self._get(f"/_mock/accounts?limit={limit}&offset={offset + len(rows)}")
            if not page["accounts"]:
                break
            rows.extend(
                TestAccount(
                    phone=a["phone"],
                    inn=a["inn"],
                    lkfl_password=a["lkfl_password"],
                    devices=a["devices"],
                )
                for a in page["accounts"]
            )
        return rows


class ConfiguredCodes:
    """Codes of a target's configured test accounts."""

    def call_password(self, account: TestAccount) -> str:
        if account.call_password is None:
            raise CodeUnavailable(f"no call_password configured for {account.phone}")
        return account.call_password

    def sms_code(self, account: TestAccount) -> str:
        if account.sms_code is None:
            raise CodeUnavailable(f"no sms_code configured for {account.phone}")
        return account.sms_code

    def esia_code(self, state: str, account: TestAccount) -> str:
        raise CodeUnavailable("ESIA sign-in needs a person at a browser: only the mock has it")
