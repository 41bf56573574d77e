"""`authload runs`: the run index over real run directories (three short runs of one
scenario, then copies of them changed into other scenarios, targets and states, a capacity
search and a broken directory), its filters, and `--compare-latest` picking the right
baseline: the previous runs of the same scenario and target, nothing else."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from authload.analysis.history import index_runs, parse_since
from authload.cli import main
from authload.errors import InputError
from authload.rundir.capacity import CapacityAnswer, CapacityDocument, write_capacity
from tests.helpers.runs import REPO, Run, authload, run_scenario

SCENARIO = """
name: {name}
seed: 3
accounts: {{count: 500}}
mix: {{lkfl: 1}}
load:
  model: closed
  stages:
    - {{duration_s: 3, users: 3, spawn_rate: 3}}
think_time: {{dist: fixed, ms: 20}}
flows:
  lkfl: {{wrong_password_share: 0}}
retry: {{policy: none}}
mock: {{behaviour: {{latency: {{default: {{dist: fixed, ms: {ms}}}}}}}}}
"""


@dataclass
class Output:
    returncode: int
    stdout: str
    stderr: str


def runs_cli(*args: str | Path) -> Output:
    """``authload runs ARGS`` in this process (no Locust involved), output captured."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["runs", *map(str, args)])
    return Output(code, out.getvalue(), err.getvalue())


def _edit(run_dir: Path, name: str, **changes: Any) -> None:
    path = run_dir / name
    data = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if key == "scenario_name":
            data["scenario"]["name"] = value
        else:
            data[key] = value
    path.write_text(json.dumps(data), encoding="utf-8")


def _copy(source: Path, root: Path, name: str, start: datetime, **changes: Any) -> Path:
    copy = root / name
    shutil.copytree(source, copy)
    _edit(copy, "manifest.json", start=start.isoformat(timespec="milliseconds"), **changes)
    return copy


class History:
    def __init__(self, root: Path, runs: dict[str, Path]) -> None:
        self.root = root
        self.runs = runs

    def names(self, *args: str) -> list[str]:
        proc = runs_cli(self.root, "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return [Path(r["path"]).name for r in json.loads(proc.stdout)["runs"]]

    def compare(self, *args: str) -> tuple[int, dict[str, Any], str]:
        proc = runs_cli(self.root, "--json", "--compare-latest", *args)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}, proc.stderr


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Real runs a1, a2 (10 ms) and a3 (40 ms) of hist-a, then, between them in time:
    b1 (hist-b), a-beta (hist-a on beta), a capacity search whose step is a hist-a run,
    after them a3-aborted and a4-running, and a broken directory."""
    work = tmp_path_factory.mktemp("history")
    real: dict[str, Run] = {}
    for name, ms in (("a1", 10), ("a2", 10), ("a3", 40)):
        run = run_scenario(work / name, SCENARIO.format(name="hist-a", ms=ms), load_s=3)
        assert run.code == 0, run.describe()
        real[name] = run
    root = work / "root"
    root.mkdir()
    runs = {}
    for name, run in real.items():
        assert run.run_dir is not None
        runs[name] = shutil.copytree(run.run_dir, root / run.run_dir.name)

    def start(name: str) -> datetime:
        manifest = json.loads((runs[name] / "manifest.json").read_text(encoding="utf-8"))
        return datetime.fromisoformat(manifest["start"])

    a1, a2, a3 = start("a1"), start("a2"), start("a3")
    between = (a2 - a1) / 2
    runs["b1"] = _copy(runs["a3"], root, "b1", a1 + between, scenario_name="hist-b")
    _edit(runs["b1"], "summary.json", scenario="hist-b")
    runs["a-beta"] = _copy(runs["a3"], root, "a-beta", a2 + (a3 - a2) / 3, target="beta")
    # a capacity search, its one step a hist-a run on the mock: listed once, never a baseline
    capacity = root / "nested" / "20250101T000000Z-capacity-hist-a"
    capacity.mkdir(parents=True)
    step = _copy(runs["a3"], capacity, "step-01-run", a2 + (a3 - a2) * 2 / 3)
    write_capacity(
        capacity,
        CapacityDocument(
            scenario="hist-a",
            scenario_file="scenarios/hist-a.yaml",
            mode="open",
            unit="/s",
            target="mock",
            status="completed",
            stop_reason="precision",
            stop_detail="",
            start=(a2 + (a3 - a2) / 2).isoformat(),
            end=(a2 + (a3 - a2) * 0.9).isoformat(),
            elapsed_s=12.5,
            settings={},
            slos=["p99(*) < 1s"],
            capacity=CapacityAnswer(
                level=42.0,
                unit="/s",
                bracket=[42.0, 44.0],
                found=True,
                bounded=True,
                ok_rps=42.0,
                p99_ms=900.0,
                note="capacity 42/s",
            ),
            knee=None,
            first_breach=None,
            usl=None,
            steps=[{"index": 1, "run_dir": step.name}],
            exit_code=0,
        ),
    )
    runs["capacity"] = capacity
    later = a3 + timedelta(minutes=1)
    runs["a3-aborted"] = _copy(runs["a1"], root, "a3-aborted", later, status="aborted")
    _edit(runs["a3-aborted"], "summary.json", verdict="aborted", status="aborted")
    runs["a4-running"] = _copy(runs["a1"], root, "a4-running", later + timedelta(minutes=1))
    _edit(runs["a4-running"], "manifest.json", status="running", end=None)
    (runs["a4-running"] / "summary.json").unlink()
    broken = root / "broken-run"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"scenario": ', encoding="utf-8")
    return History(root, runs)


@pytest.mark.integration
def test_the_index_lists_every_run_once_by_start_and_skips_the_broken_one(
    history: History,
) -> None:
    proc = authload("runs", history.root)
    assert proc.returncode == 0, proc.stderr
    assert (
        "skipped" in proc.stderr and "broken-run" in proc.stderr and "manifest.json" in proc.stderr
    )
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["start", "(UTC)", "scenario"]
    names = [line.split()[-1] for line in lines[1:] if "capacity" not in line]
    order = ["a1", "b1", "a2", "a-beta", "a3", "a3-aborted", "a4-running"]
    assert names == [history.runs[n].name for n in order]
    [capacity] = [line for line in lines if "capacity" in line]
    assert "(capacity: capacity 42 /s; 1 step)" in capacity
    assert "step-01-run" not in proc.stdout, "a capacity search's steps are not runs of their own"
    a3 = next(line for line in lines if line.endswith(history.runs["a3"].name))
    assert " hist-a " in a3 and " mock " in a3 and " pass " in a3

    data = json.loads(runs_cli(history.root, "--json").stdout)
    assert [s["path"] for s in data["skipped"]] == [str(history.root / "broken-run")]
    by_name = {Path(r["path"]).name: r for r in data["runs"]}
    assert len(by_name) == 8
    real = by_name[history.runs["a1"].name]
    assert real["scenario"] == "hist-a" and real["target"] == "mock"
    assert real["verdict"] == "pass" and real["status"] == "completed"
    assert real["git_revision"] and real["requests"] > 0
    assert 2 <= real["duration_s"] <= 6
    assert by_name["a4-running"]["verdict"] == "running"
    assert by_name["a3-aborted"]["verdict"] == "aborted"
    cap = by_name["20250101T000000Z-capacity-hist-a"]
    assert cap["kind"] == "capacity" and cap["verdict"] == "pass" and cap["duration_s"] == 12.5
    assert cap["git_revision"] == real["git_revision"]  # from its step's manifest


@pytest.mark.integration
def test_filters(history: History) -> None:
    runs = history.runs
    a = [runs[n].name for n in ("a1", "a2", "a3", "a3-aborted", "a4-running")]
    assert history.names("--scenario", "hist-a", "--target", "mock") == [
        *a[:2],
        runs["capacity"].name,
        *a[2:],
    ]
    assert history.names("--target", "beta") == ["a-beta"]
    assert history.names("--scenario", "hist-b") == ["b1"]
    assert history.names("--verdict", "aborted", "--verdict", "running") == [
        "a3-aborted",
        "a4-running",
    ]
    a3 = json.loads((runs["a3"] / "manifest.json").read_text(encoding="utf-8"))["start"]
    assert history.names("--since", a3) == [runs["a3"].name, "a3-aborted", "a4-running"]
    assert history.names("--since", "1h", "--scenario", "nothing") == []
    bad = runs_cli(history.root, "--since", "last tuesday")
    assert bad.returncode == 2 and "--since" in bad.stderr
    missing = runs_cli(history.root / "nowhere")
    assert missing.returncode == 2 and "no such directory" in missing.stderr


@pytest.mark.integration
def test_compare_latest_takes_the_previous_runs_of_the_same_scenario_and_target(
    history: History,
) -> None:
    runs = history.runs
    code, data, _ = history.compare("hist-a", "--target", "mock")
    assert Path(data["latest"]["path"]) == runs["a3"]  # not the aborted or running ones
    assert [Path(r["path"]) for r in data["baseline"]] == [runs["a1"], runs["a2"]]
    assert data["baseline_method"] == "pooled records"
    assert {Path(f["run"]).name for f in data["baseline_figures"]} == {
        runs["a1"].name,
        runs["a2"].name,
    }
    assert any("a3-aborted" in note for note in data["notes"])
    assert any("scenario changed" in note for note in data["notes"])  # 10 ms -> 40 ms
    # 10 ms -> 40 ms on every endpoint: a regression, exit 1 as `authload compare`
    assert data["verdict"] == "regression" and code == 1
    row = next(
        r for r in data["rows"] if r["endpoint"] == "mobile.lkfl_auth" and r["stat"] == "p50"
    )
    assert row["verdict"] == "regression" and row["change"] > 1.5
    n = sum(json.loads((runs[r] / "summary.json").read_text())["requests"] for r in ("a1", "a2"))
    assert (
        next(r for r in data["rows"] if r["stat"] == "error_rate" and r["endpoint"] == "*")[
            "base_count"
        ]
        == n
    ), "the baseline is the two runs' records pooled"
    amplification = next(
        r for r in data["rows"] if r["stat"] == "amplification" and r["endpoint"] == "*"
    )  # retry policy none: one attempt per operation; each run's operation ids start at 1
    assert (amplification["base"], amplification["base_count"]) == (1.0, n)

    code, data, _ = history.compare("hist-a", "--last", "1")  # target: the latest's (mock)
    assert [Path(r["path"]) for r in data["baseline"]] == [runs["a2"]]
    assert code == 1

    proc = runs_cli(history.root, "--compare-latest", "hist-a", "--target", "mock")
    assert proc.returncode == 1
    assert f"latest {runs['a3']}" in proc.stdout
    assert "baseline: 2 finished runs of hist-a on mock before it, records pooled:" in proc.stdout
    assert "verdict: REGRESSION" in proc.stdout


@pytest.mark.integration
def test_compare_latest_without_a_regression_and_without_a_baseline(
    history: History, tmp_path: Path
) -> None:
    root = tmp_path / "two"
    for name in ("a1", "a2"):
        shutil.copytree(history.runs[name], root / history.runs[name].name)
    proc = runs_cli(root, "--compare-latest", "hist-a", "--json", "--tolerance", "0.5")
    data = json.loads(proc.stdout)
    assert data["verdict"] != "regression" and proc.returncode == 0, proc.stdout
    assert [Path(r["path"]).name for r in data["baseline"]] == [history.runs["a1"].name]

    for args in (("hist-a", "--target", "beta"), ("hist-b",), ("nothing",)):
        code, _, stderr = history.compare(*args)
        assert code == 2, args
        assert "no earlier finished run" in stderr or "no finished run" in stderr


# ---------------------------------------------------------------------------- no runs needed


def test_parse_since() -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    assert parse_since("12h", now) == datetime(2025, 6, 2, 0, 0, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2025, 5, 26, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == datetime(2025, 6, 2, 10, 30, tzinfo=UTC)
    assert parse_since("2025-06-01") == datetime(2025, 6, 1, tzinfo=UTC)
    assert parse_since("2025-06-01T10:00Z") == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert parse_since("2025-06-01T10:00+02:00") == datetime(2025, 6, 1, 8, tzinfo=UTC)
    with pytest.raises(InputError):
        parse_since("yesterday")


#: The manifest of a run that has started and not ended (as `authload run` writes it first).
STARTED = json.dumps(
    {
        "scenario": {"name": "s"},
        "target": "mock",
        "versions": {},
        "start": "2026-12-07T10:00:00.000+00:00",
        "processes": 1,
        "runner": {"host": "h", "pid": 1},
    }
)


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"manifest.json": "[1, 2]"}, "manifest.json: not a JSON object"),
        ({"manifest.json": "{}"}, "manifest.json: scenario: Field required"),
        ({"manifest.json": STARTED, "summary.json": "{"}, "summary.json: unreadable"),
        ({"capacity.json": "nope"}, "capacity.json: unreadable"),
    ],
)
def test_unreadable_runs_are_skipped_with_the_reason(
    tmp_path: Path, files: dict[str, str], reason: str
) -> None:
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    for name, text in files.items():
        (run / name).write_text(text, encoding="utf-8")
    (tmp_path / "runs" / ".hidden").mkdir()
    index = index_runs(tmp_path / "runs")
    assert index.runs == []
    [skipped] = index.skipped
    assert skipped.path == run and skipped.reason.startswith(reason)


def test_a_run_with_only_a_manifest_is_listed(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(STARTED, encoding="utf-8")
    [entry] = index_runs(tmp_path).runs  # the root itself is a run directory
    assert (entry.scenario, entry.verdict, entry.duration_s) == ("s", "running", None)
    assert entry.start == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert not entry.finished


# ------------------------------------------------------------------------------ CI schedules


def test_the_ci_schedule_examples_run_the_soak_and_compare_it() -> None:
    github = yaml.safe_load((REPO / "deploy/ci/github/soak.yml").read_text(encoding="utf-8"))
    on = github.get("on", github.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["schedule"][0]["cron"]
    steps = [s for job in github["jobs"].values() for s in job["steps"]]
    commands = "\n".join(str(s.get("run", "")) for s in steps)
    assert "authload run scenarios/soak.yaml" in commands
    assert "authload runs" in commands and "--compare-latest soak" in commands
    assert any("upload-artifact" in str(s.get("uses", "")) for s in steps)

    gitlab = yaml.safe_load((REPO / "deploy/ci/gitlab/soak.gitlab-ci.yml").read_text("utf-8"))
    [job] = [j for j in gitlab.values() if isinstance(j, dict) and "script" in j]
    assert any("schedule" in str(rule.get("if", "")) for rule in job["rules"])
    script = "\n".join(job["script"])
    assert "authload run scenarios/soak.yaml" in script and "--compare-latest soak" in script
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["paths"]
    assert job["cache"]["paths"] == ["runs/"]
