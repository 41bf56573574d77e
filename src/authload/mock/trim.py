"""Freed memory back to the system, so that the mock's RSS follows what it holds.

The store's maps churn for as long as the mock runs: sessions, codes and tokens come and go,
and each map's table is reallocated as it grows past, or falls back from, a size. glibc's
malloc keeps what is freed inside its heap for reuse, and the heap only rises in steps
(its high-water mark) long after the entries held have stopped growing. Measured on a
store churned as release-gate's mock churns it (13 mobile logins, 4 refreshes, 3 SMS a
second; held entries flat from minute 20): RSS rose in steps of about 2 MB until minute
90 without trimming, and was flat from minute 40 with ``malloc_trim`` once a minute (it
took 0.01 to 0.1 ms). Other C libraries have no ``malloc_trim``: nothing is done there.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

EVERY_S = 60.0


def _malloc_trim() -> Callable[[int], Any] | None:
    try:
        trim: Callable[[int], Any] = ctypes.CDLL(None).malloc_trim  # this process's libc
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Give the free pages of the C heap back to the system; False where that is unknown."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
