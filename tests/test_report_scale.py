"""bench/report_scale's synthetic run directory: what authload reads, in the shape the runner
writes it, with the 503 burst and the fault window in it; `authload report` takes it; the
engines of the engine comparison find numpy's nearest-rank figures."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from authload.rundir.events import FaultEndEvent, FaultStartEvent, read_events
from authload.rundir.files import JOURNEYS_FILE, RECORDS_FILE
from authload.rundir.jsonfiles import read_json
from authload.rundir.records import ERROR_KINDS, JOURNEY_SCHEMA, RECORD_SCHEMA

REPO = Path(__file__).resolve().parents[1]
ROWS, RATE, ROW_GROUP, CHUNK = 50_000, 500.0, 10_000, 7_000  # 100 s, 3 chunks a process


def _bench_module(name: str) -> ModuleType:
    """A module of bench/ (not a package: its scripts import each other by name)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


synthetic = _bench_module("synthetic_run")
engines = _bench_module("report_engines")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("scale") / "run"
    spec = synthetic.Spec(ROWS, seed=3, rate=RATE, row_group_rows=ROW_GROUP, chunk_rows=CHUNK)
    return run_dir, synthetic.generate(run_dir, spec)


@pytest.fixture(scope="module")
def records(made: tuple[Path, dict[str, Any]]) -> pd.DataFrame:
    frame: pd.DataFrame = pq.read_table(made[0] / RECORDS_FILE).to_pandas()
    return frame


def test_requests_parquet_is_the_record_schema_in_row_groups(
    made: tuple[Path, dict[str, Any]],
) -> None:
    path = made[0] / RECORDS_FILE
    assert pq.read_schema(path).equals(RECORD_SCHEMA)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == ROWS
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [ROW_GROUP] * (ROWS // ROW_GROUP)
    assert pq.read_schema(made[0] / JOURNEYS_FILE).equals(JOURNEY_SCHEMA)


def test_the_mix_statuses_and_errors_are_plausible(records: pd.DataFrame) -> None:
    share = records["endpoint"].value_counts(normalize=True)
    assert len(share) == 9
    assert share.index[0] == "mobile.refresh" and share.index[1] == "mobile.lkfl_auth"
    assert (records["status"] == 200).mean() > 0.95
    assert set(records["error"].dropna()) <= set(ERROR_KINDS)
    assert (records.loc[records["status"] == 503, "error"] == "http").all()
    assert records.loc[records["status"] == 0, "error"].notna().all()
    assert set(records.loc[records["error"].isna(), "status"]) <= {200, 400, 401}
    assert records["t_intended"].isna().all()
    assert set(records["worker"]) == {"w0", "w1", "w2"}
    assert (records["latency_ms"] == records["latency_ms"].round(3)).all()
    for _, ops in records[records["attempt"] == 1].groupby("worker")["op_id"]:
        assert ops.is_unique and ops.min() == 1


def test_the_503_burst_and_the_fault_window_are_there(
    made: tuple[Path, dict[str, Any]], records: pd.DataFrame
) -> None:
    burst, hang = made[1]["windows"]["burst_503"], made[1]["windows"]["hang_timeouts"]
    in_burst = records["t"].between(*burst, inclusive="left")
    shed = records["status"] == 503
    assert shed.any() and in_burst[shed].all()
    assert 0.3 < shed[in_burst & (records["attempt"] == 1)].mean() < 0.5
    assert records.loc[shed, "retry_after_s"].isin([1.0, 2.0]).all()
    retries = records[records["attempt"] > 1]
    first = records[records["attempt"] == 1].set_index(["worker", "op_id"])
    parents = first.loc[list(zip(retries["worker"], retries["op_id"], strict=True))]
    assert (parents["endpoint"].to_numpy() == retries["endpoint"].to_numpy()).all()
    assert (parents["t"].to_numpy() < retries["t"].to_numpy()).all()
    timeouts = records["error"] == "timeout"
    assert timeouts.any() and records.loc[timeouts, "t"].between(*hang, inclusive="left").all()
    assert (records.loc[timeouts, "status"] == 0).all()
    assert (records.loc[timeouts, "latency_ms"] == 5000.0).all()
    events = read_events(made[0])
    faults = [e for e in events if isinstance(e, FaultStartEvent | FaultEndEvent)]
    assert [e.t for e in faults] == [burst[0], burst[1], hang[0], hang[1]]


def test_journeys_hold_the_records_flows(
    made: tuple[Path, dict[str, Any]], records: pd.DataFrame
) -> None:
    journeys = pq.read_table(made[0] / JOURNEYS_FILE).to_pandas()
    assert 3.0 < ROWS / len(journeys) < 4.5
    assert set(records["flow_id"]) <= set(journeys["flow_id"])
    outcomes = journeys["outcome"].value_counts()
    assert "stopped" in outcomes  # in flight when the test ended (100 s: many)
    assert outcomes["completed"] / (len(journeys) - outcomes["stopped"]) > 0.97
    assert any(o.startswith("session_lost:") for o in outcomes.index)
    assert any(o.startswith("failed:") for o in outcomes.index)
    assert (journeys["kind"] == "journey").all()
    assert (journeys["t_end"] >= journeys["t_start"]).all()


def test_the_directory_is_cached_by_its_settings(made: tuple[Path, dict[str, Any]]) -> None:
    spec = synthetic.Spec(ROWS, seed=3, rate=RATE, row_group_rows=ROW_GROUP, chunk_rows=CHUNK)
    assert synthetic.cached(made[0], spec)
    assert not synthetic.cached(made[0], synthetic.Spec(ROWS, seed=4, rate=RATE))
    manifest = read_json(made[0] / "manifest.json")
    assert manifest["status"] == "completed" and manifest["records"] == ROWS


def test_authload_summarizes_and_reports_it(made: tuple[Path, dict[str, Any]]) -> None:
    run_dir = made[0]
    summary = engines.summary(run_dir)
    assert summary["requests"] == ROWS
    written = read_json(run_dir / "summary.json")
    assert written["reconciliation"]["match"]
    assert all(g["passed"] for g in written["gates"])  # counts, processes, load offered
    report = subprocess.run(
        [sys.executable, "-m", "authload", "report", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert report.returncode in (0, 1, 3), report.stdout + report.stderr  # the verdict's code
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert f"verdict: {summary['verdict'].upper()}" in report.stdout


def test_every_engine_finds_numpys_nearest_rank(made: tuple[Path, dict[str, Any]]) -> None:
    path = made[0] / RECORDS_FILE
    reference = engines.numpy_figures(path)
    assert reference["endpoints"]["*"]["count"] == ROWS
    assert len(reference["windows"]) == math.ceil(ROWS / RATE / 60.0)
    for name in ("duckdb", "duckdb-counts", "polars", "pyarrow", "pandas"):
        assert engines.ENGINES[name](path) == reference, name


@pytest.mark.parametrize(
    ("text", "rows"),
    [("1e6", 1_000_000), ("10e6", 10_000_000), ("100M", 100_000_000), ("50k", 50_000)],
)
def test_sizes_are_read_either_way(text: str, rows: int) -> None:
    assert synthetic.parse_rows(text) == rows


def test_a_figure_off_by_anything_is_a_mismatch() -> None:
    _bench_module("harness")  # report_scale imports it by name, as synthetic_run
    scale = _bench_module("report_scale")
    want = {"endpoints": {"*": {"count": 3, "p99": 5.0}}, "windows": [[0, 3, 5.0]]}
    assert scale.differences(want, want) == []
    got = {"endpoints": {"*": {"count": 3, "p99": 5.000001}}, "windows": [[0, 3, 4.0]]}
    assert scale.differences(got, want) == [
        "* p99: 5.000001, numpy 5.0",
        "window 0 (count, p99): [3, 4.0], numpy [3, 5.0]",
    ]
