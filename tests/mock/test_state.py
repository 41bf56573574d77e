"""The in-memory store on a fake clock: expiry, attempts, eviction, rotation memory."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from authload.mock.store import CodeCheck, MemoryStore, NewSession, Pair, Rotation, TokenRules

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_code_expires() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    run(store.put_code("sms:7", "1234", "text", ttl=60, max_attempts=5))
    clock.now += 59.9
    peek = run(store.peek_code("sms:7"))
    assert peek is not None and abs(peek.expires_in - 0.1) < 1e-6
    clock.now += 0.1
    assert run(store.peek_code("sms:7")) is None
    assert run(store.check_code("sms:7", "1234")) is CodeCheck.MISSING


def test_code_attempts_then_void() -> None:
    store = MemoryStore(Clock())
    run(store.put_code("k", "1234", "", ttl=60, max_attempts=3))
    assert run(store.check_code("k", "0000")) is CodeCheck.WRONG
    assert run(store.check_code("k", "0000")) is CodeCheck.WRONG
    assert run(store.check_code("k", "0000")) is CodeCheck.EXHAUSTED
    assert run(store.check_code("k", "1234")) is CodeCheck.MISSING


def test_a_new_code_replaces_the_old_one() -> None:
    store = MemoryStore(Clock())
    run(store.put_code("k", "1111", "", ttl=60, max_attempts=3))
    run(store.put_code("k", "2222", "", ttl=60, max_attempts=3))
    assert run(store.check_code("k", "1111")) is CodeCheck.WRONG
    assert run(store.check_code("k", "2222")) is CodeCheck.OK


def test_esia_code_needs_its_state_and_expires() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    run(store.put_esia_state("s1", ttl=10))
    assert not run(store.authorize_esia("other", "c0", 1, ttl=10))
    assert run(store.authorize_esia("s1", "c1", 7, ttl=10))
    assert run(store.take_esia_code("c1", "s2")) is None
    clock.now += 10
    assert run(store.take_esia_code("c1", "s1")) is None


def test_esia_maps_drop_expired_entries() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    for i in range(100):
        run(store.put_esia_state(f"s{i}", ttl=5))
    clock.now += 6
    run(store.put_esia_state("fresh", ttl=5))
    assert list(store._esia_states) == ["fresh"]


def _gigma(account: int, token: str, ttl: float = 100) -> NewSession:
    return NewSession("gigma", account, token, None, ttl)


def test_sessions_per_account_are_capped_oldest_evicted() -> None:
    store = MemoryStore(Clock())
    evicted = [run(store.open_session(_gigma(1, f"t{i}"), max_per_account=3)) for i in range(5)]
    assert evicted == [0, 0, 0, 1, 1]
    assert run(store.session_account("gigma", "t0")) is None
    assert run(store.session_account("gigma", "t1")) is None
    assert run(store.session_account("gigma", "t4")) == 1


def test_close_all_sessions_only_of_that_account_and_api() -> None:
    store = MemoryStore(Clock())
    for token in ("a", "b"):
        run(store.open_session(_gigma(1, token), 10))
    run(store.open_session(_gigma(2, "c"), 10))
    run(store.open_session(NewSession("mobile", 1, "m", "r", 100, 1000), 10))
    assert run(store.close_all_sessions("gigma", 1)) == 2
    assert run(store.session_account("gigma", "a")) is None
    assert run(store.session_account("gigma", "c")) == 2
    assert run(store.session_account("mobile", "m")) == 1


def test_gigma_token_expires() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    run(store.open_session(_gigma(1, "t", ttl=10), 10))
    clock.now += 10
    assert run(store.session_account("gigma", "t")) is None
    assert store._sessions == {}


def _rotate(
    store: MemoryStore, old: str, new: str, memory: float = 60, grace: float = 0
) -> tuple[Rotation, int | None]:
    rules = TokenRules(access_ttl=100, refresh_ttl=1000, reuse_memory=memory, grace=grace)
    return run(store.rotate_refresh(old, Pair(f"access-{new}", new), rules))


def test_rotation_reuse_is_detected_within_memory_then_forgotten() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    run(store.open_session(NewSession("mobile", 3, "a0", "r0", 100, 1000), 10))
    assert _rotate(store, "r0", "r1") == (Rotation.ROTATED, 3)
    assert _rotate(store, "r0", "r2") == (Rotation.REUSED, None)
    assert run(store.session_account("mobile", "a0")) is None
    assert run(store.session_account("mobile", "access-r1")) == 3
    clock.now += 61
    assert _rotate(store, "r0", "r3") == (Rotation.UNKNOWN, None)
    assert _rotate(store, "r1", "r4") == (Rotation.ROTATED, 3)


def test_refresh_token_expires_with_its_session() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    run(store.open_session(NewSession("mobile", 3, "a0", "r0", 100, 1000), 10))
    clock.now += 1000
    assert _rotate(store, "r0", "r1") == (Rotation.UNKNOWN, None)
    assert store._sessions == {}


def test_access_token_expires_before_refresh() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    run(store.open_session(NewSession("mobile", 3, "a0", "r0", 100, 1000), 10))
    clock.now += 100
    assert run(store.session_account("mobile", "a0")) is None
    assert _rotate(store, "r0", "r1") == (Rotation.ROTATED, 3)


def test_grace_window_lets_a_lost_answer_be_retried_once_more() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    run(store.open_session(NewSession("mobile", 3, "a0", "r0", 100, 1000), 10))
    assert _rotate(store, "r0", "r1", grace=5) == (Rotation.ROTATED, 3)
    clock.now += 4
    assert _rotate(store, "r0", "r2", grace=5) == (Rotation.GRACE, 3)
    assert _rotate(store, "r1", "r3", grace=5) == (Rotation.GRACE, 3)  # r1 was rotated by r2
    clock.now += 5
    assert _rotate(store, "r0", "r4", grace=5) == (Rotation.REUSED, None)
    assert _rotate(store, "r3", "r5", grace=5) == (Rotation.ROTATED, 3)


def test_rate_limit_window_opens_with_the_first_hit() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    assert [run(store.hit("k", 10))[0] for _ in range(3)] == [1, 2, 3]
    clock.now += 4
    count, left = run(store.hit("k", 10))
    assert (count, left) == (4, 6)
    clock.now += 6
    assert run(store.hit("k", 10)) == (1, 10)
