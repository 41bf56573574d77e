"""Locust's own statistics, kept to a bounded size however long the run.

A Locust process that keeps the run's statistics (the only process, or the master) grows
with run length in two places of :class:`locust.stats.RequestStats`, found by
``bench/soak_memory --diagnose`` (about 5 MB an hour at 28 requests/s):

- every endpoint's entry, and the total, counts requests and failures per second of the
  run (``num_reqs_per_sec``, ``num_fail_per_sec``: a key a second, never dropped), of which
  Locust reads only the last 12 s (``current_rps``, ``current_fail_per_sec``);
- ``history``, a point every 5 s for the charts of ``locust.html``.

Every ``TRIM_EVERY_S`` the per-second counts older than ``KEEP_S`` are dropped, and a history
longer than ``MAX_POINTS`` keeps every other point: the charts still cover the whole run, the
older part at a coarser step. authload's own figures come from its records, not from these.

A history point takes about 1.07 KB: at one every 5 s, 0.77 MB an hour, which was all of
the Locust process's growth left in the release-gate soaks (+0.73 to +0.78 MB/h) while the
bound was 2000 points, reached only after 2.8 hours. ``MAX_POINTS`` is reached within the
soak's 10-minute warm-up instead; from then on the history holds 60 to 120 points (65 to
130 KB) however long the run.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust.stats import RequestStats

KEEP_S = 60  # per-second counts kept; Locust reads the last 12 s
TRIM_EVERY_S = 30.0
MAX_POINTS = 120  # history points: 10 minutes at Locust's 5 s, then thinned


def trim(stats: RequestStats, now: float) -> None:
    """Drop what no reader needs any more (see the module's doc)."""
    oldest = int(now) - KEEP_S
    for entry in (stats.total, *stats.entries.values()):
        for per_second in (entry.num_reqs_per_sec, entry.num_fail_per_sec):
            for second in [s for s in per_second if s < oldest]:
                del per_second[second]
    if len(stats.history) > MAX_POINTS:
        stats.history[:] = stats.history[::2]


def keep_bounded(runner: Any) -> None:
    """Trim the runner's statistics until its test stops (a greenlet of its own)."""
    while runner.state not in ("stopped", "quitting"):
        gevent.sleep(TRIM_EVERY_S)
        trim(runner.stats, time.time())
