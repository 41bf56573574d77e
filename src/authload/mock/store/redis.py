"""The mock's state in Redis, shared by every process and worker pointed at the same server.

Same semantics as :class:`~authload.mock.store.memory.MemoryStore`. Each read-then-write
operation is one Lua script (or one MULTI transaction), so it is atomic across processes and
costs one round trip.

Clock: the Redis server's, the only one every process shares. Lifetimes that are a single
deadline (codes, ESIA states and codes, rate-limit windows, remembered rotated tokens) are key
TTLs (PEXPIRE), which Redis checks against its own clock. Sessions have two deadlines (access and
refresh), stored in their hash as milliseconds of the server's ``TIME``, read inside the scripts
(Redis 7 replicates script effects, so ``TIME`` may precede writes); the hash's TTL is the
session's end, so nothing outlives its use.

Layout under the prefix: ``epoch`` and ``control`` survive :meth:`RedisStore.reset` and are
leased: every process renews them (``keep_alive``), so a mock started after the last one
stopped begins with its own profile and start time, not a stale one; everything
else lives under ``s:`` and is forgotten by it. The session scripts build keys from ids they read
(session ids, tokens), so the store needs a single Redis server (7.0 or later), not a Cluster.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from authload.mock.store.base import CodeCheck, IssuedCode, NewSession, Pair, Rotation, TokenRules

DEFAULT_PREFIX = "authload:mock:"
LEASE_S = 5.0  # epoch and control outlive the last mock process by this long

_CHECK_CODE = """
local c = redis.call('HMGET', KEYS[1], 'code', 'attempts')
if not c[1] then return 'missing' end
if c[1] == ARGV[1] then redis.call('DEL', KEYS[1]) return 'ok' end
if redis.call('HINCRBY', KEYS[1], 'attempts', -1) <= 0 then
  redis.call('DEL', KEYS[1]) return 'exhausted'
end
return 'wrong'
"""

_AUTHORIZE_ESIA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'account', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

_TAKE_ESIA_CODE = """
local e = redis.call('HMGET', KEYS[1], 'state', 'account')
if e[1] ~= ARGV[1] then return nil end
redis.call('DEL', KEYS[1], KEYS[2])
return tonumber(e[2])
"""

# Shared by the session scripts. A session hash: api, account, access, aexp and, for APIs with
# refresh, refresh and rexp; fetch() returns those six fields in that order, or nil.
_SESSIONS = """
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function sess(sid) return P .. 's:sess:' .. sid end
local function akey(api, access) return P .. 's:access:' .. api .. ':' .. access end
local function rkey(refresh) return P .. 's:refresh:' .. refresh end
local function owned(api, account) return P .. 's:owned:' .. api .. ':' .. account end
local function fetch(sid)
  local s = redis.call('HMGET', sess(sid), 'api', 'account', 'access', 'aexp', 'refresh', 'rexp')
  return s[1] and s or nil
end
local function alive(s) return now < tonumber(s[6] or s[4]) end
local function drop(sid, s)
  redis.call('DEL', sess(sid), akey(s[1], s[3]))
  if s[5] then redis.call('DEL', rkey(s[5])) end
  redis.call('ZREM', owned(s[1], s[2]), sid)
end
local function keep(key, until_ms)
  if redis.call('PTTL', key) < until_ms - now then redis.call('PEXPIRE', key, until_ms - now) end
end
"""

_OPEN_SESSION = (
    _SESSIONS
    + """
local api, account, access, refresh = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local aexp, rexp = now + tonumber(ARGV[6]), now + tonumber(ARGV[7])
local sid = redis.call('INCR', P .. 's:counter:session')
local own = owned(api, account)
local live = {}
for _, old in ipairs(redis.call('ZRANGE', own, 0, -1)) do
  local s = fetch(old)
  if s and alive(s) then table.insert(live, {old, s})
  elseif s then drop(old, s)
  else redis.call('ZREM', own, old) end
end
local evicted = math.max(0, #live - tonumber(ARGV[8]) + 1)
for i = 1, evicted do drop(live[i][1], live[i][2]) end
local last = aexp
redis.call('HSET', sess(sid), 'api', api, 'account', account, 'access', access, 'aexp', aexp)
if refresh ~= '' then
  last = rexp
  redis.call('HSET', sess(sid), 'refresh', refresh, 'rexp', rexp)
  redis.call('SET', rkey(refresh), sid, 'PX', rexp - now)
end
redis.call('PEXPIRE', sess(sid), last - now)
redis.call('SET', akey(api, access), sid, 'PX', aexp - now)
redis.call('ZADD', own, sid, sid)
keep(own, last)
return evicted
"""
)

# ARGV[4] == '1': end the session found (close_session); else only name its account.
_BY_ACCESS = (
    _SESSIONS
    + """
local sid = redis.call('GET', akey(ARGV[2], ARGV[3]))
if not sid then return nil end
local s = fetch(sid)
if not s then return nil end
if now >= tonumber(s[4]) then
  if not alive(s) then drop(sid, s) end
  return nil
end
if ARGV[4] == '1' then drop(sid, s) end
return tonumber(s[2])
"""
)

_CLOSE_ALL = (
    _SESSIONS
    + """
local own = owned(ARGV[2], ARGV[3])
local sids = redis.call('ZRANGE', own, 0, -1)
for _, sid in ipairs(sids) do
  local s = fetch(sid)
  if s then drop(sid, s) end
end
redis.call('DEL', own)
return #sids
"""
)

_ACCOUNT_TOKENS = (
    _SESSIONS
    + """
local tokens = {}
for _, sid in ipairs(redis.call('ZRANGE', owned(ARGV[2], ARGV[3]), 0, -1)) do
  local s = fetch(sid)
  if s and now < tonumber(s[4]) then table.insert(tokens, s[3]) end
end
return tokens
"""
)

_ROTATE = (
    _SESSIONS
    + """
local old, access, refresh = ARGV[2], ARGV[3], ARGV[4]
local access_ms, refresh_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local memory, grace = tonumber(ARGV[7]), tonumber(ARGV[8])
local outcome = 'rotated'
local sid = redis.call('GET', rkey(old))
if not sid then
  local r = redis.call('HMGET', P .. 's:rotated:' .. old, 'sid', 'at')
  if not r[1] then return {'unknown'} end
  sid = r[1]
  if redis.call('EXISTS', sess(sid)) == 0 then return {'reused'} end
  if now - tonumber(r[2]) >= grace then
    if ARGV[9] ~= '1' then return {'reused'} end
    local s = fetch(sid)
    if not s then return {'reused'} end
    drop(sid, s)
    return {'family_revoked', tonumber(s[2])}
  end
  outcome = 'grace'
end
local s = fetch(sid)
if not s or not alive(s) then
  if s then drop(sid, s) end
  return {'unknown'}
end
redis.call('DEL', rkey(s[5]), akey(s[1], s[3]))
if math.max(memory, grace) > 0 then
  local rotated = P .. 's:rotated:' .. s[5]
  redis.call('HSET', rotated, 'sid', sid, 'at', now)
  redis.call('PEXPIRE', rotated, math.max(memory, grace))
end
redis.call('HSET', sess(sid), 'access', access, 'aexp', now + access_ms,
  'refresh', refresh, 'rexp', now + refresh_ms)
redis.call('PEXPIRE', sess(sid), refresh_ms)
redis.call('SET', akey(s[1], access), sid, 'PX', access_ms)
redis.call('SET', rkey(refresh), sid, 'PX', refresh_ms)
keep(owned(s[1], s[2]), now + refresh_ms)
return {outcome, tonumber(s[2])}
"""
)


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds; at least 1, since Redis refuses a zero expiry."""
    return max(1, round(seconds * 1000))


class RedisStore:
    """A :class:`~authload.mock.store.base.Store` in Redis; keys under ``prefix``.

    ``redis`` must decode responses to ``str`` (``decode_responses=True``), as
    :meth:`from_url` sets up.
    """

    def __init__(self, redis: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix
        self._state = f"{prefix}s:"
        self._control = f"{prefix}control"
        self._check_code = redis.register_script(_CHECK_CODE)
        self._authorize_esia = redis.register_script(_AUTHORIZE_ESIA)
        self._take_esia_code = redis.register_script(_TAKE_ESIA_CODE)
        self._open_session = redis.register_script(_OPEN_SESSION)
        self._by_access = redis.register_script(_BY_ACCESS)
        self._close_all = redis.register_script(_CLOSE_ALL)
        self._account_tokens = redis.register_script(_ACCOUNT_TOKENS)
        self._rotate = redis.register_script(_ROTATE)

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisStore:
        """A store on ``redis://host:port/db``; connects on first use."""
        return cls(Redis.from_url(url, decode_responses=True), prefix)

    async def _session(self, script: AsyncScript, *args: str | int) -> Any:
        """Run a session script; those build their keys from the prefix, ARGV[1]."""
        return await script([], [self._prefix, *args])

    async def close(self) -> None:
        await self._redis.aclose()

    def _pattern(self) -> str:
        """A SCAN pattern matching every key under ``s:``, the prefix's own wildcards escaped."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self._state) + "*"

    async def reset(self) -> None:
        """Forget codes, sessions, ESIA and rate-limit windows; epoch and control stay."""
        batch: list[str] = []
        async for key in self._redis.scan_iter(match=self._pattern(), count=1000):
            batch.append(key)
            if len(batch) == 1000:
                await self._redis.unlink(*batch)
                batch = []
        if batch:
            await self._redis.unlink(*batch)

    async def held(self) -> dict[str, int]:
        """What the store holds now (Redis has dropped the expired keys): one SCAN over the
        prefix, then each session's API. For the bench and tests, not for every request."""
        kinds: Counter[str] = Counter()
        sessions: list[str] = []
        async for key in self._redis.scan_iter(match=self._pattern(), count=1000):
            kind = key[len(self._state) :].split(":", 1)[0]
            if kind == "sess":
                sessions.append(key)
            else:
                kinds[kind] += 1
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in sessions:
                pipe.hget(key, "api")
            apis = Counter(api for api in await pipe.execute() if api is not None)
        return {
            **{f"sessions.{api}": n for api, n in sorted(apis.items())},
            "rotated_tokens": kinds["rotated"],
            "codes": kinds["code"],
            "esia": kinds["esia"],
            "rate_limit_windows": kinds["hit"],
        }

    # codes
    async def put_code(
        self, key: str, code: str, message: str, ttl: float, max_attempts: int
    ) -> None:
        name = f"{self._state}code:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"code": code, "message": message, "attempts": max_attempts})
            pipe.pexpire(name, _ms(ttl))
            await pipe.execute()

    async def peek_code(self, key: str) -> IssuedCode | None:
        name = f"{self._state}code:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hmget(name, ["code", "message", "attempts"])
            pipe.pttl(name)
            (code, message, attempts), left_ms = await pipe.execute()
        if code is None:
            return None
        return IssuedCode(code, message, left_ms / 1000, int(attempts))

    async def check_code(self, key: str, code: str) -> CodeCheck:
        return CodeCheck(await self._check_code([f"{self._state}code:{key}"], [code]))

    # ESIA
    async def put_esia_state(self, state: str, ttl: float) -> None:
        await self._redis.set(f"{self._state}esia:state:{state}", 1, px=_ms(ttl))

    async def authorize_esia(self, state: str, code: str, account: int, ttl: float) -> bool:
        keys = [f"{self._state}esia:state:{state}", f"{self._state}esia:code:{code}"]
        return bool(await self._authorize_esia(keys, [state, account, _ms(ttl)]))

    async def take_esia_code(self, code: str, state: str) -> int | None:
        keys = [f"{self._state}esia:code:{code}", f"{self._state}esia:state:{state}"]
        return _optional_int(await self._take_esia_code(keys, [state]))

    async def next_id(self, counter: str) -> int:
        return int(await self._redis.incr(f"{self._state}counter:{counter}"))

    # sessions
    async def open_session(self, new: NewSession, max_per_account: int) -> int:
        """Open a session; returns how many old sessions of the account were evicted."""
        ttls = (_ms(new.access_ttl), _ms(new.refresh_ttl or 0.0))
        who = (new.api, new.account, new.access, new.refresh or "")
        return int(await self._session(self._open_session, *who, *ttls, max_per_account))

    async def session_account(self, api: str, access: str) -> int | None:
        return _optional_int(await self._session(self._by_access, api, access, 0))

    async def close_session(self, api: str, access: str) -> bool:
        return await self._session(self._by_access, api, access, 1) is not None

    async def close_all_sessions(self, api: str, account: int) -> int:
        return int(await self._session(self._close_all, api, account))

    async def account_tokens(self, api: str, account: int) -> list[str]:
        """The access tokens of the account's live sessions."""
        return [str(t) for t in await self._session(self._account_tokens, api, account)]

    async def rotate_refresh(
        self, old: str, new: Pair, rules: TokenRules
    ) -> tuple[Rotation, int | None]:
        ttls = (_ms(rules.access_ttl), _ms(rules.refresh_ttl))
        memory = (round(rules.remembered_s * 1000), round(rules.grace * 1000))
        family = "1" if rules.revoke_family else "0"
        reply = await self._session(
            self._rotate, old, new.access, new.refresh, *ttls, *memory, family
        )
        return Rotation(reply[0]), _optional_int(reply[1] if len(reply) > 1 else None)

    # rate limits
    async def hit(self, key: str, window_s: float) -> tuple[int, float]:
        """Count one event in a fixed window opened by the first; (count, seconds left)."""
        name = f"{self._state}hit:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.pexpire(name, _ms(window_s), nx=True)
            pipe.pttl(name)
            count, _, left_ms = await pipe.execute()
        return int(count), left_ms / 1000

    # shared across processes, kept by reset
    async def epoch(self, now: float) -> float:
        """The mock's start, shared by every process using this store: the first caller's."""
        first = await self._redis.set(
            f"{self._prefix}epoch", repr(now), nx=True, get=True, px=_ms(LEASE_S)
        )
        return now if first is None else float(first)

    async def keep_alive(self) -> None:
        """Renew the lease on epoch and control; a mock gone for LEASE_S leaves none behind."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.pexpire(f"{self._prefix}epoch", _ms(LEASE_S))
            pipe.pexpire(self._control, _ms(LEASE_S))
            await pipe.execute()

    async def save_control(self, blob: str) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._control, "version", 1)
            pipe.hset(self._control, "blob", blob)
            pipe.pexpire(self._control, _ms(LEASE_S))
            version, _, _ = await pipe.execute()
        return int(version)

    async def control_version(self) -> int:
        return int(await self._redis.hget(self._control, "version") or 0)

    async def load_control(self) -> tuple[int, str | None]:
        version, blob = await self._redis.hmget(self._control, ["version", "blob"])
        return int(version or 0), cast("str | None", blob)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
