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

import atexit
import json
import os
import shutil
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authload.errors import AuthloadError, InputError
from authload.load.config import APP_TOKEN_ENV, CLIENT_SECRET_ENV, RunConfig
from authload.run.book import manifest, new_run_dir
from authload.run.sessions import session_for
from authload.run.targets import Target, accounts_for, resolve_target, run_limits, within_limits
from authload.rundir.manifest import write_manifest
from authload.scenario.loader import load_scenario
from authload.tempdirs import owned_dir

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
    and named. The target is checked and made ready as `authload run` does (a running mock
    reset, its behaviour kept; a shared stand's limits, secrets and reachability)."""
    _one_process(argv)
    scenario = load_scenario(environ.get(SCENARIO_ENV, DEFAULT_SCENARIO))
    target = _target(environ)
    session = session_for(target)
    confirmed = environ.get(CONFIRM_ENV, "") in ("1", "true", "yes")
    stated = session.safety(scenario, confirmed, confirm_hint=f"set {CONFIRM_ENV}=1")
    if stated:
        session.console.say(f"target {target.name} limits: {', '.join(stated)}")
    session.check()  # missing secrets are said before anything is created
    scenario = within_limits(scenario, target)
    run_dir = new_run_dir(Path(environ.get(OUT_ENV, "runs")), scenario.name)
    book = manifest(scenario, target, 1)
    book.launched_by = LAUNCHER
    write_manifest(run_dir, book)
    endpoints = session.begin(run_dir, scenario)
    assert endpoints.secrets is not None  # one process here: never remote workers
    config = RunConfig(
        scenario,
        run_dir,
        target.name,
        endpoints.gigma_url,
        endpoints.mobile_url,
        endpoints.mock_url,
        accounts=accounts_for(target, remote=False),
        limits=run_limits(target),
    )
    path = owned_dir("authload-locust-") / "config.json"
    atexit.register(shutil.rmtree, path.parent, ignore_errors=True)  # it may hold passwords
    path.write_text(json.dumps(config.to_json()), encoding="utf-8")
    os.chmod(path, 0o600)
    session.console.say(f"run directory {run_dir}")
    return Prepared(config, path, endpoints.secrets)


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


def install(environ: MutableMapping[str, str], argv: Sequence[str]) -> None:
    """Prepare the run and point this process at it (before authload's locustfile is
    imported, which reads it); a refusal ends the process with its reason."""
    from authload.load.config import CONFIG_ENV

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
