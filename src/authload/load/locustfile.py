"""The locustfile of `authload run`: user classes, shape and listeners for one scenario.

Locust imports it in every process (``locust -f``); the run's configuration comes from the
file named by AUTHLOAD_RUN_CONFIG, secrets from the environment.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from authload.load import metrics, recorder
from authload.load.progress import watch
from authload.load.runtime import Runtime
from authload.load.shapes import StagesShape
from authload.load.timed_events import run_timed_events
from authload.load.users import RUNTIME, ArrivalUser, journey_users
from authload.results import LOCUST_COUNTS_DIR, append_event, write_json
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


LOCUST_COUNTED: Counter[str] = Counter()  # this process's requests, as Locust counted them


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    metrics.register(environment, port=metrics.port_from_env())
    if isinstance(environment.runner, MasterRunner):
        return
    rt = Runtime(CONFIG, environment)
    RUNTIME["current"] = rt
    recorder.register(environment, CONFIG.run_dir, rt.worker)
    if isinstance(environment.runner, WorkerRunner):
        # registered after Locust's own listener, so the report's stats are filled in; a
        # worker's stats are reset after each report, so the reports add up to its count
        environment.events.report_to_master.add_listener(_count_report)


def _count_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    for entry in data.get("stats", []):
        LOCUST_COUNTED[entry["name"]] += entry["num_requests"]


@events.test_start.add_listener
def _on_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner) or CONFIG.processes == 1:
        gevent.spawn(watch, environment, SCENARIO, CONFIG.run_dir)
    rt = RUNTIME.get("current")
    if rt is not None:
        rt.reseed()
        if SCENARIO.events:
            gevent.spawn(run_timed_events, rt, time.time())


@events.quitting.add_listener
def _on_quit(environment: Environment, **_: Any) -> None:
    rt = RUNTIME.get("current")
    if rt is None:
        return
    if not isinstance(environment.runner, WorkerRunner):  # a local runner: its own stats
        LOCUST_COUNTED.update(
            {name: entry.num_requests for (name, _), entry in environment.stats.entries.items()}
        )
    directory = CONFIG.run_dir / LOCUST_COUNTS_DIR
    directory.mkdir(exist_ok=True)
    write_json(directory / f"{rt.worker}.json", dict(LOCUST_COUNTED))
    outcomes = dict(sorted(rt.state.outcomes.items()))
    append_event(
        CONFIG.run_dir,
        {"t": time.time(), "kind": "outcomes", "worker": rt.worker, "counts": outcomes},
    )
