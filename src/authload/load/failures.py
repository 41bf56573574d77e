"""How a failed attempt is reported to Locust (the text of its error table), written by
:mod:`authload.load.clients` and read back by the master's verdict so far
(:mod:`authload.load.run_state`), which sees only Locust's aggregated statistics. No Locust
import here, so the run state stays importable without gevent's patching."""

from __future__ import annotations

import re

from authload.rundir.records import ERROR_KINDS

__all__ = ["FAILURE_PATTERN", "failure_message"]

FAILURE_PATTERN = re.compile(rf"(?P<kind>{'|'.join(ERROR_KINDS)}) \(status (?P<status>\d+)\)")


def failure_message(endpoint: str, kind: str, status: int) -> str:
    return f"{endpoint}: {kind} (status {status})"
