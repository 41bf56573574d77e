"""The verdict sees everything the run saw: journeys from their intended start, arrivals that
waited or never started, the latency of the expected answers, revoked tokens still accepted,
each judged against what the mock was told to do."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.runs import STORM, Run, run_scenario

pytestmark = pytest.mark.integration

STALL = """
name: stall
seed: 3
mix: {{lkfl: 1, esia: 1}}
load:
  model: open
  stages: [{{duration_s: 8, rate: 10}}]
  max_in_flight: 3
  when_full: {when_full}
think_time: {{dist: fixed, ms: 0}}
flows: {{lkfl: {{wrong_password_share: 0}}}}
retry: {{policy: none}}
abort: null
slos:
  - "dropped(*) < 0.1%"
  - "p99(mobile.esia_auth) < 1s"
mock:
  behaviour:
    faults:
      - {{kind: latency, endpoints: [mobile.lkfl_auth], added_ms: 3000, start_s: 2, duration_s: 2}}
"""


def _journeys(run: Run) -> pd.DataFrame:
    assert run.run_dir is not None, run.describe()
    frame = pd.read_parquet(run.run_dir / "journeys.parquet")
    frame["duration_ms"] = (frame["t_end"] - frame["t_start"]) * 1000
    return frame


def _slo(run: Run, text: str) -> dict[str, object]:
    return next(s for s in run.summary["slos"] if s["slo"] == text)


@pytest.mark.slow
def test_a_stall_with_a_small_pool_drops_arrivals_and_the_verdict_says_so(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, STALL.format(when_full="drop"), load_s=8)
    assert run.code == 1, run.describe()
    journeys = _journeys(run)
    dropped = journeys[journeys["outcome"] == "dropped"]
    assert len(dropped) > 0
    assert run.summary["journeys"]["*"]["dropped"] == len(dropped)
    assert run.outcomes["dropped_arrivals"] == len(dropped)
    assert _slo(run, "dropped(*) < 0.1%")["passed"] is False
    # the stall shows in the journeys from their intended start, not in the other endpoint
    started = journeys[(journeys["kind"] == "journey") & (journeys["outcome"] != "dropped")]
    assert started["duration_ms"].max() >= 3000
    assert run.summary["journeys"]["lkfl"]["max"] >= 3000
    assert _slo(run, "p99(mobile.esia_auth) < 1s")["passed"] is True
    assert run.summary["endpoints"]["mobile.esia_auth"]["max"] < 1000
    assert "dropped" in run.proc.stderr  # the progress line names them
    assert run.summary["verdict"] == "fail"
    limit = run.summary["open_model_limit"]
    assert "were dropped: the service was the limit" in limit  # a 3 s stall, an idle generator
    assert f"note: {limit}" in run.proc.stdout


@pytest.mark.slow
def test_queued_arrivals_wait_and_the_wait_counts_in_the_journey(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, STALL.format(when_full="queue"), load_s=8)
    assert run.code == 0, run.describe()
    journeys = _journeys(run)
    assert (journeys["outcome"] == "dropped").sum() == 0
    waited = journeys[journeys["waited_ms"] > 0]
    assert len(waited) > 0
    # a journey that waited is timed from its due time: at least its wait
    assert (waited["duration_ms"] >= waited["waited_ms"]).all()
    assert run.summary["journeys"]["*"]["waited"] == len(waited)
    every = len(journeys[journeys["kind"] == "journey"])
    assert every == 80  # 8 s x 10/s: every arrival is a journey, none hidden


SHEDDING = """
name: shedding
seed: 4
accounts: {count: 500}
mix: {sms: 1}
load:
  model: open
  stages: [{duration_s: 8, rate: 12}]
think_time: {dist: fixed, ms: 50}
flows: {sms: {typo_share: 0, refreshes: [0, 0]}}
retry: {policy: none}
abort: null
slos:
  - "p50(mobile.phone_request, ok) < 300ms"
  - "p50(mobile.phone_request) < 50ms"
mock:
  behaviour:
    latency:
      mobile.phone_request: {dist: fixed, ms: 200}
    capacity:
      endpoints:
        mobile.phone_request: {concurrency: 1, queue: 0, retry_after_s: 1}
"""


@pytest.mark.slow
def test_fast_503s_cannot_make_the_expected_answers_look_fast(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, SHEDDING, load_s=8)
    row = run.summary["endpoints"]["mobile.phone_request"]
    assert row["statuses"].get("503", 0) > row["statuses"].get("200", 0), run.describe()
    assert row["p50"] < 50  # every attempt: the fast 503s
    assert 200 <= row["ok"]["p50"] < 300  # the answers the journey wanted: the service's 200 ms
    assert _slo(run, "p50(mobile.phone_request, ok) < 300ms")["value"] == row["ok"]["p50"]


REVOCATION = """
name: revocation
seed: 5
accounts: {{count: 200}}
mix: {{password_call: 1}}
load:
  model: closed
  stages: [{{duration_s: 14, users: 12, spawn_rate: 12}}]
think_time: {{dist: fixed, ms: 100}}
flows:
  password_call:
    devices: {{3: 1}}
    logout_all_share: 0
    session: {{dist: fixed, ms: 30000}}
events:
  - {{kind: mass_logout, at_s: 5, share: 1, relogin_delay: {{dist: fixed, ms: 500}}}}
retry: {{policy: none}}
abort: null
slos:
  - "revocation_p99 < 10s"
mock:
  behaviour:
    faults: {faults}
"""


@pytest.mark.slow
def test_a_stale_revocation_fails_the_run_with_no_slo_written(tmp_path: Path) -> None:
    stale = "[{kind: stale_revocation, endpoints: [gigma.logout], lag_s: 2}]"
    run = run_scenario(tmp_path, REVOCATION.format(faults=stale), load_s=14)
    assert run.code == 1, run.describe()
    revocation = run.summary["revocation"]
    assert revocation["tokens"] > 10
    assert 2000 <= revocation["p99"] <= 2500
    assert revocation["accepted_after_revocation"] == revocation["tokens"]
    gate = next(g for g in run.summary["gates"] if g["gate"] == "revoked_token_accepted")
    assert gate["passed"] is False and gate["severity"] == "fail"
    assert "gigma.logout accepted" in gate["evidence"]
    assert run.mock_stats["events"]["stale_accepted.gigma"] > 0
    assert all(s["passed"] for s in run.summary["slos"])  # the verdict is the gate's
    assert run.summary["verdict"] == "fail"
    assert "gate FAIL    revoked_token_accepted" in run.proc.stdout


@pytest.mark.slow
def test_revocation_at_once_passes(tmp_path: Path) -> None:
    run = run_scenario(tmp_path, REVOCATION.format(faults="[]"), load_s=14)
    assert run.code == 0, run.describe()
    revocation = run.summary["revocation"]
    assert revocation["tokens"] > 10 and revocation["accepted_after_revocation"] == 0
    assert revocation["p99"] < 500
    assert run.summary["verdict"] == "pass"


@pytest.mark.slow
def test_a_gate_is_off_only_by_name(tmp_path: Path) -> None:
    stale = "[{kind: stale_revocation, endpoints: [gigma.logout], lag_s: 1}]"
    text = REVOCATION.format(faults=stale) + "gates_off: [revoked_token_accepted]\n"
    run = run_scenario(tmp_path, text, load_s=14)
    assert run.code == 0, run.describe()
    gate = next(g for g in run.summary["gates"] if g["gate"] == "revoked_token_accepted")
    assert gate["enabled"] is False and gate["passed"] is False  # still reported
    assert "gate off     revoked_token_accepted" in run.proc.stdout


TWO_PROCESSES = """
name: two-processes
seed: 6
accounts: {count: 400}
mix: {lkfl: 1, esia: 1, sms: 1}
load:
  stages: [{duration_s: 10, users: 8, spawn_rate: 8}]
think_time: {dist: fixed, ms: 50}
flows: {sms: {refreshes: [1, 1], refresh_every: {dist: fixed, ms: 50}}}
abort: null
mock: {behaviour: {}}
"""


@pytest.mark.slow
def test_with_two_processes_every_count_printed_or_written_equals_the_records(
    tmp_path: Path,
) -> None:
    run = run_scenario(tmp_path, TWO_PROCESSES, "--processes", "2", load_s=10)
    assert run.code == 0, run.describe()
    assert run.run_dir is not None
    records = run.records
    by_endpoint = records.groupby("endpoint").size()
    # authload's table: from the records; Locust's own table is not printed
    for name, count in by_endpoint.items():
        assert f"\n{name:<22} {count:>7} " in run.proc.stdout, name
    assert "Type     Name" not in run.output and "Aggregated" not in run.output
    summary = run.summary
    assert summary["requests"] == len(records)
    assert {k: v["count"] for k, v in summary["endpoints"].items() if k != "*"} == dict(by_endpoint)
    assert run.locust_counts() == dict(by_endpoint)  # each process's own final count
    # Locust's master view misses the workers' last reports: named as partial, never as whole
    assert (run.run_dir / "locust-partial.html").is_file()
    assert not (run.run_dir / "locust.html").exists()
    assert not (run.run_dir / "locust_stats.csv").exists()
    # the progress line is right from its first line: requests/s over its own window
    first = next(line for line in run.proc.stderr.splitlines() if line.startswith("["))
    assert "users" in first and " of 8" in first
    assert float(first.split("rps")[1].split()[0]) > 0, first


# the lost-answers storm of test_run, on a mock that revokes the family on a reuse
FAMILY = (
    STORM.replace("STORM_SESSIONS", "60")
    .replace("name: storm-lost-answers", "name: family-revocation")
    .replace("mock:\n", "mock:\n  settings: {reuse_revokes_family: true}\n")
)


@pytest.mark.slow
def test_a_reuse_that_revokes_the_family_is_counted_and_said(tmp_path: Path) -> None:
    """A refresh answer lost after the rotation, retried with the old token: a reuse. With
    the family revoked on a reuse, the session the lost answer renewed ends too, and the
    summary says the mock did it."""
    run = run_scenario(tmp_path, FAMILY, load_s=7)
    assert run.code == 0, run.describe()
    records = run.records
    # every retry of a refresh whose answer was lost reused the rotated token (the reset
    # comes after the mock did its work, so a retried retry too): one family each
    reuses = int(((records["endpoint"] == "mobile.refresh") & (records["attempt"] > 1)).sum())
    revoked = run.mock_stats["events"]["families_revoked"]
    assert revoked == reuses > 0
    assert run.summary["mock_families_revoked"] == revoked
    assert 0 < run.outcomes["refresh_storm:session_lost:rotation"] <= revoked
    assert f"the mock ended {revoked} sessions whose rotated refresh token was reused" in (
        run.proc.stdout
    )
