"""A scenario run by plain ``locust -f locustfiles/scenario.py``, configured from the
environment, with the rules `authload run` applies before any load: the scenario checked,
the target resolved (a targets file too), the target's safety limits (a shared target needs
``AUTHLOAD_CONFIRM=1``: the environment's ``--confirm``), its abort level and run-time
limits, and the target reachable. Then the run's ``config.json`` and run directory, as
`authload run` hands them to Locust.

=========================  ==========================================================
``AUTHLOAD_SCENARIO``      scenario file (default ``scenarios/smoke.yaml``)
``AUTHLOAD_TARGET``        target name (default: a mock running at the mock URL)
``AUTHLOAD_TARGETS_FILE``  YAML file of named targets (``--targets``)
``AUTHLOAD_MOCK_URL``      the mock's URL when the target is ``mock``
                           (default ``http://127.0.0.1:8080``)
``AUTHLOAD_CONFIRM``       ``1``: send real traffic to a shared target
``AUTHLOAD_OUT``           where the run directory goes (default ``runs/``)
=========================  ==========================================================

One Locust process: ``--processes``, ``--master`` and ``--worker`` are `authload run`'s
(each process here would make a run of its own). No summary or verdict is written: the
Locust process ends with its records closed; `authload run SCENARIO --ui` is the full run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authload.console import Console
from authload.errors import AuthloadError, InputError, TargetError
from authload.results import MANIFEST_FILE, write_json
from authload.runconfig import APP_TOKEN_ENV, CLIENT_SECRET_ENV, RunConfig
from authload.running_mock import RunningMock, check_running_mock, running_mock_secrets
from authload.scenario import Scenario
from authload.scenario_file import load_scenario
from authload.targets import Target, check_safety, resolve_target

SCENARIO_ENV = "AUTHLOAD_SCENARIO"
TARGET_ENV = "AUTHLOAD_TARGET"
TARGETS_FILE_ENV = "AUTHLOAD_TARGETS_FILE"
MOCK_URL_ENV = "AUTHLOAD_MOCK_URL"
CONFIRM_ENV = "AUTHLOAD_CONFIRM"
OUT_ENV = "AUTHLOAD_OUT"
DEFAULT_SCENARIO = "scenarios/smoke.yaml"
DEFAULT_MOCK_URL = "http://127.0.0.1:8080"
LAUNCHER = "locust -f locustfiles/scenario.py"
_MULTI_PROCESS = ("--processes", "--master", "--worker")


@dataclass(frozen=True)
class Prepared:
    config: RunConfig
    path: Path  # its config.json, outside the run directory: it may hold passwords
    secrets: tuple[str, str]  # the app token and client secret


def prepare(environ: Mapping[str, str], argv: Sequence[str]) -> Prepared:
    """Check and set up the run: its configuration and secrets; the run directory is made
    and named."""
    _one_process(argv)
    scenario = load_scenario(environ.get(SCENARIO_ENV, DEFAULT_SCENARIO))
    target = _target(environ)
    scenario = _checked(target, scenario, environ.get(CONFIRM_ENV, "") in ("1", "true", "yes"))
    from authload.run.manifest import manifest, new_run_dir
    from authload.targets import accounts_for, run_limits

    gigma_url, mobile_url = target.urls()
    secrets = _secrets(target)
    run_dir = new_run_dir(Path(environ.get(OUT_ENV, "runs")), scenario.name)
    book = manifest(scenario, target, 1) | {"launched_by": LAUNCHER}
    write_json(run_dir / MANIFEST_FILE, book)
    if target.mock:  # reset, its behaviour kept, as `authload run` does with a running mock
        RunningMock.begin(target, scenario, run_dir, Console())
    config = RunConfig(
        scenario,
        run_dir,
        target.name,
        gigma_url,
        mobile_url,
        target.control_url() if target.mock else None,
        accounts=accounts_for(target, remote=False),
        limits=run_limits(target),
    )
    path = Path(tempfile.mkdtemp(prefix="authload-locust-")) / "config.json"
    path.write_text(json.dumps(config.to_json()), encoding="utf-8")
    os.chmod(path, 0o600)
    print(f"authload: run directory {run_dir}", file=sys.stderr, flush=True)
    return Prepared(config, path, secrets)


def _one_process(argv: Sequence[str]) -> None:
    used = [a for a in argv if a.split("=", 1)[0] in _MULTI_PROCESS]
    if used:
        raise InputError(
            f"{LAUNCHER} runs in one Locust process ({', '.join(used)} given): "
            f"use `authload run SCENARIO --processes N` (or --expect-workers N)"
        )


def _target(environ: Mapping[str, str]) -> Target:
    name = environ.get(TARGET_ENV, "mock")
    if name != "mock":
        return resolve_target(name, environ.get(TARGETS_FILE_ENV) or None)
    url = environ.get(MOCK_URL_ENV, DEFAULT_MOCK_URL).rstrip("/")
    return Target(name="mock", mock=True, gigma_url=url, mobile_url=url)


def _checked(target: Target, scenario: Scenario, confirmed: bool) -> Scenario:
    """The target's limits, as `authload run` checks them; the scenario with its abort rule
    tightened by the target's."""
    from authload.run.sessions import check_reachable
    from authload.targets import within_limits

    stated = check_safety(target, scenario, confirmed=True)  # refuses what is out of limits
    if not target.mock and not confirmed:
        raise TargetError(
            f"target {target.name} is a shared environment (limits: {', '.join(stated)}); "
            f"set {CONFIRM_ENV}=1 to send real traffic there"
        )
    if stated:
        print(f"authload: target {target.name} limits: {', '.join(stated)}", file=sys.stderr)
    if target.mock:
        check_running_mock(target)
    else:
        target.secrets()  # missing secrets are said before anything is created
        check_reachable(target.name, target.urls())
    return within_limits(scenario, target)


def _secrets(target: Target) -> tuple[str, str]:
    return running_mock_secrets(target) if target.mock else target.secrets()


def install(environ: MutableMapping[str, str], argv: Sequence[str]) -> None:
    """Prepare the run and point this process at it (before authload's locustfile is
    imported, which reads it); a refusal ends the process with its reason."""
    from authload.runconfig import CONFIG_ENV

    try:
        prepared = prepare(environ, argv)
    except AuthloadError as exc:
        sys.exit(f"authload: error: {exc}")
    environ[CONFIG_ENV] = str(prepared.path)
    environ[APP_TOKEN_ENV], environ[CLIENT_SECRET_ENV] = prepared.secrets
    _stop_gracefully(prepared.config.scenario.request_timeout_s + 1)


def _stop_gracefully(timeout_s: float) -> None:
    """When the test stops, users finish their journey (within the requests' timeout), as
    `authload run` lets them (its ``--stop-timeout``), unless Locust was given a stop
    timeout: a user killed mid-request leaves an answer that no record has."""
    from locust import events
    from locust.env import Environment

    def on_init(environment: Environment, **_: Any) -> None:
        if not environment.stop_timeout:
            environment.stop_timeout = timeout_s

    events.init.add_listener(on_init)  # type: ignore[no-untyped-call]
