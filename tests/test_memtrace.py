"""Allocation snapshots on SIGUSR2 (bench/soak_memory --diagnose), off unless asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

from authload.memtrace import DIR_ENV, FRAMES_ENV

CHILD = """
import os, signal, time, tracemalloc
from authload import memtrace
where = memtrace.install("probe")
print(where, tracemalloc.is_tracing())
if where is not None:
    kept = [bytearray(1000) for _ in range(500)]  # 500 kB the snapshot must show
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGUSR2)
"""


def _child(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in (DIR_ENV, FRAMES_ENV)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_a_snapshot_per_signal_holding_what_the_process_allocated(tmp_path: Path) -> None:
    out = _child({DIR_ENV: str(tmp_path / "snaps"), FRAMES_ENV: "4"})
    assert out == f"{tmp_path / 'snaps'} True"
    files = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    pid = files[0].split("-")[1]
    assert files == [f"probe-{pid}-1.tracemalloc", f"probe-{pid}-2.tracemalloc"]
    snapshot = tracemalloc.Snapshot.load(str(tmp_path / "snaps" / files[0]))
    assert snapshot.traceback_limit == 4
    from_child = [s for s in snapshot.statistics("lineno") if s.traceback[0].filename == "<string>"]
    assert sum(s.size for s in from_child) >= 500 * 1000


def test_nothing_is_traced_unless_asked(tmp_path: Path) -> None:
    assert _child({}) == "None False"
