"""The run's records where they lie: DuckDB queries over ``requests.parquet``.

A soak leaves tens of millions of records; loading them into one pandas frame needs about
330 bytes each, so an eight-hour run's analysis would need more memory than the machine that
ran it. DuckDB reads the Parquet file by row group, aggregates as it goes, spills to disk past
its memory limit, and computes exact nearest-rank percentiles (``quantile_disc`` picks the
value at sorted index ceil(n q) - 1, as numpy's ``inverted_cdf``: see
:func:`authload.analysis.stats.percentile`). So the analysis asks DuckDB for what it shows
(one row per endpoint, per window, per operation kind) and gets small pandas frames back.

The library stays pandas at its face: every analysis function takes :data:`RecordsLike`, a
run's :class:`Records` or a pandas frame of records (a notebook's, a test's), and the same
SQL answers both.

Measured against Polars' streaming engine, pyarrow compute and plain pandas by
``bench/report_scale --engines`` (figures and the choice in ``bench/README.md``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import pandas as pd

from authload.errors import ResultsError
from authload.results import JOURNEY_SCHEMA, JOURNEYS_FILE, RECORD_SCHEMA, RECORDS_DIR, RECORDS_FILE

__all__ = [
    "ALL",
    "MEMORY_ENV",
    "Journeys",
    "JourneysLike",
    "Records",
    "RecordsLike",
    "Table",
    "as_journeys",
    "as_records",
    "quantiles",
]

#: The memory DuckDB may use (its units: "512MB", "2GB"); by default DuckDB's own, 80% of
#: the machine's. Sorts, joins and grouping spill to disk past it; a percentile cannot: it
#: holds its group's values (about 12 bytes each) until it is computed.
MEMORY_ENV = "AUTHLOAD_ANALYSIS_MEMORY"
#: The name of the overall row of :meth:`Table.per_group`.
ALL = "*"

#: Columns a frame of records may leave out (older runs, hand-built frames), and their value.
_OPTIONAL: Mapping[str, str] = {
    "t_intended": "NULL::DOUBLE",
    "bytes": "0::BIGINT",
    "error": "NULL::VARCHAR",
    "retry_after_s": "NULL::DOUBLE",
    "flow": "NULL::VARCHAR",
    "flow_id": "NULL::VARCHAR",
    "op_id": "NULL::BIGINT",
    "attempt": "1::SMALLINT",
    "worker": "''::VARCHAR",
}


def _connect(in_order: bool = False) -> duckdb.DuckDBPyConnection:
    """A private in-memory database with a memory limit and its spill files in the system's
    temporary directory (never the caller's working directory); ``in_order``: rows come out
    in the order they went in (for frames, small, whose answers line up with their rows)."""
    config: dict[str, Any] = {
        "threads": max(1, min(os.cpu_count() or 1, 4)),
        "preserve_insertion_order": in_order,
        "temp_directory": str(Path(tempfile.gettempdir()) / f"authload-duckdb-{os.getpid()}"),
    }
    if os.environ.get(MEMORY_ENV):
        config["memory_limit"] = os.environ[MEMORY_ENV]
    try:
        return duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise ResultsError(f"{MEMORY_ENV}={os.environ.get(MEMORY_ENV)!r}: {exc}") from exc


class Table:
    """One table of a run (records or journeys) as the view ``name`` of its own connection.
    Queries name the table by ``{name}`` and get pandas frames back."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, name: str, source: str) -> None:
        self._con = connection
        self.name = name
        self.source = source  # where the rows come from, for messages
        self._count: int | None = None

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """The answer of ``query`` (``{name}`` names this table) as a pandas frame."""
        try:
            frame: pd.DataFrame = self._execute(query, params).df()
        except duckdb.Error as exc:
            raise ResultsError(f"{self.source}: {exc}") from exc
        return frame

    def row(self, query: str, params: Sequence[Any] | None = None) -> dict[str, Any]:
        """The single row ``query`` answers, as a dict of Python values: None for NULL (a
        pandas frame would make a NULL number NaN); {} for no row."""
        try:
            result = self._execute(query, params)
            values = result.fetchone()
        except duckdb.Error as exc:
            raise ResultsError(f"{self.source}: {exc}") from exc
        if values is None:
            return {}
        names = [str(column[0]) for column in result.description or []]
        return dict(zip(names, values, strict=True))

    def _execute(self, query: str, params: Sequence[Any] | None) -> duckdb.DuckDBPyConnection:
        return self._con.execute(query.replace("{" + self.name + "}", self.name), params or [])

    def per_group(
        self,
        by: str,
        aggregates: str,
        where: str = "TRUE",
        params: Sequence[Any] | None = None,
        source: str | None = None,
    ) -> pd.DataFrame:
        """``aggregates`` per value of the column ``by`` (in order), then over every row
        (``by`` = :data:`ALL`), of the rows ``where`` selects (of this table, or of the query
        ``source`` over it). Two queries rather than one ``ROLLUP``: percentiles hold their
        values in memory, so the overall ones are not held beside the groups'."""
        rows = f"{aggregates} FROM {self.name if source is None else f'({source})'} WHERE {where}"
        groups = self.sql(f"SELECT {by}, {rows} GROUP BY {by} ORDER BY {by}", params)
        total = self.sql(f"SELECT '{ALL}' AS {by}, {rows}", params)
        return pd.concat([groups.astype({by: object}), total], ignore_index=True)

    def __len__(self) -> int:
        if self._count is None:
            self._count = int(self.sql(f"SELECT count(*) AS n FROM {self.name}")["n"].iloc[0])
        return self._count

    @property
    def empty(self) -> bool:
        return len(self) == 0

    def frame(
        self,
        columns: Iterable[str] | None = None,
        where: str = "TRUE",
        params: Sequence[Any] | None = None,
    ) -> pd.DataFrame:
        """Rows as a pandas frame: only for what is known to be small (a notebook's run, a
        window, a selection), never a whole long run."""
        names = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return self.sql(f"SELECT {names} FROM {self.name} WHERE {where}", params)


class Records(Table):
    """The request records of a run (:data:`authload.results.RECORD_SCHEMA`), view
    ``records``."""

    @classmethod
    def of_run(cls, run_dir: Path) -> Records:
        """The records of a finished run; a :class:`ResultsError` if there are none or they
        do not match the schema."""
        path = run_dir / RECORDS_FILE
        if not path.is_file():
            hint = " (records not finalized yet)" if (run_dir / RECORDS_DIR).is_dir() else ""
            raise ResultsError(f"{path}: no request records{hint}")
        con = _connect()
        _parquet_view(con, "records", path, RECORD_SCHEMA.names, "request records")
        return cls(con, "records", str(path))

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Records:
        """Records given as a pandas frame; columns a hand-built frame leaves out get their
        neutral value (attempt 1, no error, no operation id)."""
        con = _connect(in_order=True)
        con.register("records_frame", frame)
        columns = [
            f'"{name}"' if name in frame.columns else f'{_OPTIONAL[name]} AS "{name}"'
            for name in RECORD_SCHEMA.names
            if name in frame.columns or name in _OPTIONAL
        ]
        con.execute(f"CREATE VIEW records AS SELECT {', '.join(columns)} FROM records_frame")
        return cls(con, "records", "records")


class Journeys(Table):
    """The journeys of a run (:data:`authload.results.JOURNEY_SCHEMA`) with ``duration_ms``,
    view ``journeys``; none for a run made before journeys were recorded."""

    @classmethod
    def of_run(cls, run_dir: Path) -> Journeys:
        path = run_dir / JOURNEYS_FILE
        con = _connect()
        if path.is_file():
            _parquet_view(con, "journeys_raw", path, JOURNEY_SCHEMA.names, "journey records")
        else:
            con.register("journeys_raw", JOURNEY_SCHEMA.empty_table())
        con.execute(
            "CREATE VIEW journeys AS SELECT *, (t_end - t_start) * 1000.0 AS duration_ms "
            "FROM journeys_raw"
        )
        return cls(con, "journeys", str(path))

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Journeys:
        con = _connect(in_order=True)
        con.register("journeys_raw", frame)
        con.execute(
            "CREATE VIEW journeys AS SELECT *, (t_end - t_start) * 1000.0 AS duration_ms "
            "FROM journeys_raw"
        )
        return cls(con, "journeys", "journeys")


def _parquet_view(
    con: duckdb.DuckDBPyConnection, view: str, path: Path, names: Sequence[str], what: str
) -> None:
    """``view`` over the Parquet file, its columns named and checked against the schema."""
    literal = str(path).replace("'", "''")
    try:
        found = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM '{literal}'").fetchall()}
    except duckdb.Error as exc:
        raise ResultsError(f"{path}: unreadable {what}: {exc}") from exc
    missing = [c for c in names if c not in found]
    if missing:
        raise ResultsError(f"{path}: {what} lack columns {missing}")
    columns = ", ".join(f'"{c}"' for c in names)
    con.execute(f"CREATE VIEW {view} AS SELECT {columns} FROM read_parquet('{literal}')")


RecordsLike: TypeAlias = "pd.DataFrame | Records"
JourneysLike: TypeAlias = "pd.DataFrame | Journeys | None"


def as_records(records: RecordsLike) -> Records:
    return records if isinstance(records, Records) else Records.of_frame(records)


def as_journeys(journeys: JourneysLike) -> Journeys:
    """``None``: a run without journey records (none kept)."""
    if isinstance(journeys, Journeys):
        return journeys
    frame = JOURNEY_SCHEMA.empty_table().to_pandas() if journeys is None else journeys
    return Journeys.of_frame(frame.drop(columns=["duration_ms"], errors="ignore"))


def quantiles(column: str, qs: Sequence[float], where: str | None = None) -> str:
    """SQL for the nearest-rank quantiles ``qs`` of ``column`` as one list, over the rows
    ``where`` selects; NULL over no rows."""
    listed = ", ".join(repr(float(q)) for q in qs)
    filtered = f" FILTER (WHERE {where})" if where else ""
    return f"quantile_disc({column}, [{listed}]){filtered}"
