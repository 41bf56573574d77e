"""The mock gives freed heap memory back (glibc's malloc_trim), so its RSS follows what it holds."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
from pathlib import Path
from authload.mock.trim import release_free_memory

def rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

blocks = [bytearray(2000) for _ in range(20_000)]  # 40 MB of heap blocks (not mmap'd)
sentinel = bytearray(2000)  # allocated last: the heap's top is not free, only its middle
before = rss_mb()
del blocks
freed = rss_mb()
assert release_free_memory()
print(round(before - freed), round(before - rss_mb()))
"""


def test_freed_heap_memory_goes_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    kept_by_malloc, given_back = map(int, done.stdout.split())
    assert kept_by_malloc < 5, "freed but still resident: malloc keeps it for reuse"
    assert given_back > 30, "after the trim, the 40 MB are the system's again"
