"""Snapshots of a process's Python allocations on demand, to find what grows in a long run.

Off unless ``AUTHLOAD_TRACEMALLOC_DIR`` names a directory (``bench/soak_memory --diagnose``
sets it). Then a process that calls :func:`install` traces its allocations with
:mod:`tracemalloc` (``AUTHLOAD_TRACEMALLOC_FRAMES`` frames per allocation, 8 by default) and
writes a snapshot to ``DIR/ROLE-PID-N.tracemalloc`` each time it receives SIGUSR2. Two
snapshots compared (:meth:`tracemalloc.Snapshot.compare_to`) name the lines whose memory grew
between them. Tracing costs CPU and memory: it is for diagnosis, never for a measured run.
"""

from __future__ import annotations

import itertools
import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

DIR_ENV = "AUTHLOAD_TRACEMALLOC_DIR"
FRAMES_ENV = "AUTHLOAD_TRACEMALLOC_FRAMES"
SIGNAL = signal.SIGUSR2
SUFFIX = ".tracemalloc"


def install(role: str) -> Path | None:
    """Trace this process's allocations and dump a snapshot on SIGUSR2, when the environment
    asks for it; the directory the snapshots go to, or None (nothing done)."""
    directory = os.environ.get(DIR_ENV, "").strip()
    if not directory:
        return None
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get(FRAMES_ENV, "8")))
    numbers = itertools.count(1)

    def dump(signum: int, frame: FrameType | None) -> None:
        write_snapshot(target / f"{role}-{os.getpid()}-{next(numbers)}{SUFFIX}")

    signal.signal(SIGNAL, dump)
    return target


def write_snapshot(path: Path) -> None:
    """This process's traced allocations now, written whole (a reader never sees a part)."""
    partial = path.with_name(path.name + ".part")
    tracemalloc.take_snapshot().dump(str(partial))
    partial.rename(path)
