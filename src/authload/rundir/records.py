"""A run's records: one row per HTTP attempt and one per journey, their schemas defined once,
and the merge of the processes' spools.

While a run is going, each Locust process appends its requests to its own Arrow IPC stream
under ``records/`` (see :mod:`authload.load.recorder`); :func:`finalize_records` merges them
into one Parquet file, batch by batch, so memory stays bounded however long the run was. This
module imports pyarrow only: it is shared by the recorder (writing) and the analysis layer
(reading).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.ipc as ipc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from authload.errors import ResultsError
from authload.rundir.files import (
    JOURNEYS_DIR,
    JOURNEYS_FILE,
    RECORDS_DIR,
    RECORDS_FILE,
    SPOOL_SUFFIX,
)

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 100_000


#: The values of the ``error`` column besides null (no error).
ERROR_KINDS = ("timeout", "connect", "reset", "http", "contract")

#: One row per HTTP attempt. Defined here once; the recorder writes exactly this.
RECORD_SCHEMA = pa.schema(
    [
        pa.field("t", pa.float64(), nullable=False),  # attempt start, unix seconds
        pa.field("t_intended", pa.float64()),  # open model: when the attempt was due
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("status", pa.int16(), nullable=False),  # 0 = no response
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("error", pa.string()),  # null or one of ERROR_KINDS
        pa.field("retry_after_s", pa.float64()),  # the answer's Retry-After, if any
        pa.field("flow", pa.string()),
        pa.field("flow_id", pa.string()),
        pa.field("op_id", pa.int64()),  # the logical operation the attempt belongs to
        pa.field("attempt", pa.int16(), nullable=False),  # 1 = first
        pa.field("worker", pa.string(), nullable=False),
    ]
)

#: One row per journey (and per token a logout from all devices revoked). Defined here once.
JOURNEY_SCHEMA = pa.schema(
    [
        # the journey's intended start (open model, timed events) or its start (closed model)
        pa.field("t_start", pa.float64(), nullable=False),
        pa.field("t_end", pa.float64(), nullable=False),
        pa.field("waited_ms", pa.float64()),  # open model: queued for a free place first
        pa.field("flow", pa.string(), nullable=False),
        pa.field("flow_id", pa.string()),
        pa.field("outcome", pa.string(), nullable=False),
        # "journey", or "revocation": a token revoked by a logout from all devices, from the
        # logout's answer (t_start) to the first refusal of the token (t_end)
        pa.field("kind", pa.string(), nullable=False),
        pa.field("worker", pa.string(), nullable=False),
    ]
)
JOURNEY, REVOCATION = "journey", "revocation"
#: Journey outcomes that are what the user wanted (any other is a failed journey).
OK_OUTCOMES = frozenset({"completed", "ended_by_mass_logout"})
#: Revocation outcomes: refused at the first check, refused later, or never within the bound.
REVOKED_AT_ONCE, REVOKED_LATE, NEVER_REVOKED = "refused", "accepted_then_refused", "accepted"
DROPPED = "dropped"  # an open-model arrival never started (pool and queue full, or the end)
STOPPED = "stopped"  # cut short by the end of the test: kept, but neither success nor failure


#: Outcomes that begin so mean the journey's session was lost.
LOST_PREFIXES = ("session_lost:", "token_lost")


def journey_ok(outcome: str) -> bool:
    return outcome in OK_OUTCOMES


# What RecordBatchStreamWriter.close() writes last: continuation marker, then length 0.
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


@dataclass(frozen=True)
class FinalizeResult:
    """What :func:`finalize_records` merged.

    ``torn`` names spools whose last batch was cut short (the process died while writing
    it); their complete batches are kept. ``unclosed`` names spools never closed (the
    process died or was killed), torn ones included: rows such a process had not flushed
    yet are not in the records, so counts from other sources may exceed them.
    """

    rows: int
    spools: int
    torn: list[str] = field(default_factory=list)
    unclosed: list[str] = field(default_factory=list)


def finalize_records(run_dir: Path, *, row_group_rows: int = ROW_GROUP_ROWS) -> FinalizeResult:
    """Merge ``run_dir/records/*.arrows`` into ``run_dir/requests.parquet`` and the journey
    spools (``records/journeys/*.arrows``) into ``journeys.parquet``, then delete them.

    Streams batch by batch (memory holds at most one row group), writes a temporary file
    and renames it into place, and deletes the spools only once the Parquet file is
    complete. Without spools, an existing Parquet file is left as it is; without either, an
    empty one is written, so every finished run has both. The result is the requests'.
    """
    records = run_dir / RECORDS_DIR
    result = _merge(records, run_dir / RECORDS_FILE, RECORD_SCHEMA, row_group_rows)
    _merge(records / JOURNEYS_DIR, run_dir / JOURNEYS_FILE, JOURNEY_SCHEMA, row_group_rows)
    if records.is_dir() and not any(records.iterdir()):
        records.rmdir()
    return result


def _merge(directory: Path, target: Path, schema: pa.Schema, row_group_rows: int) -> FinalizeResult:
    spools = sorted(directory.glob(f"*{SPOOL_SUFFIX}")) if directory.is_dir() else []
    if not spools and target.exists():
        return FinalizeResult(rows=_parquet_rows(target), spools=0)
    partial = target.with_name(f".{target.name}.partial")
    torn: list[str] = []
    unclosed: list[str] = []
    try:
        with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for path in spools:
                spool = _Spool(path, schema)
                for batch in spool.batches():
                    pending.append(batch)
                    pending_rows += batch.num_rows
                    if pending_rows >= row_group_rows:
                        pending, pending_rows = _write_row_groups(
                            writer, pending, row_group_rows, final=False
                        )
                if spool.torn:
                    torn.append(path.name)
                if not spool.closed():
                    unclosed.append(path.name)
            _write_row_groups(writer, pending, row_group_rows, final=True)
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        rows = _parquet_rows(partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    for path in spools:
        path.unlink()
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    if torn:
        log.warning("%s: kept the complete batches of torn spools %s", target, torn)
    return FinalizeResult(rows=rows, spools=len(spools), torn=torn, unclosed=unclosed)


class _Spool:
    """Reads the complete batches of one spool; ``torn`` says afterwards if it was cut short."""

    def __init__(self, path: Path, schema: pa.Schema = RECORD_SCHEMA) -> None:
        self.path = path
        self.schema = schema
        self.torn = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self.path.stat().st_size == 0:  # created, then killed before writing the schema
            return
        with pa.OSFile(str(self.path), "rb") as source:
            try:
                reader = ipc.open_stream(source)
            except (pa.ArrowInvalid, OSError):
                self.torn = True
                return
            if not reader.schema.equals(self.schema):
                raise ResultsError(f"{self.path}: written with another schema: {reader.schema}")
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowInvalid, OSError):
                    self.torn = True
                    return
                yield batch

    def closed(self) -> bool:
        """Whether the writer closed the stream (it ends with the end-of-stream marker)."""
        size = self.path.stat().st_size
        if size < len(_END_OF_STREAM):
            return False
        with self.path.open("rb") as f:
            f.seek(size - len(_END_OF_STREAM))
            return f.read() == _END_OF_STREAM


def _write_row_groups(
    writer: pq.ParquetWriter, pending: list[pa.RecordBatch], size: int, *, final: bool
) -> tuple[list[pa.RecordBatch], int]:
    """Write full row groups of ``size`` rows (and, if final, the rest); return what is left."""
    table = pa.Table.from_batches(pending, schema=writer.schema)
    start = 0
    while table.num_rows - start >= size or (final and start < table.num_rows):
        chunk = table.slice(start, size)
        writer.write_table(chunk, row_group_size=chunk.num_rows)
        start += chunk.num_rows
    rest = table.slice(start)
    return rest.to_batches(), rest.num_rows


def _parquet_rows(path: Path) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)


def read_records(run_dir: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The requests of a finished run: all columns in schema order, or only ``columns``."""
    path = run_dir / RECORDS_FILE
    if not path.is_file():
        hint = " (records not finalized yet)" if (run_dir / RECORDS_DIR).is_dir() else ""
        raise ResultsError(f"{path}: no request records{hint}")
    wanted = list(RECORD_SCHEMA.names if columns is None else columns)
    unknown = [c for c in wanted if c not in RECORD_SCHEMA.names]
    if unknown:
        raise ResultsError(f"unknown record columns {unknown}; known: {RECORD_SCHEMA.names}")
    try:
        missing = [c for c in wanted if c not in pq.read_schema(path).names]
        if missing:
            raise ResultsError(f"{path}: request records lack columns {missing}")
        table = pq.read_table(path, columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise ResultsError(f"{path}: unreadable request records: {exc}") from exc
    schema = pa.schema([RECORD_SCHEMA.field(c) for c in wanted])
    try:
        return table.select(wanted).cast(schema)
    except (pa.ArrowException, TypeError) as exc:
        raise ResultsError(f"{path}: request records do not match the schema: {exc}") from exc


def read_journeys(run_dir: Path) -> pa.Table:
    """The journeys of a finished run (none for a run made before journeys were recorded)."""
    path = run_dir / JOURNEYS_FILE
    if not path.is_file():
        return JOURNEY_SCHEMA.empty_table()
    try:
        return pq.read_table(path).select(JOURNEY_SCHEMA.names).cast(JOURNEY_SCHEMA)
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise ResultsError(f"{path}: unreadable journey records: {exc}") from exc
