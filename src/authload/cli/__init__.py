"""The `authload` command: parse, call, print. Exit codes: 0 pass, 1 failed, 2 bad input,
3 aborted or run error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from authload.cli import options, render
from authload.errors import AuthloadError

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_ERROR = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authload", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    mock = sub.add_parser("mock", help="serve both APIs, /_mock/*, /healthz, /openapi.json")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=options.port, default=8080, help="1..65535 (default 8080)")
    mock.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    mock.add_argument("--app-token", help="Gigma `Token` accepted (default mock-app-token)")
    mock.add_argument("--client-secret", help="mobile client_secret (default mock-client-secret)")
    mock.add_argument("--population", type=int, help="number of test accounts (default 10000)")
    mock.add_argument("--seed", type=int, help="seed of the test population (default 1)")
    mock.add_argument(
        "--behaviour", metavar="FILE", help="behaviour profile YAML (default: the shipped one)"
    )
    mock.add_argument("--store", help="state store: memory (default) or redis://HOST:PORT/DB")
    mock.add_argument(
        "--workers",
        type=options.at_least_one,
        default=1,
        help="processes serving the port (more than 1 needs a redis store)",
    )
    mock.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )

    sub.add_parser("openapi", help="print the mock's OpenAPI document")

    run = sub.add_parser("run", help="run a scenario, write a run directory, print the verdict")
    run.add_argument("scenario", help="scenario YAML file")
    options.add_target_options(
        run,
        target_help="mock, beta or a name from --targets (default: the scenario's)",
        out_help="where run directories go (default runs/)",
    )
    run.add_argument(
        "--duration",
        type=options.seconds,
        metavar="SECONDS",
        help="stretch or cut the scenario to this length (soaks)",
    )
    options.add_confirm(run, "send real traffic to a shared (non-mock) target")
    dist = run.add_argument_group("distributed (Locust master here, `authload worker` elsewhere)")
    dist.add_argument(
        "--expect-workers", type=int, metavar="N", help="run Locust's master for N remote workers"
    )
    dist.add_argument(
        "--master-bind-host", default="0.0.0.0", help="where the master listens (0.0.0.0)"
    )
    dist.add_argument("--master-port", type=int, default=5557, help="the master's port (5557)")
    dist.add_argument(
        "--workers-timeout",
        type=int,
        default=300,
        metavar="SECONDS",
        help="give up when the workers have not all connected by then (default 300)",
    )
    web = run.add_argument_group("Locust's web UI in front of the run (instead of headless)")
    web.add_argument("--ui", action="store_true", help="start the test from Locust's web UI")
    web.add_argument("--ui-host", default="127.0.0.1", help="where the UI listens (127.0.0.1)")
    web.add_argument("--ui-port", type=options.port, default=8089, help="the UI's port (8089)")
    web.add_argument(
        "--ui-linger",
        type=options.seconds_or_none,
        default=300.0,
        metavar="SECONDS",
        help="serve the report there this long after the run (default 300; Ctrl-C ends it)",
    )
    run.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the run's figures there at its end (default: $AUTHLOAD_PUSHGATEWAY)",
    )
    options.add_verdict_outputs(run)

    worker = sub.add_parser(
        "worker", help="a Locust worker for `authload run --expect-workers` on another host"
    )
    worker.add_argument("--master-host", required=True, help="where `authload run` runs")
    worker.add_argument("--master-port", type=int, default=5557, help="the master's port (5557)")
    worker.add_argument(
        "--master-timeout",
        type=int,
        default=300,
        metavar="SECONDS",
        help="give up when no master answers by then (default 300)",
    )

    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO")

    report = sub.add_parser("report", help="write RUN_DIR/report.html, print the verdict")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")
    options.add_verdict_outputs(report)

    smoke = sub.add_parser("smoke", help="drive every endpoint once on a mock, check contracts")
    smoke.add_argument("--url", help="a running mock (default: start an embedded one)")
    smoke.add_argument("--json", action="store_true", help="print the result as JSON")

    compare = sub.add_parser(
        "compare", help="compare two runs per endpoint: deltas with confidence, verdict"
    )
    compare.add_argument("base", metavar="BASE_RUN", help="run directory of the baseline")
    compare.add_argument("candidate", metavar="CANDIDATE_RUN", help="run directory to judge")
    options.add_comparison_options(compare)
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    options.add_verdict_outputs(compare)

    runs = sub.add_parser(
        "runs",
        help="list the run directories under ROOT; --compare-latest: a scenario's latest run "
        "against the ones before it",
    )
    runs.add_argument("root", nargs="?", default="runs", help="where runs are (default runs/)")
    runs.add_argument("--scenario", help="only this scenario's runs")
    runs.add_argument("--target", help="only runs on this target")
    runs.add_argument(
        "--since", metavar="WHEN", help="only runs started since: 2025-06-01[T12:00Z], or 12h, 7d"
    )
    runs.add_argument(
        "--verdict",
        action="append",
        choices=["pass", "fail", "aborted", "error", "running"],
        help="only runs with this verdict (repeatable; with --compare-latest: the baseline's)",
    )
    runs.add_argument("--json", action="store_true", help="print as JSON")
    runs.add_argument(
        "--compare-latest",
        metavar="SCENARIO",
        help="compare the scenario's latest finished run with the ones before it (exit 1 on "
        "a regression)",
    )
    runs.add_argument(
        "--last",
        type=int,
        default=5,
        metavar="N",
        help="baseline: the N finished runs of the same scenario and target before the latest, "
        "records pooled (default 5)",
    )
    options.add_comparison_options(runs)

    capacity = sub.add_parser(
        "capacity",
        help="find the highest arrival rate meeting the SLOs (--closed: steps of users, USL fit)",
    )
    capacity.add_argument("scenario", help="scenario YAML file (its mix, SLOs, abort rule)")
    capacity.add_argument(
        "--closed", action="store_true", help="steps of users instead, and a USL fit"
    )
    capacity.add_argument(
        "--start",
        type=float,
        help="first level: arrivals/s (default the scenario's peak rate, else 5) or users (1)",
    )
    capacity.add_argument(
        "--factor", type=float, help="step-up multiplier (default 1.5; --closed 2)"
    )
    capacity.add_argument(
        "--max", type=float, dest="maximum", help="highest level tried (--closed default 64)"
    )
    capacity.add_argument(
        "--precision",
        type=float,
        default=0.05,
        help="stop when last pass and first fail are within this (default 0.05: 5%%)",
    )
    capacity.add_argument(
        "--budget", type=float, default=1800.0, metavar="SECONDS", help="time budget (1800)"
    )
    capacity.add_argument(
        "--step", type=float, default=60.0, metavar="SECONDS", help="each step (default 60)"
    )
    capacity.add_argument(
        "--warmup",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="start of each step left out of the judgement (default 15)",
    )
    options.add_target_options(
        capacity,
        target_help="mock, beta or a name from --targets",
        out_help="where it goes (default runs/)",
    )
    options.add_confirm(capacity, "allow a shared target")
    capacity.add_argument(
        "--verbose", action="store_true", help="the steps' own output on stderr too"
    )
    capacity.add_argument("--json", action="store_true", help="print capacity.json")
    options.add_verdict_outputs(capacity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "mock":
            return _mock(args)
        if args.command == "openapi":
            from authload.contracts.openapi import openapi_document

            print(json.dumps(openapi_document(), ensure_ascii=False, indent=2))
            return EXIT_PASS
        if args.command == "smoke":
            return _smoke(args)
        if args.command == "run":
            return _run(args)
        if args.command == "worker":
            from authload.runner import worker

            return worker(args.master_host, args.master_port, args.master_timeout)
        if args.command == "validate":
            return _validate(args)
        if args.command == "report":
            return _report(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "runs":
            return _runs(args)
        if args.command == "capacity":
            return _capacity(args)
    except AuthloadError as exc:
        print(f"authload: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception:  # never exit 1 (an SLO failed) on a failure of authload itself
        import traceback

        traceback.print_exc()
        print("authload: error: an unexpected failure (above)", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    raise AssertionError(f"unhandled command {args.command}")


def _mock(args: argparse.Namespace) -> int:
    from authload.mock.server import listen, serve
    from authload.mock.settings import load_settings

    settings = load_settings(
        app_token=args.app_token,
        client_secret=args.client_secret,
        population=args.population,
        seed=args.seed,
        behaviour=args.behaviour,
        store=args.store,
    )
    sock = None
    if args.fd is None:  # bind before the banner: a taken port is one clear line, exit 2
        sock = listen(args.host, args.port)
        if args.workers > 1:  # uvicorn binds it for its worker processes
            sock.close()
            sock = None
        print(
            f"authload mock: Gigma and mobile v2 APIs on http://{args.host}:{args.port} "
            f"(population {settings.population}, seed {settings.seed}); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
    serve(
        settings,
        host=args.host,
        port=args.port,
        fd=args.fd,
        workers=args.workers,
        log_level=args.log_level,
        sock=sock,
    )
    return EXIT_PASS


def _smoke(args: argparse.Namespace) -> int:
    from authload.mock.server import EmbeddedMock
    from authload.mock.settings import load_settings
    from authload.smoke import run_smoke

    settings = load_settings()
    if args.url:
        steps = run_smoke(args.url, settings.app_token, settings.client_secret)
        url = args.url
    else:
        with EmbeddedMock() as mock:
            url = mock.url
            print(f"embedded mock on {url}", file=sys.stderr)
            steps = run_smoke(url, settings.app_token, settings.client_secret)
    from authload.contracts import ENDPOINTS

    passed = all(s.ok for s in steps) and {s.endpoint for s in steps} == set(ENDPOINTS)
    if args.json:
        print(
            json.dumps(
                {
                    "url": url,
                    "passed": passed,
                    "steps": [
                        {
                            "endpoint": s.endpoint,
                            "status": s.status,
                            "latency_ms": round(s.latency_ms, 3),
                            "problem": s.problem,
                        }
                        for s in steps
                    ],
                },
                indent=2,
            )
        )
    else:
        render.print_smoke(steps, passed)
    return EXIT_PASS if passed else EXIT_FAIL


def _run(args: argparse.Namespace) -> int:
    from authload.runner import MasterOptions, run

    options.check_out(Path(args.out))
    destinations = options.destinations(args)
    master = None
    if args.expect_workers is not None:
        master = MasterOptions(
            args.expect_workers, args.master_bind_host, args.master_port, args.workers_timeout
        )
    ui = None
    if args.ui:
        from authload.ui import UiOptions, UiSession

        ui = UiSession(UiOptions(args.ui_host, args.ui_port, args.ui_linger))
    try:
        result = run(
            args.scenario,
            target_name=args.target,
            out=args.out,
            processes=args.processes,
            duration_s=args.duration,
            confirm=args.confirm,
            targets_file=args.targets,
            pushgateway=args.pushgateway,
            master=master,
            ui=ui,
        )
        print(f"run directory: {result.run_dir}")
        render.print_summary(result.summary)
        for note in ui.notes() if ui is not None else []:
            print(f"note: {note}")
        print(f"verdict: {result.verdict.upper()}", flush=True)
        from authload.verdict_formats.commands import for_run

        for_run(destinations, result.run_dir, result.summary)
        if ui is not None:
            ui.linger()
    finally:
        if ui is not None:
            ui.close()
    return result.exit_code


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from authload.analysis.report import write_report
    from authload.errors import ResultsError
    from authload.results import SUMMARY_FILE, read_json
    from authload.runner import salvage
    from authload.verdict_formats.commands import for_run

    destinations = options.destinations(args)
    try:
        if salvage(Path(args.run_dir)):
            print(f"authload: {args.run_dir}: the run never finished; summarized what it left")
        path = write_report(Path(args.run_dir))
        summary = read_json(Path(args.run_dir) / SUMMARY_FILE)
    except ResultsError as exc:  # not a (finished) run directory: bad input
        print(f"authload: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    verdict = str(summary.get("verdict", "error"))
    print(f"report: {path}")
    render.print_drift(summary)
    print(f"verdict: {verdict.upper()}")
    for_run(destinations, Path(args.run_dir), summary)
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(verdict, EXIT_ERROR)


def _validate(args: argparse.Namespace) -> int:
    from authload.errors import ScenarioError
    from authload.scenario_file import load_scenario

    failed = 0
    for path in args.scenarios:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        print(
            f"{path}: ok ({scenario.name}, {scenario.duration_s:g} s, {scenario.load.model} model)"
        )
    return EXIT_INPUT if failed else EXIT_PASS


def _compare(args: argparse.Namespace) -> int:
    from authload.analysis.compare import (
        REGRESSION,
        compare_runs,
        load_run_records,
        load_setup,
        setup_differences,
    )
    from authload.errors import InputError, ResultsError

    options.check_comparison_options(args)
    destinations = options.destinations(args)
    from authload.analysis.query import Journeys

    try:
        base, candidate = load_run_records(args.base), load_run_records(args.candidate)
        journeys = (Journeys.of_run(Path(args.base)), Journeys.of_run(Path(args.candidate)))
        result = compare_runs(
            base,
            candidate,
            tolerance=args.tolerance,
            confidence=args.confidence,
            error_tolerance_pp=args.error_tolerance,
            floor_ms=args.floor,
            journeys=journeys,
        )
    except ResultsError as exc:  # a directory that is not a (finished) run is bad input
        raise InputError(str(exc)) from exc
    warnings = setup_differences(load_setup(args.base), load_setup(args.candidate))
    from authload.verdict_formats.commands import for_comparison

    code = EXIT_FAIL if result.verdict == REGRESSION else EXIT_PASS
    if args.json:
        data = {
            "base": args.base,
            "candidate": args.candidate,
            "warnings": warnings,
            **result.to_dict(),
        }
        print(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(f"base {args.base}, candidate {args.candidate}")
        for warning in warnings:
            print(f"warning: {warning}: their figures measure different things")
        render.print_comparison(result)
    for_comparison(destinations, Path(args.base), Path(args.candidate), result.to_dict())
    return code


def _capacity(args: argparse.Namespace) -> int:
    from authload.capacity import CapacityOptions, describe, run_capacity

    options.check_out(Path(args.out))
    destinations = options.destinations(args)
    search = CapacityOptions(
        closed=args.closed,
        start=args.start,
        factor=args.factor,
        maximum=args.maximum,
        precision=args.precision,
        budget_s=args.budget,
        step_s=args.step,
        warmup_s=args.warmup,
        target=args.target,
        targets_file=args.targets,
        out=args.out,
        processes=args.processes,
        confirm=args.confirm,
        verbose=args.verbose,
    )
    result = run_capacity(args.scenario, search)
    from authload.verdict_formats.commands import for_capacity

    for_capacity(destinations, result.directory, result.data)
    if args.json:
        print(json.dumps(result.data, indent=2, ensure_ascii=False))
        return result.exit_code
    print(f"capacity run directory: {result.directory}")
    for line in describe(result.data):
        print(line)
    return result.exit_code


def _runs(args: argparse.Namespace) -> int:
    from authload.analysis.history import compare_latest, index_runs, parse_since

    index = index_runs(args.root)
    since = parse_since(args.since) if args.since else None
    for skipped in index.skipped:
        print(f"authload: skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    if args.compare_latest is None:
        found = index.filter(args.scenario, args.target, since, args.verdict)
        if args.json:
            print(json.dumps(found.to_dict(), indent=2, ensure_ascii=False, allow_nan=False))
            return EXIT_PASS
        render.print_runs(found, len(index.runs))
        return EXIT_PASS
    options.check_comparison_options(args)
    result = compare_latest(
        index.filter(since=since),
        args.compare_latest,
        target=args.target,
        last=args.last,
        baseline_verdicts=args.verdict,
        tolerance=args.tolerance,
        confidence=args.confidence,
        error_tolerance_pp=args.error_tolerance,
        floor_ms=args.floor,
    )
    regressed = EXIT_FAIL if result.comparison.verdict == "regression" else EXIT_PASS
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False))
        return regressed
    render.print_latest(result)
    render.print_comparison(result.comparison)
    return regressed
