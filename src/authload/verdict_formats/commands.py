"""The formats of each command's verdict: what ``run``/``report``, ``compare`` and
``capacity`` write for ``--junit`` and ``--summary-md`` (the CLI only passes its flags)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from authload.errors import ResultsError
from authload.rundir.capacity import CapacityDocument
from authload.rundir.files import CAPACITY_REPORT_FILE, REPORT_FILE
from authload.rundir.manifest import read_manifest
from authload.rundir.summary import Summary, read_summary
from authload.verdict_formats import outputs
from authload.verdict_formats.capacity_cases import capacity_suite
from authload.verdict_formats.cases import Suite, run_suite
from authload.verdict_formats.compare_cases import comparison_suite
from authload.verdict_formats.markdown import (
    capacity_markdown,
    comparison_markdown,
    run_markdown,
)
from authload.verdict_formats.outputs import Destinations


def for_run(destinations: Destinations, run_dir: Path, summary: Summary) -> None:
    """A run's verdict (``authload run``, ``authload report``)."""
    if not destinations.wanted:
        return
    suite = suite_of_run(run_dir, summary)
    _done(outputs.write(destinations, [suite], lambda: run_markdown(summary, suite)))


def for_comparison(
    destinations: Destinations, base: Path, candidate: Path, comparison: Mapping[str, Any]
) -> None:
    """A comparison's verdict (``authload compare``): its rows, and in the Markdown the
    candidate run's own summary when it has one."""
    if not destinations.wanted:
        return
    summary = _summary(candidate)
    suite = comparison_suite(
        comparison,
        f"compare {base.name} -> {candidate.name}",
        duration_s=summary.duration_s if summary is not None else 0.0,
        timestamp=_start(candidate),
        report=_report(candidate, REPORT_FILE),
    )

    def markdown() -> str:
        run = None if summary is None else (summary, suite_of_run(candidate, summary))
        return comparison_markdown(suite, comparison, run)

    _done(outputs.write(destinations, [suite], markdown))


def for_capacity(destinations: Destinations, directory: Path, data: CapacityDocument) -> None:
    """A capacity search's verdict (``authload capacity``)."""
    if not destinations.wanted:
        return
    suite = capacity_suite(
        data,
        f"capacity {directory.name}",
        report=_report(directory, CAPACITY_REPORT_FILE),
    )
    _done(outputs.write(destinations, [suite], lambda: capacity_markdown(data, suite)))


def suite_of_run(run_dir: Path, summary: Summary) -> Suite:
    return run_suite(
        summary,
        run_dir.name,
        report=_report(run_dir, REPORT_FILE),
        timestamp=_start(run_dir),
    )


def _report(directory: Path, name: str) -> str | None:
    path = directory / name
    return path.as_posix() if path.is_file() else None


def _start(run_dir: Path) -> str | None:
    try:
        return read_manifest(run_dir).start
    except ResultsError:
        return None


def _summary(run_dir: Path) -> Summary | None:
    try:
        return read_summary(run_dir)
    except ResultsError:
        return None


def _done(written: list[str]) -> None:
    for name in written:
        print(f"authload: wrote {name}", file=sys.stderr)
