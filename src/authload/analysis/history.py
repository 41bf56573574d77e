"""Run history: every run directory under a root, and the latest run of a scenario judged
against the runs before it.

:func:`index_runs` walks a root (``runs/`` by default) and reads each run directory's
``manifest.json`` and ``summary.json``: scenario, target, git revision, start, duration,
status and verdict. A directory with a ``manifest.json`` is a run; one with a
``capacity.json`` (or, while its first step runs, a ``capacity.log``) is a capacity search,
listed once, its step sub-runs not separately. Other directories are searched
(hidden ones and symbolic links are not). A run whose files cannot be read is skipped and
named with the reason, never fatal.

:func:`compare_latest` takes the latest finished run of a scenario (status completed,
verdict pass or fail, records present) and the ``last`` (5) finished runs of the same
scenario and target before it, and compares them with
:func:`authload.analysis.compare.compare_runs`, the comparison ``authload compare`` makes.
The baseline is the **pooled records** of those runs: one sample of every request they
made (queried where they lie, never loaded together), so a run counts in proportion to its
requests, the baseline's percentiles are exact over all of them, and the bootstrap is the
one ``authload compare`` uses (on a bounded sample of each endpoint's latencies). Pooling
treats the runs as one sample: differences between the baseline runs themselves (a noisy
night) widen nothing, so keep the tolerance above the usual run-to-run spread (the
per-run figures are listed to show it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from authload.analysis.compare import Comparison, compare_runs, endpoint_figures
from authload.analysis.query import Journeys, Records
from authload.errors import InputError, ResultsError
from authload.rundir.capacity import EXIT_BELOW_START, EXIT_FOUND, read_capacity
from authload.rundir.files import (
    CAPACITY_FILE,
    CAPACITY_LOG,
    MANIFEST_FILE,
    RECORDS_FILE,
    SUMMARY_FILE,
)
from authload.rundir.manifest import read_manifest
from authload.rundir.summary import read_summary

__all__ = [
    "CAPACITY_FILE",
    "DEFAULT_LAST",
    "LatestComparison",
    "RunEntry",
    "RunIndex",
    "Skipped",
    "compare_latest",
    "index_runs",
    "parse_since",
]

DEFAULT_LAST = 5
MAX_DEPTH = 4  # directories below the root searched for runs
FINISHED = ("pass", "fail")


@dataclass(frozen=True)
class RunEntry:
    """One run directory (``kind`` ``run``) or capacity search (``capacity``).

    ``duration_s`` is the span of the records (``summary.json``), else end - start;
    ``verdict`` is the summary's (pass, fail, aborted, error), else the manifest's status
    (``running``: never finished). For a capacity search, ``verdict`` is pass when it found
    a capacity (or ran its closed-model steps), fail when even the first step failed, else
    its status, and ``detail`` says what it found."""

    path: Path
    kind: str
    scenario: str | None
    target: str | None
    git_revision: str | None
    start: datetime | None
    end: datetime | None
    duration_s: float | None
    status: str | None
    verdict: str | None
    requests: int | None = None
    processes: int | None = None
    detail: str = ""
    scenario_spec: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """A run that ran to its end and has records to compare."""
        return (
            self.kind == "run"
            and self.status == "completed"
            and self.verdict in FINISHED
            and (self.path / RECORDS_FILE).is_file()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "scenario": self.scenario,
            "target": self.target,
            "git_revision": self.git_revision,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "duration_s": self.duration_s,
            "status": self.status,
            "verdict": self.verdict,
            "requests": self.requests,
            "processes": self.processes,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


@dataclass(frozen=True)
class RunIndex:
    """Runs by start (oldest first; runs without a start first), and what was skipped."""

    root: Path
    runs: list[RunEntry]
    skipped: list[Skipped]

    def filter(
        self,
        scenario: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        verdicts: Iterable[str] | None = None,
    ) -> RunIndex:
        """Only the runs of ``scenario``, on ``target``, started at or after ``since``, with
        one of ``verdicts``; what was skipped stays."""
        wanted = None if verdicts is None else set(verdicts)
        runs = [
            r
            for r in self.runs
            if (scenario is None or r.scenario == scenario)
            and (target is None or r.target == target)
            and (since is None or (r.start is not None and r.start >= since))
            and (wanted is None or r.verdict in wanted)
        ]
        return RunIndex(self.root, runs, self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "runs": [r.to_dict() for r in self.runs],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def index_runs(root: Path | str = "runs") -> RunIndex:
    """Every run directory and capacity search under ``root`` (``root`` itself may be one).
    An :class:`~authload.errors.InputError` if ``root`` is not a directory."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{base}: no such directory of runs")
    runs: list[RunEntry] = []
    skipped: list[Skipped] = []
    for path in _candidates(base, 0):
        try:
            runs.append(_capacity(path) if _is_capacity(path) else _run(path))
        except ResultsError as exc:
            skipped.append(Skipped(path, str(exc).removeprefix(f"{path}/")))
    runs.sort(key=lambda r: (r.start is not None, r.start or _EPOCH, r.path.name))
    return RunIndex(base, runs, skipped)


_EPOCH = datetime.fromtimestamp(0, UTC)


def _is_capacity(path: Path) -> bool:
    return (path / CAPACITY_FILE).is_file() or (path / CAPACITY_LOG).is_file()


def _candidates(path: Path, depth: int) -> Iterator[Path]:
    if (path / MANIFEST_FILE).exists() or _is_capacity(path):
        yield path
        return
    if depth >= MAX_DEPTH:
        return
    try:
        children = sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return
    for child in children:
        if not child.name.startswith("."):
            yield from _candidates(child, depth + 1)


def _run(path: Path) -> RunEntry:
    manifest = read_manifest(path)
    summary = read_summary(path) if (path / SUMMARY_FILE).exists() else None
    start, end = manifest.started_at(), manifest.ended_at()
    duration = None if summary is None else summary.duration_s
    if duration is None and start is not None and end is not None:
        duration = (end - start).total_seconds()
    return RunEntry(
        path=path,
        kind="run",
        scenario=manifest.scenario_name or (None if summary is None else summary.scenario),
        target=manifest.target,
        git_revision=manifest.git_revision,
        start=start,
        end=end,
        duration_s=duration,
        status=manifest.status,
        verdict=manifest.status if summary is None else summary.verdict,
        requests=manifest.records if summary is None else summary.requests,
        processes=manifest.processes,
        scenario_spec=manifest.scenario,
    )


def _capacity(path: Path) -> RunEntry:
    """A capacity search; one whose first step still runs has no capacity.json yet."""
    if not (path / CAPACITY_FILE).exists():
        return RunEntry(path, "capacity", None, None, _step_revision(path), None, None, None,
                        "running", "running")  # fmt: skip
    doc = read_capacity(path)
    verdict = doc.status
    if doc.status == "completed" and doc.exit_code in (EXIT_FOUND, EXIT_BELOW_START):
        verdict = "pass" if doc.exit_code == EXIT_FOUND else "fail"
    level = doc.capacity.level
    found = f"capacity {level:g} {doc.capacity.unit}" if level is not None else doc.capacity.note
    processes = doc.settings.get("processes")
    return RunEntry(
        path=path,
        kind="capacity",
        scenario=doc.scenario,
        target=doc.target,
        git_revision=_step_revision(path),
        start=_time(doc.start),
        end=_time(doc.end),
        duration_s=doc.elapsed_s,
        status=doc.status,
        verdict=verdict,
        processes=processes if isinstance(processes, int) else None,
        detail="; ".join(part for part in (found, _steps(doc.steps)) if part),
    )


def _steps(steps: list[Any]) -> str:
    return f"{len(steps)} step{'' if len(steps) == 1 else 's'}"


def _step_revision(path: Path) -> str | None:
    """A capacity search's git revision: its first step run's."""
    for manifest in sorted(path.glob(f"*/{MANIFEST_FILE}")):
        try:
            return read_manifest(manifest.parent).git_revision
        except ResultsError:
            continue
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A point in time: ISO 8601 (``2025-06-01``, ``2025-06-01T12:00``; UTC unless it says
    otherwise) or an age (``90m``, ``12h``, ``7d``, ``2w``: that long before ``now``)."""
    match = _RELATIVE.match(text)
    if match:
        moment = now or datetime.now(UTC)
        return moment - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    parsed = _time(text.strip().replace("Z", "+00:00"))
    if parsed is None:
        raise InputError(
            f"--since {text!r}: not a time (2025-06-01, 2025-06-01T12:00Z) or an age (12h, 7d)"
        )
    return parsed


# ------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class LatestComparison:
    """The latest run, its baseline runs (oldest first) and the comparison."""

    latest: RunEntry
    baseline: list[RunEntry]
    comparison: Comparison
    baseline_figures: pd.DataFrame  # per baseline run and endpoint: requests, p50/p95/p99 ms
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        figures = json.loads(self.baseline_figures.to_json(orient="records"))
        return {
            "scenario": self.latest.scenario,
            "target": self.latest.target,
            "latest": self.latest.to_dict(),
            "baseline": [r.to_dict() for r in self.baseline],
            "baseline_method": "pooled records",
            "baseline_figures": figures,
            "notes": self.notes,
            **self.comparison.to_dict(),
        }


def compare_latest(
    index: RunIndex,
    scenario: str,
    target: str | None = None,
    last: int = DEFAULT_LAST,
    baseline_verdicts: Iterable[str] | None = None,
    **compare: Any,
) -> LatestComparison:
    """The latest finished run of ``scenario`` (on ``target``, else on any) against the
    ``last`` finished runs of the same scenario and target before it (only those with one of
    ``baseline_verdicts``, if given), pooled (module docstring). ``compare`` goes to
    :func:`~authload.analysis.compare.compare_runs` (``tolerance``, ``confidence``, ...).
    An :class:`~authload.errors.InputError` when there is no such run or no baseline."""
    if last < 1:
        raise InputError(f"--last must be at least 1, not {last}")
    mine = [r for r in index.runs if r.scenario == scenario and r.kind == "run"]
    if target is not None:
        mine = [r for r in mine if r.target == target]
    finished = [r for r in mine if r.finished and r.start is not None]
    where = f" on {target}" if target else ""
    if not finished:
        raise InputError(f"no finished run of {scenario!r}{where} under {index.root}")
    latest = finished[-1]
    notes = [
        f"newer run not compared: {r.path.name} ({r.verdict or r.status})"
        for r in mine
        if r.start is not None and latest.start is not None and r.start > latest.start
    ]
    wanted = None if baseline_verdicts is None else set(baseline_verdicts)
    earlier = [
        r
        for r in finished[:-1]
        if r.target == latest.target and (wanted is None or r.verdict in wanted)
    ]
    baseline = earlier[-last:]
    if not baseline:
        raise InputError(
            f"no earlier finished run of {scenario!r} on {latest.target} under {index.root} "
            f"to compare {latest.path.name} with"
        )
    if len(baseline) < last:
        notes.append(f"baseline of {len(baseline)} runs (fewer than {last} before the latest)")
    notes += [
        f"scenario changed since baseline run {r.path.name}"
        for r in baseline
        if r.scenario_spec and latest.scenario_spec and r.scenario_spec != latest.scenario_spec
    ]
    figures = pd.concat([_figures(r) for r in baseline], ignore_index=True)
    paths = [r.path for r in baseline]
    comparison = compare_runs(
        Records.of_runs(paths),
        Records.of_run(latest.path),
        journeys=(Journeys.of_runs(paths), Journeys.of_run(latest.path)),
        **compare,
    )
    return LatestComparison(latest, baseline, comparison, figures, notes)


def _figures(run: RunEntry) -> pd.DataFrame:
    """Per endpoint and over all: the run's requests, p50, p95, p99 (ms) and error rate."""
    figures = endpoint_figures(Records.of_run(run.path))
    return figures.assign(run=run.path.name)[["run", *figures.columns]]
