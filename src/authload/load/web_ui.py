"""authload in Locust's web UI (the master, or the only process, when Locust runs with its UI).

- An **authload tab** (Locust's extended tabs: ``template_args["extended_tabs"]`` and a table
  whose rows ride on each ``/stats/requests`` answer as ``extended_stats``, so it updates as
  Locust's own tables do): :func:`authload.load.live_view.rows`. The same view as JSON at
  ``GET /authload/state``.
- **The report's link**, in Locust's "Download Data" tab: ``/authload/report``; while Locust
  lives a page that waits for the report, which the runner serves once Locust has quit
  (:mod:`authload.run.ui`).
- **Start** runs the scenario's stages (the start form shows the first stage's users and spawn
  rate). Users set in the form that differ from the stage's plan, at the start or while the
  test runs ("Edit"), take **manual control** (closed model only): the shape keeps them until
  the scenario's end, and each change is an event (``manual_control``) that the manifest
  records.
- **One test per run**: when the test stops (the stop button, the scenario's end, an abort),
  Locust's runner quits, closing the records in every process, and its web UI quits
  :data:`QUIT_AFTER_STOP_S` later, so that the runner writes the summary, report and verdict;
  a new start is refused meanwhile, and so is "reset stats" at any time (Locust's counts must
  still reconcile with the records). The stop button before the scenario's end aborts the
  run, as Ctrl-C does a headless one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial
from typing import Any

import gevent
from flask import Response, jsonify, request
from locust.env import Environment
from locust.runners import MasterRunner

from authload.load import live_view
from authload.load.config import RunConfig
from authload.load.live_view import Moment, UiRun
from authload.load.mock_peek import MockPeek
from authload.load.report_page import REPORT_PATH, STATE_PATH, UI_ENV, WRITING, waiting_page
from authload.load.shapes import stage_at
from authload.rundir.events import AbortEvent, ManualControlEvent, append_event
from authload.rundir.files import ABORT_FILE

TAB = "authload"
QUIT_AFTER_STOP_S = 3.0  # the UI polls every 2 s: it shows the stop before Locust goes
COLUMNS = (("what", "What"), ("item", "Item"), ("now", "Now"), ("status", "Status"))


def install(environment: Environment, config: RunConfig) -> None:
    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    ui = UiRun(from_runner=os.environ.get(UI_ENV) == "1")
    peek = MockPeek(config.mock_url) if config.mock_url else None
    if peek is not None:
        peek.view()  # the mock's counters before the test: what it counts is the increase
    view = partial(_view, environment, config, ui, peek)
    _offer_the_plan(environment, config)
    _extend(web_ui.template_args, ui)
    app = web_ui.app
    guard = web_ui.auth_required_if_enabled
    app.add_url_rule(STATE_PATH, "authload_state", guard(lambda: jsonify(view())))
    app.add_url_rule(REPORT_PATH, "authload_report", guard(partial(_report, config, ui)))
    app.after_request(partial(_with_tab, view))
    app.before_request(partial(_guard, environment, config, ui))
    environment.events.test_start.add_listener(partial(_on_start, ui=ui))
    environment.events.test_stop.add_listener(partial(_on_stop, ui=ui))
    gevent.spawn(_abort_before_start, environment, config, ui)


def _view(
    environment: Environment, config: RunConfig, ui: UiRun, peek: MockPeek | None
) -> dict[str, Any]:
    runner = environment.runner
    assert runner is not None
    missing: list[str] = []
    processes = config.processes
    if isinstance(runner, MasterRunner):
        nodes = list(runner.clients.values())
        missing = [f"w{runner.get_worker_index(n.id)}" for n in nodes if n.state == "missing"]
        processes = len(nodes) - len(missing)
    moment = Moment(
        runner.state, runner.user_count, environment.stats, missing, processes, time.time()
    )
    return live_view.build(config, ui, moment, peek.view() if peek is not None else None)


def _offer_the_plan(environment: Environment, config: RunConfig) -> None:
    """The start form shows the first stage's users and spawn rate (closed model), which may
    be changed (manual control); the open model's arrivals follow the stages only."""
    load = config.scenario.load
    shape = environment.shape_class
    closed = load.model == "closed"
    if shape is not None:
        shape.use_common_options = closed  # type: ignore[misc]
    options = environment.parsed_options
    if closed and options is not None:
        options.num_users = load.stages[0].users
        options.spawn_rate = load.stages[0].spawn_rate


def _extend(template_args: dict[str, Any], ui: UiRun) -> None:
    template_args["extended_tabs"] = [{"title": TAB, "key": TAB}]
    structure = [{"key": key, "title": title} for key, title in COLUMNS]
    template_args["extended_tables"] = [{"key": TAB, "structure": structure}]
    if ui.from_runner:
        title = "authload report and verdict (written when the test stops)"
        template_args["extended_csv_files"] = [{"href": f".{REPORT_PATH}", "title": title}]


def _with_tab(view: Any, response: Response) -> Response:
    """The authload tab's rows on Locust's own stats answer, which its UI polls."""
    if not request.path.endswith("/stats/requests") or response.status_code != 200:
        return response
    data = response.get_json(silent=True)
    if isinstance(data, dict):
        data["extended_stats"] = [{"key": TAB, "data": live_view.rows(view())}]
        response.set_data(json.dumps(data))
    return response


def _report(config: RunConfig, ui: UiRun) -> str:
    if not ui.from_runner:
        note = (
            f"No report for a plain Locust run: its records are in {config.run_dir}; "
            f"`authload run SCENARIO --ui` writes the summary, the report and the verdict."
        )
    elif ui.stopped is not None:
        note = WRITING
    else:
        note = (
            f"The report is written when the test stops: press stop in Locust's UI, or the "
            f"scenario ends {config.scenario.duration_s:g} s after its start."
        )
    return waiting_page(config.run_dir.name, note)


def _guard(
    environment: Environment, config: RunConfig, ui: UiRun
) -> tuple[Response, int] | Response | None:
    """Before Locust's own handlers: no stats reset, one test per run, manual control."""
    if request.method != "POST":
        return None
    if request.path.endswith("/stats/reset"):
        message = "authload: stats cannot be reset mid-run (Locust's counts reconcile the records)"
        return jsonify({"success": False, "message": message}), 409
    if request.path.endswith("/stop"):
        _stopped_early(config, ui)
        ui.stopped = ui.stopped or time.time()  # a start from now on is refused
        if environment.runner is not None:  # as the scenario's end does: see _on_start
            gevent.spawn(environment.runner.quit)
        return jsonify({"success": True, "message": "Test stopped"})
    if not request.path.endswith("/swarm"):
        return None
    if ui.stopped is not None:
        message = "this run's test is over; start another with a new `authload run --ui`"
        return jsonify({"success": False, "message": message, "host": environment.host})
    return _manual(environment, config, ui)


def _stopped_early(config: RunConfig, ui: UiRun) -> None:
    """The stop button before the scenario's end aborts the run, as Ctrl-C does headless: the
    scenario did not run to its end (the summary, report and verdict are still written)."""
    if ui.started is None or ui.stopped is not None:
        return
    elapsed = time.time() - ui.started
    planned = config.scenario.duration_s
    if elapsed >= planned:
        return
    reason = f"stopped from the web UI at {elapsed:.0f} s of {planned:g} s"
    append_event(config.run_dir, AbortEvent(reason=reason))
    print(f"authload: aborting: {reason}", file=sys.stderr, flush=True)


def _manual(environment: Environment, config: RunConfig, ui: UiRun) -> Response | None:
    """Users set in the form that differ from the stage's plan take manual control."""
    asked = _asked(request.form)
    elapsed = 0.0 if ui.started is None else time.time() - ui.started
    stage = stage_at(config.scenario.load, elapsed)
    plan = config.scenario.load.stages[stage if stage is not None else -1]
    if asked is None or asked == (plan.users, plan.spawn_rate):
        return None  # Locust's own handler: the scenario's stages drive the load
    if config.scenario.load.model == "open" or environment.shape_class is None:
        if ui.started is None:
            return None  # the start: the stages' arrivals
        message = "open model: the arrival rate follows the scenario's stages; users are fixed"
        return jsonify({"success": False, "message": message, "host": environment.host})
    users, spawn_rate = asked
    environment.shape_class.manual = asked  # type: ignore[attr-defined]
    event = ManualControlEvent(
        elapsed_s=round(elapsed, 3), users=users, spawn_rate=spawn_rate, stage=stage
    )
    append_event(config.run_dir, event)
    ui.manual.append(event.model_dump(mode="json"))
    message = (
        f"manual control: {users} users at {spawn_rate:g}/s until the scenario's end "
        f"(the manifest records it)"
    )
    print(f"authload: {message}", file=sys.stderr, flush=True)
    if ui.started is None:
        return None  # Locust's own handler starts the shape, which keeps these users
    return jsonify({"success": True, "message": message, "host": environment.host})


def _asked(form: Any) -> tuple[int, float] | None:
    try:
        users, spawn_rate = int(form["user_count"]), float(form["spawn_rate"])
    except (KeyError, ValueError):
        return None  # Locust's own handler says what is wrong
    return (users, spawn_rate) if users >= 0 and spawn_rate > 0 else None


def _on_start(*, environment: Environment, ui: UiRun, **_: Any) -> None:
    """From the start on, the test ends as a headless one does: the runner quits (at the
    shape's end, on a StopTest, when the last worker is gone; Locust's runner reads
    ``headless`` there), telling its workers to quit, so that every process closes its
    records (a stop would keep them for another test, and a master forgets stopped workers
    until they report ready again). Locust's main() read the flag at startup already."""
    ui.started = time.time()
    if environment.parsed_options is not None:
        environment.parsed_options.headless = True


def _on_stop(*, environment: Environment, ui: UiRun, **_: Any) -> None:
    ui.stopped = ui.stopped or time.time()
    if not ui.quitting:
        ui.quitting = True
        gevent.spawn_later(QUIT_AFTER_STOP_S, _quit, environment)


def _abort_before_start(environment: Environment, config: RunConfig, ui: UiRun) -> None:
    """Until the user starts the test, the runner's request to abort (Ctrl-C, the embedded
    mock's death: ``ABORT_FILE``) ends Locust at once; from the start, the run's watcher
    reads it (:mod:`authload.load.progress`)."""
    while ui.started is None:
        try:
            reason = (config.run_dir / ABORT_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            gevent.sleep(0.5)
            continue
        reason = f"{reason or 'asked to abort'}, before the test started"
        append_event(config.run_dir, AbortEvent(reason=reason))
        print(f"authload: aborting: {reason}", file=sys.stderr, flush=True)
        ui.stopped = ui.stopped or time.time()
        _quit(environment)
        return


def _quit(environment: Environment) -> None:
    """Quit as Locust's --autoquit does: its runner, then its web UI (the main greenlet)."""
    if environment.runner is not None:
        environment.runner.quit()
    if environment.web_ui is not None:
        environment.web_ui.stop()
