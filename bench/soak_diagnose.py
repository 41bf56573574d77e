"""soak_memory --diagnose: what grew in the Locust process and in the mock, by source line.

Both processes run with ``AUTHLOAD_TRACEMALLOC_DIR`` set (see ``authload.memtrace``): they
trace their Python allocations and write a snapshot on SIGUSR2. The bench signals both at
two points of the run, loads the pairs and prints, per process, the allocation sites whose
memory grew most between them, each with the frames that led to it.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from harness import BenchError

from authload.memtrace import DIR_ENV, FRAMES_ENV, SIGNAL, SUFFIX

SNAPSHOT_TIMEOUT_S = 120.0  # a snapshot of a large heap takes seconds; Locust checks signals
FRAMES = 8
IGNORED = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<unknown>")


@dataclass(frozen=True)
class Site:
    size_diff: int
    size: int
    count_diff: int
    frames: list[str]


def environment(directory: Path) -> dict[str, str]:
    """What ``authload run`` and the processes it starts need to trace allocations."""
    return {DIR_ENV: str(directory), FRAMES_ENV: str(FRAMES)}


def snapshot(pids: dict[str, int], directory: Path) -> dict[str, Path]:
    """Ask each process (role -> pid) for a snapshot; the files once all are written."""
    before = {p.name for p in directory.glob(f"*{SUFFIX}")}
    for pid in pids.values():
        os.kill(pid, SIGNAL)
    deadline = time.monotonic() + SNAPSHOT_TIMEOUT_S
    while time.monotonic() < deadline:
        found = {role: _new_file(directory, role, pid, before) for role, pid in pids.items()}
        if all(found.values()):
            return {role: path for role, path in found.items() if path is not None}
        time.sleep(0.5)
    raise BenchError(f"no allocation snapshot from {sorted(pids)} within {SNAPSHOT_TIMEOUT_S:g} s")


def _new_file(directory: Path, role: str, pid: int, before: set[str]) -> Path | None:
    new = [p for p in directory.glob(f"{role}-{pid}-*{SUFFIX}") if p.name not in before]
    return new[0] if new else None


def growth(first: Path, second: Path, top: int) -> tuple[int, list[Site]]:
    """Traced memory's change between two snapshots and its ``top`` growing sites."""
    filters = [tracemalloc.Filter(False, name) for name in IGNORED]
    old = tracemalloc.Snapshot.load(str(first)).filter_traces(filters)
    new = tracemalloc.Snapshot.load(str(second)).filter_traces(filters)
    total = sum(s.size for s in new.statistics("filename")) - sum(
        s.size for s in old.statistics("filename")
    )
    diffs = sorted(new.compare_to(old, "traceback"), key=lambda d: d.size_diff, reverse=True)
    sites = [Site(d.size_diff, d.size, d.count_diff, _frames(d.traceback)) for d in diffs[:top]]
    return total, sites


def _frames(traceback: tracemalloc.Traceback) -> list[str]:
    """Innermost first, as file:line, paths shortened to the package."""
    return [f"{_short(f.filename)}:{f.lineno}" for f in reversed(list(traceback))]


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def report(role: str, minutes: tuple[float, float], total: int, sites: list[Site]) -> list[str]:
    lines = [
        f"{role}: traced Python memory {total / 1024:+.0f} KiB from minute {minutes[0]:g} to"
        f" {minutes[1]:g}; the {len(sites)} sites that grew most (innermost frame first):"
    ]
    for site in sites:
        lines.append(
            f"  {site.size_diff / 1024:+9.1f} KiB  {site.count_diff:+8d} blocks"
            f"  (now {site.size / 1024:.1f} KiB)  {site.frames[0] if site.frames else '?'}"
        )
        lines.extend(f"{'':>40}<- {frame}" for frame in site.frames[1:4])
    return lines
