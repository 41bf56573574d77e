"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import contextlib
import os
import signal


def die_with_parent() -> None:
    """In a child process (``preexec_fn``; Linux): it gets SIGTERM when the process that
    started it dies, so a child in a session of its own (out of reach of a terminal's
    Ctrl-C) is never left behind."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def alive(pid: int) -> bool:
    """Whether a process of this host is running (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
