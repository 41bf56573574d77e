"""The behaviour model against ground truth: what the mock was told is what a client sees."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.mock_server import APP_TOKEN, CLIENT_SECRET, mock_with_profile

ESIA_URL = "/v2/mobile/users/esia/auth/url"
REFRESH = "/v2/mobile/users/refresh"
SEND_PASSWORD = "/counterparty/send_password"
LOGIN = "/counterparty/login"
LOGOUT = "/counterparty/logout"


def _timed_get(client: httpx.Client, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    status = client.get(path).status_code
    return status, (time.perf_counter() - started) * 1000


def test_fixed_latency_is_what_the_client_measures(tmp_path: Path) -> None:
    profile = "latency: {mobile.esia_url: {dist: fixed, ms: 50}}"
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        _timed_get(c, ESIA_URL)  # connection set up
        samples = [_timed_get(c, ESIA_URL) for _ in range(60)]
    assert all(status == 200 for status, _ in samples)
    median = statistics.median(ms for _, ms in samples)
    assert 45 <= median <= 55, median


async def _hammer(
    url: str,
    path: str,
    clients: int,
    seconds: float,
    method: str = "GET",
    body: dict[str, str] | None = None,
) -> list[tuple[float, int, float, str]]:
    """Closed-loop load: (start, status, latency ms, Retry-After) per request."""
    records: list[tuple[float, int, float, str]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        deadline = time.perf_counter() + seconds

        async def user() -> None:
            while (start := time.perf_counter()) < deadline:
                r = await client.request(method, path, json=body)
                latency = (time.perf_counter() - start) * 1000
                records.append((start, r.status_code, latency, r.headers.get("retry-after", "")))
                if r.status_code == 503:
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(user() for _ in range(clients)))
    return records


def test_capacity_plateaus_at_concurrency_over_service_time_and_sheds_the_rest(
    tmp_path: Path,
) -> None:
    # C = 4 slots, S = 50 ms: at most 80 requests/s, whatever the offered load
    profile = """
latency: {mobile.esia_url: {dist: fixed, ms: 50}}
capacity: {endpoints: {mobile.esia_url: {concurrency: 4, queue: 8, retry_after_s: 2}}}
"""
    with mock_with_profile(tmp_path, profile) as mock:
        light = asyncio.run(_hammer(mock.url, ESIA_URL, clients=2, seconds=1.0))
        heavy = asyncio.run(_hammer(mock.url, ESIA_URL, clients=40, seconds=3.0))
    ok = [r for r in heavy if r[1] == 200]
    shed = [r for r in heavy if r[1] == 503]
    span = max(r[0] for r in heavy) - min(r[0] for r in heavy)
    throughput = len(ok) / span
    assert 72 <= throughput <= 88, throughput
    assert len(shed) > len(ok)
    assert all(r[3] == "2" for r in shed)
    assert {r[1] for r in heavy} == {200, 503}
    # with the queue full, a served request waits behind 8 others: ~2 services more
    light_ms = statistics.median(r[2] for r in light if r[1] == 200)
    heavy_ms = statistics.median(r[2] for r in ok)
    assert light_ms < 60 and heavy_ms > 1.8 * light_ms, (light_ms, heavy_ms)


async def _refresh_statuses(url: str, n: int, clients: int) -> list[int]:
    statuses: list[int] = []
    body = {"refresh_token": "6f1c1f5e-2b7a-4c1e-9a43-7d1a5b0f9e11", "client_secret": CLIENT_SECRET}
    async with httpx.AsyncClient(base_url=url) as client:

        async def user(count: int) -> None:
            for _ in range(count):
                statuses.append((await client.post(REFRESH, json=body)).status_code)

        await asyncio.gather(*(user(n // clients) for _ in range(clients)))
    return statuses


def test_status_fault_hits_its_fraction_of_requests(tmp_path: Path) -> None:
    profile = """
faults:
  - {name: flaky-refresh, kind: status, status: 503, fraction: 0.3, endpoints: [mobile.refresh]}
"""
    with mock_with_profile(tmp_path, profile) as mock:
        statuses = asyncio.run(_refresh_statuses(mock.url, 4000, clients=20))
        esia = httpx.get(mock.url + ESIA_URL).status_code
    share = statuses.count(503) / len(statuses)
    assert 0.27 <= share <= 0.33, share
    assert set(statuses) == {400, 503}  # the rest reached the handler (an unknown token)
    assert esia == 200  # other endpoints untouched


@pytest.mark.slow
def test_fault_window_opens_and_closes_on_schedule(tmp_path: Path) -> None:
    profile = """
faults:
  - {name: outage, kind: status, status: 503, endpoints: [mobile.esia_url],
     start_s: 2, duration_s: 10}
"""
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        epoch = c.get("/_mock/stats").json()["epoch"]
        seen: list[tuple[float, int]] = []
        while time.time() < epoch + 13.5:
            started = time.time()
            seen.append((started, c.get(ESIA_URL).status_code))
            time.sleep(0.02)
        history = c.get("/_mock/faults").json()["history"]
    failing = [t - epoch for t, status in seen if status == 503]
    assert abs(failing[0] - 2.0) <= 0.5 and abs(failing[-1] - 12.0) <= 0.5, (
        failing[0],
        failing[-1],
    )
    assert all(status == 200 for t, status in seen if not 1.9 <= t - epoch <= 12.1)
    assert [(e["event"], round(e["t_s"], 3)) for e in history] == [("start", 2.0), ("end", 12.0)]


def test_sms_rate_limit_then_allowed_after_the_window(tmp_path: Path) -> None:
    profile = "rate_limits: {sms_per_phone: {limit: 3, window_s: 1.5}}"
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        phone = c.get("/_mock/accounts", params={"limit": 1}).json()["accounts"][0]["phone"]
        body = {"phone": phone, "captcha": "c", "os": "ios", "client_secret": CLIENT_SECRET}
        first = [c.post("/v2/auth/phone/request", json=body).status_code for _ in range(3)]
        limited = c.post("/v2/auth/phone/request", json=body)
        time.sleep(1.6)
        after = c.post("/v2/auth/phone/request", json=body)
        metrics = c.get("/metrics").text
    assert first == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["retry-after"] in {"1", "2"}
    assert limited.text == "Too many SMS to this phone."
    assert after.status_code == 200
    assert 'authload_mock_rate_limited_total{endpoint="mobile.phone_request"} 1.0' in metrics


def test_call_reset_rate_limit_is_per_phone(tmp_path: Path) -> None:
    profile = "rate_limits: {calls_per_phone: {limit: 1, window_s: 60}}"
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        a, b = (
            x["phone"] for x in c.get("/_mock/accounts", params={"limit": 2}).json()["accounts"]
        )
        h = {"Token": "mock-app-token"}
        codes = [
            c.post("/counterparty/send_password", json={"phone": p}, headers=h) for p in (a, a, b)
        ]
    assert [r.status_code for r in codes] == [200, 429, 200]
    assert codes[1].json() == {"message": "Too many calls to this phone."}
    assert 59 <= int(codes[1].headers["retry-after"]) <= 60


def test_per_address_rate_limit_counts_the_peer_whatever_it_claims(tmp_path: Path) -> None:
    """A client cannot spread its requests over other addresses with X-Forwarded-For: the
    limit counts the connection's own address."""
    profile = "rate_limits: {per_ip: {limit: 2, window_s: 60}}"
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        codes = [
            c.get(ESIA_URL, headers={"X-Forwarded-For": f"10.0.0.{n}"}).status_code
            for n in range(1, 5)
        ]
        metrics = c.get("/metrics").text
    assert codes == [200, 200, 429, 429]
    assert 'authload_mock_rate_limited_total{endpoint="mobile.esia_url"} 2.0' in metrics


FAULTS = """
faults:
  - {kind: reset, endpoints: [mobile.esia_url]}
  - {kind: hang, endpoints: [mobile.lkfl_auth], hang_max_s: 5}
  - {kind: truncate, endpoints: [gigma.login]}
  - {kind: malformed, endpoints: [mobile.phone_verify]}
  - {kind: status, status: 502, retry_after_s: 7, endpoints: [gigma.logout]}
  - {kind: latency, added_ms: 120, endpoints: [gigma.send_password]}
"""


def test_each_fault_kind_is_seen_by_a_client_as_what_it_is(tmp_path: Path) -> None:
    with mock_with_profile(tmp_path, FAULTS) as mock, httpx.Client(base_url=mock.url) as c:
        with pytest.raises(httpx.ReadError):  # connection reset by peer
            c.get(ESIA_URL)
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v2/mobile/users/lkfl/auth", json={}, timeout=0.5)
        account = c.get("/_mock/accounts", params={"limit": 1}).json()["accounts"][0]
        h = {"Token": "mock-app-token"}
        login = c.post(
            "/counterparty/login", json={"phone": account["phone"], "password": "1111"}, headers=h
        )
        assert login.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            login.json()
        verify = c.post("/v2/auth/phone/verify", json={})
        with pytest.raises(json.JSONDecodeError):
            verify.json()
        logout = c.post("/counterparty/logout", json={}, headers=h)
        assert (logout.status_code, logout.headers["retry-after"]) == (502, "7")
        assert logout.json() == {"message": "Bad gateway."}
        started = time.perf_counter()
        sent = c.post("/counterparty/send_password", json={"phone": account["phone"]}, headers=h)
        assert sent.status_code == 200 and time.perf_counter() - started >= 0.12
        metrics = c.get("/metrics").text
    for kind in ("reset", "hang", "truncate", "malformed", "status", "latency"):
        assert f'kind="{kind}"' in metrics


LATENCY_FAULTS = """
faults:
  - {kind: latency, added_ms: 30, endpoints: [mobile.esia_url]}
  - {kind: latency, added_ms: 20, endpoints: [mobile.esia_url, gigma.logout]}
  - {kind: status, status: 503, endpoints: [gigma.logout]}
"""


def test_faults_applied_counts_the_requests_a_latency_fault_delayed(tmp_path: Path) -> None:
    """Five answers delayed by two latency windows count five, once each; a request a status
    fault answered at once was never delayed: it counts as a status fault only."""
    with mock_with_profile(tmp_path, LATENCY_FAULTS) as mock, httpx.Client(base_url=mock.url) as c:
        for _ in range(5):
            started = time.perf_counter()
            assert c.get(ESIA_URL).status_code == 200
            assert time.perf_counter() - started >= 0.05
        assert c.post("/counterparty/logout", json={}).status_code == 503
        events = c.get("/_mock/stats").json()["events"]
        metrics = c.get("/metrics").text
    assert events["faults_applied.mobile.esia_url"] == 5
    assert events["faults_applied.gigma.logout"] == 1
    applied = "authload_mock_faults_applied_total"
    assert f'{applied}{{endpoint="mobile.esia_url",kind="latency"}} 5.0' in metrics
    assert f'{applied}{{endpoint="gigma.logout",kind="status"}} 1.0' in metrics
    assert f'{applied}{{endpoint="gigma.logout",kind="latency"}}' not in metrics


def test_truncated_refresh_still_rotated_the_token(tmp_path: Path) -> None:
    """A lost answer: the service rotated, the client never saw the new pair."""
    profile = "faults: [{kind: truncate, endpoints: [mobile.refresh], start_s: 0}]"
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        account = c.get("/_mock/accounts", params={"limit": 1}).json()["accounts"][0]
        login = c.post(
            "/v2/mobile/users/lkfl/auth",
            json={
                "inn": account["inn"],
                "password": account["lkfl_password"],
                "client_secret": CLIENT_SECRET,
            },
        ).json()
        body = {"refresh_token": login["refresh_token"], "client_secret": CLIENT_SECRET}
        assert c.post(REFRESH, json=body).status_code == 200
        c.delete("/_mock/faults")
        retry = c.post(REFRESH, json=body)
    assert (retry.status_code, retry.text) == (400, "Refresh token already used.")


def test_faults_switched_on_and_off_at_run_time_with_history(tmp_path: Path) -> None:
    with mock_with_profile(tmp_path, "{}") as mock, httpx.Client(base_url=mock.url) as c:
        assert c.get(ESIA_URL).status_code == 200
        added = c.post(
            "/_mock/faults",
            json={"kind": "status", "status": 500, "endpoints": ["mobile.esia_url"]},
        )
        assert added.status_code == 201
        fault_id = added.json()["fault"]["id"]
        assert c.get(ESIA_URL).status_code == 500
        assert c.delete(f"/_mock/faults/{fault_id}").json() == {"ended": [fault_id]}
        assert c.get(ESIA_URL).status_code == 200
        assert c.delete("/_mock/faults/nope").status_code == 404
        bad = c.post("/_mock/faults", json={"kind": "status", "status": 418})
        state = c.get("/_mock/faults").json()
    assert bad.status_code == 422 and "status" in bad.json()["errors"]
    assert [e["event"] for e in state["history"]] == ["start", "end"]
    assert state["faults"][0]["active"] is False


def test_behaviour_replaced_at_run_time(tmp_path: Path) -> None:
    with mock_with_profile(tmp_path, "{}") as mock, httpx.Client(base_url=mock.url) as c:
        fast = _timed_get(c, ESIA_URL)[1]
        put = c.put("/_mock/behaviour", json={"latency": {"default": {"dist": "fixed", "ms": 80}}})
        slow = _timed_get(c, ESIA_URL)[1]
        bad = c.put("/_mock/behaviour", json={"latency": {"default": {"dist": "gauss"}}})
        current = c.get("/_mock/behaviour").json()
    assert put.status_code == 200 and fast < 40 <= 80 <= slow
    assert bad.status_code == 422
    assert current["latency"]["default"] == {"dist": "fixed", "ms": 80.0}


def test_bad_profile_file_names_the_field_and_what_is_allowed(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "bad.yaml"
    path.write_text("latency:\n  mobile.refresh: {dist: gaussian, ms: 5}\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "authload", "mock", "--behaviour", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "latency.mobile.refresh: dist must be one of 'fixed', 'uniform', 'lognormal'" in (
        result.stderr
    )


def test_profile_faults_count_from_the_epoch_the_run_sets(tmp_path: Path) -> None:
    """One clock: the runner sets the load's start as the mock's epoch, and the profile's
    windows are scheduled from it, not from the mock's start."""
    profile = """
faults:
  - {name: outage, kind: status, status: 503, endpoints: [mobile.esia_url],
     start_s: 1, duration_s: 1}
"""
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        load_start = time.time() + 2.0
        assert c.post("/_mock/epoch", json={"t": load_start}).json() == {"epoch": load_start}
        faults = c.get("/_mock/faults").json()["faults"]
        assert [(f["starts_at"], f["ends_at"]) for f in faults] == [
            (load_start + 1.0, load_start + 2.0)
        ]
        assert c.get(ESIA_URL).status_code == 200  # the window from the mock's start never opens
        assert c.post("/_mock/epoch", json={"t": -1}).status_code == 422


def test_stale_revocation_keeps_revoked_tokens_working_for_its_lag(tmp_path: Path) -> None:
    profile = """
faults:
  - {kind: stale_revocation, endpoints: [gigma.logout], lag_s: 1}
"""
    headers = {"Token": APP_TOKEN}
    with mock_with_profile(tmp_path, profile) as mock, httpx.Client(base_url=mock.url) as c:
        tokens = [_gigma_login(c) for _ in range(3)]
        everywhere = {"from_all_devices": True}
        auth = {**headers, "Authorization": f"Bearer {tokens[0]}"}
        assert c.post(LOGOUT, json=everywhere, headers=auth).status_code == 200
        revoked = time.time()
        other = {**headers, "Authorization": f"Bearer {tokens[1]}"}
        assert c.post(LOGOUT, json={"from_all_devices": False}, headers=other).status_code == 200
        while c.post(LOGOUT, json={}, headers=other).status_code == 200:
            time.sleep(0.05)
        assert 0.9 <= time.time() - revoked <= 1.6
        assert c.get("/_mock/stats").json()["events"]["stale_accepted.gigma"] >= 2


def test_a_stale_revocation_fault_needs_a_lag(tmp_path: Path) -> None:
    from authload.errors import ProfileError
    from authload.mock.profile import parse_profile

    with pytest.raises(ProfileError, match="lag_s > 0"):
        parse_profile({"faults": [{"kind": "stale_revocation"}]}, "p.yaml")


def _gigma_login(c: httpx.Client) -> str:
    phone = c.get("/_mock/accounts", params={"limit": 1}).json()["accounts"][0]["phone"]
    headers = {"Token": APP_TOKEN}
    assert c.post(SEND_PASSWORD, json={"phone": phone}, headers=headers).status_code == 200
    password = c.get(f"/_mock/inbox/{phone}").json()["call"]["password"]
    answer = c.post(LOGIN, json={"phone": phone, "password": password}, headers=headers)
    return str(answer.json()["counterparty"]["access_token"]["value"])
