"""What every handler of the mock shares: settings, store, population, counters, tokens."""

from __future__ import annotations

import random
import string
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from authload.mock.population import Population
from authload.mock.settings import MockSettings
from authload.mock.state import MemoryStore, Store

_ALNUM = string.ascii_letters + string.digits


@dataclass
class Stats:
    """Per-process counters since start (or the last reset)."""

    started_at: float = field(default_factory=time.time)
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)  # API endpoints
    other: Counter[int] = field(default_factory=Counter)  # admin calls and unmatched paths
    events: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.requests.items()):
            by_endpoint.setdefault(endpoint, {})[str(status)] = n
        return {
            "since": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 3),
            "requests": by_endpoint,
            "total": sum(self.requests.values()),
            "other": {str(s): n for s, n in sorted(self.other.items())},
            "events": dict(sorted(self.events.items())),
        }


class Mock:
    def __init__(
        self, settings: MockSettings, store: Store | None = None, rng: random.Random | None = None
    ) -> None:
        self.settings = settings
        self.store: Store = store if store is not None else MemoryStore()
        self.population = Population(settings.population, settings.seed)
        self.stats = Stats()
        self.rng = rng if rng is not None else random.Random()

    def digits(self, n: int) -> str:
        return f"{self.rng.randrange(10**n):0{n}d}"

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sanctum_secret(self) -> str:
        """40 random alphanumerics + their CRC32 in hex, as Laravel Sanctum makes them."""
        secret = "".join(self.rng.choices(_ALNUM, k=40))
        return f"{secret}{zlib.crc32(secret.encode()):08x}"

    def session_id(self) -> str:
        return f"{self.rng.getrandbits(96):024x}:{self.uuid4()}"

    async def reset(self) -> None:
        await self.store.reset()
        self.stats = Stats()
