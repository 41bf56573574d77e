"""What every handler of the mock shares: settings, store, population, behaviour, metrics."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import logging
import random
import time
import uuid
import zlib

from authload.mock.behaviour import Behaviour
from authload.mock.metrics import MockMetrics
from authload.mock.population import Population
from authload.mock.profile import Profile
from authload.mock.settings import MockSettings
from authload.mock.stale import StaleTokens
from authload.mock.store import MemoryStore, Store, TokenRules
from authload.mock.trim import EVERY_S as TRIM_EVERY_S
from authload.mock.trim import release_free_memory

log = logging.getLogger("authload.mock")

TICK_S = 0.1
STOP_S = 5.0  # the ticker, then the store, must stop within this on shutdown


class Mock:
    def __init__(
        self,
        settings: MockSettings,
        profile: Profile | None = None,
        store: Store | None = None,
        metrics: MockMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store: Store = store if store is not None else MemoryStore()
        self.population = Population(settings.population, settings.seed)
        self.metrics = metrics if metrics is not None else MockMetrics()
        self.rng = rng if rng is not None else random.Random()
        self.behaviour = Behaviour(profile or Profile(), time.time(), self.rng)
        self.stale = StaleTokens()  # revoked tokens a stale_revocation fault keeps working
        self.token_rules = TokenRules(
            settings.access_ttl_s,
            settings.refresh_ttl_s,
            settings.reuse_memory_s,
            settings.refresh_grace_s,
            settings.reuse_revokes_family,
        )
        self._control_version = 0
        self._ticker: asyncio.Task[None] | None = None
        self._shown: set[tuple[str, str]] = set()

    # lifecycle
    async def start(self) -> None:
        """Join the shared epoch and control state (several processes), start the ticker."""
        epoch = await self.store.epoch(time.time())
        version, blob = await self.store.load_control()
        if blob is None:
            self.behaviour = Behaviour(self.behaviour.profile, epoch, self.rng)
            await self.publish()
        else:
            self.behaviour = Behaviour(Profile(), epoch, self.rng)
            self.behaviour.load_control(json.loads(blob))
            self._control_version = version
        self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        """Stop the ticker and close the store, each within :data:`STOP_S`: a store that no
        longer answers (its server gone, a connection left mid-command) must not keep the
        process from exiting. A mock of several processes once outlived its SIGTERM so."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._ticker, STOP_S)
        try:
            await asyncio.wait_for(self.store.close(), STOP_S)
        except TimeoutError:
            log.warning("the store did not close within %g s; stopping without it", STOP_S)

    async def publish(self) -> None:
        """Share an admin change with every process on the same store."""
        self._control_version = await self.store.save_control(json.dumps(self.behaviour.control()))
        self._show_faults()

    async def _tick_forever(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(TICK_S)
            ticks += 1
            try:
                if ticks % 10 == 0:
                    await self.store.keep_alive()
                if ticks % round(TRIM_EVERY_S / TICK_S) == 0:
                    release_free_memory()
                version = await self.store.control_version()
                if version != self._control_version:
                    version, blob = await self.store.load_control()
                    if blob is not None:
                        self.behaviour.load_control(json.loads(blob))
                    self._control_version = version
                self._show_faults()
            except Exception:
                log.exception("mock ticker failed; retrying")

    def _show_faults(self) -> None:
        """Fault-active gauges and a log line per window opening or closing."""
        now = time.time()
        active = self.behaviour.faults.active_kinds(now)
        for endpoint, kind in active - self._shown:
            self.metrics.child(self.metrics.fault_active, endpoint, kind).set(1)
            log.warning("fault %s on %s: window open", kind, endpoint)
        for endpoint, kind in self._shown - active:
            self.metrics.child(self.metrics.fault_active, endpoint, kind).set(0)
            log.warning("fault %s on %s: window closed", kind, endpoint)
        self._shown = active

    # identifiers
    def digits(self, n: int) -> str:
        return f"{self.rng.randrange(10**n):0{n}d}"

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sanctum_secret(self) -> str:
        """40 random alphanumerics + their CRC32 in hex, as Laravel Sanctum makes them: the
        alphanumerics as Laravel's ``Str::random`` draws them, random bytes in base64 without
        ``+`` and ``/`` (each of the 62 equally likely), drawn again while too few. 33 bytes
        give 44 characters, 42.6 after the strip on average: rarely a second draw."""
        secret = _alphanumerics(self.rng.getrandbits(264).to_bytes(33, "little"))
        while len(secret) < 40:
            secret += _alphanumerics(self.rng.getrandbits(48).to_bytes(6, "little"))
        secret = secret[:40]
        return (secret + b"%08x" % zlib.crc32(secret)).decode()

    def session_id(self) -> str:
        return f"{self.rng.getrandbits(96):024x}:{self.uuid4()}"


def _alphanumerics(raw: bytes) -> bytes:
    """``raw`` in base64 (a whole number of 3-byte groups: no padding) without ``+`` and ``/``."""
    return binascii.b2a_base64(raw, newline=False).translate(None, b"+/")
