"""A real mock server process on 127.0.0.1 and clients for it (a pytest plugin: its fixtures
are every test's), and what tests import to start a mock of their own or to call it
(``APP_TOKEN``, ``CLIENT_SECRET``, ``AccountPool``, ``mock_with_profile``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from authload.mock.control import MockControl
from authload.mock.server import EmbeddedMock

APP_TOKEN = "mock-app-token"
CLIENT_SECRET = "mock-client-secret"


FUNCTIONAL_PROFILE = """
# the default rate limits, no added latency, no capacity limit: functional tests run fast
rate_limits:
  calls_per_phone: {limit: 5, window_s: 600}
  sms_per_phone: {limit: 5, window_s: 600}
"""


@pytest.fixture(scope="session")
def functional_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "functional.yaml"
    path.write_text(FUNCTIONAL_PROFILE, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def mock_server(functional_profile: Path) -> Iterator[EmbeddedMock]:
    """One mock process for the session; tests use distinct accounts so they never collide."""
    env = {"AUTHLOAD_MOCK_APP_TOKEN": APP_TOKEN, "AUTHLOAD_MOCK_CLIENT_SECRET": CLIENT_SECRET}
    with EmbeddedMock(env=env, args=("--behaviour", str(functional_profile))) as server:
        yield server


@pytest.fixture
def client(mock_server: EmbeddedMock) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_server.url, timeout=10.0) as c:
        yield c


@pytest.fixture
def control(client: httpx.Client, mock_server: EmbeddedMock) -> MockControl:
    return MockControl(mock_server.url, client)


class AccountPool:
    """Hands each test fresh accounts so tests sharing one mock never collide."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, control: MockControl, n: int = 1) -> list[dict[str, object]]:
        rows = control.accounts(limit=n, offset=self._next)
        self._next += n
        return rows


_POOL = AccountPool()


@pytest.fixture
def accounts(control: MockControl) -> AccountPool:
    return _POOL


@pytest.fixture
def account(control: MockControl) -> dict[str, object]:
    return _POOL.take(control)[0]


@contextmanager
def mock_with_profile(tmp_path: Path, profile: str, *args: str) -> Iterator[EmbeddedMock]:
    """A mock of its own, started with the given behaviour profile (YAML text)."""
    path = tmp_path / "profile.yaml"
    path.write_text(profile, encoding="utf-8")
    env = {"AUTHLOAD_MOCK_APP_TOKEN": APP_TOKEN, "AUTHLOAD_MOCK_CLIENT_SECRET": CLIENT_SECRET}
    with EmbeddedMock(env=env, args=("--behaviour", str(path), *args)) as server:
        yield server
