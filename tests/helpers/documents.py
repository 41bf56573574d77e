"""A run directory's manifest and summary as `authload run` writes them, for tests that make
run directories by hand (synthetic records, a comparison's setups, the Pushgateway)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authload.rundir.manifest import Manifest, Runner, Status, write_manifest
from authload.rundir.summary import Summary, write_summary


def manifest(
    directory: Path,
    scenario: dict[str, Any],
    target: str = "mock",
    status: Status = "completed",
    end: str | None = "2025-01-02T03:05:00.000+00:00",
) -> Manifest:
    """Write and return the manifest of a finished run of ``scenario`` (its JSON)."""
    written = Manifest(
        scenario=scenario,
        target=target,
        versions={"authload": "0.1.0"},
        start="2025-01-02T03:04:05.000+00:00",
        end=end,
        status=status,
        processes=1,
        runner=Runner(host="test", pid=1),
    )
    write_manifest(directory, written)
    return written


def summary(directory: Path, **fields: Any) -> Summary:
    """Write and return a summary: a passed run of one request unless ``fields`` say else."""
    data: dict[str, Any] = {
        "scenario": "synthetic",
        "status": "completed",
        "verdict": "pass",
        "duration_s": 1.0,
        "requests": 1,
    }
    written = Summary.model_validate(data | fields)
    write_summary(directory, written)
    return written
