"""The verdict for pipelines: JUnit XML valid against the junit-10 schema CI systems use and
read back by a JUnit consumer (junitparser), and the Markdown summary, from summary.json, a
comparison and capacity.json as they are written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from authload.errors import InputError
from authload.rundir.summary import Summary
from authload.verdict_formats.capacity_cases import capacity_suite
from authload.verdict_formats.cases import Suite, run_suite
from authload.verdict_formats.compare_cases import comparison_suite
from authload.verdict_formats.junit import junit_xml
from authload.verdict_formats.markdown import (
    capacity_markdown,
    comparison_markdown,
    run_markdown,
)
from authload.verdict_formats.outputs import GITHUB_STEP_SUMMARY, Destinations, write
from tests.helpers.verdict_documents import SCHEMA, capacity

REPORT = "runs/20261123T134431Z-smoke/report.html"


def endpoint(count: int, p99: float, error_rate: float = 0.0) -> dict[str, Any]:
    return {
        "count": count, "rate_per_s": count / 30, "p50": p99 / 3, "p90": p99 / 2,
        "p95": p99 * 0.8, "p99": p99, "p99.9": p99, "max": p99, "mean": p99 / 3,
        "error_rate": error_rate, "errors": {}, "statuses": {"200": count}, "retries": 0,
    }  # fmt: skip


def summary(**changes: Any) -> Summary:
    return Summary.model_validate(summary_data(**changes))


def summary_data(**changes: Any) -> dict[str, Any]:
    """A summary.json as `authload run` writes it: a failed latency SLO, an SLO without data."""
    data: dict[str, Any] = {
        "scenario": "smoke",
        "status": "completed",
        "verdict": "fail",
        "duration_s": 32.39085912704468,
        "requests": 1182,
        "endpoints": {
            "gigma.login": endpoint(71, 912.4),
            "mobile.refresh": endpoint(226, 59.0, 0.02),
            "*": endpoint(297, 800.0, 0.015),
        },
        "slos": [
            {"slo": "p99(gigma.login) < 800ms", "value": 912.4, "threshold": 800.0,
             "passed": False, "count": 71},
            {"slo": "error_rate(*, 5xx) < 1%", "value": 0.5, "threshold": 1.0,
             "passed": True, "count": 297},
            {"slo": "p95(mobile.lkfl_auth) < 1s", "value": None, "threshold": 1000.0,
             "passed": False, "count": 0},
        ],
        "outcomes": {"completed": 40},
        "reconciliation": {"endpoints": {}, "match": True},
        "mock_sessions_evicted": {},
    }  # fmt: skip
    data.update(changes)
    return data


GATES = [
    {"gate": "revoked_token_accepted", "passed": False, "severity": "fail", "value": 3,
     "threshold": "== 0", "evidence": "gigma.login: 3 revoked tokens accepted, first at 12.3 s",
     "enabled": True},
    {"gate": "records_reconcile", "passed": False, "severity": "invalid", "value": None,
     "threshold": "none", "evidence": "records 1182, Locust 1180 | mock 1180", "enabled": True},
    {"gate": "no_contract_errors", "passed": True, "severity": "fail", "value": 0,
     "threshold": "== 0", "evidence": "no contract errors", "enabled": True},
    {"gate": "dropped_arrivals", "passed": True, "severity": "fail", "value": None,
     "threshold": "none", "evidence": "", "enabled": False},
]  # fmt: skip


def read_back(text: str) -> TestSuite:
    """Valid against the schema, then parsed by a JUnit consumer: the one suite."""
    SCHEMA.validate(text)
    xml = JUnitXml.fromstring(text)
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert isinstance(suite, TestSuite)
    return suite


def cases_of(suite: TestSuite) -> dict[str, TestCase]:
    return {case.name: case for case in suite}


def failure(case: TestCase) -> Failure:
    results = [r for r in case.result if isinstance(r, Failure)]
    assert len(results) == 1, case.result
    return results[0]


def test_a_run_is_a_suite_with_a_case_per_slo_its_duration_and_its_report() -> None:
    suite = read_back(junit_xml([run_suite(summary(), "20261123T134431Z-smoke", report=REPORT)]))
    assert suite.name == "20261123T134431Z-smoke"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 2, 0, 0)
    assert suite.time == pytest.approx(32.391)
    props = {p.name: p.value for p in suite.properties()}
    assert props["report"] == REPORT and props["verdict"] == "fail"
    cases = cases_of(suite)
    assert list(cases) == [s.slo for s in summary().slos]
    assert cases["error_rate(*, 5xx) < 1%"].is_passed
    latency = failure(cases["p99(gigma.login) < 800ms"])
    assert latency.type == "slo"
    assert latency.message == (
        "p99(gigma.login) < 800ms: p99 latency of gigma.login was 912.4 ms over 71 attempts, "
        "the SLO allows < 800 ms; the report shows gigma.login's latency over time next to "
        "faults, retries and errors"
    )
    assert "endpoint: gigma.login\nmeasured: 912.4 ms\nthreshold: < 800 ms" in latency.text
    no_data = failure(cases["p95(mobile.lkfl_auth) < 1s"]).message
    assert no_data is not None and "mobile.lkfl_auth had no attempts" in no_data
    assert "check that the scenario's mix exercises mobile.lkfl_auth" in no_data
    assert cases["error_rate(*, 5xx) < 1%"].system_out == (
        "endpoint: *\nmeasured: 0.5%\nthreshold: < 1%\ndetail: 297 attempts"
    )


def test_the_report_is_the_suites_url() -> None:
    text = junit_xml([run_suite(summary(), "r", report=REPORT, timestamp="2026-11-23T13:44Z")])
    SCHEMA.validate(text)
    assert f'url="{REPORT}"' in text and 'timestamp="2026-11-23T13:44Z"' in text


def test_default_gates_are_cases_the_disabled_ones_skipped() -> None:
    suite = read_back(junit_xml([run_suite(summary(gates=GATES), "r")]))
    assert (suite.tests, suite.failures, suite.skipped) == (7, 4, 1)
    cases = cases_of(suite)
    revoked = failure(cases["revoked_token_accepted"])
    assert revoked.type == "gate"
    assert revoked.message == (
        "revoked_token_accepted: gigma.login: 3 revoked tokens accepted, first at 12.3 s "
        "(measured 3, allowed == 0)"
    )
    invalid = failure(cases["records_reconcile"])
    assert invalid.type == "invalid"
    assert invalid.message is not None and "the run is invalid" in invalid.message
    assert cases["no_contract_errors"].is_passed
    assert cases["dropped_arrivals"].is_skipped
    skipped = [r for r in cases["dropped_arrivals"].result if isinstance(r, Skipped)]
    assert skipped[0].message == "dropped_arrivals: disabled for this run"


@pytest.mark.parametrize(
    ("verdict", "status", "slos_pass", "failures", "kind"),
    [
        ("pass", "completed", True, 0, None),
        ("fail", "completed", False, 2, None),
        ("fail", "completed", True, 1, "fail"),  # failed by something that is no case here
        ("aborted", "aborted", True, 1, "aborted"),
        ("error", "completed", False, 3, "error"),
        ("incomplete", "incomplete", True, 1, "incomplete"),
        ("invalid", "completed", True, 1, "invalid"),  # no case says why: the run's does
    ],
)
def test_the_suite_fails_exactly_when_the_verdict_is_not_a_pass(
    verdict: str, status: str, slos_pass: bool, failures: int, kind: str | None
) -> None:
    data = summary_data(verdict=verdict, status=status)
    if slos_pass:
        data["slos"] = [{**s, "passed": True} for s in data["slos"]]
    suite = read_back(junit_xml([run_suite(Summary.model_validate(data), "r")]))
    assert suite.failures == failures
    run_case = cases_of(suite).get("run")
    if kind is None:
        assert run_case is None
    else:
        assert run_case is not None and failure(run_case).type == kind


@pytest.mark.parametrize(("severity", "verdict"), [("fail", "fail"), ("invalid", "invalid")])
def test_a_failed_gate_explains_the_verdict_alone(severity: str, verdict: str) -> None:
    data = summary_data(verdict=verdict, gates=[{**GATES[0], "severity": severity}])
    data["slos"] = [{**s, "passed": True} for s in data["slos"]]
    suite = read_back(junit_xml([run_suite(Summary.model_validate(data), "r")]))
    assert failed_types(suite) == {
        "revoked_token_accepted": "gate" if verdict == "fail" else verdict
    }


def failed_types(suite: TestSuite) -> dict[str, str]:
    return {c.name: str(failure(c).type) for c in suite if not (c.is_passed or c.is_skipped)}


def test_a_summary_without_slos_or_gates_is_still_a_valid_suite() -> None:
    suite = read_back(junit_xml([run_suite(summary(verdict="pass", slos=[]), "r")]))
    assert (suite.tests, suite.failures) == (0, 0)


def test_markdown_has_the_verdict_slos_endpoints_and_gates() -> None:
    data = summary(gates=GATES)
    text = run_markdown(data, run_suite(data, "20261123T134431Z-smoke", report=REPORT))
    assert text.startswith("## ❌ authload 20261123T134431Z-smoke: FAIL\n")
    assert f"Report: `{REPORT}`" in text
    assert (
        "| ❌ | `p99(gigma.login) < 800ms` | gigma.login | 912.4 ms | < 800 ms | 71 attempts |"
        in (text)
    )
    assert "| ✅ | `error_rate(*, 5xx) < 1%` | * | 0.5% | < 1% | 297 attempts |" in text
    assert "| `mobile.refresh` | 226 | 7.5 | 19.7 | 47.2 | 59.0 | 2.00% |" in text
    assert "### Default gates" in text
    assert "| ⏭️ | `dropped_arrivals` | - | none | dropped_arrivals: disabled for this run |" in text
    assert "records 1182, Locust 1180 \\| mock 1180" in text  # a pipe cannot end the cell
    assert "- `revoked_token_accepted`: revoked_token_accepted: gigma.login: 3" in text
    assert "Compared with the baseline" not in text
    assert text.endswith("mock 1180 (measured -, allowed none)\n")  # one newline, no blank line


def test_markdown_says_when_the_summary_has_no_gates_and_counts_do_not_reconcile() -> None:
    data = summary_data(verdict="pass", reconciliation={"endpoints": {}, "match": False})
    data["slos"] = [{**s, "passed": True} for s in data["slos"]]
    text = run_markdown(Summary.model_validate(data), run_suite(Summary.model_validate(data), "r"))
    assert text.startswith("## ✅ authload r: PASS")
    assert "### Default gates\n\nNot in this run's summary." in text
    assert "**Request counts do not reconcile**" in text


def comparison(verdict: str = "regression") -> dict[str, Any]:
    """``Comparison.to_dict()`` of a regression of gigma.login's p99."""

    def row(stat: str, verdict: str, **values: Any) -> dict[str, Any]:
        pp = stat == "error_rate"
        return {
            "endpoint": "gigma.login", "stat": stat, "unit": "pp" if pp else "relative",
            "base": 0.01 if pp else 120.3, "candidate": 0.012 if pp else 148.5,
            "base_count": 3000, "candidate_count": 3000, "change": 0.2 if pp else 0.2344,
            "relative_change": 0.2, "ci_low": 0.152, "ci_high": 0.31,
            "tolerance": 0.5 if pp else 0.05, "verdict": verdict, "note": "",
        } | values  # fmt: skip

    return {
        "rows": [
            row("p99", verdict),
            row("p50", "no significant change", ci_low=-0.01, ci_high=0.02),
            row("error_rate", "no significant change", ci_low=-0.1, ci_high=0.4),
            row("p99", "insufficient data", endpoint="mobile.refresh", ci_low=None,
                ci_high=None, note="too few samples for p99: 120 < 500"),
        ],
        "verdict": verdict, "tolerance": 0.05, "error_tolerance_pp": 0.5, "confidence": 0.95,
        "resamples": 2000, "seed": 0, "min_samples": 20, "deciding": 3,
        "row_confidence": 0.9833,
    }  # fmt: skip


def test_a_comparison_is_a_case_per_row_a_regression_failing() -> None:
    cmp = comparison()
    suite = read_back(junit_xml([comparison_suite(cmp, "compare base -> candidate")]))
    assert (suite.tests, suite.failures, suite.skipped) == (4, 1, 1)
    cases = cases_of(suite)
    regression = failure(cases["p99(gigma.login)"])
    assert regression.type == "regression"
    assert regression.message == (
        "p99 of gigma.login regressed: +23.4% (120.3 ms -> 148.5 ms), 95% simultaneous "
        "interval [+15.2%, +31.0%], tolerance ±5.0%; find what changed on gigma.login "
        "between the two runs (the candidate's report shows when)"
    )
    assert cases["error_rate(gigma.login)"].is_passed
    assert "measured: 1.00% -> 1.20%" in str(cases["error_rate(gigma.login)"].system_out)
    assert cases["p99(mobile.refresh)"].is_skipped
    no_change = read_back(junit_xml([comparison_suite(comparison("improvement"), "c")]))
    assert no_change.failures == 0


def test_markdown_shows_the_comparison_with_the_baseline() -> None:
    data, cmp = summary(verdict="pass"), comparison()
    suite = comparison_suite(cmp, "compare base -> candidate")
    alone = comparison_markdown(suite, cmp)
    assert alone.startswith("## ❌ authload compare base -> candidate: REGRESSION\n")
    assert "### SLOs" not in alone
    text = comparison_markdown(suite, cmp, (data, run_suite(data, "candidate")))
    assert "## The candidate, candidate: PASS" in text
    assert "| ✅ | `error_rate(*, 5xx) < 1%` |" in text
    section = text[text.index("### Compared with the baseline: REGRESSION") :]
    assert "compare base -> candidate; latency tolerance 5.0%" in section
    assert (
        "| ❌ | `gigma.login` | p99 | 120.3 ms | 148.5 ms | +23.4% | [+15.2%, +31.0%] | "
        "regression |"
    ) in section
    assert "1 rows had too little data to decide." in section
    assert "mobile.refresh" not in section.split("\n\n")[2]  # not a deciding row


def test_a_capacity_search_is_its_answer_and_the_slos_at_the_deciding_step() -> None:
    found = read_back(junit_xml([capacity_suite(capacity(), "capacity x", report="c.html")]))
    assert (found.tests, found.failures) == (2, 0)
    assert found.time == pytest.approx(120.5)
    cases = cases_of(found)
    assert "measured: 50 journeys/s" in str(cases["capacity"].system_out)
    assert "measured: 108.4 ms" in str(cases["p99(mobile.lkfl_auth) < 160ms"].system_out)
    below = read_back(junit_xml([capacity_suite(capacity(exit_code=1), "capacity x")]))
    assert below.failures == 2
    message = failure(cases_of(below)["capacity"]).message
    assert message is not None and "try a lower --start" in message


def test_capacity_markdown_has_the_answer_and_the_steps() -> None:
    data = capacity()
    text = capacity_markdown(data, capacity_suite(data, "capacity x"))
    assert text.startswith("## ✅ authload capacity x: PASS\n\nCapacity: capacity 50 journeys/s")
    assert "| 2 | 75 | fail | 50 | 50 | 108.4 | 0.00% | `20261123T140243Z-capacity` |" in text
    assert "### SLOs at step 1 at 50 journeys/s" in text


def test_outputs_are_written_and_the_job_summary_appended(tmp_path: Path) -> None:
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n", encoding="utf-8")
    junit, markdown = tmp_path / "junit.xml", tmp_path / "summary.md"
    suites = [run_suite(summary(), "r")]
    written = write(
        Destinations(junit=str(junit), summary_md=str(markdown)),
        suites,
        lambda: "# the summary\n",
        environ={GITHUB_STEP_SUMMARY: str(step_summary)},
    )
    assert written == [str(junit), str(markdown), str(step_summary)]
    assert read_back(junit.read_text(encoding="utf-8")).failures == 2
    assert markdown.read_text(encoding="utf-8") == "# the summary\n"
    assert step_summary.read_text(encoding="utf-8") == "earlier step\n# the summary\n"
    asked_nothing: list[Suite] = []
    assert write(Destinations(), asked_nothing, pytest.fail, environ={}) == []


def test_destinations_are_checked_before_any_work(tmp_path: Path) -> None:
    Destinations(junit=str(tmp_path / "j.xml"), summary_md=str(tmp_path / "s.md")).check()
    with pytest.raises(InputError, match=r"--junit .*: no directory"):
        Destinations(junit=str(tmp_path / "missing" / "j.xml")).check()
    with pytest.raises(InputError, match=r"--summary-md .*: is a directory"):
        Destinations(summary_md=str(tmp_path)).check()
