"""`authload report` on the run directory of a run that never finished."""

from __future__ import annotations

import socket
from pathlib import Path

from authload.children import alive
from authload.errors import InputError
from authload.run.book import died, workers
from authload.rundir.events import LocustEvent, of_kind, read_events
from authload.rundir.files import MANIFEST_FILE
from authload.rundir.manifest import read_manifest, write_manifest
from authload.rundir.records import finalize_records
from authload.rundir.summary import write_summary
from authload.scenario.model import Scenario


def salvage(run_dir: Path) -> bool:
    """Finish the run directory of a run that never finished (its `authload run` was
    killed): merge what its processes recorded and summarize it as ``incomplete``. False
    when the run had finished; an :class:`InputError` while its runner still lives."""
    if not (run_dir / MANIFEST_FILE).is_file():
        return False  # not a run directory: the report says so
    manifest = read_manifest(run_dir)
    if manifest.status != "running":
        return False
    here = socket.gethostname()
    events = read_events(run_dir)
    started = [(e.host, e.pid) for e in of_kind(events, LocustEvent)]
    if manifest.runner is not None:
        started.append((manifest.runner.host, manifest.runner.pid))
    going = [pid for host, pid in started if host == here and alive(pid)]
    if going:
        raise InputError(f"{run_dir}: its run is still going (pid {going[0]})")
    scenario = Scenario.model_validate(manifest.scenario)
    finalized = finalize_records(run_dir)
    manifest.status, manifest.records = "incomplete", finalized.rows
    manifest.torn_spools = finalized.torn
    manifest.died = died(run_dir, finalized.unclosed, events)
    manifest.workers = workers(events)
    write_manifest(run_dir, manifest)
    from authload.analysis.summary import summarize

    write_summary(run_dir, summarize(run_dir, scenario, "incomplete", events))
    return True
