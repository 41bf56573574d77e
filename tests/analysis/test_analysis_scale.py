"""The analysis of a long run: exact nearest-rank figures over every record, in bounded
memory (issue 15).

The run directories here are generated (a seeded mix of endpoints, statuses, timeouts and
retries) so the truth is known: every percentile is checked against the sorted latencies,
read straight from the Parquet file with pyarrow."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from authload.analysis.summary import summarize
from authload.rundir.events import read_events
from authload.rundir.files import RECORDS_FILE
from authload.rundir.records import RECORD_SCHEMA
from authload.scenario.loader import load_scenario
from authload.scenario.slo_grammar import PERCENTILES

REPO = Path(__file__).resolve().parents[2]
ENDPOINTS = ("gigma.login", "gigma.logout", "mobile.lkfl_auth", "mobile.refresh")
ROW_GROUP = 50_000


def write_records(path: Path, rows: int, seed: int = 3, chunk: int = 250_000) -> None:
    """``rows`` records in row groups of :data:`ROW_GROUP`, written a chunk at a time:
    latencies with ties and a long tail, 2% 503s, 0.5% timeouts, retries."""
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, RECORD_SCHEMA) as writer:
        for start in range(0, rows, chunk):
            writer.write_table(_chunk(rng, start, min(chunk, rows - start)), ROW_GROUP)


def _chunk(rng: np.random.Generator, start: int, n: int) -> pa.Table:
    endpoint = np.array(ENDPOINTS)[rng.choice(len(ENDPOINTS), n, p=[0.1, 0.1, 0.3, 0.5])]
    draw = rng.random(n)
    status = np.where(draw < 0.02, 503, np.where(draw < 0.025, 0, 200)).astype(np.int16)
    latency = np.round(rng.lognormal(3.0, 0.9, n), 1)  # 0.1 ms resolution: many ties
    latency = np.where(status == 0, 5000.0, latency)
    error = np.where(status == 503, "http", np.where(status == 0, "timeout", None))
    attempt = np.where(rng.random(n) < 0.03, 2, 1).astype(np.int16)
    return pa.table(
        {
            "t": 1.7e9 + (start + np.arange(n)) / 1000.0,
            "t_intended": pa.nulls(n, pa.float64()),
            "endpoint": endpoint,
            "status": status,
            "latency_ms": latency,
            "bytes": np.full(n, 256, dtype=np.int64),
            "error": pa.array(error.tolist(), pa.string()),
            "retry_after_s": pa.nulls(n, pa.float64()),
            "flow": pa.array(["sms"] * n),
            "flow_id": pa.nulls(n, pa.string()),
            "op_id": start + np.arange(n, dtype=np.int64),
            "attempt": attempt,
            "worker": pa.array(["w1"] * n),
        },
        schema=RECORD_SCHEMA,
    )


def nearest_rank(values: np.ndarray, q: float) -> float:
    """The value at sorted index ceil(n q) - 1: the definition, not a library's."""
    ordered = np.sort(values)
    return float(ordered[max(math.ceil(len(ordered) * q) - 1, 0)])


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("million")
    write_records(run_dir / RECORDS_FILE, 1_000_000)
    return run_dir


def test_summary_percentiles_are_nearest_rank_over_every_record(million: Path) -> None:
    scenario = load_scenario(REPO / "scenarios/smoke.yaml")
    summary = summarize(million, scenario, "completed", read_events(million))
    table = pq.read_table(million / RECORDS_FILE, columns=["endpoint", "latency_ms", "error"])
    endpoint = table["endpoint"].to_numpy(zero_copy_only=False)
    latency = table["latency_ms"].to_numpy()
    expected = table["error"].is_null().to_numpy(zero_copy_only=False)
    for name in (*ENDPOINTS, "*"):
        mine = np.ones(len(latency), bool) if name == "*" else endpoint == name
        row = summary.endpoints[name]
        assert row["count"] == int(mine.sum())
        for stat, q in PERCENTILES.items():
            assert row[stat] == nearest_rank(latency[mine], q), (name, stat)
        assert row["max"] == float(latency[mine].max())
        for stat in ("p50", "p95", "p99"):
            truth = nearest_rank(latency[mine & expected], PERCENTILES[stat])
            assert row["ok"][stat] == truth, (name, "ok", stat)
    assert summary.requests == len(latency)


#: How much the peak RSS may rise while :data:`BUDGET_ROWS` records are analysed: loading
#: them into pandas would add about 1 GB; querying them in place adds about a tenth of that.
BUDGET_MB = 300
BUDGET_ROWS = 3_000_000
#: The child imports everything first and then resets its peak (``clear_refs``), so what
#: is measured is the analysis, not the compiling of a fresh environment's modules.
_MEASURE = """
import sys
from pathlib import Path
import authload.analysis.drift  # imported by the summary on its way
from authload.analysis.summary import summarize
from authload.rundir.events import read_events
from authload.scenario.loader import load_scenario

def kib(field):
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith(field)).split()[1])

scenario = load_scenario(sys.argv[2])
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
before = kib("VmRSS:")
summarize(Path(sys.argv[1]), scenario, "completed", read_events(Path(sys.argv[1])))
print((kib("VmHWM:") - before) // 1024)
"""


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("long")
    write_records(run_dir / RECORDS_FILE, BUDGET_ROWS)
    assert pq.ParquetFile(run_dir / RECORDS_FILE).num_row_groups == BUDGET_ROWS // ROW_GROUP
    return run_dir


def test_summary_reads_by_row_group_in_bounded_memory(long_run: Path) -> None:
    """A regression to "load every record" fails here: the summary runs in a child process
    whose peak memory is measured."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(long_run), str(REPO / "scenarios/smoke.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rise_mb = int(proc.stdout.split()[-1])
    assert rise_mb < BUDGET_MB, f"summary of {BUDGET_ROWS} records took {rise_mb} MB more"
