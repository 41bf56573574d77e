"""What a run or a capacity search says while it goes, through one injected object.

The run and the capacity search never print: they are handed a :class:`Console` and tell it
their lines (:meth:`Console.say`); the child processes they start (Locust, the embedded
mock) write to its :attr:`Console.stream`. The command line hands them one on stderr; a
capacity search hands its steps one on ``capacity.log``; a test hands one that keeps the
lines to read back.
"""

from __future__ import annotations

import sys
from typing import IO


class Console:
    """Lines prefixed with who says them, on ``stream`` (which child processes share)."""

    def __init__(self, stream: IO[str] | None = None, prefix: str = "authload") -> None:
        self._stream = stream
        self.prefix = prefix

    @property
    def stream(self) -> IO[str]:
        """Where lines go, and the output of the child processes started meanwhile. Looked
        up on each use when none was given, so that a redirected ``sys.stderr`` counts."""
        return self._stream if self._stream is not None else sys.stderr

    def say(self, line: str) -> None:
        print(f"{self.prefix}: {line}", file=self.stream, flush=True)

    def named(self, prefix: str) -> Console:
        """The same stream under another name (``authload worker``, ``authload capacity``)."""
        return type(self)(self._stream, prefix)


class RecordingConsole(Console):
    """A console that also keeps what was said (``lines``), for tests and for callers that
    show it elsewhere."""

    def __init__(self, stream: IO[str] | None = None, prefix: str = "authload") -> None:
        super().__init__(stream, prefix)
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)
        super().say(line)

    def named(self, prefix: str) -> Console:
        return self  # one record of everything said
