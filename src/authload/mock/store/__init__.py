"""The mock's state: the store interface, the in-memory store, and :func:`open_store`, which
picks the store a settings URL names (``--store``).

The Redis store is :class:`authload.mock.store.redis.RedisStore`, not re-exported here:
importing it loads the Redis client, which a mock on the memory store never needs, so
:func:`open_store` imports it only for a ``redis://`` URL.
"""

from __future__ import annotations

from authload.mock.store.base import (
    CodeCheck,
    IssuedCode,
    NewSession,
    Pair,
    Rotation,
    Store,
    TokenRules,
)
from authload.mock.store.memory import MemoryStore

__all__ = [
    "CodeCheck",
    "IssuedCode",
    "MemoryStore",
    "NewSession",
    "Pair",
    "Rotation",
    "Store",
    "TokenRules",
    "open_store",
]


def open_store(url: str) -> Store:
    """The store named by a settings URL: ``memory`` or ``redis://host:port/db``."""
    if url == "memory":
        return MemoryStore()
    from authload.mock.store.redis import RedisStore

    return RedisStore.from_url(url)
