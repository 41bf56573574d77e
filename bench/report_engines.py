#!/usr/bin/env python3
"""What bench/report_scale.py runs in each child process, one task per process.

    report_engines.py summary RUN_DIR OUT       summary.json of RUN_DIR, as `authload run` makes it
    report_engines.py naive REQUESTS OUT        pd.read_parquet + groupby quantile (the peer)
    report_engines.py ENGINE REQUESTS OUT       the exact figures with ENGINE

ENGINE is ``buckets`` (authload's ``exact_quantiles``), ``duckdb`` (``quantile_disc``),
``duckdb-counts`` (the same ranks from the counts
of each distinct latency), ``polars``, ``pyarrow``, ``pandas`` or ``numpy`` (the reference).
The figures: nearest-rank p50, p90, p95, p99, p99.9 and max of ``latency_ms`` per endpoint and
over all (``*``), and p99 per 60 s window of the answered requests (status > 0), windows
counted from the first record's ``t``, as authload's timeline cuts them. Nearest rank: the
value at sorted index ceil(n q) - 1, numpy's ``method="inverted_cdf"``. Each writes OUT as
JSON (floats exact: JSON keeps every bit of a float).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
WINDOW_S = 60.0
WINDOW_Q = 0.99
COLUMNS = ["t", "endpoint", "status", "latency_ms"]
DUCKDB_MEMORY = os.environ.get("REPORT_SCALE_DUCKDB_MEMORY", "1GB")
DUCKDB_THREADS = 2

Figures = dict[str, Any]
Floats = npt.NDArray[np.float64]


def _row(count: int, values: Iterable[Any], top: float) -> dict[str, Any]:
    return {"count": count, **dict(zip(QUANTILES, map(float, values), strict=True)), "max": top}


def _figures(endpoints: dict[str, dict[str, Any]], windows: list[list[float]]) -> Figures:
    return {"endpoints": dict(sorted(endpoints.items())), "windows": sorted(windows)}


def _nearest_rank(ordered: Floats, q: float) -> float:
    """The value at sorted index ceil(n q) - 1 (numpy's inverted_cdf)."""
    n = len(ordered)
    return float(ordered[min(max(int(np.ceil(n * q)) - 1, 0), n - 1)])


# --- engines ------------------------------------------------------------------------------


@contextlib.contextmanager
def _duckdb() -> Iterator[Any]:
    """A DuckDB connection with the bench's memory limit and threads, spilling to a
    scratch directory removed afterwards."""
    import duckdb

    scratch = tempfile.mkdtemp(prefix="report_scale-duckdb-")
    try:
        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        con.execute(f"SET threads = {DUCKDB_THREADS}")
        con.execute(f"SET temp_directory = '{scratch}'")
        yield con
        con.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_WINDOW = f"CAST(floor((r.t - s.t0) / {WINDOW_S!r}) AS BIGINT)"


def duckdb_figures(path: Path) -> Figures:
    """``quantile_disc``: DuckDB's nearest rank."""
    qs = ", ".join(repr(q) for q in QUANTILES.values())
    with _duckdb() as con:
        rows = con.execute(
            f"""SELECT CASE WHEN grouping(endpoint) = 1 THEN '*' ELSE endpoint END,
                       count(*), quantile_disc(latency_ms, [{qs}]), max(latency_ms)
                FROM read_parquet(?) GROUP BY GROUPING SETS ((endpoint), ())""",
            [str(path)],
        ).fetchall()
        windows = con.execute(
            f"""WITH s AS (SELECT min(t) AS t0 FROM read_parquet($1))
                SELECT {_WINDOW} AS w, count(*), quantile_disc(r.latency_ms, {WINDOW_Q!r})
                FROM read_parquet($1) AS r, s WHERE r.status > 0 GROUP BY w""",
            [str(path)],
        ).fetchall()
    endpoints = {str(name): _row(int(n), list(qv), float(top)) for name, n, qv, top in rows}
    return _figures(endpoints, [[int(w), int(n), float(p)] for w, n, p in windows])


def _picked(total: str) -> str:
    """SQL: each quantile as the smallest value whose running count reaches its rank."""
    rank = "greatest(ceil(CAST({total} AS DOUBLE) * {q!r}), 1)"
    return ", ".join(
        f"min(latency_ms) FILTER (WHERE below >= {rank.format(total=total, q=q)})"
        for q in QUANTILES.values()
    )


def duckdb_counts_figures(path: Path) -> Figures:
    """The same nearest rank from counts: latencies are recorded to 0.001 ms, so a group
    holds far fewer distinct values than rows; counting them is an ordinary aggregate, which
    DuckDB spills to disk, where ``quantile_disc`` keeps every value of a group in memory."""
    with _duckdb() as con:
        rows = con.execute(
            f"""WITH counted AS (
                    SELECT endpoint, latency_ms, count(*) AS n FROM read_parquet(?) GROUP BY ALL),
                pooled AS (
                    SELECT * FROM counted
                    UNION ALL SELECT '*', latency_ms, sum(n) FROM counted GROUP BY latency_ms),
                ranked AS (
                    SELECT endpoint, latency_ms,
                           sum(n) OVER (PARTITION BY endpoint ORDER BY latency_ms) AS below,
                           sum(n) OVER (PARTITION BY endpoint) AS total
                    FROM pooled)
                SELECT endpoint, max(total), {_picked("total")}, max(latency_ms)
                FROM ranked GROUP BY endpoint""",
            [str(path)],
        ).fetchall()
        windows = con.execute(
            f"""WITH s AS (SELECT min(t) AS t0 FROM read_parquet($1)),
                counted AS (
                    SELECT {_WINDOW} AS w, r.latency_ms, count(*) AS n
                    FROM read_parquet($1) AS r, s WHERE r.status > 0 GROUP BY ALL),
                ranked AS (
                    SELECT w, latency_ms,
                           sum(n) OVER (PARTITION BY w ORDER BY latency_ms) AS below,
                           sum(n) OVER (PARTITION BY w) AS total
                    FROM counted)
                SELECT w, max(total), min(latency_ms) FILTER (
                    WHERE below >= ceil(CAST(total AS DOUBLE) * {WINDOW_Q!r}))
                FROM ranked GROUP BY w""",
            [str(path)],
        ).fetchall()
    endpoints = {
        str(r[0]): _row(int(r[1]), [float(v) for v in r[2:-1]], float(r[-1])) for r in rows
    }
    return _figures(endpoints, [[int(w), int(n), float(p)] for w, n, p in windows])


def polars_figures(path: Path) -> Figures:
    import polars as pl

    # "equiprobable" is polars' nearest rank: the value at sorted index ceil(n q) - 1
    def stats() -> list[pl.Expr]:
        latency = pl.col("latency_ms")
        return [
            pl.len().alias("count"),
            *(latency.quantile(q, "equiprobable").alias(k) for k, q in QUANTILES.items()),
            latency.max().alias("max"),
        ]

    scan = pl.scan_parquet(path)
    t0 = scan.select(pl.col("t").min()).collect(engine="streaming").item()
    window = ((pl.col("t") - t0) / WINDOW_S).floor().cast(pl.Int64).alias("w")
    per, overall, windows = pl.collect_all(
        [
            scan.group_by("endpoint").agg(stats()),
            scan.select(stats()).with_columns(pl.lit("*").alias("endpoint")),
            scan.filter(pl.col("status") > 0)
            .group_by(window)
            .agg(
                pl.len().alias("count"),
                pl.col("latency_ms").quantile(WINDOW_Q, "equiprobable").alias("p99"),
            ),
        ],
        engine="streaming",
    )
    endpoints = {
        str(r["endpoint"]): _row(int(r["count"]), [r[k] for k in QUANTILES], float(r["max"]))
        for r in [*per.iter_rows(named=True), *overall.iter_rows(named=True)]
    }
    return _figures(endpoints, [[int(w), int(n), float(p)] for w, n, p in windows.iter_rows()])


def pyarrow_figures(path: Path) -> Figures:
    """pyarrow.compute's quantile has no nearest rank (``lower``, ``higher`` and ``nearest``
    differ from it): the values are sorted with ``array_sort_indices`` and picked."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    table = pq.read_table(path, columns=COLUMNS, read_dictionary=["endpoint"])
    table = table.unify_dictionaries().combine_chunks()
    endpoint = table["endpoint"].chunk(0)
    latency = table["latency_ms"].chunk(0)

    def row(values: pa.Array) -> dict[str, Any]:
        ordered = pc.take(values, pc.array_sort_indices(values)).to_numpy()
        picked = [_nearest_rank(ordered, q) for q in QUANTILES.values()]
        return _row(len(ordered), picked, float(ordered[-1]))

    endpoints = {
        str(name): row(pc.filter(latency, pc.equal(endpoint.indices, code)))
        for code, name in enumerate(endpoint.dictionary.to_pylist())
    }
    endpoints["*"] = row(latency)
    t0 = pc.min(table["t"])
    window = pc.cast(pc.floor(pc.divide(pc.subtract(table["t"], t0), WINDOW_S)), pa.int64())
    answered = pc.greater(table["status"], 0)
    del table
    by_window = pa.table(
        {"w": pc.filter(window, answered), "latency": pc.filter(latency, answered)}
    ).sort_by([("w", "ascending"), ("latency", "ascending")])
    counts = pc.value_counts(by_window["w"])  # in order of appearance: sorted
    sizes = counts.field("counts").to_numpy()
    starts = np.cumsum(sizes) - sizes
    ordered = by_window["latency"].to_numpy()
    windows = [
        [int(w), int(n), _nearest_rank(ordered[s : s + n], WINDOW_Q)]
        for w, n, s in zip(counts.field("values").to_pylist(), sizes, starts, strict=True)
    ]
    return _figures(endpoints, windows)


def pandas_figures(path: Path) -> Figures:
    """The naive way: every column into pandas, then numpy's nearest rank per group."""
    import pandas as pd

    frame = pd.read_parquet(path)
    qs = list(QUANTILES.values())

    def row(values: pd.Series) -> dict[str, Any]:
        array = values.to_numpy()
        return _row(len(array), np.quantile(array, qs, method="inverted_cdf"), float(array.max()))

    endpoints = {str(k): row(g) for k, g in frame.groupby("endpoint")["latency_ms"]}
    endpoints["*"] = row(frame["latency_ms"])
    answered = frame[frame["status"] > 0]
    window = np.floor((answered["t"] - frame["t"].min()) / WINDOW_S).astype("int64")

    def p99_of(values: pd.Series) -> float:
        return float(np.quantile(values.to_numpy(), WINDOW_Q, method="inverted_cdf"))

    p99 = answered.groupby(window)["latency_ms"].agg(["size", p99_of])
    windows = [
        [int(w), int(n), float(p)] for w, (n, p) in zip(p99.index, p99.to_numpy(), strict=True)
    ]
    return _figures(endpoints, windows)


def numpy_figures(path: Path) -> Figures:
    """The reference: ``np.quantile(..., method="inverted_cdf")`` on each group."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=COLUMNS, read_dictionary=["endpoint"])
    table = table.unify_dictionaries().combine_chunks()
    names = table["endpoint"].chunk(0).dictionary.to_pylist()
    codes = table["endpoint"].chunk(0).indices.to_numpy()
    latency = table["latency_ms"].to_numpy()
    t = table["t"].to_numpy()
    status = table["status"].to_numpy()
    del table
    qs = list(QUANTILES.values())

    def row(values: Floats) -> dict[str, Any]:
        return _row(len(values), np.quantile(values, qs, method="inverted_cdf"), values.max())

    endpoints = {str(name): row(latency[codes == i]) for i, name in enumerate(names)}
    endpoints["*"] = row(latency)
    answered = status > 0
    window = np.floor((t[answered] - t.min()) / WINDOW_S).astype(np.int64)
    values = latency[answered]
    order = np.argsort(window, kind="stable")
    keys, first = np.unique(window[order], return_index=True)
    groups = np.split(values[order], first[1:])
    windows = [
        [int(w), len(g), float(np.quantile(g, WINDOW_Q, method="inverted_cdf"))]
        for w, g in zip(keys, groups, strict=True)
    ]
    return _figures(endpoints, windows)


def buckets_figures(path: Path) -> Figures:
    """authload's own: :func:`authload.analysis.query.exact_quantiles`, counts per bucket of a
    double's bits, then the distinct values of the buckets holding a wanted rank (two passes
    of aggregates DuckDB spills), on the bench's memory limit."""
    os.environ["AUTHLOAD_ANALYSIS_MEMORY"] = DUCKDB_MEMORY
    from authload.analysis.query import Records, exact_quantiles, window_index

    records = Records.of_run(path.parent, columns=COLUMNS)
    qs = tuple(QUANTILES.values())
    found = exact_quantiles(records, "latency_ms", qs, {"endpoint": "endpoint"}, overall=True)
    tops = records.sql(
        "SELECT coalesce(endpoint, '*') AS e, count(*) AS n, max(latency_ms) AS top "
        "FROM {records} GROUP BY ROLLUP (endpoint)"
    )
    top = {str(e): (int(n), float(m)) for e, n, m in tops.itertuples(index=False)}
    names = ["*" if g else str(e) for e, g in zip(found["endpoint"], found["grouped"], strict=True)]
    endpoints = {
        name: _row(top[name][0], list(q), top[name][1])
        for name, q in zip(names, found["q"], strict=True)
    }
    start = float(records.row("SELECT min(t) AS t0 FROM {records}")["t0"])
    window = window_index(start, WINDOW_S)
    per = exact_quantiles(records, "latency_ms", (WINDOW_Q,), {"w": window}, "status > 0")
    counts = records.sql(
        f"SELECT {window} AS w, count(*) AS n FROM {{records}} WHERE status > 0 GROUP BY w"
    )
    n_of = dict(zip(counts["w"], counts["n"], strict=True))
    windows = [[int(w), int(n_of[w]), float(q[0])] for w, q in zip(per["w"], per["q"], strict=True)]
    return _figures(endpoints, windows)


ENGINES: dict[str, Callable[[Path], Figures]] = {
    "buckets": buckets_figures,
    "duckdb": duckdb_figures,
    "duckdb-counts": duckdb_counts_figures,
    "polars": polars_figures,
    "pyarrow": pyarrow_figures,
    "pandas": pandas_figures,
    "numpy": numpy_figures,
}


# --- the report_scale steps ---------------------------------------------------------------


def summary(run_dir: Path) -> dict[str, Any]:
    """summary.json as `authload run` writes it after the load: authload's own summarize()
    with release-gate.yaml stretched to the run's length."""
    from synthetic_run import MARKER, scenario_for

    from authload.analysis.summary import summarize
    from authload.rundir.events import read_events
    from authload.rundir.jsonfiles import read_json
    from authload.rundir.summary import write_summary

    duration = float(read_json(run_dir / MARKER)["duration_s"])
    result = summarize(run_dir, scenario_for(duration), "completed", read_events(run_dir))
    write_summary(run_dir, result)
    return {"verdict": result.verdict, "requests": result.requests}


def naive(path: Path) -> dict[str, Any]:
    """The peer: what a notebook would do first."""
    import pandas as pd

    frame = pd.read_parquet(path)
    qs = np.array(list(QUANTILES.values()))
    table = frame.groupby("endpoint")["latency_ms"].quantile(qs)
    return {"rows": len(frame), "figures": int(table.size)}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    task, source, out = argv[0], Path(argv[1]), Path(argv[2])
    if task == "summary":
        result = summary(source)
    elif task == "naive":
        result = naive(source)
    elif task in ENGINES:
        result = ENGINES[task](source)
    else:
        print(f"report_engines: unknown task {task!r}", file=sys.stderr)
        return 2
    out.write_text(json.dumps(result, allow_nan=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
