"""Hundreds of parallel logins, refreshes and logouts over real HTTP against one mock.

Every store operation of the mock is meant to be one atomic step, however requests
interleave: parallel logins never share a token, a refresh token rotates exactly once
however many copies of it arrive together, and a logout from all devices revokes every
token issued before it, with no login slipping through.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from authload.mock.control import MockControl
from authload.mock.server import EmbeddedMock
from tests.helpers.mock_server import APP_TOKEN, CLIENT_SECRET, AccountPool

T = TypeVar("T")

H = {"Token": APP_TOKEN}
REUSED = "Refresh token already used."


class Fleet:
    """Concurrent HTTP clients: requests spread over many small connection pools.

    One httpx pool with hundreds of connections spends more time managing them than the mock
    takes to answer (seconds of client CPU for a few hundred requests); ten connections per
    pool keeps every request in flight at once and the client out of the way.
    """

    PER_POOL = 10

    def __init__(self, url: str, connections: int) -> None:
        pools = max(1, -(-connections // self.PER_POOL))
        limits = httpx.Limits(
            max_connections=self.PER_POOL, max_keepalive_connections=self.PER_POOL
        )
        self._clients = [
            httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) for _ in range(pools)
        ]
        self._next = itertools.cycle(self._clients)

    def post(self, path: str, **kwargs: Any) -> Awaitable[httpx.Response]:
        return next(self._next).post(path, **kwargs)

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))


async def _all(aws: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*aws))


def _login(c: Fleet, phone: str) -> Awaitable[httpx.Response]:
    return c.post("/counterparty/login", json={"phone": phone, "password": "1111"}, headers=H)


def _logout(c: Fleet, token: str, everywhere: bool = False) -> Awaitable[httpx.Response]:
    return c.post(
        "/counterparty/logout",
        json={"from_all_devices": everywhere},
        headers={**H, "Authorization": f"Bearer {token}"},
    )


def _lkfl(c: Fleet, account: dict[str, Any]) -> Awaitable[httpx.Response]:
    return c.post(
        "/v2/mobile/users/lkfl/auth",
        json={
            "inn": account["inn"],
            "password": account["lkfl_password"],
            "client_secret": CLIENT_SECRET,
        },
    )


def _refresh(c: Fleet, refresh_token: str) -> Awaitable[httpx.Response]:
    return c.post(
        "/v2/mobile/users/refresh",
        json={"refresh_token": refresh_token, "client_secret": CLIENT_SECRET},
    )


def _token(r: httpx.Response) -> str:
    assert r.status_code == 200, f"{r.status_code}: {r.text}"
    return str(r.json()["counterparty"]["access_token"]["value"])


def _reuse_refused(control: MockControl) -> int:
    return int(control.stats()["events"].get("refresh_reuse_refused", 0))


def test_parallel_logins_of_distinct_accounts_all_succeed_with_unique_tokens(
    mock_server: EmbeddedMock, control: MockControl, accounts: AccountPool
) -> None:
    n = 300
    rows = accounts.take(control, n)
    phones = [str(a["phone"]) for a in rows]

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response], list[httpx.Response]]:
        async with Fleet(mock_server.url, n) as c:
            logins = await _all(_login(c, p) for p in phones)
            tokens = [_token(r) for r in logins]
            # every session opened is really there: each token ends its own session once
            first = await _all(_logout(c, t) for t in tokens)
            second = await _all(_logout(c, t) for t in tokens)
        return logins, first, second

    logins, first, second = asyncio.run(scenario())

    assert [r.status_code for r in logins] == [200] * n
    bodies = [r.json()["counterparty"] for r in logins]
    # each answer is about the account that asked, not a neighbour's
    assert [b["phone_1"] for b in bodies] == phones
    assert [b["id"] for b in bodies] == [a["id"] for a in rows]
    tokens = [b["access_token"]["value"] for b in bodies]
    assert len(set(tokens)) == n, "two logins got the same token"
    token_ids = [t.split("|", 1)[0] for t in tokens]
    assert len(set(token_ids)) == n, "two tokens share a Sanctum token id"
    assert [r.status_code for r in first] == [200] * n, "a session opened in parallel was lost"
    assert [r.status_code for r in second] == [401] * n, "a logged-out token still works"


def test_same_refresh_token_sent_in_parallel_rotates_exactly_once(
    mock_server: EmbeddedMock, control: MockControl, accounts: AccountPool
) -> None:
    sessions, copies = 50, 10
    rows = accounts.take(control, sessions)

    async def login_all() -> list[httpx.Response]:
        async with Fleet(mock_server.url, sessions) as c:
            return await _all(_lkfl(c, a) for a in rows)

    logins = asyncio.run(login_all())
    assert [r.status_code for r in logins] == [200] * sessions, [r.text for r in logins]
    refresh_tokens = [str(r.json()["refresh_token"]) for r in logins]
    assert len(set(refresh_tokens)) == sessions

    reuse_before = _reuse_refused(control)

    async def race() -> list[httpx.Response]:
        # all copies of all tokens at once, interleaved, so copies of one token truly race
        async with Fleet(mock_server.url, sessions * copies) as c:
            return await _all(_refresh(c, t) for _ in range(copies) for t in refresh_tokens)

    answers = asyncio.run(race())
    by_session = [answers[i::sessions] for i in range(sessions)]

    winners: list[dict[str, str]] = []
    refusals = 0
    for i, group in enumerate(by_session):
        statuses = sorted(r.status_code for r in group)
        assert statuses == [200] + [400] * (copies - 1), f"session {i}: {statuses}"
        for r in group:
            if r.status_code == 200:
                winners.append(r.json())
            else:
                refusals += 1
                assert r.text == REUSED, f"session {i}: refused for another reason: {r.text!r}"
    # every refusal was counted as the reuse it was, and nothing else was
    assert _reuse_refused(control) - reuse_before == refusals == sessions * (copies - 1)

    new_tokens = [w["refresh_token"] for w in winners]
    session_ids = [w["sessionId"] for w in winners]
    assert len(set(new_tokens)) == sessions
    assert len(set(session_ids)) == sessions
    assert not set(new_tokens) & set(refresh_tokens)

    async def follow_up() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with Fleet(mock_server.url, 2 * sessions) as c:
            fresh = _all(_refresh(c, t) for t in new_tokens)
            stale = _all(_refresh(c, t) for t in refresh_tokens)
            a, b = await asyncio.gather(fresh, stale)
            return a, b

    fresh, stale = asyncio.run(follow_up())
    # the winner's pair is the session's live one; the raced token stays spent
    assert [r.status_code for r in fresh] == [200] * sessions, [r.text for r in fresh]
    assert [(r.status_code, r.text) for r in stale] == [(400, REUSED)] * sessions


@dataclass
class Counterparty:
    phone: str
    before: list[str]  # tokens whose login completed before any logout-all was sent
    racing: list[str]  # tokens from logins sent together with the logouts from all devices
    after: str = ""  # token from a login sent once the logouts had answered


def test_logout_from_all_devices_loses_no_token_to_racing_logins(
    mock_server: EmbeddedMock, control: MockControl, accounts: AccountPool
) -> None:
    # devices + racing logins stay below the mock's 10 sessions per account, so no session
    # is evicted and every refusal below is down to a logout
    counterparties, devices, racers = 20, 4, 4
    parties = [
        Counterparty(str(a["phone"]), [], []) for a in accounts.take(control, counterparties)
    ]

    async def scenario() -> tuple[list[list[int]], list[int]]:
        async with Fleet(mock_server.url, counterparties * (devices + racers + 2)) as c:
            logins = await _all(_login(c, p.phone) for p in parties for _ in range(devices))
            for i, p in enumerate(parties):
                p.before = [_token(r) for r in logins[i * devices : (i + 1) * devices]]

            # per counterparty: two devices log out everywhere at once, racing with each
            # other and with more logins of the same account
            requests: list[Awaitable[httpx.Response]] = []
            for p in parties:
                requests.append(_logout(c, p.before[0], everywhere=True))
                requests.append(_logout(c, p.before[1], everywhere=True))
                requests.extend(_login(c, p.phone) for _ in range(racers))
            answers = await _all(requests)
            step = racers + 2
            logout_statuses: list[list[int]] = []
            for i, p in enumerate(parties):
                first, second, *racing = answers[i * step : (i + 1) * step]
                logout_statuses.append(sorted((first.status_code, second.status_code)))
                p.racing = [_token(r) for r in racing]

            afters = await _all(_login(c, p.phone) for p in parties)
            for p, r in zip(parties, afters, strict=True):
                p.after = _token(r)

            # now probe every token; a valid one ends its own session, nothing else
            probes = [t for p in parties for t in (*p.before, *p.racing, p.after)]
            probed = await _all(_logout(c, t) for t in probes)
            return logout_statuses, [r.status_code for r in probed]

    logout_statuses, probed = asyncio.run(scenario())
    statuses = iter(probed)
    for p, logouts in zip(parties, logout_statuses, strict=True):
        # whichever logout-all ran first revoked the other's token with the rest
        assert logouts == [200, 401], f"{p.phone}: logouts from all devices answered {logouts}"
        before = [next(statuses) for _ in p.before]
        racing = [next(statuses) for _ in p.racing]
        after = next(statuses)
        assert before == [401] * devices, f"{p.phone}: a token issued before survived: {before}"
        # a racing login came before or after the revocation: dead or alive, never broken
        assert set(racing) <= {200, 401}, f"{p.phone}: racing tokens answered {racing}"
        assert after == 200, f"{p.phone}: a login after the logout-all does not work"
