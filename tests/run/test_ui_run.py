"""`authload run SCENARIO --ui`: the run with Locust's web UI in front, driven here through
Locust's own web API (``POST /swarm``, ``GET /stats/requests``, ``POST /stop``) as the UI's
page drives it, on 127.0.0.1. The run directory it leaves must be a headless run's: records
that reconcile with Locust's and the mock's counts, summary, report and verdict."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import documents
from tests.helpers.runs import SCENARIOS, Run, authload
from tests.helpers.ui_runs import SHORT, free_port, ui_run, wait_until

pytestmark = pytest.mark.integration


def _finished(run_dir: Path, code: int) -> Run:
    proc = subprocess.CompletedProcess[str]([], code, "", "")
    return Run(proc, run_dir, run_dir.parent)


@pytest.mark.slow
def test_a_ui_run_started_from_the_web_api_ends_with_the_headless_run_directory(
    tmp_path: Path,
) -> None:
    with ui_run(tmp_path) as ui:
        ui.wait_up()
        assert "authload: Locust's web UI at " + ui.url in ui.output
        index = ui.get("/").text
        assert '"extended_tabs": [{"key": "authload", "title": "authload"}]' in index
        assert '"num_users": 3' in index  # the start form shows the first stage's plan
        before = ui.state()
        assert (before["phase"], before["verdict_so_far"], before["requests"]) == (
            "ready",
            "not started",
            0,
        )
        started = ui.post("/swarm", {"user_count": "3", "spawn_rate": "3"}).json()
        assert started["success"] is True, started

        def tab_counting() -> dict[tuple[str, str], tuple[str, str]] | None:
            tab = ui.tab()
            return tab if tab[("SLO", "error_rate(*, 5xx) < 1%")][0] != "-" else None

        tab = wait_until("the tab's SLO values", tab_counting, 20)
        assert tab[("verdict so far", "ui-check")] == ("PASSING", "running")
        assert tab[("SLO", "error_rate(*, 5xx) < 1%")] == ("0%", "ok so far")
        assert tab[("SLO", "p99(gigma.login, ok) < 2s")] == ("-", "at the end")
        assert tab[("gate (invalid)", "processes")][1] == "ok so far"
        assert tab[("report", "written when the test stops")][0] == "./authload/report"
        window = tab[("fault window", "latency on mobile.refresh (100%)")]
        assert window[0] == "1 s to 4 s (mock clock)"  # the mock's clock: the load's start
        assert window[1] in ("to come", "open", "closed")
        waiting = ui.get("/authload/report").text
        assert "The report is written when the test stops" in waiting
        # the scenario's end stops the test; Locust quits; the runner ends as headless
        code = ui.wait_exit()
    assert code == 0, ui.describe()
    run = _finished(ui.run_dir, code)
    manifest = run.manifest
    assert manifest["status"] == "completed"
    assert manifest["ui"] == {
        "url": ui.url,
        "started_by_user": True,
        "manual_control": [],
    }
    summary = run.summary
    assert summary["verdict"] == "pass"
    assert summary["reconciliation"]["match"] is True
    assert all(g["passed"] for g in summary["gates"]), summary["gates"]
    assert run.mock_counts() == run.locust_counts()
    recorded = {str(k): int(v) for k, v in run.records.groupby("endpoint").size().items()}
    assert recorded == run.locust_counts()
    assert (ui.run_dir / "report.html").is_file()
    assert "verdict: PASS" in ui.output


@pytest.mark.slow
def test_stop_and_manual_control_from_the_ui_are_recorded_and_the_report_is_served(
    tmp_path: Path,
) -> None:
    longer = SHORT.replace("duration_s: 5, users: 5", "duration_s: 60, users: 5")
    with ui_run(tmp_path, longer, linger_s=60) as ui:
        ui.wait_up()
        assert ui.post("/swarm", {"user_count": "3", "spawn_rate": "3"}).json()["success"]
        wait_until("stage 1", lambda: ui.state()["stage"] == 1 or None, 20)
        manual = ui.post("/swarm", {"user_count": "2", "spawn_rate": "2"}).json()
        assert manual["success"] is True
        assert manual["message"].startswith("manual control: 2 users at 2/s")
        wait_until("2 users", lambda: ui.state()["users"] == 2 or None, 20)
        reset = ui.post("/stats/reset")
        assert reset.status_code == 409  # Locust's counts must reconcile with the records
        assert ui.post("/stop").json()["success"] is True
        refused = ui.post("/swarm", {"user_count": "3", "spawn_rate": "3"}).json()
        assert refused["success"] is False  # one test per run
        ui.wait_printed("verdict: ABORTED")
        # Locust has quit: the runner serves the report where the UI linked it
        report = ui.get("/authload/report")
        assert report.status_code == 200
        assert "<title>authload report: ui-check</title>" in report.text
        state = ui.state()
        assert (state["phase"], state["verdict"], state["report_ready"]) == (
            "over",
            "aborted",
            True,
        )
        assert ui.get("/").headers["location"] == "/authload/report"
        ui.interrupt()  # Ctrl-C ends the linger; the exit is the verdict's
        code = ui.wait_exit(30)
    assert code == 3, ui.describe()
    run = _finished(ui.run_dir, code)
    manifest = run.manifest
    assert manifest["status"] == "aborted"
    (change,) = manifest["ui"]["manual_control"]
    assert (change["users"], change["spawn_rate"], change["stage"]) == (2, 2.0, 1)
    aborts = [e for e in run.events if e["kind"] == "abort"]
    assert len(aborts) == 1
    assert aborts[0]["reason"].startswith("stopped from the web UI at ")
    assert run.summary["verdict"] == "aborted"
    assert run.summary["reconciliation"]["match"] is True
    assert "note: manual control from the UI from " in ui.output


@pytest.mark.slow
def test_a_ui_run_with_two_processes_ends_every_process_with_the_test(tmp_path: Path) -> None:
    with ui_run(tmp_path, SHORT, "--processes", "2") as ui:
        ui.wait_up()
        assert ui.post("/swarm", {"user_count": "3", "spawn_rate": "3"}).json()["success"]
        # the workers are told to quit at the scenario's end, not left waiting for their
        # master's heartbeat (60 s)
        code = ui.wait_exit(8 + 30)
    assert code == 0, ui.describe()
    run = _finished(ui.run_dir, code)
    assert run.manifest["died"] == []
    assert sorted(w["worker"] for w in run.manifest["workers"]) == ["w0", "w1"]
    assert run.summary["reconciliation"]["match"] is True
    assert run.summary["verdict"] == "pass"


def test_ctrl_c_before_the_start_ends_the_ui_run_at_once(tmp_path: Path) -> None:
    with ui_run(tmp_path) as ui:
        ui.wait_up()
        ui.interrupt()
        started = time.monotonic()
        code = ui.wait_exit(30)
        took = time.monotonic() - started
    assert code == 3, ui.describe()
    assert took < 15, took  # not the stop's bound: no test was running
    run = _finished(ui.run_dir, code)
    assert run.manifest["status"] == "aborted"
    assert run.manifest["ui"]["started_by_user"] is False
    (abort,) = [e for e in run.events if e["kind"] == "abort"]
    assert abort["reason"] == "interrupted (Ctrl-C), before the test started"


def test_ui_with_remote_workers_is_refused_before_anything(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(SHORT, encoding="utf-8")
    out = tmp_path / "runs"
    result = authload("run", path, "--ui", "--expect-workers", "2", "--out", out)
    assert result.returncode == 2, result.stderr
    assert "--ui with --expect-workers is not supported" in result.stderr
    assert not out.exists()


def test_a_ui_port_in_use_is_refused_before_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "runs"
        scenario = SCENARIOS / "smoke.yaml"
        result = authload("run", scenario, "--ui", "--ui-port", str(port), "--out", out)
    assert result.returncode == 2, result.stderr
    assert f"--ui-host/--ui-port: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not out.exists()


def test_the_report_server_waits_for_the_report_then_serves_it(tmp_path: Path) -> None:
    from authload.load.report_page import WRITING
    from authload.run.ui import UiOptions, UiSession

    run_dir = tmp_path / "20260101T000000Z-ui-check"
    run_dir.mkdir()
    session = UiSession(UiOptions(port=free_port(), linger_s=0))
    session.serve_report(run_dir)
    base = session.options.url
    try:
        waiting = httpx.get(base + "/authload/report").text
        assert WRITING in waiting and "fetch('/authload/state'" in waiting
        state = httpx.get(base + "/authload/state").json()
        assert (state["verdict"], state["report_ready"]) == (None, False)
        (run_dir / "summary.json").write_text("{", encoding="utf-8")  # unreadable: still waiting
        assert httpx.get(base + "/authload/state").json()["verdict"] is None
        documents.summary(run_dir, verdict="fail")
        (run_dir / "report.html").write_text("<p>the report</p>", encoding="utf-8")
        state = httpx.get(base + "/authload/state").json()
        assert (state["verdict"], state["report_ready"]) == ("fail", True)
        assert httpx.get(base + "/authload/report").text == "<p>the report</p>"
        assert httpx.get(base + "/").headers["location"] == "/authload/report"
        assert httpx.get(base + "/stats/requests").status_code == 404
        session.linger()  # 0 s: returns at once
    finally:
        session.close()


def test_the_deadline_counts_from_the_users_start_only(tmp_path: Path) -> None:
    from authload.run.ui import UiOptions, UiSession
    from authload.rundir.events import StageEvent, append_event

    session = UiSession(UiOptions())
    session.check_deadline(tmp_path, bound_s=0.0)  # not started: no deadline
    append_event(tmp_path, StageEvent(t=time.time() - 100, stage=0, duration_s=300, users=1))
    session.check_deadline(tmp_path, bound_s=200.0)
    with pytest.raises(subprocess.TimeoutExpired):
        session.check_deadline(tmp_path, bound_s=50.0)
