"""The run's records where they lie: DuckDB queries over ``requests.parquet``.

A soak leaves tens of millions of records; loading them into one pandas frame needs about
330 bytes each, so an eight-hour run's analysis would need more memory than the machine that
ran it. DuckDB reads the Parquet file by row group, aggregates as it goes and spills to disk
past its memory limit. Percentiles are exact nearest rank (the value at sorted index
ceil(n q) - 1, as numpy's ``inverted_cdf``: see :func:`authload.analysis.stats.percentile`),
found by counting (:func:`exact_quantiles`), never by holding a group's values. So the
analysis asks DuckDB for what it shows (one row per endpoint, per window, per operation
kind) and gets small pandas frames back.

The library stays pandas at its face: every analysis function takes :data:`RecordsLike`, a
run's :class:`Records` or a pandas frame of records (a notebook's, a test's), and the same
SQL answers both.

Measured against Polars' streaming engine, pyarrow compute and plain pandas by
``bench/report_scale --engines`` (figures and the choice in ``bench/README.md``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeAlias

import duckdb
import pandas as pd

from authload.errors import ResultsError
from authload.rundir.files import JOURNEYS_FILE, RECORDS_DIR, RECORDS_FILE
from authload.rundir.records import JOURNEY_SCHEMA, RECORD_SCHEMA

__all__ = [
    "ALL",
    "ANSWERED",
    "MEMORY_ENV",
    "Journeys",
    "JourneysLike",
    "Percentiles",
    "Records",
    "RecordsLike",
    "Table",
    "as_journeys",
    "as_records",
    "between",
    "exact_quantiles",
    "sql_strings",
    "window_index",
]

#: SQL: the records of attempts that got an answer (an HTTP status; 0: timeout, connect, reset).
ANSWERED = "status > 0"

#: The memory DuckDB may use (its units: "512MB", "2GB"). Sorts, joins, grouping and so
#: every percentile (:func:`exact_quantiles`) spill to disk past it, so a run of any length
#: is analysed within it (DuckDB's own default, 80% of the machine, it would fill instead).
MEMORY_ENV = "AUTHLOAD_ANALYSIS_MEMORY"
DEFAULT_MEMORY = "1GB"
#: The name of the overall row of :meth:`Table.per_group`.
ALL = "*"

_SELECTIONS = itertools.count(1)

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


@functools.cache
def _spill_directory() -> Path:
    """This process's directory for DuckDB's spill files, removed when the process ends
    (DuckDB removes its files, not the directory)."""
    path = Path(tempfile.gettempdir()) / f"authload-duckdb-{os.getpid()}"
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _connect(in_order: bool = False) -> duckdb.DuckDBPyConnection:
    """A private in-memory database with a memory limit and its spill files in the system's
    temporary directory (never the caller's working directory); ``in_order``: rows come out
    in the order they went in (for frames, small, whose answers line up with their rows)."""
    config: dict[str, Any] = {
        "threads": max(1, min(os.cpu_count() or 1, 4)),
        "preserve_insertion_order": in_order,
        "temp_directory": str(_spill_directory()),
    }
    config["memory_limit"] = os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise ResultsError(f"{MEMORY_ENV}={os.environ.get(MEMORY_ENV)!r}: {exc}") from exc
    # a long query must not draw a progress bar on the output (Jupyter without ipywidgets
    # refuses any change of the setting, and draws none anyway)
    with contextlib.suppress(duckdb.Error):
        con.execute("SET enable_progress_bar = false")
    return con


@dataclass(frozen=True)
class Percentiles:
    """The nearest-rank quantiles ``qs`` of ``column`` over the rows ``where`` selects
    (:func:`exact_quantiles`)."""

    column: str
    qs: tuple[float, ...]
    where: str = "TRUE"


class Table:
    """One table of a run (records or journeys) as the view ``name`` of its own connection.
    Queries name the table by ``{name}`` and get pandas frames back."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        name: str,
        source: str,
        view: str | None = None,
    ) -> None:
        self._con = connection
        self.name = name
        self.source = source  # where the rows come from, for messages
        self._view = view or name  # what ``{name}`` stands for in a query
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
        return self._con.execute(query.replace("{" + self.name + "}", self._view), params or [])

    def per_group(
        self,
        by: str,
        aggregates: str,
        where: str = "TRUE",
        params: Sequence[Any] | None = None,
        source: str | None = None,
        percentiles: Mapping[str, Percentiles] | None = None,
    ) -> pd.DataFrame:
        """``aggregates`` per value of the column ``by`` (in order), then over every row
        (``by`` = :data:`ALL`), of the rows ``where`` selects (of this table, or of the query
        ``source`` over it); and per name of ``percentiles``, a column of their quantile
        lists (NaN each for a group without values)."""
        rows = f"{aggregates} FROM {self._view if source is None else f'({source})'} WHERE {where}"
        groups = self.sql(f"SELECT {by}, {rows} GROUP BY {by} ORDER BY {by}", params)
        total = self.sql(f"SELECT '{ALL}' AS {by}, {rows}", params)
        frame = pd.concat([groups.astype({by: object}), total], ignore_index=True)
        for name, spec in (percentiles or {}).items():
            found = exact_quantiles(
                self,
                spec.column,
                spec.qs,
                {by: by},
                f"({where}) AND ({spec.where})",
                params,
                overall=True,
                source=source,
            )
            lists = {
                (ALL if grouped else str(key)): list(q)
                for key, grouped, q in zip(found[by], found["grouped"], found["q"], strict=True)
            }
            none = [math.nan] * len(spec.qs)  # a group without values
            frame[name] = pd.Series([lists.get(str(k), none) for k in frame[by]], dtype=object)
        return frame

    def percentiles(
        self,
        spec: Percentiles,
        where: str = "TRUE",
        params: Sequence[Any] | None = None,
    ) -> list[float | None]:
        """The quantiles of ``spec`` over the rows ``where`` also selects (None each over no
        rows)."""
        found = exact_quantiles(
            self, spec.column, spec.qs, where=f"({where}) AND ({spec.where})", params=params
        )
        if found.empty:
            return [None] * len(spec.qs)
        return [float(v) for v in found["q"].iloc[0]]

    def __getitem__(self, column: str) -> pd.Series:
        """One column as a pandas Series: as :meth:`frame`, only for what is known to be
        small."""
        series: pd.Series = self.frame([column])[column]
        return series

    @property
    def columns(self) -> list[str]:
        """The table's column names, in order."""
        described = self._con.execute(f"DESCRIBE SELECT * FROM {self._view}").fetchall()
        return [str(row[0]) for row in described]

    def __len__(self) -> int:
        if self._count is None:
            self._count = int(self.sql(f"SELECT count(*) AS n FROM {self._view}")["n"].iloc[0])
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
        return self.sql(f"SELECT {names} FROM {self._view} WHERE {where}", params)

    def selection(self, condition: str) -> Self:
        """The rows ``condition`` (SQL, its values written in: :func:`between`) selects, as a
        table of their own that queries name as this one (a step's measured window)."""
        view = f"{self._view}_{next(_SELECTIONS)}"
        self._con.execute(f"CREATE VIEW {view} AS SELECT * FROM {self._view} WHERE {condition}")
        return type(self)(self._con, self.name, self.source, view)


class Records(Table):
    """The request records of a run (:data:`authload.rundir.records.RECORD_SCHEMA`), view
    ``records``."""

    @classmethod
    def of_run(cls, run_dir: Path, columns: Sequence[str] | None = None) -> Records:
        """The records of a finished run (only ``columns``, if given); a
        :class:`ResultsError` if there are none or they do not match the schema."""
        path = _records_file(run_dir)
        con = _connect()
        checked = _checked_select(con, path, RECORD_SCHEMA.names, "request records", columns)
        con.execute(f"CREATE VIEW records AS {checked}")
        return cls(con, "records", str(path))

    @classmethod
    def of_runs(cls, run_dirs: Sequence[Path]) -> Records:
        """The records of several runs as one table, each run's ``worker`` prefixed with its
        directory's name and a slash: operation ids restart in each run, so an operation
        is (run and worker, op_id)."""
        con = _connect()
        parts = []
        for run_dir in run_dirs:
            path = _records_file(run_dir)
            checked = _checked_select(con, path, RECORD_SCHEMA.names, "request records")
            prefix = _literal(f"{run_dir.name}/")
            parts.append(f"SELECT * REPLACE ({prefix} || worker AS worker) FROM ({checked})")
        con.execute(f"CREATE VIEW records AS {' UNION ALL '.join(parts)}")
        return cls(con, "records", ", ".join(str(_records_file(d)) for d in run_dirs))

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
    """The journeys of a run (:data:`authload.rundir.records.JOURNEY_SCHEMA`) with ``duration_ms``,
    view ``journeys``; none for a run made before journeys were recorded."""

    @classmethod
    def of_run(cls, run_dir: Path) -> Journeys:
        return cls.of_runs([run_dir])

    @classmethod
    def of_runs(cls, run_dirs: Sequence[Path]) -> Journeys:
        """The journeys of one or several runs as one table (runs without journey records
        add none)."""
        paths = [d / JOURNEYS_FILE for d in run_dirs]
        con = _connect()
        names = JOURNEY_SCHEMA.names
        parts = [_checked_select(con, p, names, "journey records") for p in paths if p.is_file()]
        if not parts:
            con.register("journeys_none", JOURNEY_SCHEMA.empty_table())
            parts = ["SELECT * FROM journeys_none"]
        con.execute(f"CREATE VIEW journeys_raw AS {' UNION ALL '.join(parts)}")
        con.execute(
            "CREATE VIEW journeys AS SELECT *, (t_end - t_start) * 1000.0 AS duration_ms "
            "FROM journeys_raw"
        )
        return cls(con, "journeys", ", ".join(map(str, paths)))

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Journeys:
        con = _connect(in_order=True)
        con.register("journeys_raw", frame)
        con.execute(
            "CREATE VIEW journeys AS SELECT *, (t_end - t_start) * 1000.0 AS duration_ms "
            "FROM journeys_raw"
        )
        return cls(con, "journeys", "journeys")


def _records_file(run_dir: Path) -> Path:
    path = run_dir / RECORDS_FILE
    if not path.is_file():
        hint = " (records not finalized yet)" if (run_dir / RECORDS_DIR).is_dir() else ""
        raise ResultsError(f"{path}: no request records{hint}")
    return path


def _checked_select(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    names: Sequence[str],
    what: str,
    columns: Sequence[str] | None = None,
) -> str:
    """A SELECT of the Parquet file's columns ``names`` (or only ``columns`` of them), once
    checked against the schema."""
    literal = _literal(str(path))
    try:
        found = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {literal}").fetchall()}
    except duckdb.Error as exc:
        raise ResultsError(f"{path}: unreadable {what}: {exc}") from exc
    missing = [c for c in names if c not in found]
    if missing:
        raise ResultsError(f"{path}: {what} lack columns {missing}")
    unknown = [c for c in columns or () if c not in names]
    if unknown:
        raise ResultsError(f"unknown columns {unknown} of {what}; known: {list(names)}")
    selected = ", ".join(f'"{c}"' for c in (columns or names))
    return f"SELECT {selected} FROM read_parquet({literal})"


def sql_strings(values: Iterable[Any]) -> str:
    """``values`` as SQL string literals, sorted, comma-separated (for ``IN (...)``)."""
    return ", ".join(_literal(str(v)) for v in sorted(values))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


def between(column: str, low: float, high: float) -> str:
    """SQL: ``column`` from ``low`` (included) to ``high`` (excluded)."""
    return f"{column} >= {_double(low)} AND {column} < {_double(high)}"


def window_index(start: float, width: float, column: str = "t") -> str:
    """SQL for the window of ``width`` s from ``start`` (0 the first, negative before it)
    that ``column`` (unix s) falls in: floor((column - start) / width), the same double
    arithmetic as numpy's."""
    return f"floor(({column} - {_double(start)}) / {_double(width)})::BIGINT"


#: :func:`exact_quantiles` first counts values by bucket: a double's top 18 bits (sign,
#: exponent and 6 bits of mantissa), 64 buckets per power of two.
_BUCKET_SHIFT = 46


def exact_quantiles(
    table: Table,
    column: str,
    qs: Sequence[float],
    groups: Mapping[str, str] | None = None,
    where: str = "TRUE",
    params: Sequence[Any] | None = None,
    overall: bool = False,
    source: str | None = None,
) -> pd.DataFrame:
    """The nearest-rank quantiles ``qs`` of ``column`` over the rows ``where`` selects (of
    the table, or of the query ``source`` over it), per
    group (``groups``: name -> SQL expression; none: one group over all) and, with
    ``overall``, over all groups too (its row ``grouped``, its group columns NULL).

    One row per group with a value, columns: the group names, ``grouped`` and ``q`` (the
    values in the order of ``qs``): exactly what DuckDB's ``quantile_disc`` gives (numpy's
    ``inverted_cdf``), but in bounded memory. ``quantile_disc`` keeps every value of a group
    until the end (8 bytes each, and never spilled: an 80-million-row group needs more than 600 MB),
    whereas this counts values per bucket first (:data:`_BUCKET_SHIFT`), then counts the
    distinct values of the few buckets holding a wanted rank: two passes of plain
    aggregates, which DuckDB spills to disk past its memory limit."""
    keys = dict(groups or {"_all": "0"})
    query = _EXACT_QUANTILES.format(
        keys=", ".join(f"{expr} AS {name}" for name, expr in keys.items()),
        names=", ".join(keys),
        column=column,
        where=where,
        bucket=_bucket("v"),
        sets=f"({', '.join(keys)}, b)" + (", (b)" if overall else ""),
        value_sets=f"({', '.join(keys)}, b, v)" + (", (b, v)" if overall else ""),
        qs=", ".join(f"({i}, {_double(q)})" for i, q in enumerate(qs)),
        same=" AND ".join(f"r.{name} IS NOT DISTINCT FROM s.{name}" for name in keys),
        ranked=", ".join(f"r.{name}" for name in keys),
        table="{" + table.name + "}" if source is None else f"({source}) AS source",
    )
    frame = table.sql(query, params)
    return frame if groups else frame.drop(columns=["_all"])


_EXACT_QUANTILES = """
WITH src AS NOT MATERIALIZED (
    SELECT {keys}, ({column})::DOUBLE AS v, {bucket} AS b
    FROM {table} WHERE ({where}) AND ({column}) IS NOT NULL),
hist AS (
    SELECT {names}, grouping({names}) <> 0 AS grouped, b, count(*) AS n
    FROM src GROUP BY GROUPING SETS ({sets})),
cum AS (
    SELECT *, sum(n) OVER (PARTITION BY grouped, {names} ORDER BY b) - n AS before,
        sum(n) OVER (PARTITION BY grouped, {names}) AS total
    FROM hist),
wanted AS (
    SELECT * FROM (
        SELECT grouped, {names}, i, b, before, n,
            least(greatest(ceil(total::DOUBLE * q - 1), 0), total - 1) AS rank
        FROM cum, (VALUES {qs}) AS qs(i, q))
    WHERE before <= rank AND rank < before + n),
vals AS (
    SELECT {names}, grouping({names}) <> 0 AS grouped, b, v, count(*) AS n
    FROM src s
    WHERE EXISTS (SELECT 1 FROM wanted r WHERE NOT r.grouped AND r.b = s.b AND {same})
        OR EXISTS (SELECT 1 FROM wanted r WHERE r.grouped AND r.b = s.b)
    GROUP BY GROUPING SETS ({value_sets})),
picked AS (
    SELECT r.grouped, {ranked}, r.i, s.v, r.rank - r.before AS rank,
        sum(s.n) OVER (PARTITION BY r.grouped, {ranked}, r.i ORDER BY s.v) AS upto
    FROM wanted r JOIN vals s ON r.grouped = s.grouped AND r.b = s.b AND {same})
SELECT {names}, grouped, list(v ORDER BY i) AS q FROM (
    SELECT grouped, {names}, i, min(v) FILTER (WHERE upto > rank) AS v
    FROM picked GROUP BY ALL)
GROUP BY ALL
"""


def _bucket(column: str) -> str:
    """SQL for the bucket of a double: its bits, ordered as the doubles are (a negative's
    magnitude bits flipped), shifted."""
    bits = f"({column})::BIT::BIGINT"
    ordered = f"CASE WHEN {bits} < 0 THEN xor({bits}, 9223372036854775807) ELSE {bits} END"
    return f"(({ordered}) >> {_BUCKET_SHIFT})"


def _double(value: float) -> str:
    return f"'{float(value)!r}'::DOUBLE"  # as text: exact, and nan or inf too
