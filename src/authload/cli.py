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

    smoke = sub.add_parser("smoke", help="drive every endpoint once on a mock, check contracts")
    smoke.add_argument("--url", help="a running mock (default: start an embedded one)")
    smoke.add_argument("--json", action="store_true", help="print the result as JSON")
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


def _ms(value: float | None, width: int = 8) -> str:
    return "-".rjust(width) if value is None else f"{value:>{width}.1f}"
