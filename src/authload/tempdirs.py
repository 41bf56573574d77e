"""Temporary directories named after the host and process that own them.

A process killed outright (SIGKILL, the out-of-memory killer) removes nothing, and what
authload keeps in a temporary directory may hold passwords (a run's configuration). So each
kind of directory is named ``<prefix><host>-<pid>-<random>``, and the next process that
makes one of the same kind removes those whose owner on this host is gone. A directory of
another host (a shared /tmp) or of a living process is never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from authload.children import alive


def owned_dir(prefix: str) -> Path:
    """A new directory of this process (the caller removes it), after removing the ones of
    ``prefix`` left behind by dead processes."""
    sweep(prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{_host()}-{os.getpid()}-"))


@contextmanager
def owned_temp_dir(prefix: str) -> Iterator[Path]:
    """:func:`owned_dir`, removed when the block ends."""
    path = owned_dir(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep(prefix: str) -> list[Path]:
    """Remove the directories of ``prefix`` whose owner, a process of this host, has died;
    the ones removed."""
    mine = f"{prefix}{_host()}-"
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{mine}*"):
        pid = path.name[len(mine) :].split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"
