"""The `authload` command: parse, call, print. Exit codes: 0 pass, 1 failed, 2 bad input,
3 aborted or run error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from authload.errors import AuthloadError

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_ERROR = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authload", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    mock = sub.add_parser("mock", help="serve both APIs, /_mock/*, /healthz, /openapi.json")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8080)
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
        "--workers", type=int, default=1, help="processes serving the port (needs a redis store)"
    )
    mock.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )

    sub.add_parser("openapi", help="print the mock's OpenAPI document")

    run = sub.add_parser("run", help="run a scenario, write a run directory, print the verdict")
    run.add_argument("scenario", help="scenario YAML file")
    run.add_argument(
        "--target", help="mock, beta or a name from --targets (default: the scenario's)"
    )
    run.add_argument("--targets", metavar="FILE", help="YAML file of named targets")
    run.add_argument("--out", default="runs", help="where run directories go (default runs/)")
    run.add_argument("--processes", type=int, default=1, help="Locust worker processes")
    run.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stretch or cut the scenario to this length (soaks)",
    )
    run.add_argument(
        "--confirm", action="store_true", help="send real traffic to a shared (non-mock) target"
    )

    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO")

    report = sub.add_parser("report", help="write RUN_DIR/report.html, print the verdict")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run directory")

    smoke = sub.add_parser("smoke", help="drive every endpoint once on a mock, check contracts")
    smoke.add_argument("--url", help="a running mock (default: start an embedded one)")
    smoke.add_argument("--json", action="store_true", help="print the result as JSON")

    compare = sub.add_parser(
        "compare", help="compare two runs per endpoint: deltas with confidence, verdict"
    )
    compare.add_argument("base", metavar="BASE_RUN", help="run directory of the baseline")
    compare.add_argument("candidate", metavar="CANDIDATE_RUN", help="run directory to judge")
    compare.add_argument(
        "--tolerance", type=float, default=0.05, help="latency change ignored (default 0.05: 5%%)"
    )
    compare.add_argument(
        "--error-tolerance",
        type=float,
        default=0.5,
        metavar="PP",
        help="error-rate change ignored, in percentage points (default 0.5)",
    )
    compare.add_argument(
        "--confidence", type=float, default=0.95, help="level of the intervals (default 0.95)"
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
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
        if args.command == "validate":
            return _validate(args)
        if args.command == "report":
            return _report(args)
        if args.command == "compare":
            return _compare(args)
    except AuthloadError as exc:
        print(f"authload: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_ERROR
    raise AssertionError(f"unhandled command {args.command}")


def _mock(args: argparse.Namespace) -> int:
    from authload.mock.server import serve
    from authload.mock.settings import load_settings

    settings = load_settings(
        app_token=args.app_token,
        client_secret=args.client_secret,
        population=args.population,
        seed=args.seed,
        behaviour=args.behaviour,
        store=args.store,
    )
    if args.fd is None:
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
        print(f"{'endpoint':<22} {'status':>6} {'latency ms':>11}  result")
        for s in steps:
            print(f"{s.endpoint:<22} {s.status:>6} {s.latency_ms:>11.2f}  {s.problem or 'ok'}")
        missing = sorted(set(ENDPOINTS) - {s.endpoint for s in steps})
        if missing:
            print(f"not reached: {', '.join(missing)}")
        print(
            f"verdict: {'PASS' if passed else 'FAIL'} "
            f"({sum(s.ok for s in steps)}/{len(ENDPOINTS)} endpoints match their contract)"
        )
    return EXIT_PASS if passed else EXIT_FAIL


def _run(args: argparse.Namespace) -> int:
    from authload.runner import run

    result = run(
        args.scenario,
        target_name=args.target,
        out=args.out,
        processes=args.processes,
        duration_s=args.duration,
        confirm=args.confirm,
        targets_file=args.targets,
    )
    summary = result.summary
    print(f"run directory: {result.run_dir}")
    print(
        f"{'endpoint':<22} {'count':>7} {'rps':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7}"
    )
    for name, row in summary["endpoints"].items():
        print(
            f"{name:<22} {row['count']:>7} {_ms(row['rate_per_s'], 7)} {_ms(row['p50'])} "
            f"{_ms(row['p95'])} {_ms(row['p99'])} {row['error_rate']:>7.2%}"
        )
    for slo in summary["slos"]:
        mark = "ok  " if slo["passed"] else "FAIL"
        value = "no data" if slo["value"] is None else f"{slo['value']:.4g}"
        print(f"SLO {mark} {slo['slo']}  (measured {value})")
    if not summary["reconciliation"]["match"]:
        print("counts do not reconcile: see summary.json 'reconciliation'")
    print(f"verdict: {result.verdict.upper()}")
    return result.exit_code


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from authload.analysis.report import write_report
    from authload.errors import ResultsError
    from authload.results import SUMMARY_FILE, read_json

    try:
        path = write_report(Path(args.run_dir))
        verdict = str(read_json(Path(args.run_dir) / SUMMARY_FILE).get("verdict", "error"))
    except ResultsError as exc:  # not a (finished) run directory: bad input
        print(f"authload: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(f"report: {path}")
    print(f"verdict: {verdict.upper()}")
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(verdict, EXIT_ERROR)


def _validate(args: argparse.Namespace) -> int:
    from authload.errors import ScenarioError
    from authload.scenario import load_scenario

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
    from authload.analysis.compare import REGRESSION, compare_runs, load_run_records
    from authload.errors import InputError, ResultsError

    if not args.tolerance >= 0 or not args.error_tolerance >= 0:
        raise InputError("--tolerance and --error-tolerance must be >= 0")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must be between 0 and 1, not {args.confidence}")
    try:
        base, candidate = load_run_records(args.base), load_run_records(args.candidate)
    except ResultsError as exc:  # a directory that is not a (finished) run is bad input
        raise InputError(str(exc)) from exc
    result = compare_runs(
        base,
        candidate,
        tolerance=args.tolerance,
        confidence=args.confidence,
        error_tolerance_pp=args.error_tolerance,
    )
    if args.json:
        data = {"base": args.base, "candidate": args.candidate, **result.to_dict()}
        print(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False))
        return EXIT_FAIL if result.verdict == REGRESSION else EXIT_PASS
    print(f"base {args.base}, candidate {args.candidate}")
    print(
        f"ignored: latency changes within {result.tolerance:.1%}, error-rate changes within "
        f"{result.error_tolerance_pp:g} pp; {result.confidence:.0%} intervals "
        f"({result.resamples} bootstrap resamples)"
    )
    ci = f"{result.confidence:.0%} CI"
    print(
        f"{'endpoint':<22} {'stat':<10} {'base':>10} {'candidate':>10} {'change':>9}  "
        f"{ci:<22} verdict"
    )
    for row in result.rows:
        pp = row.unit == "pp"
        value = "{:>9.2%}".format if pp else "{:>7.1f} ms".format
        change = "{:+.2f} pp".format if pp else "{:+.1%}".format
        base_s, candidate_s = (
            "-".rjust(10) if v is None else value(v) for v in (row.base, row.candidate)
        )
        change_s = "-" if row.change is None else change(row.change)
        interval = "-"
        if row.ci_low is not None and row.ci_high is not None:
            interval = f"[{change(row.ci_low)}, {change(row.ci_high)}]"
        print(
            f"{row.endpoint:<22} {row.stat:<10} {base_s:>10} {candidate_s:>10} "
            f"{change_s:>9}  {interval:<22} {row.verdict}"
        )
    print(f"verdict: {result.verdict.upper()}")
    return EXIT_FAIL if result.verdict == REGRESSION else EXIT_PASS


def _ms(value: float | None, width: int = 8) -> str:
    return "-".rjust(width) if value is None else f"{value:>{width}.1f}"
