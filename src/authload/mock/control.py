"""httpx client for the mock's test-only API (/_mock/*): what a phone or ESIA would show."""

from __future__ import annotations

from typing import Any

import httpx


class MockControl:
    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(base_url=base_url, timeout=10.0)

    def _get(self, path: str, **params: Any) -> Any:
        response = self._client.get(path, params={k: v for k, v in params.items() if v is not None})
        response.raise_for_status()
        return response.json()

    def inbox(self, phone: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/_mock/inbox/{phone}")
        return result

    def call_password(self, phone: str) -> str:
        """The password of the last call-reset to ``phone`` (last 4 digits of the caller)."""
        call = self.inbox(phone)["call"]
        if call is None:
            raise LookupError(f"no call-reset password waiting for {phone}")
        return str(call["password"])

    def sms_code(self, phone: str) -> str:
        sms = self.inbox(phone)["sms"]
        if sms is None:
            raise LookupError(f"no SMS code waiting for {phone}")
        return str(sms["code"])

    def esia_authorize(self, state: str, phone: str | None = None) -> str:
        """The authorization code ESIA hands back for ``state`` after sign-in."""
        return str(self._get("/_mock/esia/authorize", state=state, phone=phone)["code"])

    def accounts(self, limit: int = 10, offset: int = 0) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._get("/_mock/accounts", limit=limit, offset=offset)[
            "accounts"
        ]
        return rows

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/_mock/stats")
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/healthz")
        return result

    def behaviour(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/_mock/behaviour")
        return result

    def fault_history(self) -> list[dict[str, Any]]:
        """Every fault window that started or ended, with its time (``GET /_mock/faults``)."""
        history: list[dict[str, Any]] = self._get("/_mock/faults")["history"]
        return history

    def reset(self) -> None:
        self._client.post("/_mock/reset").raise_for_status()

    def set_epoch(self, t: float) -> None:
        """Count the mock's profile fault windows from ``t`` (the load's start)."""
        self._client.post("/_mock/epoch", json={"t": t}).raise_for_status()

    def close(self) -> None:
        self._client.close()
