"""Tokens a logout revoked under a ``stale_revocation`` fault, as a lagging cache or replica
still holds them: each keeps working until its lag has passed. The store has ended the
sessions at once (the truth); this is the stale view, per mock process. Entries live only as
long as their lag, so the map holds at most the tokens revoked within the longest lag."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class StaleTokens:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until: dict[tuple[str, str], float] = {}

    def remember(self, api: str, tokens: Iterable[str], lag_s: float) -> None:
        until = self._clock() + lag_s
        self._forget_expired()
        for token in tokens:
            self._until[(api, token)] = until

    def accepts(self, api: str, token: str) -> bool:
        """Whether the stale view still accepts this revoked token."""
        until = self._until.get((api, token))
        return until is not None and self._clock() < until

    def __len__(self) -> int:
        return len(self._until)

    def _forget_expired(self) -> None:
        now = self._clock()
        for key in [k for k, until in self._until.items() if until <= now]:
            del self._until[key]
