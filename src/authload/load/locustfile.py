"""The locustfile of `authload run` and `authload worker`: user classes, shape and listeners
for one scenario.

Locust imports it in every process (``locust -f``). The processes `authload run` starts (a
local runner, or a master and its ``--processes`` workers) read the run's configuration from
the file named by AUTHLOAD_RUN_CONFIG, and secrets from the environment.

A worker on another host (`authload worker`: no such file) learns the run from its master.
The master sends it as a Locust custom message (``authload_config``) from its test_start
listener: Locust fires test_start on the master before it sends the first ``spawn`` message,
a worker handles its master's messages one at a time in order, and it fires its own
test_start only while handling that ``spawn``. So the worker builds its runtime and opens its
record spool (in the run directory the master names, a volume both mount at the same path)
before any of its users exists. A worker joining a run already going gets the message when
it connects, before the master rebalances users onto it. The message carries no secret: the
worker reads the app token, client secret and account passwords from its own environment.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict
from functools import partial
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from authload import gc_tuning, memtrace
from authload.load import live_counts, locust_stats, metrics, metrics_endpoint, recorder
from authload.load.config import (
    CONFIG_ENV,
    CONFIG_MESSAGE,
    MOCK_CLOCK_ENV,
    WORKER_ENV,
    WORKER_FAILED_MESSAGE,
    WORKER_UNFIT_EXIT,
    RunConfig,
    WorkerConfigError,
    load_config,
)
from authload.load.journal import JourneySpool
from authload.load.progress import watch
from authload.load.runtime import Runtime
from authload.load.shapes import StagesShape
from authload.load.timed_events import run_timed_events
from authload.load.users import RUNTIME, ArrivalUser, journey_users
from authload.rundir.events import (
    AbortEvent,
    GeneratorEvent,
    LimitsEvent,
    OutcomesEvent,
    WorkerConnectedEvent,
    WorkerInfo,
    WorkerJoinedEvent,
    WorkersEvent,
    append_event,
)
from authload.rundir.files import LOCUST_COUNTS_DIR, MANIFEST_FILE
from authload.rundir.jsonfiles import write_json
from authload.scenario.model import FLOWS

memtrace.install("locust")  # off unless bench/soak_memory --diagnose asks for it
REMOTE = not os.environ.get(CONFIG_ENV)  # a worker elsewhere: its master sends the run
CONFIG: RunConfig | None = None if REMOTE else load_config()
SCENARIO = CONFIG.scenario if CONFIG is not None else None

if SCENARIO is None or SCENARIO.load.model == "open":
    OpenArrivals = type("OpenArrivals", (ArrivalUser,), {"abstract": False})
    OPEN_USERS: list[Any] = [OpenArrivals]
else:
    OPEN_USERS = []
if SCENARIO is None:  # every class a master may ask for, by the names its locustfile gives
    globals().update({cls.__name__: cls for cls in journey_users(dict.fromkeys(FLOWS, 1.0))})
elif SCENARIO.load.model == "closed":
    globals().update({cls.__name__: cls for cls in journey_users(SCENARIO.mix)})

if CONFIG is not None:  # the master (or the only process) runs the shape
    _RUN: RunConfig = CONFIG

    class ScenarioShape(StagesShape):
        load = _RUN.scenario.load
        user_classes_for_open = OPEN_USERS
        processes = _RUN.processes


def _limit_master_wait(seconds: int) -> None:
    """Give up on a master that does not answer within ``seconds``: Locust's own connection
    loop (one try per CONNECT_TIMEOUT, CONNECT_RETRY_COUNT retries), bounded; and on a master
    gone silent during the run (killed) within the same bound, or Locust's own, if shorter
    (the worker then quits as on its master's quit: its records closed)."""
    import locust.runners as runners

    runners.CONNECT_TIMEOUT = max(1, min(runners.CONNECT_TIMEOUT, seconds))
    runners.CONNECT_RETRY_COUNT = max(0, math.ceil(seconds / runners.CONNECT_TIMEOUT) - 1)
    runners.MASTER_HEARTBEAT_TIMEOUT = max(3, min(runners.MASTER_HEARTBEAT_TIMEOUT, seconds))


if REMOTE and os.environ.get(WORKER_ENV):
    _limit_master_wait(int(os.environ[WORKER_ENV]))


LOCUST_COUNTED: Counter[str] = Counter()  # this process's requests, as Locust counted them
SPOOL: dict[str, recorder.RecordSpool] = {}  # "current": this process's record spool


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    metrics.register(environment, port=metrics_endpoint.port_from_env())
    if CONFIG is not None and environment.web_ui is not None:  # Locust's UI: authload's tab
        from authload.load import web_ui

        web_ui.install(environment, CONFIG)
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        live_counts.gather_on(environment)
        if CONFIG is not None and CONFIG.remote_workers:
            _serve_remote_workers(environment, CONFIG)
        return
    if CONFIG is None:
        if not isinstance(runner, WorkerRunner):
            raise RuntimeError(
                f"{CONFIG_ENV} is not set: start load runs with `authload run`, "
                f"workers of a distributed run with `authload worker`"
            )
        runner.register_message(CONFIG_MESSAGE, _on_config)
        return
    _install(environment, Runtime(CONFIG, environment))


def _install(environment: Environment, rt: Runtime) -> None:
    """This process's runtime, record spool and Locust counts."""
    RUNTIME["current"] = rt
    SPOOL["current"] = recorder.register(environment, rt.config.run_dir, rt.worker)
    guard = partial(recorder.recording, environment)
    rt.state.journal = JourneySpool(rt.config.run_dir, rt.worker, guard=guard)
    live_counts.report_from(environment, rt)
    environment.events.quitting.add_listener(_on_quit)  # (quitting's listeners: last first)
    _gate_requests(environment, rt)
    if isinstance(environment.runner, WorkerRunner):
        # registered after Locust's own listener, so the report's stats are filled in; a
        # worker's stats are reset after each report, so the reports add up to its count
        environment.events.report_to_master.add_listener(_count_report)


def _gate_requests(environment: Environment, rt: Runtime) -> None:
    """While Locust stops the users (each finishing its journey, as Locust's graceful stop
    does) journeys go on for a grace, then start no request, so none is in flight when the
    stop timeout runs out; once Locust has stopped the users no request starts any more, and
    the test ends only when the ones still in flight are answered: the open model's journeys
    and the timed events run in greenlets of their own that Locust does not stop, so without
    this they could reach the service after the records were closed (see
    :class:`~authload.load.clients.StopGate`)."""
    gate = rt.gate

    def on_start(**_: Any) -> None:
        gate.open()
        rt.arrivals.stopped = False

    def on_stopping(**_: Any) -> None:
        gate.stopping()

    def on_stop(**_: Any) -> None:
        gate.close()
        rt.arrivals.stop()
        if not gate.wait_idle(rt.scenario.request_timeout_s + 1.0):
            print(
                f"authload: {gate.in_flight} requests still in flight as the test ended",
                file=sys.stderr,
                flush=True,
            )

    environment.events.test_start.add_listener(on_start)
    environment.events.test_stopping.add_listener(on_stopping)
    environment.events.test_stop.add_listener(on_stop)


def _count_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    for entry in data.get("stats", []):
        LOCUST_COUNTED[entry["name"]] += entry["num_requests"]


# ---------------------------------------------------------------------------------------------
# the master of remote workers


def _serve_remote_workers(environment: Environment, config: RunConfig) -> None:
    """Send the run to every worker when the test starts (before Locust's spawn messages)
    and to any joining later; note who connected; abort if a worker cannot take part."""
    runner = environment.runner
    assert isinstance(runner, MasterRunner)
    wire = config.to_wire()
    connected: set[str] = set()
    sent: set[str] = set()

    def info(client_id: str) -> dict[str, Any]:
        return {
            "worker": f"w{runner.get_worker_index(client_id)}",
            "host": client_id.rsplit("_", 1)[0],
            "client_id": client_id,
        }

    def send(client_id: str) -> None:
        runner.send_message(CONFIG_MESSAGE, wire, client_id=client_id)
        sent.add(client_id)

    def on_connect(client_id: str, **_: Any) -> None:
        if client_id in connected:  # a worker repeats client_ready until its master answers
            return
        connected.add(client_id)
        append_event(config.run_dir, WorkerConnectedEvent(**info(client_id)))
        if sent and client_id not in sent:  # the test is going: it joins, then gets users
            send(client_id)
            append_event(config.run_dir, WorkerJoinedEvent(**info(client_id)))

    def on_test_start(**_: Any) -> None:
        workers = [c.id for c in runner.clients.ready + runner.clients.spawning]
        workers += [c.id for c in runner.clients.running]
        for client_id in workers:
            send(client_id)
        listed = [WorkerInfo(**info(w)) for w in workers]
        append_event(config.run_dir, WorkersEvent(workers=listed))

    def on_failed(environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        reason = f"worker {data.get('worker')} on {data.get('host')}: {data.get('error')}"
        print(f"authload: aborting: {reason}", file=sys.stderr, flush=True)
        append_event(config.run_dir, AbortEvent(reason=reason, worker=data.get("worker")))
        gevent.spawn(runner.quit)

    environment.events.worker_connect.add_listener(on_connect)
    environment.events.test_start.add_listener(on_test_start)
    runner.register_message(WORKER_FAILED_MESSAGE, on_failed)


# ---------------------------------------------------------------------------------------------
# a remote worker


def _on_config(environment: Environment, msg: Any, **_: Any) -> None:
    """The run, from the master: build the runtime now, before the spawn message that
    follows; a worker that cannot take part tells its master (which aborts) and quits."""
    global CONFIG, SCENARIO
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    if CONFIG is not None:  # one run per worker process: the master sent it again
        return
    worker = f"w{runner.worker_index}"
    try:
        config = RunConfig.from_wire(msg.data, os.environ)
        secrets = config.worker_secrets(os.environ)
        if not (config.run_dir / MANIFEST_FILE).is_file():
            raise WorkerConfigError(
                f"run directory {config.run_dir} is not on this host: mount the master's "
                f"run volume at the same path"
            )
        rt = Runtime(config, environment, secrets)
    except Exception as exc:
        _unfit(environment, runner, worker, exc)
        return
    CONFIG, SCENARIO = config, config.scenario
    _install(environment, rt)
    print(
        f"authload worker {rt.worker}: run {config.run_dir.name} ({config.scenario.name} on "
        f"{config.target}), records to {config.run_dir}",
        file=sys.stderr,
        flush=True,
    )


def _unfit(environment: Environment, runner: WorkerRunner, worker: str, exc: Exception) -> None:
    error = str(exc) or type(exc).__name__
    print(f"authload worker {worker}: cannot take part in the run: {error}", file=sys.stderr)
    runner.send_message(
        WORKER_FAILED_MESSAGE, {"worker": worker, "host": socket.gethostname(), "error": error}
    )
    environment.process_exit_code = WORKER_UNFIT_EXIT
    runner.quit()  # as Locust's own quit message does, from this greenlet: no spawn follows


# ---------------------------------------------------------------------------------------------
# every process


@events.test_start.add_listener
def _on_start(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):  # the master, or the only process
        assert CONFIG is not None
        _start_mock_clock(time.time())
        gevent.spawn(watch, environment, CONFIG.scenario, CONFIG.run_dir)
        gevent.spawn(locust_stats.keep_bounded, environment.runner)
    rt = RUNTIME.get("current")
    if rt is not None:
        rt.test_started = time.time()
        rt.reseed()
        rt.divide_limits()
        settings = gc_tuning.tune()  # last before the users spawn: what lives now, lives on
        append_event(rt.config.run_dir, GeneratorEvent(worker=rt.worker, **settings))
        if rt.scenario.events:
            gevent.spawn(run_timed_events, rt, time.time())


def _start_mock_clock(t: float) -> None:
    """The embedded mock's profile fault windows count from the load's start, as the timed
    events do: one clock for the run."""
    url = os.environ.get(MOCK_CLOCK_ENV)
    if not url:
        return
    from authload.mock.control import MockControl

    control = MockControl(url)
    try:
        control.set_epoch(t)
    finally:
        control.close()


def _on_quit(environment: Environment, **_: Any) -> None:
    rt = RUNTIME.get("current")
    if rt is None:
        return
    with recorder.recording(environment, rt.config.run_dir / "events"):  # a full disk: said
        _close_run(environment, rt)


def _close_run(environment: Environment, rt: Runtime) -> None:
    """This process's last acts: its outcomes, records and counts into the run directory.
    Locust fires ``quitting`` before it stops the users when it shuts down on a signal: they
    are stopped first, so no request is sent once the records are closed."""
    runner = environment.runner
    if runner is not None and runner.state in ("spawning", "running"):
        runner.stop()
    if not isinstance(environment.runner, WorkerRunner):  # a local runner: its own stats
        LOCUST_COUNTED.update(
            {name: entry.num_requests for (name, _), entry in environment.stats.entries.items()}
        )
    run_dir = rt.config.run_dir
    outcomes = dict(sorted(rt.state.outcomes.items()))
    arrivals = asdict(rt.arrivals.counts)
    append_event(run_dir, OutcomesEvent(worker=rt.worker, counts=outcomes, arrivals=arrivals))
    if rt.limits is not None:
        append_event(run_dir, LimitsEvent(worker=rt.worker, **rt.limits.report()))
    with recorder.recording(environment, SPOOL["current"].path):
        SPOOL["current"].close()  # (again when the recorder's own listener closes it: no-op)
    if rt.state.journal is not None:
        with recorder.recording(environment, rt.state.journal.path):
            rt.state.journal.close()
    # last: the counts file tells the runner that this process is done
    directory = run_dir / LOCUST_COUNTS_DIR
    directory.mkdir(exist_ok=True)
    write_json(directory / f"{rt.worker}.json", dict(LOCUST_COUNTED))
    if REMOTE:
        total = sum(LOCUST_COUNTED.values())
        print(f"authload worker {rt.worker}: done, {total} requests", file=sys.stderr, flush=True)
