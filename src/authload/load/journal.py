"""Journey records of a load run: one row per journey (and per revoked token checked), spooled
to disk as the run goes, like the request records (:mod:`authload.load.recorder`): an Arrow
IPC stream per process under ``records/journeys/``, merged into ``journeys.parquet`` at the
end by :func:`authload.rundir.records.finalize_records`.

A journey is what a person waits for: from its intended start (open model: the arrival's due
time, so the time it waited for a free place counts) or its start (closed model) to its end,
with its outcome. An open-model arrival that never started is a journey too (``dropped``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.ipc as ipc  # type: ignore[import-untyped]

from authload.errors import ResultsError
from authload.load.recorder import TYPECODES, arrow_column
from authload.rundir.files import JOURNEYS_DIR, RECORDS_DIR, SPOOL_SUFFIX
from authload.rundir.records import JOURNEY_SCHEMA

Row = tuple[float, float, float | None, str, str | None, str, str]  # all but the worker
_COLUMNS = [(f, TYPECODES[str(f.type)]) for f in JOURNEY_SCHEMA]


class JourneySpool:
    """Appends journey rows to ``records/journeys/<worker>.arrows`` in batches written at
    most ``flush_s`` apart (checked on each :meth:`add`), so a crash loses only the last
    seconds; :meth:`close` writes the rest and ends the stream."""

    def __init__(
        self,
        run_dir: Path,
        worker: str,
        *,
        flush_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        guard: Callable[[Path], AbstractContextManager[None]] = lambda _: nullcontext(),
    ) -> None:
        """``guard``: around each write (:func:`authload.load.recorder.recording` stops the
        run on a failed write)."""
        directory = run_dir / RECORDS_DIR / JOURNEYS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{worker}{SPOOL_SUFFIX}"
        if path.exists():
            raise ResultsError(f"{path}: a journey spool already exists (worker names clash?)")
        self.path = path
        self.worker = worker
        self.flush_s = flush_s
        self.rows = 0
        self._clock = clock
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_stream(self._sink, JOURNEY_SCHEMA)
        self._pending: list[Row] = []
        self._last_flush = clock()
        self._closed = False
        self._guard = guard

    def add(
        self,
        t_start: float,
        t_end: float,
        flow: str,
        outcome: str,
        *,
        flow_id: str | None = None,
        waited_ms: float | None = None,
        kind: str = "journey",
    ) -> None:
        if self._closed:
            return
        self._pending.append((t_start, t_end, waited_ms, flow, flow_id, outcome, kind))
        if self._clock() - self._last_flush >= self.flush_s:
            with self._guard(self.path):
                self.flush()

    def flush(self) -> None:
        self._last_flush = self._clock()
        rows, self._pending = self._pending, []
        if not rows or self._closed:
            return
        columns = [list(c) for c in zip(*rows, strict=True)] + [[self.worker] * len(rows)]
        arrays = [arrow_column(c, f, code) for c, (f, code) in zip(columns, _COLUMNS, strict=True)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=JOURNEY_SCHEMA))
        self.rows += len(rows)

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            try:
                self._writer.close()
            finally:
                self._sink.close()
