"""tests/helpers/tools.py: the programs the tests run are found in the locked environment,
else on PATH, else installed from Debian's packages, else the session stops before any test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tools

ROOT = Path(__file__).resolve().parent.parent


def _executable(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory, the only one on PATH."""
    directory = tmp_path / "path"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


@pytest.mark.parametrize(
    ("name", "version"),
    [("redis-server", "Redis server v=8."), ("docker-compose", "Docker Compose version v")],
)
def test_the_lock_ships_redis_server_and_docker_compose(
    path: Path, name: str, version: str
) -> None:
    """Found (and working) with nothing on PATH: they come from the environment itself."""
    found = tools.locate(name)
    assert found is not None
    assert Path(found).is_relative_to(Path(sys.prefix).resolve())
    answer = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0
    assert answer.stdout.startswith(version)


def test_the_locked_package_comes_before_path(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _executable(path, "redis-server")
    assert tools.locate("redis-server") != str(on_path)
    absent = tools.Tool("redis-server", "redis-server", "no-such-distribution")
    monkeypatch.setitem(tools.TOOLS, "redis-server", absent)
    assert tools.locate("redis-server") == str(on_path)


def test_missing_packages_are_installed_once_each(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []

    def apt(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        if command[1] == "install":
            for name in ("prometheus", "promtool", "prometheus-pushgateway"):
                _executable(path, name)
        return subprocess.CompletedProcess(command, 0, "", "")

    _executable(path, "apt-get")
    monkeypatch.setattr(tools.subprocess, "run", apt)
    monkeypatch.setattr(tools.os, "geteuid", lambda: 0)
    monkeypatch.delenv(tools.NO_INSTALL_ENV, raising=False)
    said: list[str] = []
    found = tools.provision(["promtool", "prometheus", "prometheus-pushgateway"], said.append)
    assert ran == [
        ["apt-get", "update", "-qq"],
        [*tools.install_command(["prometheus-pushgateway", "prometheus"])],
    ]
    assert found == {n: str(path / n) for n in ("prometheus", "promtool", "prometheus-pushgateway")}
    assert said == [
        "tests: installing the Debian packages prometheus, prometheus-pushgateway (apt-get), once"
    ]


def test_nothing_is_installed_when_everything_is_there(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    promtool = _executable(path, "promtool")
    monkeypatch.setattr(tools.subprocess, "run", pytest.fail)
    assert tools.provision(["promtool"]) == {"promtool": str(promtool)}


@pytest.mark.parametrize(
    ("root", "no_install", "command"),
    [
        (False, None, "sudo apt-get update && sudo apt-get install"),
        (True, "1", "run: apt-get update && apt-get install"),
    ],
    ids=["not-root", "told-not-to"],
)
def test_a_missing_package_not_installable_here_names_the_command(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    root: bool,
    no_install: str | None,
    command: str,
) -> None:
    _executable(path, "apt-get")
    monkeypatch.setattr(tools.subprocess, "run", pytest.fail)
    monkeypatch.setattr(tools.os, "geteuid", lambda: 0 if root else 1000)
    if no_install is None:
        monkeypatch.delenv(tools.NO_INSTALL_ENV, raising=False)
    else:
        monkeypatch.setenv(tools.NO_INSTALL_ENV, no_install)
    with pytest.raises(tools.ProvisionError) as raised:
        tools.provision(["prometheus-pushgateway", "promtool"])
    message = str(raised.value)
    assert f"{command} -y -qq --no-install-recommends prometheus prometheus-pushgateway" in message


def test_a_test_that_did_not_declare_its_program_fails_saying_how() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"pytest.mark.tools\('no-such-tool'\)"):
        tools.tool_path("no-such-tool")


def test_the_session_stops_before_any_test_when_a_program_cannot_be_had(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    pytester.makepyfile(
        f"""
        import pathlib, pytest

        @pytest.mark.tools("prometheus-pushgateway")
        def test_needs_it():
            pathlib.Path({str(ran)!r}).write_text("ran")

        def test_needs_nothing():
            pathlib.Path({str(ran)!r}).write_text("ran")
        """
    )
    empty = tmp_path / "bin"
    _executable(empty, "apt-get")
    env = {"PATH": str(empty), "PYTHONPATH": str(ROOT), tools.NO_INSTALL_ENV: "1"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        result = pytester.runpytest_subprocess(
            "-p", "tests.helpers.tools", "-p", "no:cacheprovider"
        )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            "*the tests cannot start: missing the Debian packages prometheus-pushgateway; run: "
            "*apt-get update && *apt-get install -y -qq --no-install-recommends "
            "prometheus-pushgateway*"
        ]
    )
    assert not ran.exists()
