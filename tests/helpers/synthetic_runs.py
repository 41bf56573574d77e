"""Synthetic runs with known distributions, and their run directories as far as a comparison
reads them: for the tests of `authload compare` and of the verdict formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from authload.rundir.files import RECORDS_FILE
from authload.rundir.records import RECORD_SCHEMA
from tests.helpers import documents

LOGIN, REFRESH, SMS = "gigma.login", "mobile.refresh", "mobile.phone_request"


def one_endpoint(
    endpoint: str,
    n: int,
    seed: int,
    *,
    scale: float = 1.0,
    tail_scale: float = 1.0,
    error_rate: float = 0.0,
    median_ms: float = 40.0,
) -> pd.DataFrame:
    """``n`` attempts at ``endpoint``: log-normal latencies (median ``median_ms``) times
    ``scale``; those above the distribution's 90th percentile also times ``tail_scale``; a
    share ``error_rate`` answered 503 (latency kept, so answered latencies are unchanged)."""
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(np.log(median_ms), 0.6, n)
    tail = latency > median_ms * np.exp(0.6 * 1.2816)  # the 90th percentile
    latency = np.where(tail, latency * tail_scale, latency) * scale
    failed = rng.random(n) < error_rate
    return pd.DataFrame(
        {
            "t": 1.7e9 + np.arange(n) * 0.01,
            "endpoint": endpoint,
            "status": np.where(failed, 503, 200).astype(np.int16),
            "latency_ms": latency,
            "error": ["http" if f else None for f in failed],
            "worker": "w0",
            "op_id": np.arange(n),  # one attempt per operation: no retries
            "attempt": 1,
        }
    )


def one_run(*parts: pd.DataFrame) -> pd.DataFrame:
    """The records of one run, from its parts (an endpoint's, or some of them retried)."""
    return pd.concat(parts, ignore_index=True)


def write_run(directory: Path, records: pd.DataFrame, retry: str = "none") -> Path:
    """A run directory as `authload run` leaves it, as far as a comparison reads it."""
    directory.mkdir(parents=True)
    n = len(records)
    table = pa.table(
        {
            "t": pa.array(records["t"], pa.float64()),
            "t_intended": pa.nulls(n, pa.float64()),
            "endpoint": pa.array(records["endpoint"], pa.string()),
            "status": pa.array(records["status"], pa.int16()),
            "latency_ms": pa.array(records["latency_ms"], pa.float64()),
            "bytes": pa.array(np.full(n, 512), pa.int64()),
            "error": pa.array(records["error"], pa.string(), from_pandas=True),
            "retry_after_s": pa.nulls(n, pa.float64()),
            "flow": pa.array(["password_call"] * n, pa.string()),
            "flow_id": pa.array([f"f{i}" for i in range(n)], pa.string()),
            "op_id": pa.array(records["op_id"], pa.int64()),
            "attempt": pa.array(records["attempt"], pa.int16()),
            "worker": pa.array(records["worker"], pa.string()),
        },
        schema=RECORD_SCHEMA,
    )
    pq.write_table(table, directory / RECORDS_FILE)
    scenario = {"name": "synthetic", "load": {"model": "open"}, "retry": {"policy": retry}}
    documents.manifest(directory, scenario)
    return directory
