"""--junit and --summary-md on the commands that judge: run, report, compare, capacity. The
files are read back by a JUnit consumer and the exit codes stay the verdict's."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from junitparser import Failure, JUnitXml, TestSuite

from authload.capacity import driver as capacity_driver
from authload.cli import main
from authload.verdict_formats.outputs import GITHUB_STEP_SUMMARY
from tests.helpers.runs import REPO, authload, run_scenario
from tests.helpers.synthetic_runs import LOGIN, REFRESH, one_endpoint, one_run, write_run
from tests.helpers.verdict_documents import SCHEMA, capacity

SCENARIO = """
name: verdict-e2e
seed: 5
accounts: {count: 200}
mix: {lkfl: 1}
load:
  model: closed
  stages: [{duration_s: 4, users: 3, spawn_rate: 3}]
think_time: {dist: fixed, ms: 20}
flows: {lkfl: {wrong_password_share: 0}}
retry: {policy: none}
abort: null
slos:
  - "p99(mobile.lkfl_auth) < 1ms"
  - "error_rate(*) < 50%"
  - "p50(gigma.login) < 1s"
mock:
  behaviour:
    latency: {mobile.lkfl_auth: {dist: fixed, ms: 5}}
"""


def suite_in(path: Path) -> TestSuite:
    text = path.read_text(encoding="utf-8")
    SCHEMA.validate(text)
    suites = list(JUnitXml.fromstring(text))
    assert len(suites) == 1
    suite = suites[0]
    assert isinstance(suite, TestSuite)
    return suite


def failed(suite: TestSuite) -> dict[str, str]:
    """Failed case -> its failure type."""
    return {
        case.name: str(result.type)
        for case in suite
        for result in case.result
        if isinstance(result, Failure)
    }


@pytest.mark.integration
def test_run_and_report_write_junit_and_markdown(tmp_path: Path) -> None:
    junit, markdown, step = tmp_path / "run.xml", tmp_path / "run.md", tmp_path / "step.md"
    run = run_scenario(
        tmp_path / "run",
        SCENARIO,
        "--junit",
        junit,
        "--summary-md",
        markdown,
        env={GITHUB_STEP_SUMMARY: str(step)},
        load_s=4,
    )
    assert run.code == 1, run.describe()  # 1 ms for a 5 ms answer: the SLO fails
    assert run.run_dir is not None
    suite = suite_in(junit)
    assert suite.name == run.run_dir.name
    assert suite.time == pytest.approx(run.summary["duration_s"], abs=0.001)
    assert suite.timestamp == run.manifest["start"]
    report = (run.run_dir / "report.html").as_posix()
    assert {p.name: p.value for p in suite.properties()}["report"] == report
    assert failed(suite) == {"p99(mobile.lkfl_auth) < 1ms": "slo", "p50(gigma.login) < 1s": "slo"}
    gates = run.summary["gates"]
    assert suite.tests == 3 + len(gates)  # the SLOs, the default gates
    names = {case.name for case in suite}
    assert {g["gate"] for g in gates} <= names and gates
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith(f"## ❌ authload {run.run_dir.name}: FAIL\n")
    assert f"Report: `{report}`" in text and "| `mobile.lkfl_auth` |" in text
    assert step.read_text(encoding="utf-8") == text
    assert f"authload: wrote {junit}" in run.proc.stderr

    again = tmp_path / "report.xml"
    result = authload("report", run.run_dir, "--junit", again)
    assert result.returncode == 1, result.stderr
    assert failed(suite_in(again)) == failed(suite)


def test_a_destination_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "runs"
    code = main(["run", str(scenario), "--out", str(out), "--junit", str(tmp_path / "no" / "j")])
    assert code == 2
    assert "--junit" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    refresh = one_endpoint(REFRESH, 3000, 2, median_ms=15.0)
    return {
        "base": write_run(root / "base", one_run(one_endpoint(LOGIN, 3000, 1), refresh)),
        "same": write_run(root / "same", one_run(one_endpoint(LOGIN, 3000, 11), refresh)),
        "slower": write_run(
            root / "slower", one_run(one_endpoint(LOGIN, 3000, 11, scale=1.3), refresh)
        ),
    }


def test_compare_writes_a_case_per_row_and_keeps_its_exit_code(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(GITHUB_STEP_SUMMARY, raising=False)
    junit, markdown = tmp_path / "c.xml", tmp_path / "c.md"
    args = ["--junit", str(junit), "--summary-md", str(markdown)]
    assert main(["compare", str(runs["base"]), str(runs["slower"]), *args]) == 1
    suite = suite_in(junit)
    assert suite.name == "compare base -> slower"
    assert suite.tests == 15  # 2 endpoints and *, 5 statistics each (no journeys kept)
    regressions = failed(suite)
    assert regressions and set(regressions.values()) == {"regression"}
    assert all(name.endswith(f"({LOGIN})") or name.endswith("(*)") for name in regressions)
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("## ❌ authload compare base -> slower: REGRESSION")
    assert "The candidate" not in text  # these runs have no summary.json

    assert main(["compare", str(runs["base"]), str(runs["same"]), "--json", *args]) == 0
    assert failed(suite_in(junit)) == {}


def test_compare_shows_the_candidates_own_summary_when_it_has_one(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    summary = {"scenario": "synthetic", "status": "completed", "verdict": "pass",
               "duration_s": 30.0, "requests": 6000, "endpoints": {}, "slos": []}  # fmt: skip
    (runs["same"] / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    markdown = tmp_path / "c.md"
    assert (
        main(["compare", str(runs["base"]), str(runs["same"]), "--summary-md", str(markdown)]) == 0
    )
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("## ✅ authload compare base -> same: NO SIGNIFICANT CHANGE")
    assert "## The candidate, same: PASS" in text


@pytest.mark.parametrize("code", [0, 1])
def test_capacity_writes_the_search_and_keeps_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    directory = tmp_path / "20261123T140243Z-capacity-capacity"
    directory.mkdir()
    data = capacity(exit_code=code)

    def search(scenario: Any, options: Any) -> capacity_driver.CapacityResult:
        return capacity_driver.CapacityResult(directory, data, code)

    monkeypatch.setattr(capacity_driver, "run_capacity", search)
    junit, markdown = tmp_path / "cap.xml", tmp_path / "cap.md"
    args = ["--out", str(tmp_path), "--junit", str(junit), "--summary-md", str(markdown)]
    assert main(["capacity", "scenarios/capacity.yaml", *args]) == code
    suite = suite_in(junit)
    assert suite.name == f"capacity {directory.name}"
    assert ("capacity" in failed(suite)) is (code == 1)
    assert markdown.read_text(encoding="utf-8").startswith(
        f"## {'✅' if code == 0 else '❌'} authload capacity {directory.name}: "
    )


CI = REPO / "deploy" / "ci"


def flag(text: str, name: str) -> str:
    """The file a command line gives to ``--name``."""
    match = re.search(rf"--{name} ([^\s;]+)", text)
    assert match, f"no --{name} in {text!r}"
    return match[1]


def verdict_step(script: str, codes: dict[str, str]) -> int:
    """Run a workflow's verdict step with the step outputs filled in; its exit code."""
    filled = re.sub(r"\$\{\{ steps\.(\w+)\.outputs\.code \}\}", lambda m: codes[m[1]], script)
    return subprocess.run(["bash", "-c", filled], capture_output=True, timeout=10).returncode


@pytest.mark.parametrize(("name", "step"), [("soak", "soak"), ("release-gate", "gate")])
def test_the_github_examples_write_both_formats_keep_them_and_fail_on_the_verdict(
    name: str, step: str
) -> None:
    workflow = yaml.safe_load((CI / "github" / f"{name}.yml").read_text(encoding="utf-8"))
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    run = next(s for s in steps if s.get("id") == step)["run"]
    assert f"authload run scenarios/{name}.yaml" in run
    junit, markdown = flag(run, "junit"), flag(run, "summary-md")
    upload = next(s for s in steps if "upload-artifact" in str(s.get("uses", "")))
    kept = [line.strip() for line in upload["with"]["path"].splitlines()]
    assert {f"${{{{ steps.{step}.outputs.dir }}}}", junit, markdown} <= set(kept)
    verdict = steps[-1]
    assert verdict["if"] == "always()"
    others = {"compare": "0"} if name == "soak" else {}
    for code, fails in (("0", False), ("1", True), ("3", True)):
        assert (verdict_step(verdict["run"], {step: code, **others}) != 0) is fails, code


@pytest.mark.parametrize("name", ["soak", "release-gate"])
def test_the_gitlab_examples_report_the_junit_and_keep_the_run(name: str) -> None:
    path = CI / "gitlab" / f"{name}.gitlab-ci.yml"
    [job] = [j for j in yaml.safe_load(path.read_text("utf-8")).values() if "script" in j]
    script = "\n".join(job["script"])
    assert f"authload run scenarios/{name}.yaml" in script
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["reports"]["junit"] == flag(script, "junit")
    assert flag(script, "summary-md") in artifacts["paths"]
    assert any(p.startswith(("runs", "soak-run")) for p in artifacts["paths"])
