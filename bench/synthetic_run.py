#!/usr/bin/env python3
"""A synthetic authload run directory of any size, for bench/report_scale.py.

What `authload run scenarios/release-gate.yaml` on the embedded mock would leave after a
long steady run, made from a seed without sending a request: ``requests.parquet``
(``RECORD_SCHEMA``, row groups of ``ROW_GROUP_ROWS``, zstd, the rows of each Locust process
one after the other, as the runner merges its spools), ``journeys.parquet``,
``manifest.json``, ``events.jsonl``, ``resources.jsonl``, ``mock_stats.json``,
``mock_faults.json`` and ``locust_counts/``. No ``summary.json``: the bench makes it.

The traffic: journeys of the four flows (lkfl, esia, sms with 3 to 15 refreshes, password
call), about 3.7 requests each, from three processes at a steady ``rate`` requests/s in all
(once the first minute's journeys are under way);
lognormal latencies per endpoint; a 503 burst (2% of the run, 40% of the answers 503 with
Retry-After, retried up to 3 attempts), a hang fault (1% of the run, 30% of the requests
time out at 5000 ms, retried likewise), expected 4xx, rare unexpected 4xx, 500s and broken
contracts. A journey ends at its first failed request (``failed:<endpoint>:<kind>``) or
refused refresh (``session_lost:invalid``); the journeys the end of the test cuts are
``stopped``.

Memory stays bounded: each process's rows are made about a million at a time, and written
in time order (what a chunk's journeys do past its end waits for the next chunk).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from authload.rundir.events import (
    Event,
    FaultWindow,
    OfferedEvent,
    OutcomesEvent,
    StageEvent,
    WorkerInfo,
    fault_event,
)
from authload.rundir.files import (
    EVENTS_FILE,
    JOURNEYS_FILE,
    LOCUST_COUNTS_DIR,
    MOCK_STATS_FILE,
    RECORDS_FILE,
    RESOURCES_FILE,
)
from authload.rundir.jsonfiles import write_json
from authload.rundir.manifest import Manifest, Runner, write_manifest
from authload.rundir.records import ERROR_KINDS, JOURNEY_SCHEMA, RECORD_SCHEMA, ROW_GROUP_ROWS
from authload.scenario.loader import load_scenario
from authload.scenario.model import Scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "release-gate.yaml"
GENERATOR_VERSION = 2  # part of the cache key: bump when the content changes
MARKER = ".synthetic.json"  # written last: the directory is complete
CHUNK_ROWS = 1_000_000
DEFAULT_RATE = 2500.0
WORKERS = ("w0", "w1", "w2")
START_T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
TIMEOUT_MS = 5000.0
BURST = (0.35, 0.37, 0.40)  # start, end (shares of the run), share of answers that are 503
HANG = (0.70, 0.71, 0.30)  # start, end, share of requests that time out
MAX_ATTEMPTS = 3
NEVER = np.iinfo(np.int64).max  # a journey that never gives up
RETRIES_WITHIN_S = 300.0  # a retry follows its first attempt within this (op_id lookup)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Objects = npt.NDArray[np.object_]


@dataclass(frozen=True)
class Endpoint:
    name: str
    median_ms: float
    p99_ms: float
    ok_bytes: int


ENDPOINTS = (
    Endpoint("gigma.send_password", 290.0, 1130.0, 40),
    Endpoint("gigma.login", 42.0, 160.0, 750),
    Endpoint("gigma.logout", 13.0, 63.0, 2),
    Endpoint("mobile.esia_url", 13.0, 52.0, 180),
    Endpoint("mobile.esia_auth", 121.0, 585.0, 520),
    Endpoint("mobile.lkfl_auth", 154.0, 715.0, 520),
    Endpoint("mobile.phone_request", 205.0, 828.0, 2),
    Endpoint("mobile.phone_verify", 12.5, 50.0, 283),
    Endpoint("mobile.refresh", 11.5, 50.0, 132),
)
NAMES = [e.name for e in ENDPOINTS]
SEND, LOGIN, LOGOUT, ESIA_URL, ESIA_AUTH, LKFL, PHONE_REQ, PHONE_VERIFY, REFRESH = range(9)

FLOWS = ("lkfl", "esia", "sms", "password_call")
FLOW_WEIGHTS = np.array([12.0, 5.0, 6.0, 4.0]) / 27.0  # 3.7 requests a journey
SMS = 2
#: each flow's endpoints by position; the last one repeats (the sms flow's refreshes)
STEPS = np.array(
    [
        [LKFL, LKFL, LKFL],
        [ESIA_URL, ESIA_AUTH, ESIA_AUTH],
        [PHONE_REQ, PHONE_VERIFY, REFRESH],
        [SEND, LOGIN, LOGOUT],
    ]
)
FLOW_LENGTH = np.array([1, 2, 0, 3])  # sms: 2 + its refreshes
REFRESHES = (3, 15)
THINK = (1500.0, 8000.0)  # median, p99 ms: release-gate's think time
REFRESH_EVERY = (4000.0, 15000.0)
SESSION = (20000.0, 120000.0)  # password call: login to logout

EXPECTED_4XX = {PHONE_VERIFY: (400, 0.01), LKFL: (400, 0.03), LOGOUT: (401, 0.005)}
REFUSED_REFRESH = 0.001  # 400 on mobile.refresh: the session is lost
UNEXPECTED_4XX, SERVER_ERROR, BROKEN_CONTRACT = 0.0002, 0.0001, 0.00003
NO_ERROR = 0
ERROR_CODE = {kind: i + 1 for i, kind in enumerate(ERROR_KINDS)}
HTTP, TIMEOUT, CONTRACT = ERROR_CODE["http"], ERROR_CODE["timeout"], ERROR_CODE["contract"]


def parse_rows(text: str) -> int:
    """``1e6``, ``10e6``, ``1M``, ``50k``, ``1000000`` -> rows."""
    raw = text.strip().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(raw[-1:].lower(), 1)
    number = float(raw[:-1] if scale > 1 else raw)
    rows = round(number * scale)
    if rows < 1 or abs(rows - number * scale) > 1e-6:
        raise ValueError(f"not a number of rows: {text!r}")
    return rows


def rows_label(rows: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"{rows // size}{unit}"
    return str(rows)


def scenario_for(duration_s: float) -> Scenario:
    """release-gate.yaml as ``authload run --duration`` would run it, with the 5 s request
    timeout of the generated timeouts."""
    scenario = load_scenario(SCENARIO).with_duration(duration_s)
    return scenario.model_copy(update={"request_timeout_s": TIMEOUT_MS / 1000.0})


@dataclass(frozen=True)
class Spec:
    """What a directory is made of; with :data:`GENERATOR_VERSION`, its cache key."""

    rows: int
    seed: int = 1
    rate: float = DEFAULT_RATE  # requests/s over all processes
    row_group_rows: int = ROW_GROUP_ROWS
    chunk_rows: int = CHUNK_ROWS  # rows a process makes at a time

    @property
    def duration_s(self) -> float:
        return self.rows / self.rate

    def key(self) -> dict[str, Any]:
        return {"version": GENERATOR_VERSION, **asdict(self)}


def _lognormal(rng: np.random.Generator, median: float, p99: float, n: int) -> Floats:
    sigma = math.log(p99 / median) / 2.326
    return median * np.exp(sigma * rng.standard_normal(n))


# --- one chunk of one process's traffic -------------------------------------------------


@dataclass
class Rows:
    """Attempts, column by column; ``journey`` and ``pos`` place each in its journey,
    ``root`` numbers its operation (the same for its first attempt and its retries)."""

    journey: Ints
    pos: Ints
    flow: Ints
    endpoint: Ints
    t: Floats
    latency: Floats
    status: Ints
    error: Ints
    retry_after: Floats
    nbytes: Ints
    attempt: Ints
    root: Ints

    def take(self, index: Ints | Bools | slice) -> Rows:
        return Rows(**{k: v[index] for k, v in vars(self).items()})

    @classmethod
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        return cls(**{k: np.concatenate([vars(p)[k] for p in parts]) for k in vars(parts[0])})


@dataclass
class Journeys:
    """Journeys, column by column, with how many of their attempts were written so far."""

    number: Ints
    flow: Ints
    t_start: Floats
    outcome: Objects
    rows: Ints
    written: Ints
    end: Floats  # when the last attempt written so far ended

    def take(self, index: Ints | Bools) -> Journeys:
        return Journeys(**{k: v[index] for k, v in vars(self).items()})

    @classmethod
    def concat(cls, parts: Sequence[Journeys]) -> Journeys:
        return cls(**{k: np.concatenate([vars(p)[k] for p in parts]) for k in vars(parts[0])})


@dataclass(frozen=True)
class Windows:
    burst: tuple[float, float]
    hang: tuple[float, float]

    @classmethod
    def of(cls, start: float, duration_s: float) -> Windows:
        def at(a: float, b: float) -> tuple[float, float]:
            return start + a * duration_s, start + b * duration_s

        return cls(at(*BURST[:2]), at(*HANG[:2]))

    def inside(self, window: tuple[float, float], t: Floats) -> Bools:
        return (t >= window[0]) & (t < window[1])


def _answers(rng: np.random.Generator, endpoint: Ints, t: Floats, windows: Windows) -> Rows:
    """Status, error, Retry-After, latency and size of attempts made at ``t``."""
    n = len(endpoint)
    latency = np.empty(n)
    nbytes = np.empty(n, dtype=np.int64)
    for code, e in enumerate(ENDPOINTS):
        mine = endpoint == code
        latency[mine] = _lognormal(rng, e.median_ms, e.p99_ms, int(mine.sum()))
        nbytes[mine] = e.ok_bytes + (rng.integers(-3, 4, int(mine.sum())) if e.ok_bytes > 50 else 0)
    status = np.full(n, 200, dtype=np.int64)
    error = np.full(n, NO_ERROR, dtype=np.int64)
    retry_after = np.full(n, np.nan)
    u = rng.random(n)
    for code, (answer, share) in EXPECTED_4XX.items():
        status[(endpoint == code) & (u < share)] = answer
    status[(endpoint == REFRESH) & (u < REFUSED_REFRESH)] = 400
    odd = rng.random(n)
    unexpected = odd < UNEXPECTED_4XX
    status[unexpected] = rng.choice([400, 401, 403, 404, 409, 422], int(unexpected.sum()))
    status[(odd >= UNEXPECTED_4XX) & (odd < UNEXPECTED_4XX + SERVER_ERROR)] = 500
    error[unexpected | (status == 500)] = HTTP
    error[(odd > 1.0 - BROKEN_CONTRACT) & (status == 200)] = CONTRACT
    error_body = status >= 400
    nbytes[error_body] = rng.integers(60, 120, int(error_body.sum()))
    burst = windows.inside(windows.burst, t)
    shed = burst & (rng.random(n) < BURST[2])
    latency[burst] *= 1.3
    status[shed], error[shed] = 503, HTTP
    retry_after[shed] = np.where(rng.random(int(shed.sum())) < 0.7, 1.0, 2.0)
    latency[shed] = _lognormal(rng, 3.0, 12.0, int(shed.sum()))
    nbytes[shed] = 95
    hang = windows.inside(windows.hang, t)
    latency[hang] *= 2.0
    lost = (hang & (rng.random(n) < HANG[2])) | (latency >= TIMEOUT_MS)  # the client gives up
    status[lost], error[lost], retry_after[lost] = 0, TIMEOUT, np.nan
    latency[lost], nbytes[lost] = TIMEOUT_MS, 0
    latency = np.round(latency, 3)
    zeros = np.zeros(n, dtype=np.int64)  # journey, pos, flow, root: the caller's to set
    ones = np.ones(n, dtype=np.int64)
    return Rows(
        zeros, zeros, zeros, endpoint, t, latency, status, error, retry_after, nbytes, ones, zeros
    )


def _retryable(rows: Rows) -> Bools:
    retryable: Bools = (rows.status == 503) | (rows.status == 500) | (rows.error == TIMEOUT)
    return retryable


def _with_retries(rng: np.random.Generator, first: Rows, windows: Windows) -> Rows:
    """The first attempts and the budget policy's retries: a 503, 500 or timeout is tried
    again (after its Retry-After, else a short backoff) up to :data:`MAX_ATTEMPTS` attempts."""
    parts, current = [first], first
    for attempt in range(2, MAX_ATTEMPTS + 1):
        again = current.take(_retryable(current))
        if not len(again.t):
            break
        backoff = 0.25 * 2 ** (attempt - 2) * rng.uniform(0.5, 1.5, len(again.t))
        delay = np.where(np.isnan(again.retry_after), backoff, again.retry_after)
        t = again.t + again.latency / 1000.0 + delay
        retry = _answers(rng, again.endpoint, t, windows)
        retry.journey, retry.pos, retry.root = again.journey, again.pos, again.root
        retry.flow = again.flow
        retry.attempt[:] = attempt
        parts.append(retry)
        current = retry
    return Rows.concat(parts)


@dataclass
class Chunk:
    records: pa.Table
    journeys: pa.Table
    answered: Counter[tuple[str, int]]  # answers per (endpoint, status)
    outcomes: Counter[str]  # "flow:outcome"
    last_end: float


def _empty_rows() -> Rows:
    none = np.zeros(0, dtype=np.int64)
    return _answers(np.random.default_rng(0), none, np.zeros(0), Windows((0, 0), (0, 0)))


@dataclass
class Process:
    """One Locust process's stream of attempts, written in time order: a chunk's journeys go
    on past its horizon (the clock where the next chunk's journeys start), so what lies
    beyond it waits for the next chunk. The process's quota of rows cuts the last chunk:
    the journeys still going are ``stopped``, as the end of a test stops them."""

    worker: str
    quota: int
    rate: float
    windows: Windows
    cursor: float  # the horizon: nothing made later starts before it
    chunk_rows: int = CHUNK_ROWS
    made: int = 0
    journeys: int = 0  # journeys numbered so far
    roots: int = 0  # operations numbered so far
    ops: int = 0  # operations written so far (op_id)
    chunks: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    rows_left: Rows = field(default_factory=_empty_rows)
    journeys_left: Journeys | None = None
    recent: tuple[Ints, Ints, Floats] = field(  # first attempts lately written: root, op_id, t
        default_factory=lambda: (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    )

    @property
    def done(self) -> bool:
        return self.made >= self.quota

    def chunk(self, seed: int) -> Chunk:
        rng = np.random.default_rng([seed, WORKERS.index(self.worker), self.chunks])
        self.chunks += 1
        fresh, journeys = self._fresh(rng)
        rows = Rows.concat([self.rows_left, fresh])
        rows = rows.take(np.argsort(rows.t, kind="stable"))
        if self.journeys_left is not None:
            journeys = Journeys.concat([self.journeys_left, journeys])
        ready = int(np.searchsorted(rows.t, self.cursor))
        last = self.made + ready >= self.quota
        if last:
            ready = self.quota - self.made
        out, self.rows_left = rows.take(slice(0, ready)), rows.take(slice(ready, None))
        self.made += ready
        ops = self._op_ids(out)
        written = self._journeys_written(out, journeys, last)
        return self._tables(out, ops, written)

    def _fresh(self, rng: np.random.Generator) -> tuple[Rows, Journeys]:
        """New journeys from the horizon on, and all their attempts; the horizon moves on."""
        wanted = max(min(self.chunk_rows, self.quota - self.made), 1000)
        m = math.ceil(wanted / 3.7)
        flows = rng.choice(len(FLOWS), size=m, p=FLOW_WEIGHTS)
        lengths = FLOW_LENGTH[flows].copy()
        sms = flows == SMS
        lengths[sms] = 2 + rng.integers(REFRESHES[0], REFRESHES[1] + 1, int(sms.sum()))
        offsets = np.cumsum(lengths) - lengths
        starts = self.cursor + (offsets + rng.random(m)) / self.rate
        self.cursor += float(lengths.sum()) / self.rate
        first = self._first_attempts(rng, flows, lengths, offsets, starts)
        rows = _with_retries(rng, first, self.windows)
        ending = _ends_journey(rows)
        end_pos = np.full(m, NEVER)
        np.minimum.at(end_pos, rows.journey[ending], rows.pos[ending])
        rows = rows.take(rows.pos <= end_pos[rows.journey])  # a journey ends where it fails
        journeys = Journeys(
            number=self.journeys + 1 + np.arange(m),
            flow=flows,
            t_start=starts,
            outcome=_outcomes(rows, m),
            rows=np.bincount(rows.journey, minlength=m),
            written=np.zeros(m, dtype=np.int64),
            end=np.full(m, -np.inf),
        )
        rows.journey += self.journeys + 1
        rows.root += self.roots
        self.journeys += m
        self.roots += len(first.t)
        return rows, journeys

    def _first_attempts(
        self, rng: np.random.Generator, flows: Ints, lengths: Ints, offsets: Ints, starts: Floats
    ) -> Rows:
        journey = np.repeat(np.arange(len(flows)), lengths)
        pos = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
        endpoint = STEPS[flows[journey], np.minimum(pos, 2)]
        n = len(pos)
        gap = _lognormal(rng, *THINK, n)
        refresh, logout = endpoint == REFRESH, endpoint == LOGOUT
        gap[refresh] = _lognormal(rng, *REFRESH_EVERY, int(refresh.sum()))
        gap[logout] = _lognormal(rng, *SESSION, int(logout.sum()))
        service = np.concatenate(([0.0], _lognormal(rng, 50.0, 500.0, n - 1)))
        step = np.where(pos > 0, gap + service, 0.0)  # think time + the previous answer
        since_start = np.cumsum(step)
        since_start -= np.repeat(since_start[offsets], lengths)
        t = starts[journey] + since_start / 1000.0
        rows = _answers(rng, endpoint, t, self.windows)
        rows.journey, rows.pos, rows.flow, rows.root = journey, pos, flows[journey], np.arange(n)
        return rows

    def _op_ids(self, out: Rows) -> Ints:
        """Operations numbered from 1 in the order they started (``out`` is in time order);
        a retry gets its first attempt's number."""
        first = out.attempt == 1
        ops = np.zeros(len(out.t), dtype=np.int64)
        ops[first] = self.ops + 1 + np.arange(int(first.sum()))
        self.ops += int(first.sum())
        roots = np.concatenate([self.recent[0], out.root[first]])
        numbers = np.concatenate([self.recent[1], ops[first]])
        times = np.concatenate([self.recent[2], out.t[first]])
        order = np.argsort(roots, kind="stable")
        retries = ~first
        at = np.searchsorted(roots[order], out.root[retries])
        ops[retries] = numbers[order][at]
        recent = times >= (float(out.t[-1]) if len(out.t) else 0.0) - RETRIES_WITHIN_S
        self.recent = (roots[recent], numbers[recent], times[recent])
        return ops

    def _journeys_written(self, out: Rows, journeys: Journeys, last: bool) -> Journeys:
        """The journeys whose attempts are all written (with ``last``: every one begun)."""
        index = np.searchsorted(journeys.number, out.journey)
        np.add.at(journeys.written, index, 1)
        np.maximum.at(journeys.end, index, out.t + out.latency / 1000.0)
        complete = journeys.written == journeys.rows
        if last:
            begun = journeys.written > 0
            journeys.outcome[begun & ~complete] = "stopped"
            done, self.journeys_left = journeys.take(begun), None
        else:
            done, self.journeys_left = journeys.take(complete), journeys.take(~complete)
        return done.take(np.argsort(done.end, kind="stable"))  # written as they end

    def _flow_ids(self, numbers: Ints) -> pa.Array:
        text = pa.array(numbers).cast(pa.string())
        return pc.binary_join_element_wise(self.worker, text, "-")

    def _tables(self, out: Rows, ops: Ints, journeys: Journeys) -> Chunk:
        ends = out.t + out.latency / 1000.0
        order = np.argsort(ends, kind="stable")  # a process records an attempt as it ends
        rows, ops = out.take(order), ops[order]
        n = len(rows.t)
        error = rows.error - 1
        records = pa.table(
            {
                "t": rows.t,
                "t_intended": pa.nulls(n, pa.float64()),
                "endpoint": _strings(rows.endpoint, NAMES),
                "status": rows.status.astype(np.int16),
                "latency_ms": rows.latency,
                "bytes": rows.nbytes,
                "error": _strings(error, ERROR_KINDS, mask=error < 0),
                "retry_after_s": pa.array(rows.retry_after, from_pandas=True),
                "flow": _strings(rows.flow, FLOWS),
                "flow_id": self._flow_ids(rows.journey),
                "op_id": ops,
                "attempt": rows.attempt.astype(np.int16),
                "worker": pa.array(np.full(n, self.worker), pa.string()),
            },
            schema=RECORD_SCHEMA,
        )
        j = len(journeys.number)
        journey_table = pa.table(
            {
                "t_start": journeys.t_start,
                "t_end": journeys.end,
                "waited_ms": pa.nulls(j, pa.float64()),
                "flow": _strings(journeys.flow, FLOWS),
                "flow_id": self._flow_ids(journeys.number),
                "outcome": pa.array(journeys.outcome, pa.string()),
                "kind": pa.array(np.full(j, "journey"), pa.string()),
                "worker": pa.array(np.full(j, self.worker), pa.string()),
            },
            schema=JOURNEY_SCHEMA,
        )
        per_endpoint = np.bincount(rows.endpoint, minlength=len(NAMES)).tolist()
        self.counts.update(dict(zip(NAMES, per_endpoint, strict=True)))
        last_end = float(ends.max()) if n else 0.0
        return Chunk(
            records, journey_table, _answered(rows), _outcome_counts(journey_table), last_end
        )


def _answered(rows: Rows) -> Counter[tuple[str, int]]:
    answered = rows.status > 0
    pairs, counts = np.unique(
        rows.endpoint[answered] * 1000 + rows.status[answered], return_counts=True
    )
    return Counter(
        {
            (NAMES[p // 1000], p % 1000): k
            for p, k in zip(pairs.tolist(), counts.tolist(), strict=True)
        }
    )


def _outcome_counts(journeys: pa.Table) -> Counter[str]:
    labels = pc.binary_join_element_wise(journeys["flow"], journeys["outcome"], ":")
    return Counter(
        {str(v["values"]): int(v["counts"]) for v in pc.value_counts(labels).to_pylist()}
    )


def _ends_journey(rows: Rows) -> Bools:
    """Attempts after which the journey gives up: a failure not retried, a refused refresh."""
    failed = (rows.error != NO_ERROR) & ~(_retryable(rows) & (rows.attempt < MAX_ATTEMPTS))
    refused = (rows.endpoint == REFRESH) & (rows.status == 400)
    ends: Bools = failed | refused
    return ends


def _outcomes(rows: Rows, m: int) -> Objects:
    outcomes = np.full(m, "completed", dtype=object)
    ending = np.flatnonzero(_ends_journey(rows))
    for i in ending.tolist():
        j = int(rows.journey[i])
        if rows.error[i] == NO_ERROR:
            outcomes[j] = "session_lost:invalid"
        else:
            kind = ERROR_KINDS[int(rows.error[i]) - 1]
            outcomes[j] = f"failed:{NAMES[int(rows.endpoint[i])]}:{kind}"
    return outcomes


def _strings(codes: Ints, names: Sequence[str], mask: Bools | None = None) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names))).cast(pa.string())


# --- writing --------------------------------------------------------------------------------


class RowGroups:
    """A Parquet file written in row groups of exactly ``size`` rows (the last one shorter),
    whatever the sizes of the tables added, as the runner's merge writes it."""

    def __init__(self, path: Path, schema: pa.Schema, size: int) -> None:
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.size = size
        self.pending: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= self.size:
            self._flush(final=False)

    def close(self) -> None:
        self._flush(final=True)
        self.writer.close()

    def _flush(self, final: bool) -> None:
        table = pa.concat_tables(self.pending)
        start = 0
        while table.num_rows - start >= self.size or (final and start < table.num_rows):
            part = table.slice(start, self.size)
            self.writer.write_table(part, row_group_size=part.num_rows)
            start += part.num_rows
        rest = table.slice(start)
        self.pending, self.rows = [rest.combine_chunks()], rest.num_rows


@dataclass
class Totals:
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # per worker
    answered: Counter[tuple[str, int]] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    journeys: int = 0
    last_end: float = 0.0


def _quotas(rows: int) -> list[int]:
    base, extra = divmod(rows, len(WORKERS))
    return [base + (1 if i < extra else 0) for i in range(len(WORKERS))]


def _write_records(run_dir: Path, spec: Spec, progress: bool) -> Totals:
    windows = Windows.of(START_T, spec.duration_s)
    requests = RowGroups(run_dir / RECORDS_FILE, RECORD_SCHEMA, spec.row_group_rows)
    journeys = RowGroups(run_dir / JOURNEYS_FILE, JOURNEY_SCHEMA, spec.row_group_rows)
    totals = Totals()
    made, started = 0, time.monotonic()
    rate = spec.rate / len(WORKERS)
    try:
        for index, (worker, quota) in enumerate(zip(WORKERS, _quotas(spec.rows), strict=True)):
            process = Process(worker, quota, rate, windows, START_T + 0.01 * index, spec.chunk_rows)
            totals.outcomes[worker] = Counter()
            while not process.done:
                chunk = process.chunk(spec.seed)
                requests.add(chunk.records)
                journeys.add(chunk.journeys)
                totals.answered.update(chunk.answered)
                totals.outcomes[worker].update(chunk.outcomes)
                totals.journeys += chunk.journeys.num_rows
                totals.last_end = max(totals.last_end, chunk.last_end)
                made += chunk.records.num_rows
                if progress:
                    print(
                        f"  {made:,} of {spec.rows:,} rows ({time.monotonic() - started:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            totals.counts[worker] = process.counts
    finally:
        requests.close()
        journeys.close()
    return totals


# --- the other files --------------------------------------------------------------------


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _events(scenario: Scenario, windows: Windows, totals: Totals) -> Iterator[Event]:
    """Stages, the watcher's offered users every 5 s, the fault windows, the outcomes."""
    rows: list[Event] = [*_stages(scenario, totals.last_end)]
    rows += [fault_event(FaultWindow.model_validate(e)) for e in _fault_history(windows)]
    yield from sorted(rows, key=lambda e: e.t)
    arrivals = dict.fromkeys(("due", "started", "waited", "dropped", "waiting", "in_flight"), 0)
    for worker, counts in totals.outcomes.items():
        yield OutcomesEvent(
            t=totals.last_end + 0.5,
            worker=worker,
            counts=dict(sorted(counts.items())),
            arrivals={**arrivals, "due_by_stage": []},
        )


def _stages(scenario: Scenario, end: float) -> Iterator[StageEvent | OfferedEvent]:
    begin, previous = START_T - 0.05, 0.0
    for index, stage in enumerate(scenario.load.stages):
        if begin > end:
            return
        yield StageEvent(t=begin, stage=index, **stage.model_dump())
        planned = float(stage.users or 0)
        t = begin + 5.0
        while t < min(begin + stage.duration_s, end):
            step = stage.spawn_rate * (t - begin)
            users = min(planned, previous + step) if planned >= previous else planned
            yield OfferedEvent(t=t, stage=index, users=round(users), planned_users=round(planned))
            t += 5.0
        begin, previous = begin + stage.duration_s, planned


def _fault_history(windows: Windows) -> list[dict[str, Any]]:
    """The mock's fault windows as ``GET /_mock/faults`` lists them."""
    faults = (
        ("f1", "status", "503 burst", windows.burst),
        ("f2", "hang", "upstream hang: requests time out", windows.hang),
    )
    history = [
        {
            "t": t,
            "t_s": round(t - START_T, 6),
            "event": event,
            "fault": fault,
            "kind": kind,
            "endpoints": ["*"],
            "name": name,
        }
        for fault, kind, name, (start, end) in faults
        for event, t in (("start", start), ("end", end))
    ]
    return sorted(history, key=lambda e: float(e["t"]))


def _resources(totals: Totals) -> Iterator[dict[str, Any]]:
    """The Locust processes' memory and CPU every 10 s: flat, as a healthy run's."""
    rng = np.random.default_rng(0)
    t = START_T
    while t <= totals.last_end + 10.0:
        yield {
            "t": t,
            "process": "master",
            "role": "master",
            "pid": 1000,
            "rss_bytes": 98_000_000 + int(rng.integers(0, 400_000)),
            "cpu_percent": 3.0,
            "source": "psutil",
            "users": None,
        }
        for worker in WORKERS:
            yield {
                "t": t,
                "process": worker,
                "role": "worker",
                "rss_bytes": 140_000_000 + int(rng.integers(0, 800_000)),
                "cpu_percent": round(float(rng.normal(35.0, 2.0)), 1),
                "source": "heartbeat",
                "state": "running",
                "users": 33,
            }
        t += 10.0


def _write_lines(path: Path, rows: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n")


def _manifest(scenario: Scenario, spec: Spec, end: float) -> Manifest:
    return Manifest(
        scenario=scenario.model_dump(mode="json"),
        target="mock",
        versions={"authload": "0.1.0", "locust": None, "pyarrow": pa.__version__},
        start=_iso(START_T - 1.0),
        end=_iso(end + 1.0),
        status="completed",
        seed=scenario.seed,
        processes=len(WORKERS),
        runner=Runner(host="synthetic", pid=0),
        launched_by="bench/synthetic_run.py",  # its spec: in MARKER
        locust_exit=0,
        records=spec.rows,
        workers=[WorkerInfo(worker=w) for w in WORKERS],
    )


def _mock_stats(totals: Totals, end: float) -> dict[str, Any]:
    requests: dict[str, dict[str, int]] = {}
    for (name, status), n in sorted(totals.answered.items()):
        requests.setdefault(name, {})[str(status)] = n
    uptime = round(end - START_T + 2.0, 3)
    return {"epoch": START_T - 2.0, "uptime_s": uptime, "requests": requests, "events": {}}


# --- the directory -----------------------------------------------------------------------


def cached(run_dir: Path, spec: Spec) -> bool:
    """Whether ``run_dir`` holds a complete directory made to ``spec``."""
    try:
        made = json.loads((run_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(made, dict) and made.get("key") == spec.key()


def generate(run_dir: Path, spec: Spec, progress: bool = False) -> dict[str, Any]:
    """Write the run directory ``run_dir`` (replaced if it exists); what was made."""
    scenario = scenario_for(spec.duration_s)  # a ScenarioError for a run shorter than stage 0
    partial = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    totals = _write_records(partial, spec, progress)
    windows = Windows.of(START_T, spec.duration_s)
    events = (e.model_dump(mode="json") for e in _events(scenario, windows, totals))
    _write_lines(partial / EVENTS_FILE, events)
    _write_lines(partial / RESOURCES_FILE, _resources(totals))
    write_json(partial / "mock_faults.json", _fault_history(windows))
    write_json(partial / MOCK_STATS_FILE, _mock_stats(totals, totals.last_end))
    (partial / LOCUST_COUNTS_DIR).mkdir()
    for worker, counts in totals.counts.items():
        write_json(partial / LOCUST_COUNTS_DIR / f"{worker}.json", dict(counts))
    write_manifest(partial, _manifest(scenario, spec, totals.last_end))
    made = {
        "key": spec.key(),
        "duration_s": spec.duration_s,
        "journeys": totals.journeys,
        "generate_s": round(time.monotonic() - started, 3),
        "requests_bytes": (partial / RECORDS_FILE).stat().st_size,
        "row_groups": pq.ParquetFile(partial / RECORDS_FILE).metadata.num_row_groups,
        "windows": {"burst_503": windows.burst, "hang_timeouts": windows.hang},
    }
    write_json(partial / MARKER, made)
    shutil.rmtree(run_dir, ignore_errors=True)
    partial.rename(run_dir)
    return made


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--rows", type=parse_rows, default=1_000_000, help="requests (1M)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="requests/s (2500)")
    args = p.parse_args(argv)
    made = generate(args.run_dir, Spec(args.rows, args.seed, args.rate), progress=True)
    print(json.dumps(made, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
