"""The in-memory store: one process, plain dicts; atomic because its methods never await in
the middle of a step (see :mod:`authload.mock.store.base`)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from authload.mock.store.base import CodeCheck, IssuedCode, NewSession, Pair, Rotation, TokenRules

_V = TypeVar("_V")


@dataclass(slots=True)
class _Code:
    code: str
    message: str
    expires: float
    attempts_left: int


@dataclass(slots=True)
class _Session:
    sid: int
    api: str
    account: int
    access: str
    access_expires: float
    refresh: str | None
    refresh_expires: float | None

    def alive(self, now: float) -> bool:
        end = self.refresh_expires if self.refresh is not None else self.access_expires
        return end is not None and now < end


class MemoryStore:
    """The default store: one process, plain dicts, expiry checked on access.

    Memory stays bounded in long soaks (see "Memory of the mock" in the README): sessions
    are at most ``max_per_account`` per account and API, and every map is kept in the order
    its entries end (sessions, codes, ESIA states and codes, rotated refresh tokens,
    rate-limit windows: each kind has one lifetime), so what has ended is dropped from the
    front as new entries come in, not when it is next asked for.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._control: tuple[int, str | None] = (0, None)
        self._epoch: float | None = None
        self.reset_sync()

    def reset_sync(self) -> None:
        self._codes: dict[str, _Code] = {}
        self._esia_states: OrderedDict[str, float] = OrderedDict()
        self._esia_codes: OrderedDict[str, tuple[str, int, float]] = OrderedDict()
        self._counters: dict[str, int] = {}
        self._sessions: dict[int, _Session] = {}
        self._by_access: dict[tuple[str, str], int] = {}
        self._by_refresh: dict[str, int] = {}
        self._by_account: dict[tuple[str, int], dict[int, None]] = {}  # oldest first
        # per API, session ids in the order they end (one lifetime per API: login order,
        # a rotation moves its session to the back)
        self._ending: dict[str, dict[int, None]] = {}
        # per API, the latest end queued so far; and the APIs whose order above is not the
        # order their sessions end in (sessions of different lifetimes): only for those can
        # an ended session outlive the drop from the front, so only there does a login look
        # through the account's sessions for ended ones
        self._latest_end: dict[str, float] = {}
        self._unordered: set[str] = set()
        # rotated refresh token -> (forget at, rotated at, session id)
        self._rotated: OrderedDict[str, tuple[float, float, int]] = OrderedDict()
        # rate-limit windows by their length, each in the order they close:
        # key -> (count, closes at)
        self._hits: dict[float, dict[str, tuple[int, float]]] = {}

    async def reset(self) -> None:
        """Forget codes, sessions and rate-limit windows; behaviour and epoch stay."""
        self.reset_sync()

    # codes: call-reset passwords and SMS codes, one live code per key
    async def put_code(
        self, key: str, code: str, message: str, ttl: float, max_attempts: int
    ) -> None:
        now = self._clock()
        _drop_expired(self._codes, now, lambda c: c.expires)
        self._codes.pop(key, None)  # a new code goes to the back: codes in the order they expire
        self._codes[key] = _Code(code, message, now + ttl, max_attempts)

    async def peek_code(self, key: str) -> IssuedCode | None:
        entry = self._live_code(key)
        if entry is None:
            return None
        return IssuedCode(
            entry.code, entry.message, entry.expires - self._clock(), entry.attempts_left
        )

    async def check_code(self, key: str, code: str) -> CodeCheck:
        entry = self._live_code(key)
        if entry is None:
            return CodeCheck.MISSING
        if entry.code == code:
            del self._codes[key]
            return CodeCheck.OK
        entry.attempts_left -= 1
        if entry.attempts_left <= 0:
            del self._codes[key]
            return CodeCheck.EXHAUSTED
        return CodeCheck.WRONG

    def _live_code(self, key: str) -> _Code | None:
        entry = self._codes.get(key)
        if entry is not None and entry.expires <= self._clock():
            del self._codes[key]
            return None
        return entry

    # ESIA: state -> (after sign-in) authorization code -> one login
    async def put_esia_state(self, state: str, ttl: float) -> None:
        now = self._clock()
        _drop_expired(self._esia_states, now, lambda exp: exp)
        self._esia_states[state] = now + ttl

    async def authorize_esia(self, state: str, code: str, account: int, ttl: float) -> bool:
        now = self._clock()
        if self._esia_states.get(state, 0.0) <= now:
            return False
        _drop_expired(self._esia_codes, now, lambda v: v[2])
        self._esia_codes[code] = (state, account, now + ttl)
        return True

    async def take_esia_code(self, code: str, state: str) -> int | None:
        entry = self._esia_codes.get(code)
        if entry is None or entry[0] != state or entry[2] <= self._clock():
            return None
        del self._esia_codes[code]
        self._esia_states.pop(state, None)
        return entry[1]

    async def next_id(self, counter: str) -> int:
        return self._next_id(counter)

    def _next_id(self, counter: str) -> int:
        value = self._counters.get(counter, 0) + 1
        self._counters[counter] = value
        return value

    # sessions
    async def open_session(self, new: NewSession, max_per_account: int) -> int:
        """Open a session; returns how many old sessions of the account were evicted."""
        now = self._clock()
        sid = self._next_id("session")
        refresh_expires = now + new.refresh_ttl if new.refresh_ttl is not None else None
        session = _Session(
            sid,
            new.api,
            new.account,
            new.access,
            now + new.access_ttl,
            new.refresh,
            refresh_expires,
        )
        self._end_sessions(new.api, now)
        key = (new.api, new.account)
        owned = self._by_account.get(key)
        evicted = 0
        if owned is not None:
            if new.api in self._unordered:
                sessions = self._sessions
                for old_sid in [s for s in owned if not sessions[s].alive(now)]:
                    self._drop(old_sid)
            while len(owned) >= max_per_account:
                self._drop(next(iter(owned)))
                evicted += 1
        if not owned:  # none, or dropping the last one removed it
            owned = self._by_account[key] = {}
        self._sessions[sid] = session
        self._by_access[(new.api, new.access)] = sid
        if new.refresh is not None:
            self._by_refresh[new.refresh] = sid
        owned[sid] = None
        self._queue_end(session)
        return evicted

    async def session_account(self, api: str, access: str) -> int | None:
        session = self._session_by_access(api, access)
        return None if session is None else session.account

    async def close_session(self, api: str, access: str) -> bool:
        session = self._session_by_access(api, access)
        if session is None:
            return False
        self._drop(session.sid)
        return True

    async def close_all_sessions(self, api: str, account: int) -> int:
        owned = self._by_account.get((api, account))
        if not owned:
            return 0
        sids = list(owned)
        for sid in sids:
            self._drop(sid)
        return len(sids)

    async def account_tokens(self, api: str, account: int) -> list[str]:
        """The access tokens of the account's live sessions."""
        now = self._clock()
        owned = self._by_account.get((api, account), OrderedDict())
        return [s.access for s in (self._sessions[sid] for sid in owned) if now < s.access_expires]

    async def rotate_refresh(
        self, old: str, new: Pair, rules: TokenRules
    ) -> tuple[Rotation, int | None]:
        now = self._clock()
        outcome = Rotation.ROTATED
        sid = self._by_refresh.get(old)
        if sid is None:
            forget_at, rotated_at, sid = self._rotated.get(old, (0.0, 0.0, -1))
            if forget_at <= now:
                return Rotation.UNKNOWN, None
            if sid not in self._sessions:
                return Rotation.REUSED, None
            if now - rotated_at >= rules.grace:
                if not rules.revoke_family:
                    return Rotation.REUSED, None
                account = self._sessions[sid].account
                self._drop(sid)
                return Rotation.FAMILY_REVOKED, account
            outcome = Rotation.GRACE
        session = self._sessions.get(sid)
        if session is None or not session.alive(now):
            if session is not None:
                self._drop(sid)
            return Rotation.UNKNOWN, None
        current = session.refresh
        assert current is not None
        del self._by_refresh[current]
        del self._by_access[(session.api, session.access)]
        memory = rules.remembered_s
        if memory > 0:
            _drop_expired(self._rotated, now, lambda v: v[0])
            self._rotated[current] = (now + memory, now, sid)
        session.access, session.refresh = new.access, new.refresh
        session.access_expires = now + rules.access_ttl
        session.refresh_expires = now + rules.refresh_ttl
        self._by_access[(session.api, new.access)] = sid
        self._by_refresh[new.refresh] = sid
        del self._ending[session.api][sid]
        self._queue_end(session)  # it now ends last
        self._end_sessions(session.api, now)
        return outcome, session.account

    async def hit(self, key: str, window_s: float) -> tuple[int, float]:
        """Count one event in a fixed window opened by the first; (count, seconds left)."""
        now = self._clock()
        windows = self._hits.setdefault(window_s, {})
        _drop_expired(windows, now, lambda v: v[1])  # what is left is open
        count, resets_at = windows.get(key, (0, now + window_s))  # a new window: at the back
        windows[key] = (count + 1, resets_at)
        return count + 1, resets_at - now

    async def epoch(self, now: float) -> float:
        """The mock's start, shared by every process using this store: the first caller's."""
        if self._epoch is None:
            self._epoch = now
        return self._epoch

    async def save_control(self, blob: str) -> int:
        version = self._control[0] + 1
        self._control = (version, blob)
        return version

    async def control_version(self) -> int:
        return self._control[0]

    async def load_control(self) -> tuple[int, str | None]:
        return self._control

    async def keep_alive(self) -> None:
        """Nothing to renew: this store lives and dies with its process."""

    async def close(self) -> None:
        """Nothing to close."""

    def _session_by_access(self, api: str, access: str) -> _Session | None:
        sid = self._by_access.get((api, access))
        if sid is None:
            return None
        session = self._sessions[sid]
        if self._clock() >= session.access_expires:
            if not session.alive(self._clock()):
                self._drop(sid)
            return None
        return session

    def _drop(self, sid: int) -> None:
        session = self._sessions.pop(sid)
        self._by_access.pop((session.api, session.access), None)
        if session.refresh is not None:
            self._by_refresh.pop(session.refresh, None)
        self._ending[session.api].pop(sid, None)
        owned = self._by_account.get((session.api, session.account))
        if owned is not None:
            owned.pop(sid, None)
            if not owned:
                del self._by_account[(session.api, session.account)]

    def _queue_end(self, session: _Session) -> None:
        """Put a session at the back of its API's ending order, noting if it ends before a
        session already queued."""
        api = session.api
        end = session.refresh_expires if session.refresh is not None else session.access_expires
        latest = self._latest_end.get(api)
        if end is None or (latest is not None and end < latest):
            self._unordered.add(api)
        else:
            self._latest_end[api] = end
        ending = self._ending.get(api)
        if ending is None:
            ending = self._ending[api] = {}
        ending[session.sid] = None

    def _end_sessions(self, api: str, now: float) -> None:
        """Drop the sessions of ``api`` whose lifetime is over, from the front of its order."""
        ending = self._ending.get(api)
        while ending:
            sid = next(iter(ending))
            if self._sessions[sid].alive(now):
                return
            self._drop(sid)

    async def held(self) -> dict[str, int]:
        """What the store holds now, live entries only (expired ones are dropped first)."""
        now = self._clock()
        for api in list(self._ending):
            self._end_sessions(api, now)
        _drop_expired(self._rotated, now, lambda v: v[0])
        _drop_expired(self._esia_states, now, lambda exp: exp)
        _drop_expired(self._esia_codes, now, lambda v: v[2])
        _drop_expired(self._codes, now, lambda c: c.expires)
        for windows in self._hits.values():
            _drop_expired(windows, now, lambda v: v[1])
        return {
            **{f"sessions.{api}": len(ids) for api, ids in sorted(self._ending.items()) if ids},
            "rotated_tokens": len(self._rotated),
            "codes": sum(1 for c in self._codes.values() if c.expires > now),  # any TTLs
            "esia": len(self._esia_states) + len(self._esia_codes),
            "rate_limit_windows": sum(len(windows) for windows in self._hits.values()),
        }


def _drop_expired(entries: dict[str, _V], now: float, expiry: Callable[[_V], float]) -> None:
    """Drop expired entries from the front of a map kept in the order they expire."""
    while entries:
        key, value = next(iter(entries.items()))
        if expiry(value) > now:
            return
        del entries[key]
