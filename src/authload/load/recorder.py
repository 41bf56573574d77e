"""Per-request records of a load run: one row per HTTP attempt, spooled to disk as it runs.

Each Locust process appends to its own Arrow IPC *stream* (``records/<worker>.arrows``) in
record batches of at most ``flush_rows`` rows, written as soon as a row arrives ``flush_s``
seconds or more after the previous write (no thread, no timer).
When the run ends, :func:`authload.rundir.records.finalize_records` merges the spools into one
``requests.parquet``. Why a stream first and Parquet only then:

- Crash safety. A Parquet file is readable only once its footer is written; a process
  killed mid-run would leave nothing readable. An IPC stream is readable batch by batch as
  written (each write goes straight to the file, unbuffered), so a killed process loses
  only its rows not yet written (at most ``flush_rows``, from about the last ``flush_s``
  seconds); a batch torn mid-write is dropped, the earlier ones kept.
- Bounded memory. Rows wait in per-column lists until the next flush, never longer, and
  merging reads one batch at a time: nothing grows with the length of the run.

:func:`register` plugs the recorder into Locust as a listener of ``events.request``, as
Locust's own extensions do. Locust is imported for types only.
"""

from __future__ import annotations

import logging
import math
import socket
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.ipc as ipc  # type: ignore[import-untyped]

from authload.errors import ContractError, ResultsError
from authload.rundir.files import RECORDS_DIR, SPOOL_SUFFIX
from authload.rundir.records import RECORD_SCHEMA

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = ["RecordSpool", "arrow_column", "error_kind", "register", "retry_after_seconds"]

log = logging.getLogger(__name__)

# The array typecode of each numeric column; string columns have none.
TYPECODES = {"double": "d", "int16": "h", "int64": "q", "string": ""}
_COLUMNS = [(f, TYPECODES[str(f.type)]) for f in RECORD_SCHEMA]


class RecordSpool:
    """Appends one row per HTTP attempt to an Arrow IPC stream file, in bounded batches.

    Rows are buffered in per-column lists and written as one record batch once
    ``flush_rows`` rows are buffered or ``flush_s`` seconds have passed since the last
    write (checked on each :meth:`add`; there is no thread). :meth:`close` writes the rest
    and ends the stream. ``dropped`` counts rows not recorded: added after close, or in a
    batch that could not be written (a value of the wrong type; the error propagates).
    """

    def __init__(
        self,
        path: Path,
        worker: str,
        *,
        flush_rows: int = 20_000,
        flush_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if path.exists():
            raise ResultsError(f"{path}: a record spool already exists (worker names clash?)")
        self.path = path
        self.worker = worker
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.rows = 0  # written to the file
        self.batches = 0
        self.dropped = 0  # not recorded (see the class docstring)
        self._clock = clock
        self._sink = pa.OSFile(str(path), "wb")  # unbuffered: each batch reaches the file
        self._writer = ipc.new_stream(self._sink, RECORD_SCHEMA)
        self._closed = False
        self._last_flush = clock()
        self._t: list[float] = []
        self._t_intended: list[float | None] = []
        self._endpoint: list[str] = []
        self._status: list[int] = []
        self._latency_ms: list[float] = []
        self._bytes: list[int] = []
        self._error: list[str | None] = []
        self._retry_after_s: list[float | None] = []
        self._flow: list[str | None] = []
        self._flow_id: list[str | None] = []
        self._op_id: list[int | None] = []
        self._attempt: list[int] = []

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Rows added but not written yet."""
        return len(self._t)

    def add(
        self,
        t: float,
        endpoint: str,
        status: int,
        latency_ms: float,
        nbytes: int,
        error: str | None = None,
        *,
        t_intended: float | None = None,
        retry_after_s: float | None = None,
        flow: str | None = None,
        flow_id: str | None = None,
        op_id: int | None = None,
        attempt: int = 1,
    ) -> None:
        """Buffer one attempt's row; write the buffered rows if a flush is due."""
        if self._closed:
            self.dropped += 1
            return
        self._t.append(t)
        self._t_intended.append(t_intended)
        self._endpoint.append(endpoint)
        self._status.append(status)
        self._latency_ms.append(latency_ms)
        self._bytes.append(nbytes)
        self._error.append(error)
        self._retry_after_s.append(retry_after_s)
        self._flow.append(flow)
        self._flow_id.append(flow_id)
        self._op_id.append(op_id)
        self._attempt.append(attempt)
        if len(self._t) >= self.flush_rows or self._clock() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one record batch (nothing if none are buffered)."""
        self._last_flush = self._clock()
        n = len(self._t)
        if n == 0 or self._closed:
            return
        columns: list[list[Any]] = [
            self._t,
            self._t_intended,
            self._endpoint,
            self._status,
            self._latency_ms,
            self._bytes,
            self._error,
            self._retry_after_s,
            self._flow,
            self._flow_id,
            self._op_id,
            self._attempt,
            [self.worker] * n,
        ]
        try:
            arrays = [
                arrow_column(c, f, code) for c, (f, code) in zip(columns, _COLUMNS, strict=True)
            ]
            batch = pa.RecordBatch.from_arrays(arrays, schema=RECORD_SCHEMA)
            self._writer.write_batch(batch)
        except Exception:
            self.dropped += n  # a bad value loses its batch, not the rest of the run
            raise
        finally:
            for column in columns[:-1]:
                column.clear()
        self.rows += n
        self.batches += 1

    def close(self) -> None:
        """Write the rest and end the stream; calling it again does nothing."""
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
            if self.dropped:
                log.warning("%s: %d rows were not recorded", self.path, self.dropped)


def arrow_column(values: list[Any], field: pa.Field, typecode: str) -> pa.Array:
    """One column as an Arrow array, built from buffers.

    ``pa.array`` would do, but its first call imports pandas (about 60 MB and up to a
    second in every Locust process); building from buffers never does.
    """
    validity = None
    if None in values:
        if not field.nullable:
            raise TypeError(f"record column {field.name!r} cannot be null")
        validity = _validity(values)
    if typecode:
        if validity is not None:
            values = [0 if v is None else v for v in values]
        buffers = [validity, pa.py_buffer(array(typecode, values))]
    else:
        encoded = [b"" if v is None else v.encode() for v in values]
        offsets = array("i", [0])
        offsets.extend(accumulate(map(len, encoded)))
        buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(field.type, len(values), buffers)


def _validity(values: list[Any]) -> pa.Buffer:
    """Arrow's validity bitmap: bit i (least significant first) set if value i is not null."""
    bits = "".join("0" if v is None else "1" for v in reversed(values))
    return pa.py_buffer(int(bits, 2).to_bytes((len(values) + 7) // 8, "little"))


def error_kind(exception: BaseException | None, status: int) -> str | None:
    """The ``error`` column of an attempt from Locust's exception and the status (0 = none).

    A broken contract is ``contract``; an error answer (400 and up) is ``http``; without
    an answer, the transport failure: ``timeout``, ``reset`` or ``connect`` (the default:
    no connection was made). An exception on a good answer is a failed response check:
    ``contract``.
    """
    if exception is None:
        return None
    if isinstance(exception, ContractError):
        return "contract"
    if status >= 400:
        return "http"
    text = str(exception).lower()
    if (
        isinstance(exception, socket.timeout | gevent.Timeout)
        or "timed out" in text
        or "timeout" in text
    ):
        return "timeout"
    if isinstance(exception, ConnectionRefusedError) or "refused" in text:
        return "connect"
    if (
        isinstance(exception, ConnectionResetError | BrokenPipeError)
        or "reset" in text
        or "broken pipe" in text
        or "closed" in text  # geventhttpclient: the peer closed before answering
    ):
        return "reset"
    if status == 0:
        return "connect"
    return "contract"


def answer_retry_after(status: int, headers: Mapping[str, Any] | None) -> float | None:
    """The Retry-After of an answer that may carry one (3xx and up); a 2xx's headers are not
    looked at (every request pays this lookup)."""
    return retry_after_seconds(headers) if status >= 300 else None


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float | None:
    """The Retry-After header in seconds, if present and a number (HTTP dates are ignored)."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@contextmanager
def recording(environment: Environment, path: Path) -> Iterator[None]:
    """Around a write of the records: a write that fails (a full disk) stops the run, said
    once with the directory, instead of failing every request after it."""
    try:
        yield
    except OSError as exc:
        if _FAILED:
            return
        _FAILED.append(exc)
        print(
            f"authload: cannot write the records to {path.parent}: {exc.strerror or exc}; "
            f"stopping the run (what was written so far stays readable)",
            file=sys.stderr,
            flush=True,
        )
        environment.process_exit_code = 3
        if environment.runner is not None:
            gevent.spawn(environment.runner.quit)


_FAILED: list[OSError] = []  # this process's first failed write of its records


def register(environment: Environment, run_dir: Path, worker: str) -> RecordSpool:
    """Record every request Locust reports in ``run_dir/records/<worker>.arrows``.

    Listens on ``events.request`` and closes the spool on ``events.quitting``. The request's
    ``context`` may carry ``flow``, ``flow_id``, ``op_id``, ``attempt``, ``t_intended`` and
    ``error`` (which then wins over the error derived from the exception).
    """
    records = run_dir / RECORDS_DIR
    records.mkdir(parents=True, exist_ok=True)
    spool = RecordSpool(records / f"{worker}{SPOOL_SUFFIX}", worker)

    def on_request(
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> None:
        ctx = context or {}
        status = int(getattr(response, "status_code", 0) or 0) if response is not None else 0
        error = ctx.get("error") or error_kind(exception, status)
        retry_after = answer_retry_after(status, getattr(response, "headers", None))
        with recording(environment, spool.path):
            spool.add(
                start_time if start_time is not None else time.time() - response_time / 1000,
                name,
                status,
                float(response_time),
                int(response_length or 0),
                error,
                t_intended=ctx.get("t_intended"),
                retry_after_s=retry_after,
                flow=ctx.get("flow"),
                flow_id=ctx.get("flow_id"),
                op_id=ctx.get("op_id"),
                attempt=ctx.get("attempt") or 1,
            )

    def on_quitting(**kwargs: Any) -> None:
        with recording(environment, spool.path):
            spool.close()

    environment.events.request.add_listener(on_request)
    environment.events.quitting.add_listener(on_quitting)
    return spool
