"""One behavioural suite for every Store: the in-memory one and Redis (a real redis-server).

Each scenario gets two handles on the same state, ``a`` and ``b``: the same MemoryStore twice,
or two RedisStore clients (separate connections, as two mock processes have) under a prefix of
their own. Times are real and short: the Redis store keeps time by the server's clock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

import pytest

from authload.mock.store import (
    CodeCheck,
    MemoryStore,
    NewSession,
    Pair,
    Rotation,
    Store,
    TokenRules,
)
from authload.mock.store.redis import RedisStore

T = TypeVar("T")
Body = Callable[[Store, Store], Awaitable[None]]
RULES = TokenRules(access_ttl=100, refresh_ttl=1000, reuse_memory=60)


class Backend:
    def __init__(self, url: str | None) -> None:
        self.url = url

    def run(self, body: Body) -> None:
        asyncio.run(self._run(body))

    async def _run(self, body: Body) -> None:
        if self.url is None:
            store = MemoryStore()
            await body(store, store)
            return
        prefix = f"test:{uuid.uuid4().hex}:"
        a, b = RedisStore.from_url(self.url, prefix), RedisStore.from_url(self.url, prefix)
        try:
            await body(a, b)
        finally:
            await a.close()
            await b.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return Backend(None if request.param == "memory" else request.getfixturevalue("redis_url"))


def scenario(body: Body) -> Callable[[Backend], None]:
    """A test running ``body(a, b)`` on each backend."""

    def test(backend: Backend) -> None:
        backend.run(body)

    test.__doc__ = body.__doc__
    return test


async def alternating(a: Store, b: Store, n: int, op: Callable[[Store], Awaitable[T]]) -> list[T]:
    """``op`` n times at once, half through each handle."""
    return list(await asyncio.gather(*(op(a if i % 2 else b) for i in range(n))))


def mobile(account: int, access: str, refresh: str, access_ttl: float = 100) -> NewSession:
    return NewSession("mobile", account, access, refresh, access_ttl, 1000)


def gigma(account: int, token: str, ttl: float = 100) -> NewSession:
    return NewSession("gigma", account, token, None, ttl)


def rules(memory: float = 60, grace: float = 0) -> TokenRules:
    return TokenRules(access_ttl=100, refresh_ttl=1000, reuse_memory=memory, grace=grace)


def pair(refresh: str) -> Pair:
    return Pair(f"access-{refresh}", refresh)


# codes
@scenario
async def test_code_peek_check_and_consume(a: Store, b: Store) -> None:
    await a.put_code("sms:7", "1234", "text", ttl=60, max_attempts=5)
    peek = await b.peek_code("sms:7")
    assert peek is not None
    assert (peek.code, peek.message, peek.attempts_left) == ("1234", "text", 5)
    assert 59 < peek.expires_in <= 60
    assert await b.check_code("sms:7", "1234") is CodeCheck.OK
    assert await a.check_code("sms:7", "1234") is CodeCheck.MISSING
    assert await a.peek_code("sms:7") is None
    assert await a.check_code("never", "1234") is CodeCheck.MISSING


@scenario
async def test_code_attempts_then_void(a: Store, b: Store) -> None:
    await a.put_code("k", "1234", "", ttl=60, max_attempts=3)
    assert await b.check_code("k", "0000") is CodeCheck.WRONG
    peek = await a.peek_code("k")
    assert peek is not None and peek.attempts_left == 2
    assert await a.check_code("k", "0000") is CodeCheck.WRONG
    assert await b.check_code("k", "0000") is CodeCheck.EXHAUSTED
    assert await a.check_code("k", "1234") is CodeCheck.MISSING


@scenario
async def test_a_new_code_replaces_the_old_one(a: Store, b: Store) -> None:
    await a.put_code("k", "1111", "", ttl=60, max_attempts=3)
    await b.check_code("k", "0000")
    await b.put_code("k", "2222", "new", ttl=60, max_attempts=3)
    peek = await a.peek_code("k")
    assert peek is not None and (peek.message, peek.attempts_left) == ("new", 3)
    assert await a.check_code("k", "1111") is CodeCheck.WRONG
    assert await a.check_code("k", "2222") is CodeCheck.OK


@scenario
async def test_code_expires(a: Store, b: Store) -> None:
    await a.put_code("k", "1234", "", ttl=0.2, max_attempts=3)
    await asyncio.sleep(0.3)
    assert await b.peek_code("k") is None
    assert await b.check_code("k", "1234") is CodeCheck.MISSING


@scenario
async def test_concurrent_checks_of_one_code(a: Store, b: Store) -> None:
    await a.put_code("right", "1234", "", ttl=60, max_attempts=5)
    right = await alternating(a, b, 50, lambda s: s.check_code("right", "1234"))
    assert Counter(right) == {CodeCheck.OK: 1, CodeCheck.MISSING: 49}
    await a.put_code("wrong", "1234", "", ttl=60, max_attempts=5)
    wrong = await alternating(a, b, 50, lambda s: s.check_code("wrong", "0000"))
    assert Counter(wrong) == {CodeCheck.WRONG: 4, CodeCheck.EXHAUSTED: 1, CodeCheck.MISSING: 45}


# ESIA
@scenario
async def test_esia_state_code_one_login(a: Store, b: Store) -> None:
    await a.put_esia_state("s1", ttl=10)
    assert not await b.authorize_esia("other", "c0", 1, ttl=10)
    assert await b.authorize_esia("s1", "c1", 7, ttl=10)
    assert await a.take_esia_code("c0", "s1") is None
    assert await a.take_esia_code("c1", "s2") is None  # only with its own state
    assert await a.take_esia_code("c1", "s1") == 7
    assert await b.take_esia_code("c1", "s1") is None  # replay
    assert not await b.authorize_esia("s1", "c2", 7, ttl=10)  # the state is used up


@scenario
async def test_esia_state_and_code_expire(a: Store, b: Store) -> None:
    await a.put_esia_state("late", ttl=0.2)
    await a.put_esia_state("s", ttl=10)
    assert await a.authorize_esia("s", "c", 3, ttl=0.2)
    await asyncio.sleep(0.3)
    assert not await b.authorize_esia("late", "c2", 3, ttl=10)
    assert await b.take_esia_code("c", "s") is None


@scenario
async def test_concurrent_takes_of_one_esia_code(a: Store, b: Store) -> None:
    await a.put_esia_state("s", ttl=10)
    assert await a.authorize_esia("s", "c", 5, ttl=10)
    taken = await alternating(a, b, 50, lambda s: s.take_esia_code("c", "s"))
    assert Counter(taken) == {5: 1, None: 49}


# counters
@scenario
async def test_next_id_counts_per_counter_across_handles(a: Store, b: Store) -> None:
    assert [await a.next_id("x"), await b.next_id("x"), await a.next_id("y")] == [1, 2, 1]
    ids = await alternating(a, b, 50, lambda s: s.next_id("z"))
    assert sorted(ids) == list(range(1, 51))


# sessions
@scenario
async def test_sessions_per_account_are_capped_oldest_evicted(a: Store, b: Store) -> None:
    evicted = [await (a, b)[i % 2].open_session(gigma(1, f"t{i}"), 3) for i in range(5)]
    assert evicted == [0, 0, 0, 1, 1]
    assert await a.session_account("gigma", "t0") is None
    assert await b.session_account("gigma", "t1") is None
    assert [await a.session_account("gigma", f"t{i}") for i in (2, 3, 4)] == [1, 1, 1]
    assert await b.open_session(gigma(2, "other"), 3) == 0  # per account
    assert await b.open_session(mobile(1, "m", "r"), 3) == 0  # and per API


@scenario
async def test_expired_sessions_leave_room_without_eviction(a: Store, b: Store) -> None:
    for token in ("t0", "t1"):
        await a.open_session(gigma(1, token, ttl=0.2), 2)
    await asyncio.sleep(0.3)
    assert await b.open_session(gigma(1, "t2"), 2) == 0
    assert await b.close_all_sessions("gigma", 1) == 1


@scenario
async def test_a_cap_of_one_keeps_only_the_newest_login(a: Store, b: Store) -> None:
    evicted = [await (a, b)[i % 2].open_session(gigma(1, f"t{i}"), 1) for i in range(4)]
    assert evicted == [0, 1, 1, 1]
    assert [await a.session_account("gigma", f"t{i}") for i in range(4)] == [None, None, None, 1]
    assert await b.close_all_sessions("gigma", 1) == 1


@scenario
async def test_concurrent_logins_respect_the_cap(a: Store, b: Store) -> None:
    tokens = iter(range(50))
    evicted = await alternating(a, b, 50, lambda s: s.open_session(gigma(9, f"t{next(tokens)}"), 3))
    assert sum(evicted) == 47
    owners = [await a.session_account("gigma", f"t{i}") for i in range(50)]
    assert owners.count(9) == 3
    assert await b.close_all_sessions("gigma", 9) == 3


@scenario
async def test_close_session(a: Store, b: Store) -> None:
    await a.open_session(gigma(1, "t0"), 10)
    await a.open_session(gigma(1, "t1"), 10)
    assert await b.close_session("gigma", "t0")
    assert not await a.close_session("gigma", "t0")
    assert not await a.close_session("mobile", "t1")  # tokens are per API
    assert await a.session_account("gigma", "t0") is None
    assert await b.session_account("gigma", "t1") == 1


@scenario
async def test_close_all_sessions_only_of_that_account_and_api(a: Store, b: Store) -> None:
    for token in ("a", "b"):
        await a.open_session(gigma(1, token), 10)
    await a.open_session(gigma(2, "c"), 10)
    await a.open_session(mobile(1, "m", "r"), 10)
    assert await b.close_all_sessions("gigma", 1) == 2
    assert await b.close_all_sessions("gigma", 1) == 0
    assert await a.session_account("gigma", "a") is None
    assert await a.session_account("gigma", "c") == 2
    assert await a.session_account("mobile", "m") == 1
    assert await b.close_all_sessions("mobile", 1) == 1
    assert await a.rotate_refresh("r", pair("r1"), RULES) == (Rotation.UNKNOWN, None)


@scenario
async def test_account_tokens_are_the_live_sessions_of_that_account_and_api(
    a: Store, b: Store
) -> None:
    for token in ("a", "b"):
        await a.open_session(gigma(1, token), 10)
    await a.open_session(gigma(1, "short", ttl=0.2), 10)
    await a.open_session(gigma(2, "c"), 10)
    await a.open_session(mobile(1, "m", "r"), 10)
    await asyncio.sleep(0.3)
    assert sorted(await b.account_tokens("gigma", 1)) == ["a", "b"]
    assert await b.account_tokens("mobile", 1) == ["m"]
    assert await a.account_tokens("gigma", 3) == []


@scenario
async def test_gigma_token_expires(a: Store, b: Store) -> None:
    await a.open_session(gigma(1, "t", ttl=0.2), 10)
    assert await b.session_account("gigma", "t") == 1
    await asyncio.sleep(0.3)
    assert await b.session_account("gigma", "t") is None
    assert not await a.close_session("gigma", "t")


@scenario
async def test_access_expires_before_refresh_and_rotation_renews_it(a: Store, b: Store) -> None:
    await a.open_session(mobile(3, "a0", "r0", access_ttl=0.2), 10)
    await asyncio.sleep(0.3)
    assert await b.session_account("mobile", "a0") is None
    assert await b.rotate_refresh("r0", pair("r1"), RULES) == (Rotation.ROTATED, 3)
    assert await a.session_account("mobile", "access-r1") == 3


@scenario
async def test_refresh_token_expires_with_its_session(a: Store, b: Store) -> None:
    short = TokenRules(access_ttl=0.1, refresh_ttl=0.2, reuse_memory=60)
    await a.open_session(mobile(3, "a0", "r0"), 10)
    assert await a.rotate_refresh("r0", pair("r1"), short) == (Rotation.ROTATED, 3)
    await asyncio.sleep(0.3)
    assert await b.rotate_refresh("r1", pair("r2"), short) == (Rotation.UNKNOWN, None)
    assert await b.session_account("mobile", "access-r1") is None


# refresh rotation
@scenario
async def test_rotation_reuse_is_detected_within_memory_then_forgotten(a: Store, b: Store) -> None:
    await a.open_session(mobile(3, "a0", "r0"), 10)
    assert await a.rotate_refresh("r0", pair("r1"), rules(memory=0.3)) == (Rotation.ROTATED, 3)
    assert await b.rotate_refresh("r0", pair("r2"), rules(memory=0.3)) == (Rotation.REUSED, None)
    assert await b.session_account("mobile", "a0") is None
    assert await b.session_account("mobile", "access-r1") == 3
    await asyncio.sleep(0.4)
    assert await a.rotate_refresh("r0", pair("r3"), rules()) == (Rotation.UNKNOWN, None)
    assert await a.rotate_refresh("r1", pair("r4"), rules(memory=0)) == (Rotation.ROTATED, 3)
    assert await b.rotate_refresh("r1", pair("r5"), rules()) == (Rotation.UNKNOWN, None)
    assert await b.rotate_refresh("never", pair("r6"), rules()) == (Rotation.UNKNOWN, None)


@scenario
async def test_a_reuse_revokes_the_family_when_the_rules_say_so(a: Store, b: Store) -> None:
    family = replace(RULES, revoke_family=True)
    await a.open_session(mobile(3, "a0", "r0"), 10)
    await a.open_session(mobile(3, "b0", "s0"), 10)  # another session of the same account
    assert await a.rotate_refresh("r0", pair("r1"), family) == (Rotation.ROTATED, 3)
    assert await b.rotate_refresh("r0", pair("r2"), family) == (Rotation.FAMILY_REVOKED, 3)
    assert await a.session_account("mobile", "access-r1") is None  # the holder's session ended
    assert await a.rotate_refresh("r1", pair("r3"), family) == (Rotation.UNKNOWN, None)
    assert await b.rotate_refresh("r0", pair("r4"), family) == (Rotation.REUSED, None)
    assert await b.session_account("mobile", "b0") == 3  # only that family


@scenario
async def test_a_rotated_token_is_not_remembered_past_the_refresh_lifetime(
    a: Store, b: Store
) -> None:
    """Unrotated, it would have expired by then: its reuse is refused as expired."""
    short = TokenRules(access_ttl=0.1, refresh_ttl=0.3, reuse_memory=60)
    await a.open_session(mobile(3, "a0", "r0"), 10)
    assert await a.rotate_refresh("r0", pair("r1"), short) == (Rotation.ROTATED, 3)
    assert await b.rotate_refresh("r0", pair("r2"), short) == (Rotation.REUSED, None)
    await asyncio.sleep(0.4)
    assert await b.rotate_refresh("r0", pair("r3"), short) == (Rotation.UNKNOWN, None)
    assert (await a.held())["rotated_tokens"] == 0


@scenario
async def test_grace_window_lets_a_lost_answer_be_retried(a: Store, b: Store) -> None:
    await a.open_session(mobile(3, "a0", "r0"), 10)
    assert await a.rotate_refresh("r0", pair("r1"), rules(grace=0.3)) == (Rotation.ROTATED, 3)
    assert await b.rotate_refresh("r0", pair("r2"), rules(grace=0.3)) == (Rotation.GRACE, 3)
    assert await a.rotate_refresh("r1", pair("r3"), rules(grace=0.3)) == (Rotation.GRACE, 3)
    assert await a.session_account("mobile", "access-r3") == 3
    assert await a.session_account("mobile", "access-r2") is None
    await asyncio.sleep(0.4)
    assert await b.rotate_refresh("r0", pair("r4"), rules(grace=0.3)) == (Rotation.REUSED, None)
    assert await b.rotate_refresh("r3", pair("r5"), rules(grace=0.3)) == (Rotation.ROTATED, 3)


@scenario
async def test_a_rotated_token_of_an_ended_session_is_reused_not_graced(a: Store, b: Store) -> None:
    await a.open_session(mobile(3, "a0", "r0"), 10)
    assert await a.rotate_refresh("r0", pair("r1"), rules(grace=60)) == (Rotation.ROTATED, 3)
    assert await b.close_session("mobile", "access-r1")
    assert await b.rotate_refresh("r1", pair("r2"), rules(grace=60)) == (Rotation.UNKNOWN, None)
    assert await a.rotate_refresh("r0", pair("r3"), rules(grace=60)) == (Rotation.REUSED, None)


@scenario
async def test_concurrent_refreshes_of_one_token_rotate_once(a: Store, b: Store) -> None:
    await a.open_session(mobile(4, "a0", "r0"), 10)
    names = iter(range(50))
    results = await alternating(
        a, b, 50, lambda s: s.rotate_refresh("r0", pair(f"r{next(names) + 1}"), RULES)
    )
    assert Counter(results) == {(Rotation.ROTATED, 4): 1, (Rotation.REUSED, None): 49}


# what the store holds: nothing outlives its use
@scenario
async def test_held_counts_live_sessions_rotated_tokens_codes_and_esia(a: Store, b: Store) -> None:
    nothing = {"rotated_tokens": 0, "codes": 0, "esia": 0, "rate_limit_windows": 0}
    assert await a.held() == nothing
    for i in range(3):
        await a.open_session(mobile(i, f"a{i}", f"r{i}"), 10)
    await b.open_session(gigma(1, "t0"), 10)
    await b.open_session(gigma(1, "t1"), 10)
    assert await a.rotate_refresh("r0", pair("r0b"), RULES) == (Rotation.ROTATED, 0)
    await a.put_code("sms:1", "1234", "", ttl=60, max_attempts=5)
    await b.put_code("call:1", "1234", "", ttl=60, max_attempts=5)
    await a.put_esia_state("s", ttl=60)
    assert await b.authorize_esia("s", "c", 1, ttl=60)
    for key in ("sms:1", "sms:2", "sms:1"):
        await a.hit(key, 60)
    expected = {"sessions.gigma": 2, "sessions.mobile": 3, "rotated_tokens": 1, "codes": 2}
    assert await b.held() == {**expected, "esia": 2, "rate_limit_windows": 2}
    assert await a.take_esia_code("c", "s") == 1
    assert await b.close_session("gigma", "t0")
    assert await a.check_code("sms:1", "1234") is CodeCheck.OK
    expected = {"sessions.gigma": 1, "sessions.mobile": 3, "rotated_tokens": 1, "codes": 1}
    assert await a.held() == {**expected, "esia": 0, "rate_limit_windows": 2}


@scenario
async def test_what_ended_is_no_longer_held(a: Store, b: Store) -> None:
    """Sessions past their lifetime, rotated tokens past the reuse memory, expired codes
    and ESIA entries are dropped without any later request for them."""
    short = TokenRules(access_ttl=0.1, refresh_ttl=0.3, reuse_memory=0.3)
    for i in range(20):
        await a.open_session(NewSession("mobile", i, f"a{i}", f"r{i}", 0.1, 0.3), 10)
        await b.open_session(gigma(100 + i, f"t{i}", ttl=0.3), 10)
        assert await a.rotate_refresh(f"r{i}", pair(f"r{i}b"), short) == (Rotation.ROTATED, i)
    await a.put_code("sms:1", "1234", "", ttl=0.3, max_attempts=5)
    await b.hit("sms:1", 0.3)
    await a.put_esia_state("s", ttl=0.3)
    assert await b.authorize_esia("s", "c", 1, ttl=0.3)
    await b.open_session(gigma(1, "long"), 10)
    held = await a.held()
    assert (held["sessions.mobile"], held["sessions.gigma"], held["rotated_tokens"]) == (20, 21, 20)
    await asyncio.sleep(0.5)
    nothing = {"rotated_tokens": 0, "codes": 0, "esia": 0, "rate_limit_windows": 0}
    assert await b.held() == {"sessions.gigma": 1, **nothing}


# rate limits
@scenario
async def test_rate_limit_window_opens_with_the_first_hit(a: Store, b: Store) -> None:
    assert [(await (a, b)[i % 2].hit("k", 0.3))[0] for i in range(3)] == [1, 2, 3]
    count, left = await b.hit("k", 0.3)
    assert count == 4 and 0 < left <= 0.3
    count, left = await a.hit("other", 0.3)
    assert count == 1 and left == pytest.approx(0.3, abs=0.05)
    await asyncio.sleep(0.35)
    count, left = await a.hit("k", 0.3)
    assert count == 1 and left == pytest.approx(0.3, abs=0.05)


@scenario
async def test_concurrent_hits_are_each_counted_once(a: Store, b: Store) -> None:
    counts = await alternating(a, b, 50, lambda s: s.hit("k", 60))
    assert sorted(c for c, _ in counts) == list(range(1, 51))


# shared control and epoch
@scenario
async def test_epoch_is_the_first_callers(a: Store, b: Store) -> None:
    assert await a.epoch(1000.25) == 1000.25
    assert await b.epoch(2000.0) == 1000.25
    assert await a.epoch(3000.0) == 1000.25


@scenario
async def test_control_versions_and_blob(a: Store, b: Store) -> None:
    assert await a.load_control() == (0, None)
    assert await a.control_version() == 0
    assert await a.save_control('{"v": 1}') == 1
    assert await b.control_version() == 1
    assert await b.save_control('{"v": 2}') == 2
    assert await a.load_control() == (2, '{"v": 2}')
    versions = await alternating(a, b, 20, lambda s: s.save_control("{}"))
    assert sorted(versions) == list(range(3, 23))


@scenario
async def test_reset_forgets_state_but_keeps_epoch_and_control(a: Store, b: Store) -> None:
    await a.epoch(1.5)
    await a.save_control("{}")
    await a.put_code("k", "1234", "", ttl=60, max_attempts=3)
    await a.put_esia_state("s", ttl=60)
    await a.put_esia_state("s2", ttl=60)
    assert await a.authorize_esia("s2", "c", 1, ttl=60)
    await a.open_session(mobile(1, "m", "r"), 10)
    await a.hit("h", 60)
    await b.reset()
    assert await a.peek_code("k") is None
    assert not await a.authorize_esia("s", "c", 1, ttl=60)
    assert await a.take_esia_code("c", "s2") is None
    assert await a.session_account("mobile", "m") is None
    assert await a.rotate_refresh("r", pair("r1"), RULES) == (Rotation.UNKNOWN, None)
    count, left = await a.hit("h", 60)
    assert count == 1 and left == pytest.approx(60, abs=0.1)
    assert await a.epoch(9.0) == 1.5
    assert await a.load_control() == (1, "{}")


def test_redis_reset_touches_only_its_prefix(redis_url: str) -> None:
    async def main() -> None:
        mine, theirs = (
            RedisStore.from_url(redis_url, f"test:{uuid.uuid4().hex}:") for _ in range(2)
        )
        try:
            await mine.put_code("k", "1", "", ttl=60, max_attempts=1)
            await theirs.put_code("k", "2", "", ttl=60, max_attempts=1)
            await mine.reset()
            assert await mine.peek_code("k") is None
            assert await theirs.peek_code("k") is not None
        finally:
            await mine.close()
            await theirs.close()

    asyncio.run(main())
