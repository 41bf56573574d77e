"""Mock state behind one interface: codes, ESIA states, sessions and token rotation.

Every store operation is one atomic step of the domain (check-and-consume a code, rotate a
refresh token, end all sessions of an account), so the mock stays consistent however requests
interleave. The in-memory store gets atomicity from the event loop: its methods never await
in the middle of a step. A shared store (Redis) must give the same guarantee per operation.
This module holds only the interface and the types it speaks in, so each store depends on it
and neither store on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol


class CodeCheck(Enum):
    OK = "ok"  # matched; the code is now used up
    WRONG = "wrong"  # did not match; one attempt spent
    MISSING = "missing"  # none issued, expired, already used or voided
    EXHAUSTED = "exhausted"  # this wrong try was the last allowed; the code is now void


class Rotation(Enum):
    ROTATED = "rotated"
    GRACE = "grace"  # an already rotated token, still inside the grace window: rotated again
    REUSED = "reused"  # a refresh token that was already rotated away
    FAMILY_REVOKED = "family_revoked"  # reused, and (revoke_family) its live session ended
    UNKNOWN = "unknown"  # never issued, expired, or its session ended


@dataclass(frozen=True)
class IssuedCode:
    code: str
    message: str  # what the phone shows: the calling number, or the SMS text
    expires_in: float
    attempts_left: int


class NewSession(NamedTuple):
    """One device's login. ``refresh`` is None for APIs without refresh (Gigma). A named
    tuple: one is made per login, in a third of a frozen dataclass's time."""

    api: str
    account: int
    access: str
    refresh: str | None
    access_ttl: float
    refresh_ttl: float | None = None


@dataclass(frozen=True)
class Pair:
    """A new mobile token pair."""

    access: str
    refresh: str


@dataclass(frozen=True)
class TokenRules:
    access_ttl: float
    refresh_ttl: float
    reuse_memory: float  # how long a rotated refresh token is remembered
    grace: float = 0.0  # a rotated refresh token still rotates for this long
    revoke_family: bool = False  # a reuse ends the session the token belonged to

    @property
    def remembered_s(self) -> float:
        """How long a rotated refresh token is kept: the reuse memory, but never past the
        refresh lifetime (unrotated, the token would have expired by then: its reuse is
        refused as expired instead), and at least the grace window."""
        return max(min(self.reuse_memory, self.refresh_ttl), self.grace)


class Store(Protocol):
    """What the mock asks of its state; a store matches it by shape, not by inheritance."""

    async def put_code(
        self, key: str, code: str, message: str, ttl: float, max_attempts: int
    ) -> None: ...
    async def peek_code(self, key: str) -> IssuedCode | None: ...
    async def check_code(self, key: str, code: str) -> CodeCheck: ...
    async def put_esia_state(self, state: str, ttl: float) -> None: ...
    async def authorize_esia(self, state: str, code: str, account: int, ttl: float) -> bool: ...
    async def take_esia_code(self, code: str, state: str) -> int | None: ...
    async def next_id(self, counter: str) -> int: ...
    async def open_session(self, new: NewSession, max_per_account: int) -> int: ...
    async def session_account(self, api: str, access: str) -> int | None: ...
    async def close_session(self, api: str, access: str) -> bool: ...
    async def close_all_sessions(self, api: str, account: int) -> int: ...
    async def account_tokens(self, api: str, account: int) -> list[str]: ...
    async def rotate_refresh(
        self, old: str, new: Pair, rules: TokenRules
    ) -> tuple[Rotation, int | None]: ...
    async def hit(self, key: str, window_s: float) -> tuple[int, float]: ...
    async def epoch(self, now: float) -> float: ...
    async def save_control(self, blob: str) -> int: ...
    async def control_version(self) -> int: ...
    async def load_control(self) -> tuple[int, str | None]: ...
    async def keep_alive(self) -> None: ...
    async def close(self) -> None: ...
    async def reset(self) -> None: ...
    async def held(self) -> dict[str, int]: ...
