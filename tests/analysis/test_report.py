"""The run report on a real short run (ESIA and LKFL logins on the embedded mock, with a 503
fault window on the ESIA URL): `authload run` leaves report.html, one self-contained page with
the verdict, every SLO, every endpoint and every plot; `authload report` rewrites it and exits
with the verdict's code."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import matplotlib
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from authload.analysis.report import write_report
from authload.analysis.summary import summarize
from authload.cli import main
from authload.rundir.events import read_events
from authload.rundir.files import REPORT_FILE
from authload.rundir.jsonfiles import write_json
from authload.rundir.records import RECORD_SCHEMA
from authload.rundir.summary import write_summary
from authload.scenario.loader import load_scenario
from tests.helpers.runs import Run, authload, run_scenario

pytestmark = pytest.mark.integration

SCENARIO = """
name: report-e2e
seed: 4
accounts: {count: 1000}
mix: {esia: 1, lkfl: 1}
load:
  model: closed
  stages:
    - {duration_s: 3, users: 3, spawn_rate: 3}
    - {duration_s: 5, users: 6, spawn_rate: 6}
think_time: {dist: fixed, ms: 30}
flows:
  lkfl: {wrong_password_share: 0.2}
retry: {policy: backoff, max_attempts: 3, base_ms: 10, cap_ms: 50}
abort: null
slos:
  - "p95(*) < 500ms"
  - "error_rate(*, 5xx) < 1%"
  - "p99(mobile.lkfl_auth) <= 1s"
mock:
  behaviour:
    latency:
      default: {dist: fixed, ms: 5}
    faults:
      - {name: outage, kind: status, status: 503, retry_after_s: 1,
         endpoints: [mobile.esia_url], fraction: 0.5, start_s: 3, duration_s: 2}
"""
PLOT_TITLES = (
    "Throughput and latency over time",
    "Responses by status over time",
    "Latency by percentile",
    "Retry amplification over time",
    "Flow outcomes and sessions lost",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_scenario(tmp_path_factory.mktemp("report"), SCENARIO, load_s=8)
    assert run.code == 1, run.describe()  # ESIA URL answers 503 for 2 s: the 5xx SLO fails
    assert run.run_dir is not None
    return run


def _copy(run: Run, tmp_path: Path) -> Path:
    assert run.run_dir is not None
    copy = tmp_path / run.run_dir.name
    shutil.copytree(run.run_dir, copy)
    (copy / REPORT_FILE).unlink()
    return copy


def _report(run_dir: Path) -> str:
    return (run_dir / REPORT_FILE).read_text(encoding="utf-8")


def test_the_run_leaves_a_self_contained_report(run: Run) -> None:
    assert run.run_dir is not None
    page = _report(run.run_dir)
    assert page.startswith("<!DOCTYPE html>")
    assert "report.html not written" not in run.output
    # nothing is fetched: no scripts, stylesheets, frames or remote references
    for tag in ("<script", "<link", "<iframe", "<object", "<embed", "@import"):
        assert tag not in page.lower(), tag
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, re.IGNORECASE)
    assert references, "the plots are images"
    assert all(r.startswith("data:image/png;base64,") for r in references), references
    assert not re.search(r"url\s*\(", page), "no CSS url()"
    assert "http://" not in page and "https://" not in page
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == len(PLOT_TITLES)
    for image in images:
        [data] = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', image)
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_the_report_shows_verdict_slos_endpoints_and_plots(run: Run) -> None:
    assert run.run_dir is not None
    page = _report(run.run_dir)
    summary = run.summary
    assert f"authload report: {summary['scenario']}" in page
    assert re.search(r'<div class="headline">FAIL</div>', page)
    assert page.index('class="headline"') < page.index("<h2>SLOs") < page.index("<h2>Endpoints")
    manifest = run.manifest
    for value in ("mock", manifest["start"], manifest["end"]):
        assert value in page
    for slo in summary["slos"]:
        row = _row(page, html.escape(slo["slo"]))
        assert ("FAIL" if not slo["passed"] else "pass") in row, row
        assert f"{slo['value']:,.1f}" in row or f"{slo['value']:,.3f}" in row, row
    assert ">FAIL<" in _row(page, "error_rate(*, 5xx) &lt; 1%")
    assert len(summary["endpoints"]) == 4  # the three endpoints and *
    for name, figures in summary["endpoints"].items():
        row = _row(page, name)
        assert f"<td>{figures['count']}</td>" in row, row
        assert f"<td>{figures['p99']:,.1f}</td>" in row, row
    assert "503: " in _row(page, "mobile.esia_url")
    assert "request counts reconcile" in page
    for outcome, count in summary["outcomes"].items():
        assert f"<td>{outcome}</td><td>{count}</td>" in page
    for title in PLOT_TITLES:
        assert f"<h3>{title}</h3>" in page, title
    # the stages are listed with their times, and there is no open-model table
    assert "stage 0: 3 users" in page and "stage 1: 6 users" in page
    assert "from intended start" not in page


def _row(page: str, first_cell: str) -> str:
    """The table row whose first cell is ``first_cell`` (HTML)."""
    match = re.search(rf"<tr><td>{re.escape(first_cell)}</td>.*?</tr>", page)
    assert match, first_cell
    return match[0]


def test_the_mock_fault_windows_are_listed_and_marked(run: Run, tmp_path: Path) -> None:
    assert run.run_dir is not None
    history = run.json("mock_faults.json")
    [start] = [e["t"] for e in history if e["event"] == "start"]
    [end] = [e["t"] for e in history if e["event"] == "end"]
    assert 1.9 < end - start < 2.1
    origin = run.records["t"].min()
    row = _row(_report(run.run_dir), "fault")
    assert "status on mobile.esia_url" in row
    assert f"<td>{start - origin:.1f}</td><td>{end - origin:.1f}</td>" in row, row
    assert "Recovery after storms, mass logouts and faults" in _report(run.run_dir)

    # without the mock's history (a target other than the mock): no fault windows
    copy = _copy(run, tmp_path)
    (copy / "mock_faults.json").unlink()
    events = (copy / "events.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [line for line in events if '"kind":"fault_' not in line]
    (copy / "events.jsonl").write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    page = _report(write_report(copy).parent)
    assert "<td>fault</td>" not in page
    assert "<td>stage</td>" in page


def test_a_run_without_records_or_events_still_gets_a_report(run: Run, tmp_path: Path) -> None:
    copy = _copy(run, tmp_path)
    pq.write_table(RECORD_SCHEMA.empty_table(), copy / "requests.parquet")
    (copy / "events.jsonl").unlink()
    scenario = load_scenario(run.out.parent / "scenario.yaml")
    summary = summarize(copy, scenario, "completed", read_events(copy))
    assert summary.verdict == "error"
    write_summary(copy, summary)

    assert main(["report", str(copy)]) == 3
    page = _report(copy)
    assert '<div class="headline">ERROR</div>' in page
    assert "No requests were recorded" in page
    assert "<img" not in page
    for slo in summary.slos:
        assert html.escape(slo.slo) in page
    assert "<td>*</td><td>0</td>" in page


def test_values_from_the_run_are_escaped(run: Run, tmp_path: Path) -> None:
    copy = _copy(run, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["scenario"]["description"] = "<script>alert('x')</script>"
    write_json(copy / "manifest.json", manifest)
    summary = json.loads((copy / "summary.json").read_text(encoding="utf-8"))
    summary["outcomes"]["esia:<b>odd</b>"] = 1
    write_json(copy / "summary.json", summary)
    page = _report(write_report(copy).parent)
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "esia:&lt;b&gt;odd&lt;/b&gt;" in page


def test_report_command_exits_with_the_verdict(run: Run, tmp_path: Path) -> None:
    assert run.run_dir is not None
    result = authload("report", run.run_dir)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"report: {run.run_dir / REPORT_FILE}",
        "verdict: FAIL",
    ]
    copy = _copy(run, tmp_path)
    summary = json.loads((copy / "summary.json").read_text(encoding="utf-8"))
    for verdict, code in (("pass", 0), ("aborted", 3)):  # error: see the run without records
        write_json(copy / "summary.json", {**summary, "verdict": verdict})
        assert main(["report", str(copy)]) == code, verdict
        assert f'<div class="headline">{verdict.upper()}</div>' in _report(copy)


def test_report_command_refuses_what_is_not_a_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path}: not a run directory" in capsys.readouterr().err
    assert not (tmp_path / REPORT_FILE).exists()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a run directory" in capsys.readouterr().err


def test_a_report_changes_no_global_matplotlib_state(run: Run, tmp_path: Path) -> None:
    copy = _copy(run, tmp_path)
    backend = matplotlib.get_backend()
    params = dict(matplotlib.rcParams)
    write_report(copy)
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == params
