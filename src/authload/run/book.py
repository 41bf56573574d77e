"""The run directory's book of the run: its name, the manifest (what ran, where, with which
versions), the processes that ran users and those that died."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from authload.errors import AuthloadError
from authload.run.targets import Target
from authload.rundir.events import (
    AbortEvent,
    Event,
    OutcomesEvent,
    WorkerInfo,
    WorkerJoinedEvent,
    WorkerMissingEvent,
    WorkersEvent,
    of_kind,
)
from authload.rundir.files import SPOOL_SUFFIX
from authload.rundir.manifest import DiedProcess, Manifest, Runner
from authload.scenario.model import Scenario


def new_run_dir(out: Path, name: str) -> Path:
    """``OUT/<UTC stamp>-<scenario>``, numbered when runs start in the same second."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        run_dir = out / (f"{stamp}-{name}" if n == 0 else f"{stamp}-{name}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise AuthloadError(f"cannot create a run directory under {out}")


def manifest(scenario: Scenario, target: Target, processes: int) -> Manifest:
    """The manifest of a run starting now."""
    return Manifest(
        scenario=scenario.model_dump(mode="json"),
        target=target.name,
        versions={name: _version(name) for name in ("authload", "locust", "pyarrow")}
        | {"python": platform.python_version()},
        git_revision=_git_revision(),
        start=now(),
        seed=scenario.seed,
        processes=processes,
        runner=Runner(host=socket.gethostname(), pid=os.getpid()),
    )


def workers(events: list[Event]) -> list[WorkerInfo]:
    """The Locust processes that ran users (from the run's events): a distributed run's
    workers as the master listed them (index name, host, Locust client id), else the local
    processes' names."""
    listed = [w for e in of_kind(events, WorkersEvent) for w in e.workers]
    listed += [
        WorkerInfo.model_validate(e, from_attributes=True)
        for e in of_kind(events, WorkerJoinedEvent)
    ]
    if listed:
        return listed
    local = {e.worker for e in of_kind(events, OutcomesEvent)}
    return [WorkerInfo(worker=w) for w in sorted(local)]


def died(run_dir: Path, unclosed: list[str], events: list[Event]) -> list[DiedProcess]:
    """Processes whose record spool was never closed: they died. When: their last record,
    and when Locust's master found them missing (no heartbeat, in the run's ``events``), if
    it did."""
    if not unclosed:
        return []
    from authload.analysis.query import Records

    ends = Records.of_run(run_dir).sql("SELECT worker, max(t) AS t FROM {records} GROUP BY worker")
    lasts = {str(w): float(t) for w, t in zip(ends["worker"], ends["t"], strict=True)}
    missing = {e.worker: e.t for e in of_kind(events, WorkerMissingEvent)}
    found = []
    for spool in unclosed:
        worker = spool.removesuffix(SPOOL_SUFFIX)
        last = lasts.get(worker)
        found.append(
            DiedProcess(
                worker=worker,
                last_record_t=last,
                last_record=None if last is None else iso(last),
                missing_at=None if worker not in missing else iso(missing[worker]),
            )
        )
    return found


def aborted(events: list[Event]) -> bool:
    return bool(of_kind(events, AbortEvent))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
