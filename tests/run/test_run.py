"""`authload run` end to end: the real command, a real Locust subprocess and the embedded mock
(or a mock started here, as a non-mock target), each run a few seconds of load on 127.0.0.1.
What a run leaves behind is checked against itself: records, Locust's counts, the mock's
counts, the flow outcomes and the events must tell the same story, exactly."""

from __future__ import annotations

import json
import secrets
import socket
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from authload.contracts import ENDPOINTS
from authload.gc_tuning import GEN0_THRESHOLD
from authload.mock.profile import load_profile
from authload.mock.server import EmbeddedMock
from authload.run.targets import BUILTIN
from tests.helpers.runs import SCENARIOS, STORM, Run, authload, flow_of, journeys, run_scenario

pytestmark = pytest.mark.integration

# ---------------------------------------------------------------------------------------------
# 1 and 2: one closed-model run of every flow on a healthy mock


MIXED = """
name: flows-e2e
description: every flow, every branch, on a mock without latency or faults
seed: 3
accounts: {count: 3000}
mix: {password_call: 2, sms: 2, esia: 1, lkfl: 1}
load:
  model: closed
  stages:
    - {duration_s: 3, users: 4, spawn_rate: 4}
    - {duration_s: 4, users: 8, spawn_rate: 8}
think_time: {dist: fixed, ms: 20}
flows:
  password_call:
    devices: {1: 0.34, 2: 0.33, 3: 0.33}
    logout_all_share: 0.5
    session: {dist: fixed, ms: 100}
  sms: {typo_share: 0.5, refreshes: [1, 2], refresh_every: {dist: fixed, ms: 50}}
  lkfl: {wrong_password_share: 0.5}
retry: {policy: none}
slos:
  - "error_rate(*, contract) < 0.1%"
  - "error_rate(*, 5xx) < 0.1%"
mock: {behaviour: {}}
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_scenario(tmp_path_factory.mktemp("mixed"), MIXED, load_s=7)
    assert run.code == 0, run.describe()
    return run


def test_counts_reconcile_exactly_across_records_locust_and_mock(mixed: Run) -> None:
    recorded = {str(k): int(v) for k, v in mixed.records.groupby("endpoint").size().items()}
    assert set(recorded) == set(ENDPOINTS), "every endpoint is driven by the four flows"
    assert mixed.locust_counts() == recorded
    assert mixed.mock_counts() == recorded
    assert mixed.mock_stats["total"] == len(mixed.records)

    reconciliation = mixed.summary["reconciliation"]
    assert reconciliation["match"] is True
    assert set(reconciliation["endpoints"]) == set(recorded)
    for name, row in reconciliation["endpoints"].items():
        n = recorded[name]
        assert row == {"records": n, "locust": n, "answered": n, "mock": n, "match": True}, name
    assert mixed.manifest["records"] == len(mixed.records) == mixed.summary["requests"]
    assert mixed.summary["endpoints"]["*"]["count"] == len(mixed.records)


def test_run_directory_is_complete(mixed: Run) -> None:
    assert mixed.run_dir is not None
    assert mixed.run_dir.parent == mixed.out
    assert mixed.run_dir.name.endswith("-flows-e2e")
    for name in (
        "manifest.json",
        "events.jsonl",
        "summary.json",
        "requests.parquet",
        "mock_stats.json",
        "locust_stats.csv",
        "locust.html",
    ):
        assert (mixed.run_dir / name).is_file(), name
    assert not (mixed.run_dir / "records").exists(), "spools are merged and removed"
    assert (mixed.run_dir / "locust.html").stat().st_size > 1000

    manifest = mixed.manifest
    assert manifest["status"] == "completed"
    assert manifest["target"] == "mock"
    assert manifest["scenario"]["name"] == "flows-e2e"
    assert manifest["scenario"]["mix"] == {"password_call": 2, "sms": 2, "esia": 1, "lkfl": 1}
    assert manifest["seed"] == 3
    assert manifest["processes"] == 1
    assert "git_revision" in manifest
    assert manifest["versions"]["authload"]
    assert manifest["versions"]["locust"]
    assert manifest["versions"]["pyarrow"]
    assert manifest["versions"]["python"]
    start = datetime.fromisoformat(manifest["start"])
    end = datetime.fromisoformat(manifest["end"])
    assert 7 <= (end - start).total_seconds() < 7 + 60
    assert manifest["torn_spools"] == []
    assert manifest["died"] == []

    stages = [e for e in mixed.events if e["kind"] == "stage"]
    assert [(e["stage"], e["users"]) for e in stages] == [(0, 4), (1, 8)]
    assert 2 <= stages[1]["t"] - stages[0]["t"] <= 4  # the first stage lasts 3 s
    assert [e["worker"] for e in mixed.events if e["kind"] == "outcomes"] == ["w0"]
    generator = [e for e in mixed.events if e["kind"] == "generator"]
    assert [(e["worker"], e["gc"], e["gc_threshold"][0]) for e in generator] == [
        ("w0", "tuned", GEN0_THRESHOLD)
    ], "the Locust process tuned its garbage collection when the test started"
    assert generator[0]["t"] < stages[0]["t"] + 1 and generator[0]["gc_frozen"] > 0

    summary = mixed.summary
    assert summary["verdict"] == "pass"
    assert summary["status"] == "completed"
    assert [s["passed"] for s in summary["slos"]] == [True, True]
    assert "verdict: PASS" in mixed.proc.stdout


def _password_call_ok(calls: list[tuple[str, int]]) -> tuple[int, bool]:
    """(devices, logged out from all) of a well-formed password_call journey."""
    logins = 0
    while calls[2 * logins : 2 * logins + 2] == [
        ("gigma.send_password", 200),
        ("gigma.login", 200),
    ]:
        logins += 1
    logouts = calls[2 * logins :]
    assert 1 <= logins <= 3, calls
    assert len(logouts) == logins, calls
    assert all(name == "gigma.logout" for name, _ in logouts), calls
    statuses = [status for _, status in logouts]
    everywhere = statuses == [200] + [401] * (logins - 1)
    assert statuses == [200] * logins or everywhere, calls
    return logins, everywhere and logins > 1


def _sms_ok(calls: list[tuple[str, int]]) -> tuple[bool, int]:
    """(typo first, refreshes) of a well-formed sms journey."""
    assert calls[0] == ("mobile.phone_request", 200), calls
    typo = calls[1] == ("mobile.phone_verify", 400)
    rest = calls[2:] if typo else calls[1:]
    assert rest[0] == ("mobile.phone_verify", 200), calls
    refreshes = rest[1:]
    assert refreshes == [("mobile.refresh", 200)] * len(refreshes), calls
    assert 1 <= len(refreshes) <= 2, calls
    return typo, len(refreshes)


def test_every_flow_makes_exactly_its_calls(mixed: Run) -> None:
    assert mixed.run_dir is not None
    kept = pd.read_parquet(mixed.run_dir / "journeys.parquet")
    # journeys the test's end cut short (no call starts once it stops) are kept as such
    stopped = set(kept.loc[kept["outcome"] == "stopped", "flow_id"])
    records = mixed.records[~mixed.records["flow_id"].isin(stopped)]
    by_journey = journeys(records)
    flows = flow_of(records)
    assert set(flows.values()) == {"password_call", "sms", "esia", "lkfl"}
    seen: dict[str, Counter[object]] = {f: Counter() for f in set(flows.values())}
    for flow_id, calls in by_journey.items():
        flow = flows[flow_id]
        if flow == "password_call":
            seen[flow][_password_call_ok(calls)] += 1
        elif flow == "sms":
            seen[flow][_sms_ok(calls)] += 1
        elif flow == "esia":
            assert calls == [("mobile.esia_url", 200), ("mobile.esia_auth", 200)], calls
            seen[flow]["ok"] += 1
        else:
            assert calls in (
                [("mobile.lkfl_auth", 200)],
                [("mobile.lkfl_auth", 400), ("mobile.lkfl_auth", 200)],
            ), calls
            seen[flow][len(calls)] += 1
    # every branch of every flow was taken
    assert {devices for devices, _ in seen["password_call"]} == {1, 2, 3}
    assert any(everywhere for _, everywhere in seen["password_call"])
    assert {typo for typo, _ in seen["sms"]} == {True, False}
    assert {n for _, n in seen["sms"]} == {1, 2}
    assert set(seen["lkfl"]) == {1, 2}

    # every journey not cut short completed, and the outcomes count each of them once
    assert set(kept.loc[kept["kind"] == "journey", "outcome"]) <= {"completed", "stopped"}
    journeys_per_flow = Counter(flows.values())
    assert mixed.outcomes == Counter({f"{f}:completed": n for f, n in journeys_per_flow.items()})


def test_records_are_well_formed_and_free_of_errors_on_a_healthy_mock(mixed: Run) -> None:
    records = mixed.records
    assert records["flow_id"].notna().all()
    assert records["op_id"].notna().all()
    assert records["t_intended"].isna().all(), "closed model: no intended start"
    assert (records["attempt"] == 1).all(), "retry policy none"
    assert records["op_id"].is_unique, "policy none: one attempt per operation"
    assert (records["worker"] == "w0").all()
    # no errors at all: the refusals the flows provoke (a typo, a wrong password, the other
    # devices' tokens after a logout from all devices) are the answers they expect
    assert records["error"].isna().all()
    refused = records[records["status"] != 200]
    expected = {("mobile.phone_verify", 400), ("mobile.lkfl_auth", 400), ("gigma.logout", 401)}
    assert set(zip(refused["endpoint"], refused["status"], strict=True)) == expected
    assert mixed.summary["endpoints"]["*"]["error_rate"] == 0


def test_the_mock_saw_exactly_the_sessions_the_records_show(mixed: Run) -> None:
    records = mixed.records
    ok = records[records["status"] == 200].groupby("endpoint").size()
    events = mixed.mock_stats["events"]
    mobile_logins = [
        "mobile.phone_verify",
        "mobile.esia_auth",
        "mobile.lkfl_auth",
        "mobile.refresh",
    ]
    assert events["tokens_issued.mobile"] == sum(int(ok[e]) for e in mobile_logins)
    assert events["tokens_issued.gigma"] == int(ok["gigma.login"])
    # every Gigma session ended in a logout: of its device, or of all of them
    assert events["tokens_revoked.gigma"] == int(ok["gigma.login"])
    assert events["refresh_reuse_refused"] == 0
    assert events.get("sessions_evicted.mobile", 0) == 0


# ---------------------------------------------------------------------------------------------
# 3: open model, latency raised ~20x mid-run


OPEN = """
name: open-latency-jump
seed: 5
accounts: {count: 1000}
mix: {esia: 1, lkfl: 1}
load:
  model: open
  stages: [{duration_s: 12, rate: 20}]
  max_in_flight: 200
think_time: {dist: fixed, ms: 50}
flows:
  lkfl: {wrong_password_share: 0}
retry: {policy: none}
abort: null
mock:
  behaviour:
    latency:
      default: {dist: fixed, ms: 10}
    faults:
      - {name: slow, kind: latency, added_ms: 190, start_s: JUMP_S}
"""
JUMP_S = 7.0  # from mock start; the load starts a few seconds after it
EARLY_S = 0.002  # a gevent timer may wake this much before its wall-clock due time
OPEN_RATE, OPEN_DURATION_S = 20, 12


@pytest.fixture(scope="module")
def open_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    text = OPEN.replace("JUMP_S", str(JUMP_S))
    run = run_scenario(tmp_path_factory.mktemp("open"), text, load_s=OPEN_DURATION_S)
    assert run.code == 0, run.describe()
    return run


def _arrivals(run: Run) -> pd.DataFrame:
    """One row per journey: its intended start and when its first request went out."""
    records = run.records
    grouped = records.groupby("flow_id")
    starts = pd.DataFrame(
        {
            "t_intended": grouped["t_intended"].first(),
            "intended_values": grouped["t_intended"].nunique(),
            "t_first": grouped["t"].min(),
        }
    )
    return starts.sort_values("t_intended")


@pytest.mark.slow
def test_open_model_keeps_the_arrival_rate_when_latency_jumps(open_run: Run) -> None:
    records = open_run.records
    assert records["t_intended"].notna().all(), "every open-model record has its intended start"
    arrivals = _arrivals(open_run)
    assert (arrivals["intended_values"] == 1).all(), "one intended start per journey"

    target = OPEN_RATE * OPEN_DURATION_S
    dropped = open_run.outcomes.get("dropped_arrivals", 0)
    assert dropped == 0, "200 journeys in flight are plenty"
    started = len(arrivals) + dropped
    assert abs(started - target) <= 0.02 * target, started

    # the schedule: one arrival every 1/rate s, whatever the latency
    intended = arrivals["t_intended"].to_numpy()
    assert np.allclose(np.diff(intended), 1 / OPEN_RATE, atol=1e-3)
    # and it was kept: each journey's first request went out on time, once the dispatcher
    # runs (the schedule counts from the test's start, Locust spawns it a moment later: the
    # first arrivals' lateness is real, and measured from their due time)
    lateness = arrivals["t_first"] - arrivals["t_intended"]
    assert lateness.min() >= -EARLY_S
    settled = arrivals["t_intended"] >= arrivals["t_intended"].min() + 0.5
    assert lateness[settled].max() < 0.1, lateness[settled].max()
    assert lateness.max() < 0.5, lateness.max()

    jump = open_run.mock_stats["epoch"] + JUMP_S
    firsts = arrivals["t_first"].to_numpy()
    for part in (firsts[firsts < jump], firsts[firsts >= jump]):
        assert len(part) >= 2 * OPEN_RATE
        achieved = (len(part) - 1) / (part[-1] - part[0])
        assert abs(achieved - OPEN_RATE) <= 0.02 * OPEN_RATE, achieved


@pytest.mark.slow
def test_open_model_latency_counts_from_the_intended_start(open_run: Run) -> None:
    records = open_run.records
    from_intended_ms = (records["t"] - records["t_intended"]) * 1000 + records["latency_ms"]
    assert (from_intended_ms >= records["latency_ms"] - EARLY_S * 1000).all()

    jump = open_run.mock_stats["epoch"] + JUMP_S
    before = records[records["t"] + records["latency_ms"] / 1000 < jump]
    after = records[records["t"] >= jump]
    assert len(before) >= 50 and len(after) >= 100
    assert before["latency_ms"].max() < 100, "10 ms before the jump"
    # 10 ms + 190 ms; the mock's timer may wake a fraction of a millisecond early
    assert after["latency_ms"].min() >= 198
    first_calls = records.sort_values("op_id").groupby("flow_id").head(1)
    late_starts = first_calls[first_calls["t_intended"] >= jump]
    late_ms = (late_starts["t"] - late_starts["t_intended"]) * 1000 + late_starts["latency_ms"]
    assert (late_ms >= 198).all()


@pytest.mark.slow
def test_open_model_makes_exactly_rate_times_duration_arrivals(open_run: Run) -> None:
    arrivals = _arrivals(open_run)
    assert len(arrivals) + open_run.outcomes.get("dropped_arrivals", 0) == 240
    intended = arrivals["t_intended"].to_numpy()
    # the first arrival is 1/rate after the dispatcher started; none after the stage ended
    assert intended[-1] - (intended[0] - 1 / OPEN_RATE) <= OPEN_DURATION_S


@pytest.mark.slow
def test_open_model_run_ends_without_a_traceback(open_run: Run) -> None:
    assert "Traceback" not in open_run.proc.stderr


DROPS = """
name: open-drops
seed: 6
accounts: {count: 500}
mix: {esia: 1}
load:
  model: open
  stages: [{duration_s: 4, rate: 10}]
  max_in_flight: 1
  when_full: drop
think_time: {dist: fixed, ms: 50}
retry: {policy: none}
abort: null
mock:
  behaviour:
    latency: {default: {dist: fixed, ms: 200}}
"""


def test_open_model_drops_arrivals_beyond_max_in_flight_and_counts_them(
    tmp_path: Path,
) -> None:
    run = run_scenario(tmp_path, DROPS, load_s=4)
    assert run.code == 0, run.describe()
    arrivals = _arrivals(run)
    dropped = run.outcomes["dropped_arrivals"]
    # a journey takes 200 + 50 + 200 ms: at 10 arrivals/s, one in flight, most are dropped
    assert dropped > len(arrivals) > 5
    assert abs(len(arrivals) + dropped - 40) <= 1
    # never two journeys at once
    ends = run.records.assign(end=run.records["t"] + run.records["latency_ms"] / 1000)
    spans = ends.groupby("flow_id").agg(start=("t", "min"), end=("end", "max")).sort_values("start")
    assert (spans["start"].to_numpy()[1:] >= spans["end"].to_numpy()[:-1] - 0.005).all()
    # the journeys that ran are the arrivals on the schedule, each started on time
    steps = np.diff(arrivals["t_intended"].to_numpy()) * 10
    assert np.allclose(steps, np.round(steps), atol=0.01)
    assert (np.round(steps) >= 4).all(), "the next journey starts only once the pool is free"
    assert ((arrivals["t_first"] - arrivals["t_intended"]).between(-EARLY_S, 0.1)).all()
    assert run.outcomes["esia:completed"] == len(arrivals)


SLOW_AT_STOP = """
name: open-slow-at-stop
seed: 9
accounts: {count: 1000}
mix: {esia: 1}
load:
  model: open
  stages: [{duration_s: 5, rate: 30}]
  max_in_flight: 200
request_timeout_s: 2
think_time: {dist: uniform, min_ms: 500, max_ms: 4000}
retry: {policy: none}
abort: null
mock:
  behaviour:
    latency: {default: {dist: fixed, ms: 900}}
    faults:
      - {name: stuck, kind: hang, endpoints: [mobile.esia_url], fraction: 0.1, hang_max_s: 30}
"""


@pytest.mark.slow
def test_open_model_journeys_alive_at_the_stop_are_recorded_and_concurrency_is_not_capped(
    tmp_path: Path,
) -> None:
    """At 30 arrivals/s with 0.9 s answers ~27 requests are in flight at once, and many
    journeys are mid-way (thinking for up to 4 s, or hung) when the stage ends, longer than
    Locust's stop timeout (3 s): every request the mock saw is in the records, a hang ends at
    the scenario's request timeout, and no request waits for a connection inside the
    client."""
    run = run_scenario(tmp_path, SLOW_AT_STOP, load_s=5 + 6)
    assert run.code == 0, run.describe()
    assert run.summary["reconciliation"]["match"], run.summary["reconciliation"]
    records = run.records
    hung = records[records["error"] == "timeout"]
    assert len(hung) >= 5, "a tenth of the ESIA URL requests hang"
    assert hung["latency_ms"].between(2000, 2300).all(), hung["latency_ms"].describe()
    answered = records[records["status"] == 200]
    assert answered["latency_ms"].max() < 1100, "no request queued in the client's pool"
    ends = records["t"] + records["latency_ms"] / 1000
    mid = records["t"].min() + 3.0
    in_flight = int(((records["t"] <= mid) & (ends > mid)).sum())
    assert in_flight > 20, in_flight


# ---------------------------------------------------------------------------------------------
# 4: retry policies against a 503 with Retry-After on every ESIA URL request

RETRY = """
name: retry-POLICY
seed: 8
accounts: {count: 500}
mix: {esia: 1}
load:
  model: closed
  stages: [{duration_s: 3, users: 4, spawn_rate: 4}]
think_time: {dist: fixed, ms: 50}
retry: {policy: POLICY, max_attempts: 3, base_ms: 10, cap_ms: 50}
abort: null
SLOS
mock:
  behaviour:
    faults:
      - {name: unavailable, kind: status, status: 503, retry_after_s: 1,
         endpoints: [mobile.esia_url], fraction: 1.0}
"""


def _retry_run(tmp_path: Path, policy: str, slos: str = "") -> Run:
    text = RETRY.replace("POLICY", policy).replace("SLOS", slos)
    return run_scenario(tmp_path, text, load_s=3 + 3)  # the last operations finish after 3 s


def _operations(records: pd.DataFrame) -> pd.DataFrame:
    """Per logical operation: its attempts in order, their starts and ends."""
    ordered = records.sort_values(["op_id", "attempt"])
    ordered = ordered.assign(end=ordered["t"] + ordered["latency_ms"] / 1000)
    return ordered.groupby("op_id").agg(
        attempts=("attempt", list), t=("t", list), end=("end", list), flows=("flow_id", "nunique")
    )


def _gaps(ops: pd.DataFrame) -> list[float]:
    """Time from the end of each failed attempt to the start of the next."""
    return [
        t[i + 1] - end[i]
        for t, end in zip(ops["t"], ops["end"], strict=True)
        for i in range(len(t) - 1)
    ]


def _check_all_failed(run: Run) -> pd.DataFrame:
    records = run.records
    assert set(records["endpoint"]) == {"mobile.esia_url"}, "the journey ends at its first call"
    assert set(records["status"]) == {503}
    assert set(records["error"]) == {"http"}
    assert (records["retry_after_s"] == 1.0).all()
    assert run.mock_stats["events"]["faults_applied.mobile.esia_url"] == len(records)
    ops = _operations(records)
    assert (ops["flows"] == 1).all()
    assert run.outcomes == Counter({"esia:failed:mobile.esia_url:http": len(ops)})
    assert run.summary["endpoints"]["mobile.esia_url"]["retries"] == int(
        (records["attempt"] > 1).sum()
    )
    return ops


def test_retry_policy_none_sends_each_operation_once(tmp_path: Path) -> None:
    run = _retry_run(tmp_path, "none", slos='slos: ["error_rate(mobile.esia_url, 503) < 1%"]')
    assert run.code == 1, run.describe()  # the SLO fails: every request is a 503
    assert "verdict: FAIL" in run.proc.stdout
    [slo] = run.summary["slos"]
    assert slo["passed"] is False
    assert slo["value"] == 100.0
    assert slo["count"] == len(run.records)
    ops = _check_all_failed(run)
    assert len(ops) >= 20
    assert all(a == [1] for a in ops["attempts"])


@pytest.mark.slow
def test_retry_policy_retry_after_waits_what_the_server_says(tmp_path: Path) -> None:
    run = _retry_run(tmp_path, "retry_after")
    assert run.code == 0, run.describe()
    ops = _check_all_failed(run)
    assert len(ops) >= 4
    assert all(a == [1, 2, 3] for a in ops["attempts"])
    gaps = _gaps(ops)
    # Retry-After: 1 honoured in full (base and cap of the backoff are 10 and 50 ms)
    assert min(gaps) >= 0.99, min(gaps)
    assert max(gaps) < 1.3, max(gaps)
    starts = [t[i + 1] - t[i] for t in ops["t"] for i in range(len(t) - 1)]
    assert min(starts) >= 0.99


def test_retry_policy_immediate_retries_at_once(tmp_path: Path) -> None:
    run = _retry_run(tmp_path, "immediate")
    assert run.code == 0, run.describe()
    ops = _check_all_failed(run)
    assert len(ops) >= 20
    assert all(a == [1, 2, 3] for a in ops["attempts"])
    assert max(_gaps(ops)) < 0.1, "no wait between attempts (Retry-After ignored)"


def test_retry_policy_budget_keeps_retries_within_a_tenth_of_first_attempts(
    tmp_path: Path,
) -> None:
    run = _retry_run(tmp_path, "budget")
    assert run.code == 0, run.describe()
    ops = _check_all_failed(run)
    first = len(ops)
    retries = int((run.records["attempt"] > 1).sum())
    assert first >= 40
    # every operation wants two retries; the budget grants one whenever
    # retries + 1 <= 0.1 * first attempts (a 60 s window, longer than the run)
    assert retries <= 0.1 * first
    assert retries >= 0.1 * first - 2
    assert all(a in ([1], [1, 2], [1, 2, 3]) for a in ops["attempts"])
    assert max(_gaps(ops)) < 0.1, "budget waits the backoff (at most 50 ms), not Retry-After"


# ---------------------------------------------------------------------------------------------
# 5: a refresh storm while a share of refresh answers is lost after the rotation

STORM_SESSIONS = 60


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Run:
    text = STORM.replace("STORM_SESSIONS", str(STORM_SESSIONS))
    run = run_scenario(tmp_path_factory.mktemp("storm"), text, load_s=7)
    assert run.code == 0, run.describe()
    return run


@pytest.mark.slow
def test_refresh_storm_with_lost_answers_loses_sessions_to_rotation(storm: Run) -> None:
    outcomes = storm.outcomes
    records = storm.records
    refresh = records[records["endpoint"] == "mobile.refresh"]
    # only the storm refreshes (the sms journeys refresh 0 times), each a fresh idle session
    assert set(refresh["flow"]) == {"refresh_storm"}
    [start] = [e for e in storm.events if e["kind"] == "refresh_storm_start"]
    assert start["sessions"] == start["wanted"] == STORM_SESSIONS
    assert refresh.groupby("flow_id")["op_id"].nunique().eq(1).all()
    assert refresh["flow_id"].nunique() == STORM_SESSIONS

    first = refresh[refresh["attempt"] == 1]
    retries = refresh[refresh["attempt"] == 2]
    assert set(first["status"]) <= {200, 0}, "a live session's token rotates, or the answer is lost"
    assert set(retries["status"]) <= {400, 0}, "a retry presents the rotated token"
    assert len(retries) == (first["status"] == 0).sum()
    lost_answers = refresh[refresh["status"] == 0]
    assert len(lost_answers) > 0
    assert set(lost_answers["error"]) <= {"reset", "connect"}  # the kind: see below

    lost = outcomes["refresh_storm:session_lost:rotation"]
    failed = sum(n for k, n in outcomes.items() if k.startswith("refresh_storm:failed:"))
    assert lost > 0
    assert lost == (retries["status"] == 400).sum()
    assert failed == (retries["status"] == 0).sum()
    assert outcomes["refresh_storm:completed"] == (first["status"] == 200).sum()
    assert lost + failed + outcomes["refresh_storm:completed"] == STORM_SESSIONS
    assert sum(n for k, n in outcomes.items() if k.startswith("refresh_storm:")) == STORM_SESSIONS

    # the storm is open model: each refresh on its own schedule across the window
    intended = np.sort(first["t_intended"].to_numpy())
    assert np.allclose(np.diff(intended), 1.0 / STORM_SESSIONS, atol=1e-3)
    # gevent's timers run on the loop's cached clock and may fire a fraction of a
    # millisecond before the wall-clock time recorded as intended
    assert (refresh["t"] >= refresh["t_intended"] - EARLY_S).all()

    # the mock refused exactly the retries: each presented a token it had rotated; those
    # that got an answer are the sessions lost to rotation, the others were reset again
    events = storm.mock_stats["events"]
    assert events["refresh_reuse_refused"] == len(retries) == lost + failed
    assert events["faults_applied.mobile.refresh"] == len(lost_answers)
    assert storm.summary["reconciliation"]["match"] is True
    row = storm.summary["reconciliation"]["endpoints"]["mobile.refresh"]
    assert row["answered"] == row["mock"] == len(refresh) - len(lost_answers)
    assert row["records"] == row["locust"] == len(refresh)


@pytest.mark.slow
def test_a_lost_answer_is_recorded_as_a_reset(storm: Run) -> None:
    records = storm.records
    lost_answers = records[(records["endpoint"] == "mobile.refresh") & (records["status"] == 0)]
    assert len(lost_answers) > 0
    assert set(lost_answers["error"]) == {"reset"}
    assert storm.summary["endpoints"]["mobile.refresh"]["errors"] == {"reset": len(lost_answers)}
    failed = [k for k in storm.outcomes if k.startswith("refresh_storm:failed:")]
    assert failed in ([], ["refresh_storm:failed:mobile.refresh:reset"])


EVICTING = """
name: evicting-e2e
seed: 5
accounts: {count: 2}
mix: {lkfl: 1}
load:
  model: closed
  stages: [{duration_s: 5, users: 4, spawn_rate: 4}]
think_time: {dist: fixed, ms: 50}
flows:
  lkfl: {wrong_password_share: 0}
events:
  - {kind: refresh_storm, at_s: 3, sessions: 20, window_s: 0.5}
retry: {policy: none}
abort: null
mock:
  behaviour: {}
  settings: {max_sessions_per_account: 1}
"""


def test_sessions_the_mock_evicts_are_named_as_its_doing_not_the_services(
    tmp_path: Path, mixed: Run
) -> None:
    """Two accounts, one live session each on the mock: the idle sessions the lkfl journeys
    keep are evicted by later logins, and the storm finds their tokens refused."""
    run = run_scenario(tmp_path, EVICTING, load_s=5)
    assert run.code == 0, run.describe()
    evicted = run.summary["mock_sessions_evicted"]
    assert set(evicted) == {"mobile"} and evicted["mobile"] > 0
    assert run.outcomes["refresh_storm:session_lost:invalid"] > 0
    note = "the mock evicted sessions over its per-account cap"
    assert f"note: {note} ({evicted['mobile']} mobile)" in run.proc.stdout
    assert run.run_dir is not None
    assert note in (run.run_dir / "report.html").read_text(encoding="utf-8")

    assert mixed.summary["mock_sessions_evicted"] == {}, "none on a healthy run"
    assert "note:" not in mixed.proc.stdout


# ---------------------------------------------------------------------------------------------
# 6: mass logout of counterparties on several devices

MASS_LOGOUT = """
name: mass-logout-e2e
seed: 10
accounts: {count: 2000}
mix: {password_call: 1}
load:
  model: closed
  stages: [{duration_s: 6, users: 8, spawn_rate: 8}]
think_time: {dist: fixed, ms: 50}
flows:
  password_call:
    devices: {2: 0.5, 3: 0.5}
    logout_all_share: 0
    session: {dist: fixed, ms: 4000}
events:
  - {kind: mass_logout, at_s: 2.5, share: 1.0, relogin_delay: {dist: fixed, ms: 300}}
retry: {policy: none}
abort: null
mock: {behaviour: {}}
"""


@pytest.mark.slow
def test_mass_logout_refuses_every_revoked_token_then_users_log_in_again(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, MASS_LOGOUT, load_s=6 + 5)
    assert run.code == 0, run.describe()
    outcomes = run.outcomes
    [event] = [e for e in run.events if e["kind"] == "mass_logout"]
    counterparties = event["counterparties"]
    assert counterparties == event["live"] == 8, "all 8 users are in their session at 2.5 s"

    by_journey = journeys(run.records)
    flows = flow_of(run.records)
    mass = [c for f, c in by_journey.items() if flows[f] == "mass_logout"]
    relogins = [c for f, c in by_journey.items() if flows[f] == "relogin"]
    assert len(mass) == counterparties
    for calls in mass:  # logout everywhere, then each other device is refused
        assert 2 <= len(calls) <= 3
        assert calls == [("gigma.logout", 200)] + [("gigma.logout", 401)] * (len(calls) - 1)
    refused = sum(len(c) - 1 for c in mass)
    for calls in relogins:
        assert calls == [("gigma.send_password", 200), ("gigma.login", 200), ("gigma.logout", 200)]

    assert outcomes["mass_logout:completed"] == counterparties  # every revoked token refused
    assert "mass_logout:revoked_token_accepted" not in outcomes
    assert run.run_dir is not None
    kept = pd.read_parquet(run.run_dir / "journeys.parquet")
    revocations = kept[kept["kind"] == "revocation"]
    assert (revocations["outcome"] == "refused").sum() == len(revocations) == refused > 0
    assert run.summary["revocation"]["tokens"] == refused
    assert outcomes["relogin:completed"] == len(relogins) == counterparties
    assert outcomes["password_call:ended_by_mass_logout"] == counterparties
    assert set(outcomes) <= {
        "mass_logout:completed",
        "relogin:completed",
        "password_call:ended_by_mass_logout",
        "password_call:completed",
    }
    # every Gigma session ended: by logout, by the mass logout, or by the relogin's logout
    events = run.mock_stats["events"]
    assert events["tokens_revoked.gigma"] == events["tokens_issued.gigma"]
    assert events["tokens_issued.gigma"] == int(
        ((run.records["endpoint"] == "gigma.login") & (run.records["status"] == 200)).sum()
    )
    assert run.summary["reconciliation"]["match"] is True


SURGE = """
name: surge-e2e
seed: 4
accounts: {count: 2000}
mix: {password_call: 1}
load:
  model: closed
  stages: [{duration_s: 7, users: 30, spawn_rate: 30}]
think_time: {dist: fixed, ms: 20}
flows:
  password_call: {devices: {1: 1.0}, logout_all_share: 0, session: {dist: fixed, ms: 5000}}
events:
  - {kind: mass_logout, at_s: 3, share: 1.0, relogin_delay: {dist: fixed, ms: 10}}
retry: {policy: none}
abort: null
mock:
  behaviour:
    latency: {gigma.send_password: {dist: fixed, ms: 400}}
"""


def test_a_relogin_surge_is_timed_as_the_service_answers_not_queued_in_the_client(
    tmp_path: Path,
) -> None:
    """30 counterparties re-log in at once, each send_password held 400 ms by the mock: the
    events' client must have a connection for each, or the later ones wait for a free one
    inside the client and that wait is counted as the service's latency."""
    run = run_scenario(tmp_path, SURGE, load_s=7)
    assert run.code == 0, run.describe()
    records = run.records
    surge = records[(records["flow"] == "relogin") & (records["endpoint"] == "gigma.send_password")]
    assert len(surge) >= 25, "most users were in their session at the mass logout"
    starts = surge["t"].max() - surge["t"].min()
    assert starts < 0.3, "they went out together"
    assert surge["latency_ms"].max() < 400 + 250, surge["latency_ms"].describe()


# ---------------------------------------------------------------------------------------------
# the scenario's seed

SEEDED = """
name: seeded
seed: 42
accounts: {count: 500}
mix: {sms: 1}
load:
  model: closed
  stages: [{duration_s: 3, users: 1, spawn_rate: 1}]
think_time: {dist: fixed, ms: 20}
flows:
  sms: {typo_share: 0.5, refreshes: [1, 4], refresh_every: {dist: fixed, ms: 10}}
retry: {policy: none}
mock: {behaviour: {}}
"""


@pytest.mark.slow
def test_the_same_seed_makes_the_same_journeys(tmp_path: Path) -> None:
    # one user, one flow: the order of random draws is the same in every run
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(lambda i: run_scenario(tmp_path / f"run{i}", SEEDED, load_s=3), (1, 2))
        )
    shapes = []
    for run in runs:
        assert run.code == 0, run.describe()
        by_journey = journeys(run.records)
        ordered = sorted(by_journey, key=lambda flow_id: int(flow_id.rsplit("-", 1)[1]))
        assert len(ordered) >= 10
        shapes.append([by_journey[flow_id] for flow_id in ordered[:10]])
    assert shapes[0] == shapes[1]


# ---------------------------------------------------------------------------------------------
# 7: safety of shared targets


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 that nothing answers: any connection to it would queue here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def _contacted(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def test_beta_without_confirm_is_refused_before_any_traffic(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    out = tmp_path / "runs"
    env = {
        "AUTHLOAD_BETA_MOBILE_URL": f"http://127.0.0.1:{port}",
        "AUTHLOAD_BETA_APP_TOKEN": "beta-token-for-a-test",
        "AUTHLOAD_BETA_CLIENT_SECRET": "beta-secret-for-a-test",
    }
    result = authload(
        "run", SCENARIOS / "beta-smoke.yaml", "--target", "beta", "--out", out, env=env
    )
    assert result.returncode == 2, result.stderr
    message = result.stderr
    assert "target beta is a shared environment" in message
    assert "--confirm" in message
    for limit in ("max_users=20", "max_rate=5", "max_duration_s=600", "abort_error_rate=0.2"):
        assert limit in message, limit
    assert not out.exists(), "no run directory: the run never started"
    assert "run directory" not in result.stdout + result.stderr
    assert not _contacted(listener)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(200)
def test_beta_smoke_passes_on_the_mock_within_the_betas_call_budget(tmp_path: Path) -> None:
    """The beta's one scenario, run on the mock with its default profile: 2 users, 2 journeys
    each, every call-reset answered (none refused by the per-phone limit), and no more calls
    than the beta's budget or than its one phone takes in 10 minutes."""
    text = (SCENARIOS / "beta-smoke.yaml").read_text(encoding="utf-8")
    run = run_scenario(tmp_path, text, "--target", "mock", load_s=60.0)
    assert run.code == 0, run.describe()
    assert "verdict: PASS" in run.proc.stdout
    assert run.summary["verdict"] == "pass"
    assert run.outcomes == Counter({"password_call:completed": 4})
    calls = run.records[run.records["endpoint"] == "gigma.send_password"]
    assert calls["status"].tolist() == [200] * 4
    budget = BUILTIN["beta"].limits.send_password_budget
    per_phone = load_profile(None).rate_limits.calls_per_phone
    assert budget is not None and per_phone is not None
    assert len(calls) <= min(budget, per_phone.limit)
    assert run.mock_stats["events"]["tokens_revoked.gigma"] == 4  # every session logged out


def _targets_file(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


SMALL_CLOSED = """
name: stand-check
mix: {password_call: 1, lkfl: 1}
load:
  model: closed
  stages: [{duration_s: STAGE_S, users: USERS, spawn_rate: 10}]
think_time: {dist: fixed, ms: 50}
flows:
  password_call: {devices: {1: 1.0}, session: {dist: fixed, ms: 100}}
  lkfl: {wrong_password_share: 0}
retry: {policy: none}
"""


def test_custom_target_above_its_max_users_is_refused_even_with_confirm(
    tmp_path: Path, listener: socket.socket
) -> None:
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    targets = _targets_file(
        tmp_path / "targets.yaml",
        f"stand:\n  gigma_url: {url}\n  mobile_url: {url}\n  limits: {{max_users: 3}}\n",
    )
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SMALL_CLOSED.replace("STAGE_S", "5").replace("USERS", "5"))
    out = tmp_path / "runs"
    env = {"AUTHLOAD_APP_TOKEN": "t", "AUTHLOAD_CLIENT_SECRET": "s"}
    result = authload(
        "run", scenario, "--target", "stand", "--targets", targets, "--confirm", "--out", out,
        env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "target stand refuses this run" in result.stderr
    assert "peak users 5 > max_users 3" in result.stderr
    assert not out.exists()
    assert not _contacted(listener)


@pytest.fixture
def stand(tmp_path: Path) -> Iterator[tuple[EmbeddedMock, str, str]]:
    """A mock playing a shared stand, with an app token and client secret of its own."""
    token = "tok-" + secrets.token_hex(12)
    secret = "sec-" + secrets.token_hex(12)
    profile = tmp_path / "stand-profile.yaml"
    profile.write_text("{}\n", encoding="utf-8")
    env = {"AUTHLOAD_MOCK_APP_TOKEN": token, "AUTHLOAD_MOCK_CLIENT_SECRET": secret}
    with EmbeddedMock(env=env, args=("--behaviour", str(profile))) as mock:
        yield mock, token, secret


def _files_holding(directory: Path, needles: list[str]) -> list[str]:
    """Files under ``directory`` in which any needle appears (Parquet read decoded)."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        texts = [path.read_bytes().decode("utf-8", "replace")]
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        if any(n in text for n in needles for text in texts):
            found.append(str(path))
    return found


def test_custom_target_runs_with_confirm_and_secrets_from_the_environment_only(
    tmp_path: Path, stand: tuple[EmbeddedMock, str, str]
) -> None:
    mock, token, secret = stand
    with httpx.Client(base_url=mock.url, timeout=10) as client:
        accounts = client.get("/_mock/accounts", params={"limit": 8}).json()["accounts"]
    passwords = {f"STAND_LKFL_{i}": a["lkfl_password"] for i, a in enumerate(accounts)}
    account_lines = "".join(
        f'    - {{phone: "{a["phone"]}", inn: "{a["inn"]}", lkfl_password_env: STAND_LKFL_{i}, '
        f'call_password: "1111"}}\n'
        for i, a in enumerate(accounts)
    )
    targets = _targets_file(
        tmp_path / "targets.yaml",
        f"stand:\n"
        f"  gigma_url: {mock.url}\n"
        f"  mobile_url: {mock.url}\n"
        f"  app_token_env: STAND_APP_TOKEN\n"
        f"  client_secret_env: STAND_CLIENT_SECRET\n"
        f"  limits: {{max_users: 4, max_duration_s: 30}}\n"
        f"  accounts:\n{account_lines}",
    )
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SMALL_CLOSED.replace("STAGE_S", "4").replace("USERS", "4"))
    args = ("run", scenario, "--target", "stand", "--targets", targets, "--confirm")

    # without the secrets in the environment: refused, naming the variables, nothing sent
    missing = authload(*args, "--out", tmp_path / "refused", env=passwords)
    assert missing.returncode == 2, missing.stderr
    assert "STAND_APP_TOKEN and STAND_CLIENT_SECRET" in missing.stderr
    assert httpx.get(mock.url + "/_mock/stats").json()["total"] == 0

    env = {"STAND_APP_TOKEN": token, "STAND_CLIENT_SECRET": secret, **passwords}
    result = authload(*args, "--out", tmp_path / "runs", env=env, timeout=4 + 60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "target stand limits: max_users=4, max_duration_s=30" in result.stderr
    run_dir = Path(result.stdout.split("run directory: ", 1)[1].splitlines()[0])
    run = Run(result, run_dir, tmp_path / "runs")
    assert run.manifest["target"] == "stand"
    assert run.manifest["status"] == "completed"
    assert not (run_dir / "mock_stats.json").exists()

    # the secrets reached the stand (it answered 200, not 403 or 400) ...
    records = run.records
    assert set(records["status"]) == {200}
    assert set(records["flow"]) == {"password_call", "lkfl"}
    assert run.outcomes["password_call:completed"] > 0
    assert run.outcomes["lkfl:completed"] > 0
    # ... and every request the stand answered is in the records, and only those
    stats = httpx.get(mock.url + "/_mock/stats").json()
    stand_counts = {name: sum(s.values()) for name, s in stats["requests"].items()}
    recorded = {str(k): int(v) for k, v in records.groupby("endpoint").size().items()}
    assert stand_counts == recorded == run.locust_counts()
    assert run.summary["reconciliation"]["match"] is True

    # ... but never into the run directory or the output
    needles = [token, secret, *passwords.values()]
    assert not any(n in result.stdout or n in result.stderr for n in needles)
    assert _files_holding(run_dir, needles) == []


# ---------------------------------------------------------------------------------------------
# 8: validate


def test_every_shipped_scenario_validates() -> None:
    shipped = sorted(SCENARIOS.glob("*.yaml"))
    assert len(shipped) >= 7
    result = authload("validate", *shipped)
    assert result.returncode == 0, result.stderr
    for path in shipped:
        assert f"{path}: ok (" in result.stdout


BROKEN = """\
name: broken
mix: {sms: 1}
load:
  model: closed
  stages:
    - {duration_s: 5, users: 2}
    - {duration_s: 5, users: -3}
retry: {policy: none}
"""


def test_broken_scenario_names_file_line_and_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    good = SCENARIOS / "smoke.yaml"
    result = authload("validate", good, broken)
    assert result.returncode == 2
    assert f"{good}: ok (smoke, 30 s, closed model)" in result.stdout
    assert f"{broken}:7: load.stages.1.users:" in result.stderr
    assert "greater than or equal to 0" in result.stderr

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(BROKEN.replace("users: -3", "users: 3").replace("policy: none", "polcy: x"))
    result = authload("validate", unknown)
    assert result.returncode == 2
    assert f"{unknown}:8: retry.polcy: unknown field" in result.stderr

    # `run` refuses it the same way, before starting anything
    result = authload("run", broken, "--out", tmp_path / "runs")
    assert result.returncode == 2
    assert f"{broken}:7: load.stages.1.users:" in result.stderr
    assert not (tmp_path / "runs").exists()
