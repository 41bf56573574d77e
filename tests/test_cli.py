"""The `authload` command as a user runs it: real processes, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
