"""The run's events (``events.jsonl``): what happened besides requests, one JSON line each,
appended by every process of the run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from authload.errors import ResultsError
from authload.rundir.files import EVENTS_FILE


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """Append one event as a JSON line to ``events.jsonl`` (one write, line-buffered).

    The event gets ``t`` (now, unix seconds) first unless it has one.
    """
    line = json.dumps(
        {"t": time.time(), **event}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    with (run_dir / EVENTS_FILE).open("a", encoding="utf-8", buffering=1) as f:
        f.write(line + "\n")


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """The events of a run, in order; none if the file is missing.

    A last line without its newline (the writer was killed mid-line) is ignored if it does
    not parse; any other bad line is a :class:`ResultsError`.
    """
    path = run_dir / EVENTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable: {exc}") from exc
    lines = text.split("\n")
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            if number == len(lines):  # torn last line: no newline after it
                break
            raise ResultsError(f"{path}:{number}: not a JSON line: {exc}") from exc
        if not isinstance(event, dict):
            raise ResultsError(f"{path}:{number}: an event must be a JSON object")
        events.append(event)
    return events
