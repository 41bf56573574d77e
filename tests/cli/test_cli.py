"""The `authload` command as a user runs it: real processes, exit codes, messages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from authload.cli import main
from authload.mock.server import EmbeddedMock


def _authload(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authload", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_smoke_drives_every_endpoint_on_an_embedded_mock() -> None:
    result = _authload("smoke", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["url"].startswith("http://127.0.0.1:")
    assert len(report["steps"]) == 9
    assert all(s["status"] == 200 and s["problem"] is None for s in report["steps"])


def test_smoke_fails_with_exit_1_when_the_target_refuses_the_app_token(
    mock_server: EmbeddedMock,
) -> None:
    result = _authload(
        "smoke", "--url", mock_server.url, env={"AUTHLOAD_MOCK_APP_TOKEN": "not-the-mock-token"}
    )
    assert result.returncode == 1
    assert "gigma.send_password       403" in result.stdout
    assert "verdict: FAIL (0/9" in result.stdout


def test_bad_setting_is_exit_2_naming_the_field() -> None:
    result = _authload("mock", env={"AUTHLOAD_MOCK_POPULATION": "0"})
    assert result.returncode == 2
    assert "population" in result.stderr
    assert "greater than or equal to 1" in result.stderr


def test_openapi_prints_the_document(capsys: object) -> None:
    assert main(["openapi"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert json.loads(out)["paths"]["/counterparty/login"]["post"]["operationId"] == "gigma.login"


SCENARIO = """\
name: t
mix: {sms: 1}
load:
  stages:
    - {duration_s: 2, users: 1}
"""


def _scenario(tmp_path: Path, text: str = SCENARIO) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--port", "99999"), "argument --port: a port is 1..65535, not 99999"),
        (("--port", "-1"), "argument --port: a port is 1..65535, not -1"),
        (("--port", "http"), "argument --port: not a port number: 'http'"),
        (("--workers", "0"), "argument --workers: must be at least 1, not 0"),
    ],
)
def test_mock_refuses_bad_port_and_workers(args: tuple[str, ...], expected: str) -> None:
    result = _authload("mock", *args, timeout=20)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Gigma and mobile" not in result.stderr  # no banner


def test_mock_on_a_taken_port_is_one_clear_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _authload("mock", "--port", str(port), timeout=20)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"authload: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_mock_on_an_address_not_of_this_host_is_exit_2() -> None:
    result = _authload("mock", "--host", "192.0.2.1", "--port", "8080", timeout=20)
    assert result.returncode == 2
    assert result.stderr.startswith("authload: error: cannot listen on 192.0.2.1:8080: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "0", "-3", "soon"])
def test_run_refuses_a_duration_that_is_not_finite_seconds(tmp_path: Path, seconds: str) -> None:
    out = tmp_path / "runs"
    result = _authload("run", str(_scenario(tmp_path)), "--duration", seconds, "--out", str(out))
    assert result.returncode == 2
    assert "argument --duration: " in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("verb", ["run", "capacity"])
def test_run_and_capacity_refuse_an_out_that_is_a_file(tmp_path: Path, verb: str) -> None:
    file = tmp_path / "runs.txt"
    file.write_text("not a directory\n", encoding="utf-8")
    for out in (file, file / "deeper"):
        result = _authload(verb, str(_scenario(tmp_path)), "--out", str(out))
        assert result.returncode == 2
        assert result.stderr == f"authload: error: --out {out}: {file} is not a directory\n"


def test_validate_and_run_refuse_a_bad_mock_section_before_any_run_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "bad-profile.yaml").write_text("faults: [{kind: latency}]\n", encoding="utf-8")
    path = _scenario(
        tmp_path,
        SCENARIO + "mock:\n  behaviour: bad-profile.yaml\n  settings: {sms_code_length: 12}\n",
    )
    expected = [
        f"{path}:7: mock.behaviour: not a valid behaviour profile: "
        f"{tmp_path / 'bad-profile.yaml'}: faults.0: a latency fault needs "
        "added_ms > 0",
        f"{path}:8: mock.settings.sms_code_length: Input should be less than or equal to 8",
    ]
    result = _authload("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == expected
    out = tmp_path / "runs"
    result = _authload("run", str(path), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"authload: error: {expected[0]}", expected[1]]
    assert not out.exists()


def test_validate_refuses_duplicate_keys_and_non_finite_numbers(tmp_path: Path) -> None:
    path = _scenario(tmp_path, SCENARIO.replace("duration_s: 2", "duration_s: .inf"))
    result = _authload("validate", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{path}:5: load.stages.0.duration_s: must be a finite number\n"
    path.write_text(SCENARIO + "name: u\n", encoding="utf-8")
    result = _authload("validate", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{path}:6: name: given twice (lines 1 and 6); keep one\n"
