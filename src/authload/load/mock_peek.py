"""The mock as the run's live view sees it: its fault windows (``GET /_mock/faults``) and the
rotated refresh tokens it accepted (``GET /_mock/stats``, ``stale_accepted.mobile``), read at
most once per :data:`FRESH_S` and never for longer than :data:`TIMEOUT_S` (a slow mock must
not slow the UI). The count is the increase since the first read: a mock that outlives runs
counts from this run's start, as ``mock_stats.json`` does (the first read is made before the
test starts)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

STALE_ACCEPTED_MOBILE = "stale_accepted.mobile"  # the mock's event the gate reads at the end
FRESH_S = 2.0
TIMEOUT_S = 1.0


@dataclass
class MockView:
    faults: list[dict[str, Any]] = field(default_factory=list)
    stale_accepted: int | None = None  # rotated refresh tokens accepted since the first read
    error: str | None = None  # why the mock could not be read, if it could not


class MockPeek:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=TIMEOUT_S)
        self._read_at = 0.0
        self._baseline: int | None = None
        self._view = MockView()

    def view(self) -> MockView:
        now = time.monotonic()
        if now - self._read_at >= FRESH_S:
            self._read_at = now
            self._view = self._read()
        return self._view

    def _read(self) -> MockView:
        try:
            faults = self._client.get("/_mock/faults").raise_for_status().json()["faults"]
            events = self._client.get("/_mock/stats").raise_for_status().json()["events"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return MockView(error=f"{self.url}: {exc or type(exc).__name__}")
        accepted = int(events.get(STALE_ACCEPTED_MOBILE, 0))
        if self._baseline is None:
            self._baseline = accepted
        return MockView(faults, accepted - self._baseline)

    def close(self) -> None:
        self._client.close()
