"""Per-key rate limits (calls and SMS per phone, requests per address): 429 + Retry-After."""

from __future__ import annotations

import math

from authload.mock.core import Mock
from authload.mock.http import ApiError
from authload.mock.profile import Window


async def rate_limit(mock: Mock, key: str, window: Window | None, message: str) -> None:
    """Count one event for ``key``; past the window's limit, refuse it with 429."""
    if window is None:
        return
    count, left_s = await mock.store.hit(key, window.window_s)
    if count > window.limit:
        raise ApiError(429, message, retry_after_s=max(1, math.ceil(left_s)))
