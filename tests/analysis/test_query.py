"""The analysis engine's own helpers: exact quantiles in bounded memory, pooled runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from authload.analysis.query import (
    MEMORY_ENV,
    Journeys,
    Records,
    exact_quantiles,
    window_index,
)
from authload.errors import ResultsError
from authload.rundir.files import MANIFEST_FILE, RECORDS_FILE
from authload.rundir.records import RECORD_SCHEMA

QS = [0.0, 0.001, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


def quantiles(column: str, qs: list[float]) -> str:
    """DuckDB's own nearest rank, the reference: it holds every value of a group."""
    return f"quantile_disc({column}, [{', '.join(map(repr, qs))}])"


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Latencies with ties (rounded to 0 to 3 decimals), zeros and a few negatives."""
    rng = np.random.default_rng(seed)
    latency = np.round(rng.lognormal(3, 1, n), rng.integers(0, 4))
    latency[rng.random(n) < 0.1] = 0.0
    latency[rng.random(n) < 0.01] = -1.5
    return pd.DataFrame(
        {
            "t": rng.uniform(0, 100, n),
            "endpoint": rng.choice(["a", "b", "c"], n),
            "status": 200,
            "latency_ms": latency,
        }
    )


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 5000, 100_000])
def test_exact_quantiles_are_quantile_disc_per_group_and_over_all(n: int) -> None:
    records = Records.of_frame(_frame(n, n))
    window = "floor(t / 10)::BIGINT"
    groups = {"endpoint": "endpoint", "w": window}
    got = exact_quantiles(records, "latency_ms", QS, groups, overall=True)
    expected = records.sql(
        f"""SELECT endpoint, {window} AS w, grouping(endpoint, {window}) <> 0 AS grouped,
            {quantiles("latency_ms", QS)} AS q
        FROM {{records}} GROUP BY GROUPING SETS ((endpoint, {window}), ())"""
    )
    both = got.merge(expected, on=["endpoint", "w", "grouped"], suffixes=("", "_disc"))
    assert len(both) == len(got) == len(expected)
    assert [list(q) for q in both["q"]] == [list(q) for q in both["q_disc"]]
    overall = got.loc[got["grouped"], "q"].iloc[0]
    values = records.frame()["latency_ms"]
    assert list(overall) == [np.quantile(values, q, method="inverted_cdf") for q in QS]


def test_exact_quantiles_filter_and_no_groups() -> None:
    records = Records.of_frame(_frame(1000, 1).assign(status=[0, 200] * 500))
    answered = records.frame()
    answered = answered[answered["status"] > 0]["latency_ms"]
    got = exact_quantiles(records, "latency_ms", [0.5, 0.99], where="status > ?", params=[0])
    assert list(got.columns) == ["grouped", "q"]
    assert list(got["q"].iloc[0]) == list(np.quantile(answered, [0.5, 0.99], method="inverted_cdf"))
    assert exact_quantiles(records, "latency_ms", [0.5], where="FALSE").empty


def test_exact_quantiles_stay_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """quantile_disc keeps every value of a group and fails past the memory limit; the
    counting passes do not."""
    monkeypatch.setenv(MEMORY_ENV, "16MB")
    frame = _frame(2_000_000, 7)
    records = Records.of_frame(frame)
    with pytest.raises(ResultsError, match="Out of Memory"):
        records.sql(f"SELECT {quantiles('latency_ms', [0.5])} AS q FROM {{records}}")
    got = exact_quantiles(records, "latency_ms", [0.5, 0.99])
    expected = np.quantile(frame["latency_ms"], [0.5, 0.99], method="inverted_cdf")
    assert list(got["q"].iloc[0]) == list(expected)


def test_window_index_is_numpys_floor() -> None:
    t = np.array([99.999, 100.0, 100.0 + 1e-9, 104.999999, 105.0, 1e9 + 0.3])
    records = Records.of_frame(pd.DataFrame({"t": t, "endpoint": "a", "status": 0}))
    got = records.sql(f"SELECT {window_index(100.0, 5.0)} AS w FROM {{records}}")["w"]
    assert list(got) == list(np.floor((t - 100.0) / 5.0).astype(np.int64))


def _run(directory: Path, workers: list[str]) -> Path:
    directory.mkdir()
    n = len(workers)
    columns = {
        "t": np.arange(n, dtype=float),
        "endpoint": ["e"] * n,
        "status": np.full(n, 200, dtype=np.int16),
        "latency_ms": np.ones(n),
        "bytes": np.zeros(n, dtype=np.int64),
        "op_id": np.arange(n),
        "attempt": np.ones(n, dtype=np.int16),
        "worker": workers,
    }
    table = pa.table(
        {f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in RECORD_SCHEMA},
        schema=RECORD_SCHEMA,
    )
    pq.write_table(table, directory / RECORDS_FILE)
    (directory / MANIFEST_FILE).write_text(json.dumps({}), encoding="utf-8")
    return directory


def test_pooled_runs_keep_their_operations_apart(tmp_path: Path) -> None:
    first, second = _run(tmp_path / "r1", ["w0", "w1"]), _run(tmp_path / "r2", ["w0"])
    pooled = Records.of_runs([first, second])
    assert len(pooled) == 3
    assert sorted(pooled["worker"]) == ["r1/w0", "r1/w1", "r2/w0"]
    assert pooled.columns == list(RECORD_SCHEMA.names)
    narrow = Records.of_run(first, columns=["endpoint", "latency_ms"])
    assert narrow.columns == ["endpoint", "latency_ms"]
    with pytest.raises(ResultsError, match="unknown columns"):
        Records.of_run(first, columns=["nope"])
    assert Journeys.of_runs([first, second]).empty  # runs without journey records


def test_a_selection_is_queried_as_the_table_itself() -> None:
    records = Records.of_frame(_frame(1000, 3))
    window = records.selection("t >= 50")
    assert window.name == records.name == "records"
    assert len(window) == int((records.frame()["t"] >= 50).sum())
    assert window.frame()["t"].min() >= 50
    per_endpoint = window.per_group("endpoint", "count(*) AS n")
    assert per_endpoint["n"].iloc[-1] == len(window)
