"""Two mock processes sharing one real redis-server: journeys alternate between them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authload.mock.server import EmbeddedMock
from tests.helpers.mock_server import APP_TOKEN, CLIENT_SECRET

pytestmark = pytest.mark.integration

H = {"Token": APP_TOKEN}
S = CLIENT_SECRET
ESIA_URL = "/v2/mobile/users/esia/auth/url"


@pytest.fixture(scope="module")
def pair(
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Clients of processes A and B on the same store, with no added latency."""
    profile = tmp_path_factory.mktemp("redis-mock") / "no-latency.yaml"
    profile.write_text("{}\n", encoding="utf-8")
    env = {"AUTHLOAD_MOCK_APP_TOKEN": APP_TOKEN, "AUTHLOAD_MOCK_CLIENT_SECRET": S}
    args = ("--store", redis_url, "--behaviour", str(profile))
    with (
        EmbeddedMock(env=env, args=args) as a,
        EmbeddedMock(env=env, args=args) as b,
        httpx.Client(base_url=a.url, timeout=10.0) as ca,
        httpx.Client(base_url=b.url, timeout=10.0) as cb,
    ):
        ca.post("/_mock/reset").raise_for_status()
        yield ca, cb


def _account(client: httpx.Client, offset: int) -> dict[str, Any]:
    row: dict[str, Any] = client.get("/_mock/accounts", params={"offset": offset}).json()[
        "accounts"
    ][0]
    return row


def _inbox(client: httpx.Client, phone: str) -> dict[str, Any]:
    r = client.get(f"/_mock/inbox/{phone}")
    r.raise_for_status()
    inbox: dict[str, Any] = r.json()
    return inbox


def test_call_reset_on_two_devices_then_logout_everywhere(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = pair
    phone = _account(a, 0)["phone"]
    tokens = []
    for device in (a, b):
        assert a.post("/counterparty/send_password", json={"phone": phone}, headers=H).is_success
        password = _inbox(b, phone)["call"]["password"]
        r = device.post(
            "/counterparty/login", json={"phone": phone, "password": password}, headers=H
        )
        assert r.status_code == 200, r.text
        tokens.append(r.json()["counterparty"]["access_token"]["value"])
    assert _inbox(a, phone)["call"] is None  # each password was used up
    r = b.post(
        "/counterparty/logout",
        json={"from_all_devices": True},
        headers={**H, "Authorization": f"Bearer {tokens[0]}"},
    )
    assert r.json() == {"message": "User successfully logout from all devices"}
    for client in (a, b):
        for token in tokens:
            r = client.post(
                "/counterparty/logout",
                json={"from_all_devices": False},
                headers={**H, "Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 401


def test_sms_verify_refresh_then_old_refresh_refused(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = pair
    phone = _account(b, 1)["phone"]
    r = a.post(
        "/v2/auth/phone/request",
        json={"phone": phone, "captcha": "c", "os": "android", "client_secret": S},
    )
    assert r.status_code == 200, r.text
    code = _inbox(b, phone)["sms"]["code"]
    login = b.post("/v2/auth/phone/verify", json={"phone": phone, "code": code, "client_secret": S})
    assert login.status_code == 200, login.text
    old = {"refresh_token": login.json()["refresh_token"], "client_secret": S}
    refreshed = a.post("/v2/mobile/users/refresh", json=old)
    assert refreshed.status_code == 200, refreshed.text
    again = b.post("/v2/mobile/users/refresh", json=old)
    assert (again.status_code, again.text) == (400, "Refresh token already used.")
    new = {"refresh_token": refreshed.json()["refresh_token"], "client_secret": S}
    assert b.post("/v2/mobile/users/refresh", json=new).status_code == 200


def test_esia_round_trip_and_replay_refused(pair: tuple[httpx.Client, httpx.Client]) -> None:
    a, b = pair
    url = a.get(ESIA_URL).json()["url"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    authorized = b.get("/_mock/esia/authorize", params={"state": state})
    assert authorized.status_code == 200, authorized.text
    body = {"authorization_code": authorized.json()["code"], "state": state, "client_secret": S}
    assert a.post("/v2/mobile/users/esia/auth", json=body).status_code == 200
    replay = b.post("/v2/mobile/users/esia/auth", json=body)
    assert replay.status_code == 400
    assert "Invalid authorization_code or state" in replay.text


def _status_within(client: httpx.Client, path: str, status: int, seconds: float) -> float:
    """How long until ``path`` answers ``status``; fails after ``seconds``."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        if client.get(path).status_code == status:
            return elapsed
        time.sleep(0.02)
    pytest.fail(f"{path} did not answer {status} within {seconds} s")


def test_a_fault_posted_on_one_process_is_seen_by_the_other(
    pair: tuple[httpx.Client, httpx.Client],
) -> None:
    a, b = pair
    fault = {"kind": "status", "status": 503, "endpoints": ["mobile.esia_url"]}
    try:
        assert a.post("/_mock/faults", json=fault).status_code == 201
        _status_within(b, ESIA_URL, 503, 0.5)
    finally:
        b.delete("/_mock/faults").raise_for_status()
    _status_within(a, ESIA_URL, 200, 0.5)


def test_workers_share_one_port_state_and_counters(redis_url: str, tmp_path: Path) -> None:
    """`authload mock --workers 2`: any process answers, all of them count."""
    profile = tmp_path / "none.yaml"
    profile.write_text("{}\n", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "authload",
        "mock",
        "--port",
        str(port),
        "--workers",
        "2",
        "--store",
        redis_url + "/1",
        "--behaviour",
        str(profile),
    ]
    log = tmp_path / "mock.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "workers did not come up"
                    time.sleep(0.1)
            before = c.get("/_mock/stats").json()["requests"].get("mobile.esia_url", {})
            for _ in range(200):  # a new connection each: the kernel spreads them
                assert httpx.get(f"http://127.0.0.1:{port}{ESIA_URL}").status_code == 200
            after = c.get("/_mock/stats").json()["requests"]["mobile.esia_url"]
            metrics = c.get("/metrics").text
    finally:
        _stop(proc, log)
    assert after["200"] - before.get("200", 0) == 200
    assert (
        f'authload_mock_requests_total{{endpoint="mobile.esia_url",status="200"}} {after["200"]}.0'
        in metrics
    )


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, as a supervisor stops it: it must be gone within 15 s, its workers too (its
    process group is killed either way, so that nothing outlives the test)."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        tail = log.read_text(errors="replace")[-3000:]
        message = f"the mock did not stop within 15 s of SIGTERM; its log:\n{tail}"
        raise AssertionError(message) from None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def test_workers_need_a_shared_store() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "authload", "mock", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--workers 2 needs a shared store" in result.stderr
