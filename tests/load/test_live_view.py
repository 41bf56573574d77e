"""The authload tab's view of the run so far (``authload.load.live_view``), from Locust's own
aggregated stats and authload's live counts, as the master holds them. Code that imports
Locust runs in a fresh interpreter (``child_*``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import locust_child

pytestmark = pytest.mark.integration

SCENARIO = """
name: live
mix: {password_call: 1, sms: 1}
load:
  model: closed
  stages: [{duration_s: 10, users: 2}, {duration_s: 20, users: 4}]
slos:
  - "p95(gigma.login) < 1s"
  - "p99(gigma.login, ok) < 800ms"
  - "error_rate(*, 5xx) < 1%"
  - "journey_success(*) > 90%"
  - "rate(*) > 1/s"
gates_off: [reconciliation]
"""


def run_child(main: str, *args: str) -> subprocess.CompletedProcess[str]:
    return locust_child.run_child(__name__, main, *args)


def child_view(scenario_path: str) -> None:
    """The view of a run 12 s in: Locust's stats, journeys counted, a missing worker."""
    from locust.exception import CatchResponseError
    from locust.stats import RequestStats

    from authload.load import live_counts, live_view
    from authload.load.config import RunConfig
    from authload.load.mock_peek import MockView
    from authload.scenario.loader import load_scenario

    stats = RequestStats()
    for ms in [100] * 36 + [900] * 3 + [3000]:  # gigma.login: p95 900 ms
        stats.log_request("POST", "gigma.login", ms, 10)
    for _ in range(2):  # 2 of the 40 failed with 503: 5% of 5xx
        stats.log_error("POST", "gigma.login", CatchResponseError("gigma.login: http (status 503)"))
    live_counts._BY_WORKER["w1"] = {
        "outcomes": {
            "password_call:completed": 7,
            "password_call:revoked_token_accepted": 1,
            "sms:completed": 1,
            "sms:session_lost:rotation": 1,
        },
        "arrivals": {"due": 0, "dropped": 0},
    }
    config = RunConfig(load_scenario(scenario_path), Path("/runs/r1"), "mock", "u", "u", "u")
    ui = live_view.UiRun(from_runner=True, started=100.0)
    moment = live_view.Moment("running", 4, stats, ["w2"], 1, now=112.0)
    faults = [
        {"kind": "status", "endpoints": ["mobile.refresh"], "fraction": 0.2, "active": True},
        {"kind": "latency", "endpoints": ["*"], "active": False, "ends_at": 105.0},
        {"kind": "reset", "endpoints": ["gigma.login"], "active": False, "ends_at": 200.0},
    ]
    mock = MockView(faults=faults, stale_accepted=3)
    view = live_view.build(config, ui, moment, mock)
    print(json.dumps({"view": view, "rows": live_view.rows(view)}))


def _child_result(tmp_path: Path, main: str) -> dict[str, Any]:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    child = run_child(main, str(path))
    assert child.returncode == 0, child.stderr
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def test_the_view_shows_each_slo_with_its_value_and_the_gates_known_live(
    tmp_path: Path,
) -> None:
    result = _child_result(tmp_path, "child_view")
    view = result["view"]
    assert view["phase"] == "running"
    assert view["elapsed_s"] == 12.0
    assert view["stage"] == 1
    assert view["requests"] == 40
    slos = {s["slo"]: (s["value"], s["unit"], s["status"]) for s in view["slos"]}
    assert slos == {
        "p95(gigma.login) < 1s": (900.0, "ms", "ok so far"),
        "p99(gigma.login, ok) < 800ms": (None, "ms", "at the end"),  # from the records only
        "error_rate(*, 5xx) < 1%": (5.0, "%", "FAILING"),  # 2 of 40 attempts
        "journey_success(*) > 90%": (80.0, "%", "FAILING"),  # 8 ok of 10 journeys
        "rate(*) > 1/s": (pytest.approx(40 / 12), "/s", "ok so far"),  # in 12 s
    }
    gates = {g["gate"]: (g["enabled"], g["status"]) for g in view["gates"]}
    assert gates == {
        "revoked_token_accepted": (True, "FAILING"),  # a journey saw one accepted
        "rotated_token_accepted": (True, "FAILING"),  # the mock counted 3
        "reconciliation": (False, "off"),  # off by the scenario's name
        "processes": (True, "INVALID"),  # w2 went missing
        "load_offered": (True, "at the end"),
    }
    assert view["verdict_so_far"] == "FAILING"
    assert view["journeys"] == {
        "password_call": {"ended": 8, "ok": 7, "success_pct": 87.5},
        "sms": {"ended": 2, "ok": 1, "success_pct": 50.0},
    }
    assert view["sessions_lost"] == 1
    assert [f["status"] for f in view["faults"]] == ["open", "closed", "to come"]
    assert view["report"] == "./authload/report"


def test_the_tab_rows_name_every_slo_gate_journey_and_fault(tmp_path: Path) -> None:
    rows = _child_result(tmp_path, "child_view")["rows"]
    assert rows[0] == {
        "what": "verdict so far",
        "item": "live",
        "now": "FAILING",
        "status": "running",
    }
    by_item = {(r["what"], r["item"]): (r["now"], r["status"]) for r in rows}
    assert by_item[("SLO", "error_rate(*, 5xx) < 1%")] == ("5%", "FAILING")
    assert by_item[("SLO", "p95(gigma.login) < 1s")] == ("900 ms", "ok so far")
    assert by_item[("gate (invalid)", "processes")][1] == "INVALID"
    assert by_item[("journeys", "sms")] == ("1 ok of 2 ended", "50%")
    assert by_item[("sessions", "lost")] == ("1", "")
    assert by_item[("arrivals", "dropped")] == ("-", "closed model: no arrivals")
    assert by_item[("fault window", "status on mobile.refresh (20%)")][1] == "open"
    assert by_item[("report", "written when the test stops")] == ("./authload/report", "")
    assert all(set(r) == {"what", "item", "now", "status"} for r in rows)


def child_gates(_: str) -> None:
    from authload.load import live_view

    print(json.dumps(live_view.GATES))


def test_the_live_gates_are_the_default_gates(tmp_path: Path) -> None:
    from authload.analysis.gates import GATES, STALE_ACCEPTED
    from authload.load.mock_peek import STALE_ACCEPTED_MOBILE

    live = _child_result(tmp_path, "child_gates")
    assert live == [[gate.name, gate.severity] for gate in GATES]
    assert f"{STALE_ACCEPTED}mobile" == STALE_ACCEPTED_MOBILE
