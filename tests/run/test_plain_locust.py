"""`locust -f locustfiles/scenario.py`: plain Locust users run a scenario against a mock they
started (here: one started by the test) or any target of a targets file, with `authload
run`'s safety rules. Each load is a real Locust process for a few seconds on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from authload.errors import InputError, TargetError
from authload.mock.server import EmbeddedMock
from authload.run.plain_locust import prepare
from tests.helpers.mock_server import FUNCTIONAL_PROFILE, mock_with_profile
from tests.helpers.runs import REPO

pytestmark = pytest.mark.integration

LOCUSTFILE = REPO / "locustfiles" / "scenario.py"

SHORT = """
name: plain-locust
mix: {MIX}
load:
  model: closed
  stages: [{duration_s: 3, users: 4, spawn_rate: 4}]
think_time: {dist: fixed, ms: 50}
flows:
  password_call: {devices: {1: 1.0}, session: {dist: fixed, ms: 100}}
  lkfl: {wrong_password_share: 0}
retry: {policy: none}
"""


def _scenario(tmp_path: Path, mix: str = "{password_call: 1, lkfl: 1}") -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(SHORT.replace("{MIX}", mix), encoding="utf-8")
    return path


def _locust(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Plain Locust with the locustfile, headless, as a person would start it."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-t", "5s"]
    cmd += ["--only-summary", "--loglevel", "WARNING", *args]
    return subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _spool_counts(run_dir: Path) -> Counter[str]:
    """Requests per endpoint in the run's record spools (Arrow streams)."""
    counts: Counter[str] = Counter()
    for spool in sorted((run_dir / "records").glob("*.arrows")):
        with pa.OSFile(str(spool), "rb") as source:
            table = pa.ipc.open_stream(source).read_all()
        counts.update(str(e) for e in table.column("endpoint").to_pylist())
    return counts


def _only_run_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _check_recorded(run_dir: Path, answered_by: str) -> Counter[str]:
    """The records are written and every request is in them, as Locust and the mock count."""
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["launched_by"] == "locust -f locustfiles/scenario.py"
    recorded = _spool_counts(run_dir)
    assert sum(recorded.values()) > 20, recorded
    locust = json.loads((run_dir / "locust_counts" / "w0.json").read_text(encoding="utf-8"))
    assert dict(recorded) == locust
    stats = httpx.get(answered_by + "/_mock/stats").json()
    assert {name: sum(s.values()) for name, s in stats["requests"].items()} == dict(recorded)
    return recorded


@pytest.mark.slow
def test_plain_locust_runs_the_scenario_against_the_mock_at_its_url(tmp_path: Path) -> None:
    with mock_with_profile(tmp_path, FUNCTIONAL_PROFILE) as mock:
        env = {
            "AUTHLOAD_SCENARIO": str(_scenario(tmp_path)),
            "AUTHLOAD_MOCK_URL": mock.url,
            "AUTHLOAD_OUT": str(tmp_path / "runs"),
        }
        result = _locust(env)
        assert result.returncode == 0, result.stderr
        run_dir = _only_run_dir(tmp_path / "runs")
        assert f"authload: run directory {run_dir}" in result.stderr
        recorded = _check_recorded(run_dir, mock.url)
    assert {"gigma.send_password", "gigma.login", "mobile.lkfl_auth"} <= set(recorded)
    assert (run_dir / "mock_behaviour.json").is_file()  # the mock's, as it was reset


@pytest.mark.slow
def test_plain_locust_runs_on_a_shared_target_of_a_targets_file_once_confirmed(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "stand.yaml"
    profile.write_text("{}\n", encoding="utf-8")
    secrets = {"AUTHLOAD_MOCK_APP_TOKEN": "stand-token", "AUTHLOAD_MOCK_CLIENT_SECRET": "s3"}
    with EmbeddedMock(env=secrets, args=("--behaviour", str(profile))) as stand:
        accounts = httpx.get(stand.url + "/_mock/accounts", params={"limit": 4}).json()
        lines = "".join(
            f'    - {{phone: "{a["phone"]}", inn: "{a["inn"]}", lkfl_password_env: STAND_PW_{i}}}\n'
            for i, a in enumerate(accounts["accounts"])
        )
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            f"stand:\n  gigma_url: {stand.url}\n  mobile_url: {stand.url}\n"
            f"  app_token_env: STAND_TOKEN\n  client_secret_env: STAND_SECRET\n"
            f"  limits: {{max_users: 4, max_request_rate: 200}}\n  accounts:\n{lines}",
            encoding="utf-8",
        )
        env = {
            "AUTHLOAD_SCENARIO": str(_scenario(tmp_path, "{lkfl: 1}")),
            "AUTHLOAD_TARGET": "stand",
            "AUTHLOAD_TARGETS_FILE": str(targets),
            "AUTHLOAD_OUT": str(tmp_path / "runs"),
            "STAND_TOKEN": "stand-token",
            "STAND_SECRET": "s3",
            **{f"STAND_PW_{i}": a["lkfl_password"] for i, a in enumerate(accounts["accounts"])},
        }
        refused = _locust(env)
        assert refused.returncode != 0
        assert "target stand is a shared environment" in refused.stderr
        assert "set AUTHLOAD_CONFIRM=1" in refused.stderr
        assert not (tmp_path / "runs").exists()

        result = _locust({**env, "AUTHLOAD_CONFIRM": "1"})
        assert result.returncode == 0, result.stderr
        assert "target stand limits: max_users=4, max_request_rate=200" in result.stderr
        recorded = _check_recorded(_only_run_dir(tmp_path / "runs"), stand.url)
    assert set(recorded) == {"mobile.lkfl_auth"}


def _stand_targets(tmp_path: Path, limits: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(
        "stand:\n  gigma_url: http://127.0.0.1:9\n  mobile_url: http://127.0.0.1:9\n"
        f"  limits: {limits}\n",
        encoding="utf-8",
    )
    return path


def test_a_shared_target_out_of_its_limits_is_refused_even_when_confirmed(
    tmp_path: Path,
) -> None:
    env = {
        "AUTHLOAD_SCENARIO": str(_scenario(tmp_path)),
        "AUTHLOAD_TARGET": "stand",
        "AUTHLOAD_TARGETS_FILE": str(_stand_targets(tmp_path, "{max_users: 2}")),
        "AUTHLOAD_CONFIRM": "1",
        "AUTHLOAD_OUT": str(tmp_path / "runs"),
    }
    with pytest.raises(TargetError, match=r"refuses this run: peak users 4 > max_users 2"):
        prepare(env, [])
    assert not (tmp_path / "runs").exists()


def test_no_mock_at_the_url_is_said_before_anything_is_created(tmp_path: Path) -> None:
    env = {
        "AUTHLOAD_SCENARIO": str(_scenario(tmp_path)),
        "AUTHLOAD_MOCK_URL": "http://127.0.0.1:9",
        "AUTHLOAD_OUT": str(tmp_path / "runs"),
    }
    with pytest.raises(TargetError, match=r"no mock answers at http://127.0.0.1:9"):
        prepare(env, [])
    assert not (tmp_path / "runs").exists()


def test_more_than_one_locust_process_is_refused_naming_authload_run(tmp_path: Path) -> None:
    refused = r"\(--processes given\).*`authload run SCENARIO --processes N`"
    with pytest.raises(InputError, match=refused):
        prepare({"AUTHLOAD_SCENARIO": str(_scenario(tmp_path))}, ["-f", "x", "--processes", "4"])
