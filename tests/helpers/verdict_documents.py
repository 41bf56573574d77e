"""The JUnit schema CI systems use (junit-10, tests/data/junit-10.xsd) and a capacity.json as
`authload capacity` writes it: for the tests of the verdict formats and of the commands that
write them."""

from __future__ import annotations

import copy
from pathlib import Path

import xmlschema

from authload.rundir.capacity import CapacityDocument

SCHEMA = xmlschema.XMLSchema(Path(__file__).parents[1] / "data" / "junit-10.xsd")


def capacity(exit_code: int = 0) -> CapacityDocument:
    """A capacity.json as `authload capacity` writes it: a step that passed and one that
    failed (``exit_code`` 0), or only the failed one (capacity below the start)."""
    step = {
        "index": 1, "level": 50.0, "verdict": "pass", "run_dir": "20261123T140243Z-capacity",
        "throughput_rps": 50.0, "ok_rps": 50.0, "p99_ms": 108.4, "error_rate": 0.0,
        "slos": [{"slo": "p99(mobile.lkfl_auth) < 160ms", "value": 108.4, "threshold": 160.0,
                  "passed": True, "count": 400, "endpoint": "mobile.lkfl_auth",
                  "severity": 0.68}],
    }  # fmt: skip
    failed = copy.deepcopy(step) | {"index": 2, "level": 75.0, "verdict": "fail"}
    failed["slos"][0] |= {"value": 324.6, "passed": False}
    found = exit_code == 0
    return CapacityDocument.model_validate({
        "scenario": "capacity", "scenario_file": "scenarios/capacity.yaml", "mode": "open",
        "unit": "journeys/s", "target": "mock", "status": "completed",
        "stop_reason": "precision", "stop_detail": "", "start": "2026-11-23T14:02:43+00:00",
        "end": "2026-11-23T14:04:43+00:00", "elapsed_s": 120.5, "exit_code": exit_code,
        "settings": {"processes": 1}, "slos": ["p99(mobile.lkfl_auth) < 160ms"], "usl": None,
        "capacity": {
            "level": 50.0 if found else None, "unit": "journeys/s",
            "bracket": [50.0, 75.0] if found else [None, 75.0], "found": found, "bounded": True,
            "ok_rps": 50.0 if found else None, "p99_ms": 108.4 if found else None,
            "note": "capacity 50 journeys/s: the highest level that met every SLO" if found
            else "capacity below the start: the first step (75 journeys/s) already failed its "
            "SLOs; try a lower --start",
        },
        "knee": None, "first_breach": None,
        "steps": [step, failed] if found else [failed],
    })  # fmt: skip
