"""`authload report` on the run directory of a run that never finished."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from authload.errors import InputError
from authload.run.book import died, workers
from authload.rundir.events import read_events
from authload.rundir.files import MANIFEST_FILE, SUMMARY_FILE
from authload.rundir.jsonfiles import read_json, write_json
from authload.rundir.records import finalize_records
from authload.scenario.model import Scenario


def salvage(run_dir: Path) -> bool:
    """Finish the run directory of a run that never finished (its `authload run` was
    killed): merge what its processes recorded and summarize it as ``incomplete``. False
    when the run had finished; an :class:`InputError` while its runner still lives."""
    if not (run_dir / MANIFEST_FILE).is_file():
        return False  # not a run directory: the report says so
    manifest = read_json(run_dir / MANIFEST_FILE)
    if manifest.get("status") != "running":
        return False
    here = socket.gethostname()
    started = [manifest.get("runner") or {}]
    started += [e for e in read_events(run_dir) if e.get("kind") == "locust"]
    going = [p["pid"] for p in started if p.get("host") == here and _alive(p.get("pid"))]
    if going:
        raise InputError(f"{run_dir}: its run is still going (pid {going[0]})")
    scenario = Scenario.model_validate(manifest["scenario"])
    finalized = finalize_records(run_dir)
    manifest.update(
        status="incomplete",
        records=finalized.rows,
        torn_spools=finalized.torn,
        died=died(run_dir, finalized.unclosed),
        workers=workers(run_dir),
    )
    write_json(run_dir / MANIFEST_FILE, manifest)
    from authload.analysis.summary import summarize

    write_json(run_dir / SUMMARY_FILE, summarize(run_dir, scenario, "incomplete"))
    return True


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
