"""The request recorder (inside Locust) and the run directory record files it feeds.

Importing Locust monkey-patches the process with gevent, which must happen before anything
else is imported and would change every other test of the session. So this module never
imports Locust itself: the tests that need it run a ``child_*`` function of this module in
a fresh interpreter that imports Locust first (:func:`run_child`), and check what it
recorded from here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gevent
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from authload.errors import ContractError, ResultsError
from authload.load.recorder import (
    RecordSpool,
    answer_retry_after,
    error_kind,
    register,
    retry_after_seconds,
)
from authload.rundir.files import JOURNEYS_FILE, RECORDS_DIR, RECORDS_FILE
from authload.rundir.jsonfiles import read_json, write_json
from authload.rundir.records import RECORD_SCHEMA, FinalizeResult, finalize_records, read_records
from tests.helpers import locust_child

ROOT = Path(__file__).resolve().parents[2]


def run_child(main: str, *args: str) -> subprocess.CompletedProcess[str]:
    return locust_child.run_child(__name__, main, *args)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeResponse:
    """Stands for the response value Locust passes to request listeners."""

    def __init__(self, status_code: int | None, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers


def spool_path(run_dir: Path, worker: str = "w1") -> Path:
    (run_dir / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
    return run_dir / RECORDS_DIR / f"{worker}.arrows"


def add_rows(spool: RecordSpool, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        spool.add(1.7e9 + i, "gigma.login", 200, 12.5, 100, op_id=i)


def read_stream(path: Path) -> list[pa.RecordBatch]:
    with pa.OSFile(str(path), "rb") as source:
        return list(ipc.open_stream(source))


def test_spool_flushes_every_flush_rows(tmp_path: Path) -> None:
    clock = FakeClock()
    path = spool_path(tmp_path)
    spool = RecordSpool(path, "w1", flush_rows=3, flush_s=60.0, clock=clock)
    add_rows(spool, 7)
    assert (spool.rows, spool.batches, spool.pending) == (6, 2, 1)
    batches = read_stream(path)  # readable while the writer is still open
    assert [b.num_rows for b in batches] == [3, 3]
    assert batches[0].schema.equals(RECORD_SCHEMA)
    batches[0].validate(full=True)
    spool.close()
    assert [b.num_rows for b in read_stream(path)] == [3, 3, 1]


def test_spool_flushes_after_flush_s_on_the_next_add(tmp_path: Path) -> None:
    clock = FakeClock()
    path = spool_path(tmp_path)
    spool = RecordSpool(path, "w1", flush_rows=1000, flush_s=2.0, clock=clock)
    add_rows(spool, 2)
    clock.now += 1.9
    add_rows(spool, 1, start=2)
    assert spool.batches == 0
    clock.now += 0.2
    add_rows(spool, 1, start=3)
    assert (spool.rows, spool.batches, spool.pending) == (4, 1, 0)
    clock.now += 2.5  # time passes with no request: nothing to write, no empty batch
    spool.flush()
    assert spool.batches == 1
    spool.close()


def test_close_is_idempotent_and_later_rows_are_counted_as_dropped(tmp_path: Path) -> None:
    path = spool_path(tmp_path)
    spool = RecordSpool(path, "w1")
    add_rows(spool, 5)
    spool.close()
    spool.close()
    add_rows(spool, 2)
    assert (spool.closed, spool.rows, spool.dropped) == (True, 5, 2)
    assert sum(b.num_rows for b in read_stream(path)) == 5


def test_a_bad_value_loses_its_batch_only(tmp_path: Path) -> None:
    path = spool_path(tmp_path)
    spool = RecordSpool(path, "w1", flush_rows=3)
    add_rows(spool, 1)
    spool.add(1.7e9, "gigma.login", 200, 1.0, 10, attempt=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        add_rows(spool, 1)
    assert (spool.rows, spool.dropped, spool.pending) == (0, 3, 0)
    add_rows(spool, 3)
    spool.close()
    assert [b.num_rows for b in read_stream(path)] == [3]


def test_an_existing_spool_is_never_overwritten(tmp_path: Path) -> None:
    path = spool_path(tmp_path)
    path.write_bytes(b"earlier records")
    with pytest.raises(ResultsError, match="already exists"):
        RecordSpool(path, "w1")
    assert path.read_bytes() == b"earlier records"


@pytest.mark.parametrize(
    ("exception", "status", "kind"),
    [
        (None, 200, None),
        (None, 404, None),
        (Exception("503 Service Unavailable"), 503, "http"),
        (ConnectionResetError(104, "Connection reset by peer"), 502, "http"),
        (ContractError("gigma.login", "no token"), 200, "contract"),
        (ContractError("gigma.login", "error shape"), 400, "contract"),
        (Exception("body is not JSON"), 200, "contract"),
        (TimeoutError("timed out"), 0, "timeout"),
        (socket.timeout(), 0, "timeout"),  # noqa: UP041 (the name Locust's clients raise)
        (gevent.Timeout(1.0), 0, "timeout"),
        (OSError("read timed out"), 0, "timeout"),
        (ConnectionRefusedError(111, "Connection refused"), 0, "connect"),
        (OSError("[Errno 111] connection refused"), 0, "connect"),
        (ConnectionResetError(104, "Connection reset by peer"), 0, "reset"),
        (BrokenPipeError(32, "Broken pipe"), 0, "reset"),
        (OSError("socket closed: broken pipe"), 0, "reset"),
        (socket.gaierror(-2, "Name or service not known"), 0, "connect"),
        (ValueError("something else"), 0, "connect"),
    ],
)
def test_error_kind(exception: BaseException | None, status: int, kind: str | None) -> None:
    assert error_kind(exception, status) == kind


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str] | None, seconds: float | None) -> None:
    assert retry_after_seconds(headers) == seconds


@pytest.mark.parametrize(
    ("status", "seconds"), [(200, None), (204, None), (301, 3.0), (429, 3.0), (503, 3.0)]
)
def test_answer_retry_after_reads_it_from_3xx_and_up(status: int, seconds: float | None) -> None:
    assert answer_retry_after(status, {"Retry-After": "3"}) == seconds


def child_fire_request_events(run_dir: str) -> None:
    """Fire ``events.request`` as Locust's clients do, once per kind of outcome."""
    from locust.env import Environment
    from locust.event import Events
    from locust.exception import CatchResponseError

    environment = Environment(events=Events())
    register(environment, Path(run_dir), "local")

    def fire(**overrides: Any) -> None:
        meta: dict[str, Any] = {
            "request_type": "POST",
            "name": "gigma.login",
            "response_time": 42.0,
            "response_length": 120,
            "response": FakeResponse(200, {}),
            "context": {},
            "exception": None,
            "start_time": 1.7e9,
            "url": "http://127.0.0.1:1/counterparty/login",
        }
        environment.events.request.fire(**{**meta, **overrides})

    context = {"flow": "gigma_login", "flow_id": "f-1", "op_id": 7, "t_intended": 1.7e9 - 0.5}
    fire(context=context)
    fire(
        response=FakeResponse(503, {"Retry-After": "2"}),
        exception=CatchResponseError("503"),
        context={**context, "attempt": 2, "error": "http"},
        response_length=0,
    )
    fire(response=FakeResponse(200, {"Retry-After": "5"}), context={"error": "contract"})
    fire(response=FakeResponse(None), exception=TimeoutError("timed out"))
    fire(response=None, exception=ConnectionRefusedError(111, "refused"))
    fire(response=FakeResponse(0), exception=ConnectionResetError(104, "reset"))
    fire(response=FakeResponse(0), exception=BrokenPipeError(32, "Broken pipe"))
    fire(response=FakeResponse(0), exception=OSError("no route to host"))
    fire(response=FakeResponse(401, {}), exception=CatchResponseError("401"))
    fire(context=None, start_time=None)
    environment.events.quitting.fire(environment=environment)


def child_request_real_server(run_dir: str, base_url: str, refused_url: str) -> None:
    """Requests through Locust's FastHttpSession, recorded by a registered recorder."""
    from locust.contrib.fasthttp import FastHttpSession
    from locust.env import Environment
    from locust.event import Events

    environment = Environment(events=Events())
    spool = register(environment, Path(run_dir), "local")
    session = FastHttpSession(
        base_url,
        request_event=environment.events.request,
        user=None,
        max_retries=0,
        network_timeout=0.3,
        connection_timeout=1.0,
    )
    ctx = {"flow": "probe", "flow_id": "p-1", "op_id": 1}
    session.get("/ok", name="mobile.esia_url", context=ctx)
    session.get("/busy", name="mobile.esia_url", context={**ctx, "op_id": 2})
    session.get("/slow", name="mobile.refresh")
    session.get(refused_url, name="mobile.refresh")
    spool.close()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/busy":
            body, status, headers = b"busy", 503, {"Retry-After": "2"}
        elif self.path == "/slow":
            time.sleep(0.8)
            body, status, headers = b"late", 200, {}
        else:
            body, status, headers = b"hello world", 200, {}
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up waiting (/slow)
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_locust_runs(events_dir: str, fasthttp_dir: str, base_url: str, refused: str) -> None:
    child_fire_request_events(events_dir)
    child_request_real_server(fasthttp_dir, base_url, refused)
    assert "pandas" not in sys.modules, "recording imported pandas into a Locust process"


@pytest.fixture(scope="module")
def locust_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Run directories recorded by one Locust process: fired events, real requests.

    One child interpreter for both, as importing Locust takes a second or two.
    """
    events_dir = tmp_path_factory.mktemp("events-run")
    fasthttp_dir = tmp_path_factory.mktemp("fasthttp-run")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        refused = f"http://127.0.0.1:{free_port()}/"
        child = run_child(
            "child_locust_runs", str(events_dir), str(fasthttp_dir), base_url, refused
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert child.returncode == 0, child.stderr
    return events_dir, fasthttp_dir


@pytest.mark.integration  # shares the Locust child, which also talks to a real server
def test_register_records_each_request_event_and_closes_on_quitting(
    locust_runs: tuple[Path, Path],
) -> None:
    tmp_path = locust_runs[0]
    result = finalize_records(tmp_path)
    assert (result.rows, result.unclosed) == (10, [])  # closed on quitting
    rows = read_records(tmp_path).to_pylist()
    assert rows[0] == {
        "t": 1.7e9,
        "t_intended": 1.7e9 - 0.5,
        "endpoint": "gigma.login",
        "status": 200,
        "latency_ms": 42.0,
        "bytes": 120,
        "error": None,
        "retry_after_s": None,
        "flow": "gigma_login",
        "flow_id": "f-1",
        "op_id": 7,
        "attempt": 1,
        "worker": "local",
    }
    assert (rows[1]["status"], rows[1]["error"], rows[1]["retry_after_s"]) == (503, "http", 2.0)
    assert (rows[1]["attempt"], rows[1]["op_id"], rows[1]["bytes"]) == (2, 7, 0)
    # Retry-After means something on 3xx, 429 and 5xx answers only: a 2xx's is not read
    assert (rows[2]["error"], rows[2]["retry_after_s"]) == ("contract", None)
    assert [(r["status"], r["error"]) for r in rows[3:9]] == [
        (0, "timeout"),
        (0, "connect"),
        (0, "reset"),
        (0, "reset"),
        (0, "connect"),
        (401, "http"),
    ]
    assert abs(rows[9]["t"] - time.time()) < 60 and rows[9]["flow"] is None  # no start_time


@pytest.mark.integration
def test_fasthttp_requests_against_a_real_server_are_recorded(
    locust_runs: tuple[Path, Path],
) -> None:
    tmp_path = locust_runs[1]
    finalize_records(tmp_path)
    ok, busy, slow, refused_row = read_records(tmp_path).to_pylist()
    assert (ok["status"], ok["error"], ok["bytes"], ok["retry_after_s"]) == (200, None, 11, None)
    assert (ok["flow"], ok["flow_id"], ok["op_id"], ok["attempt"]) == ("probe", "p-1", 1, 1)
    assert (busy["status"], busy["error"], busy["retry_after_s"]) == (503, "http", 2.0)
    assert (slow["status"], slow["error"]) == (0, "timeout")
    assert 250 <= slow["latency_ms"] < 800
    assert (refused_row["status"], refused_row["error"]) == (0, "connect")
    assert all(r["latency_ms"] > 0 for r in (ok, busy))
    assert ok["t"] <= busy["t"] <= slow["t"] <= refused_row["t"]


def write_spool(run_dir: Path, worker: str, rows: int, flush_rows: int = 20_000) -> None:
    spool = RecordSpool(spool_path(run_dir, worker), worker, flush_rows=flush_rows)
    add_rows(spool, rows)
    spool.close()


def test_finalize_streams_spools_into_row_groups_and_removes_them(tmp_path: Path) -> None:
    for worker, rows in (("w1", 100_000), ("w2", 90_000), ("w3", 60_000)):
        write_spool(tmp_path, worker, rows)
    result = finalize_records(tmp_path)
    assert result == FinalizeResult(rows=250_000, spools=3, torn=[], unclosed=[])
    meta = pq.ParquetFile(tmp_path / RECORDS_FILE).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        100_000,
        100_000,
        50_000,
    ]
    assert not (tmp_path / RECORDS_DIR).exists()
    assert sorted(os.listdir(tmp_path)) == [JOURNEYS_FILE, RECORDS_FILE]  # no journeys: empty
    table = read_records(tmp_path, columns=["worker", "op_id"])
    assert table.schema.names == ["worker", "op_id"]
    counts = table.group_by("worker").aggregate([("op_id", "count")]).to_pylist()
    assert sorted((c["worker"], c["op_id_count"]) for c in counts) == [
        ("w1", 100_000),
        ("w2", 90_000),
        ("w3", 60_000),
    ]


def test_finalize_keeps_the_complete_batches_of_a_torn_spool(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "killed")
    spool = RecordSpool(path, "killed", flush_rows=100)
    add_rows(spool, 300)
    complete = path.stat().st_size
    add_rows(spool, 100, start=300)
    torn_size = (complete + path.stat().st_size) // 2
    spool.close()
    with path.open("r+b") as f:
        f.truncate(torn_size)
    write_spool(tmp_path, "whole", 50)
    result = finalize_records(tmp_path)
    assert result == FinalizeResult(
        rows=350, spools=2, torn=["killed.arrows"], unclosed=["killed.arrows"]
    )
    assert read_records(tmp_path).num_rows == 350


KILLED_MID_RUN = """
import os, signal, sys
from pathlib import Path
from authload.load.recorder import RecordSpool
spool = RecordSpool(Path(sys.argv[1]), "w9", flush_rows=100)
for i in range(250):
    spool.add(1.7e9 + i, "mobile.refresh", 200, 3.0, 10)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_finalize_after_a_real_kill_keeps_every_flushed_batch(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "w9")
    child = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RUN, str(path)], capture_output=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr  # 250 rows added, 200 flushed
    result = finalize_records(tmp_path)
    assert (result.rows, result.torn, result.unclosed) == (200, [], ["w9.arrows"])


def test_finalize_is_atomic_when_a_spool_is_unusable(tmp_path: Path) -> None:
    write_spool(tmp_path, "good", 10)
    other = pa.schema([pa.field("x", pa.int64())])
    with ipc.new_stream(str(spool_path(tmp_path, "alien")), other) as writer:
        writer.write_batch(pa.record_batch([pa.array([1])], schema=other))
    write_json(tmp_path / RECORDS_FILE, {"stands for": "an earlier file"})
    with pytest.raises(ResultsError, match="another schema"):
        finalize_records(tmp_path)
    assert read_json(tmp_path / RECORDS_FILE) == {"stands for": "an earlier file"}
    assert sorted(os.listdir(tmp_path)) == [RECORDS_DIR, RECORDS_FILE]
    assert sorted(os.listdir(tmp_path / RECORDS_DIR)) == ["alien.arrows", "good.arrows"]


def test_finalize_without_spools(tmp_path: Path) -> None:
    assert finalize_records(tmp_path) == FinalizeResult(rows=0, spools=0)
    assert read_records(tmp_path).schema.equals(RECORD_SCHEMA)
    write_spool(tmp_path, "w1", 5)
    assert finalize_records(tmp_path).rows == 5
    assert finalize_records(tmp_path) == FinalizeResult(rows=5, spools=0)


def test_read_records_errors_are_results_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no request records"):
        read_records(tmp_path)
    spool_path(tmp_path)
    with pytest.raises(ResultsError, match="not finalized"):
        read_records(tmp_path)
    (tmp_path / RECORDS_FILE).write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="unreadable"):
        read_records(tmp_path)
    pq.write_table(pa.table({"t": [1.0]}), tmp_path / RECORDS_FILE)
    with pytest.raises(ResultsError, match="lack columns"):
        read_records(tmp_path)
    with pytest.raises(ResultsError, match="unknown record columns"):
        read_records(tmp_path, columns=["t", "nope"])
    assert read_records(tmp_path, columns=["t"]).column("t").to_pylist() == [1.0]
