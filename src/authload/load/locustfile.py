"""The locustfile of `authload run`: user classes, shape and listeners for one scenario.

Locust imports it in every process (``locust -f``); the run's configuration comes from the
file named by AUTHLOAD_RUN_CONFIG, secrets from the environment.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from authload.load import recorder
from authload.load.progress import watch
from authload.load.runtime import Runtime
from authload.load.shapes import StagesShape
from authload.load.timed_events import run_timed_events
from authload.load.users import RUNTIME, ArrivalUser, journey_users
from authload.results import LOCUST_COUNTS_FILE, append_event, write_json
from authload.runconfig import load_config

CONFIG = load_config()
SCENARIO = CONFIG.scenario

if SCENARIO.load.model == "open":
    OpenArrivals = type("OpenArrivals", (ArrivalUser,), {"abstract": False})
    OPEN_USERS: list[Any] = [OpenArrivals]
else:
    OPEN_USERS = []
    globals().update({cls.__name__: cls for cls in journey_users(SCENARIO.mix)})


class ScenarioShape(StagesShape):
    load = SCENARIO.load
    user_classes_for_open = OPEN_USERS
    processes = CONFIG.processes


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    rt = Runtime(CONFIG, environment)
    RUNTIME["current"] = rt
    recorder.register(environment, CONFIG.run_dir, rt.worker)


@events.test_start.add_listener
def _on_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner) or CONFIG.processes == 1:
        gevent.spawn(watch, environment, SCENARIO, CONFIG.run_dir)
    rt = RUNTIME.get("current")
    if rt is not None and SCENARIO.events:
        gevent.spawn(run_timed_events, rt, time.time())


@events.quitting.add_listener
def _on_quit(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner) or CONFIG.processes == 1:
        counts = {
            name: entry.num_requests for (name, _method), entry in environment.stats.entries.items()
        }
        write_json(CONFIG.run_dir / LOCUST_COUNTS_FILE, counts)
    rt = RUNTIME.get("current")
    if rt is not None:
        append_event(
            CONFIG.run_dir,
            {
                "t": time.time(),
                "kind": "outcomes",
                "worker": rt.worker,
                "counts": dict(sorted(rt.state.outcomes.items())),
            },
        )
