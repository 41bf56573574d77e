"""Garbage collection of a process that sends or serves requests: a Locust process of
authload's users, and the mock.

Every request allocates containers the collector tracks (Locust's request dicts, response
objects, the flow's context; the server's scope and the mock's request), so CPython's default
first-generation threshold (700) runs a young collection every few dozen requests, and every
full collection walks the process's whole start-up heap (modules, the scenario, accounts,
the mock's contracts and population) again. In a process that does nothing but send or
answer requests that is a large share of its CPU: measured on the refresh loop of
``bench/generator_efficiency``, one process of authload users sent about 13% more requests per
CPU-second with the settings below (0.93 of the bare Locust rate against 0.82); driven
in-process, the mock's login cost 0.6 to 1 us less of its 11.4 us.

So when its test starts (a Locust process) or once it has started (the mock), a process:

- collects once and freezes what is alive (``gc.freeze``): the start-up heap lives as long
  as the process and is never walked again;
- raises the first-generation threshold to ``GEN0_THRESHOLD``. Cycles are still collected,
  only less often; the memory soak (``bench/soak_memory``) checks that memory stays flat.

``AUTHLOAD_GC=default`` keeps CPython's settings (to compare, or to rule the tuning out).
This module imports nothing of authload's: the mock and the load generator share it.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["GC_ENV", "GEN0_THRESHOLD", "MODES", "gc_settings", "tune"]

GC_ENV = "AUTHLOAD_GC"
MODES = ("tuned", "default")
GEN0_THRESHOLD = 10_000


def mode_from_env(environ: Mapping[str, str] = os.environ) -> str:
    value = environ.get(GC_ENV, "").strip() or "tuned"
    if value not in MODES:
        print(
            f"authload: {GC_ENV}={value!r} is not one of {', '.join(MODES)}: using 'tuned'",
            file=sys.stderr,
            flush=True,
        )
        return "tuned"
    return value


_TUNED: list[str] = []  # the mode applied in this process, once


def tune(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Apply the mode ``AUTHLOAD_GC`` names, once per process (a test started again, from
    Locust's web UI, would otherwise freeze the previous test's leftovers for good); the
    settings in force after it."""
    if _TUNED:
        return gc_settings(_TUNED[0])
    mode = mode_from_env(environ)
    if mode == "tuned":
        gc.collect()
        gc.freeze()
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    _TUNED.append(mode)
    return gc_settings(mode)


def gc_settings(mode: str) -> dict[str, Any]:
    """What a run directory records about a process's garbage collection."""
    return {
        "gc": mode,
        "gc_threshold": list(gc.get_threshold()),
        "gc_frozen": gc.get_freeze_count(),
    }
