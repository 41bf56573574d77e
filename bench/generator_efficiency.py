#!/usr/bin/env python3
"""Requests/s and CPU per request of authload's instrumented users against bare Locust users.

Two sides, one after the other, in one run: one Locust process of bare ``FastHttpUser`` users
and one Locust process of authload's instrumented users (``AuthClient`` with contract checks,
the retry policy, the record spool, the Prometheus exporter), both sending the same mobile
refresh loop, no wait time, pinned to the load CPU (default 1), against a fresh mock pinned to
the server CPU (default 0). Goal: authload keeps at least 85% of the bare rate. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mock_throughput import (
    APP_TOKEN,
    BUSY_PCT,
    CLIENT_SECRET,
    MAX_ACCOUNTS,
    OTHER_PCT,
    Bench,
    BenchError,
    Processes,
    Server,
    bench_profile,
    median_round,
    no_model_profile,
    start_bench,
)

BENCH_DIR = Path(__file__).resolve().parent
GOAL = 0.85  # authload's rate / the bare rate, at least
SIDES = ("bare", "authload")
PACKAGES = ("locust", "geventhttpclient", "gevent", "pydantic", "tenacity", "prometheus-client")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_side(bench: Bench, kind: str, n: int) -> dict[str, Any]:
    """One side: a fresh mock, one pinned Locust process, the mock stopped afterwards."""
    a = bench.args
    server: Server = bench.mock([a.server_cpu], model=a.behaviour is not None)
    out = bench.tmp / f"result-{kind}-{n}.json"
    port = _free_port()
    cmd = [
        sys.executable, str(BENCH_DIR / "generator_load.py"),
        "--kind", kind,
        "--url", server.url,
        "--users", str(a.users),
        "--warmup", str(a.warmup),
        "--seconds", str(a.seconds),
        "--client-secret", CLIENT_SECRET,
        "--out", str(out),
    ]  # fmt: skip
    if kind == "bare":
        cmd += ["--accounts", str(bench.fetch_accounts())]
    else:
        cmd += ["--retry", a.retry, "--run-dir", str(bench.tmp / f"run-{n}")]
        cmd += ["--metrics-port", str(port)]
    for pgid in server.pgids:
        cmd += ["--server-pgid", str(pgid)]
    env = {
        "AUTHLOAD_CLIENT_SECRET": CLIENT_SECRET,
        "AUTHLOAD_APP_TOKEN": APP_TOKEN,
        "AUTHLOAD_METRICS_LINGER_S": "0",  # no final-scrape grace: the figures are taken
    }
    proc = bench.procs.start(f"locust-{kind}", bench.pinned(str(a.load_cpu), cmd), env=env)
    scrapes = {"tried": 0, "answered": 0}
    try:
        deadline = time.monotonic() + a.warmup + a.seconds + 60
        next_scrape = time.monotonic() + a.scrape if a.scrape else float("inf")
        while proc.popen.poll() is None:
            if time.monotonic() > deadline:
                raise BenchError(f"Locust did not finish in time:\n{proc.log_tail()}")
            if kind == "authload" and time.monotonic() >= next_scrape:
                next_scrape += a.scrape
                scrapes["tried"] += 1
                scrapes["answered"] += _scrape(port)
            time.sleep(0.05)
    finally:
        bench.procs.stop(proc)
        for p in server.procs:
            bench.procs.stop(p)
    if proc.popen.returncode != 0 or not out.exists():
        raise BenchError(f"Locust ({kind}) exited with {proc.popen.returncode}:\n{proc.log_tail()}")
    result: dict[str, Any] = json.loads(out.read_text())
    if kind == "authload":
        result["scrapes"] = scrapes
    return result


def _scrape(port: int) -> int:
    """One Prometheus-style scrape of the exporter; 1 if it answered with request metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2.0) as resp:
            return int(b"authload_requests_total" in resp.read())
    except OSError:
        return 0


# --- report -------------------------------------------------------------------------------


def verdict(results: dict[str, dict[str, Any]]) -> tuple[float, float, str, list[str]]:
    bare, inst = results["bare"], results["authload"]
    rate = inst["rps"] / bare["rps"] if bare["rps"] else 0.0
    cost = bare["load_us_per_req"] / inst["load_us_per_req"] if inst["load_us_per_req"] else 0.0
    problems = []
    for side, r in results.items():
        if r["load_cpu_pct"] < BUSY_PCT:
            problems.append(f"{side}: Locust not CPU-bound ({r['load_cpu_pct']:.0f}%)")
        if r["server_cpu_pct"] >= BUSY_PCT:
            problems.append(f"{side}: the mock saturated ({r['server_cpu_pct']:.0f}%)")
        if r["other_cpu_pct"] > OTHER_PCT:
            problems.append(f"{side}: disturbed ({r['other_cpu_pct']:.0f}% other work)")
        other = r["all_requests"] - r["requests"]
        if other > 0.01 * r["all_requests"]:
            problems.append(f"{side}: {other} requests were not refreshes (sessions lost)")
    text = "MET" if rate >= GOAL else "NOT MET"
    if problems:
        text += " (invalid: " + "; ".join(problems) + ")"
    return rate, cost, text, problems


def print_report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    rate, cost, text, _ = verdict(results)
    inst = results["authload"]
    versions = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    rounds = f", {args.rounds} rounds, median shown" if args.rounds > 1 else ""
    mock = "empty profile {}" if args.behaviour is None else "shipped profile, no latency/faults"
    print()
    print(
        f"generator_efficiency: mobile.refresh loop, {args.users} users, no wait, 1 Locust"
        f" process per side on cpu {args.load_cpu}; {args.warmup:g} s warm-up +"
        f" {args.seconds:g} s measured per side{rounds}"
    )
    print(f"mock: 1 process on cpu {args.server_cpu}, {mock}, a fresh one per side; 127.0.0.1")
    print(
        f"authload side: JourneyUser + AuthClient (contract checks), retry policy"
        f" {inst.get('retry_policy', args.retry)}, record spool, Prometheus exporter"
        + (f" scraped every {args.scrape:g} s" if args.scrape else " (not scraped)")
    )
    print(f"python {platform.python_version()}, {versions}")
    print()
    print(
        f"{'':3}{'side':<10}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'fails':>7}"
        f"{'Locust cpu':>12}{'us/req':>8}{'mock cpu':>10}{'other':>7}"
    )
    for side in SIDES:
        r = results[side]
        print(
            f"{'':3}{side:<10}{r['rps']:>7.0f}{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}"
            f"{r['failures']:>7}{r['load_cpu_pct']:>11.0f}%{r['load_us_per_req']:>8.0f}"
            f"{r['server_cpu_pct']:>9.0f}%{r['other_cpu_pct']:>6.0f}%"
        )
    print()
    print("   req/s: mobile.refresh answered in the window; us/req: Locust cpu microseconds per")
    print(f"   request. In % of one core over the window: Locust cpu (on cpu {args.load_cpu}),")
    print(f"   mock cpu (on cpu {args.server_cpu}), other: everything else on the machine")
    for side in SIDES:
        r = results[side]
        if len(r["rounds_rps"]) > 1:
            each = " / ".join(f"{x:.0f}" for x in r["rounds_rps"])
            print(f"   {side}: req/s of the rounds: {each} (the median round is shown)")
    if args.rounds > 1:
        pairs = zip(results["authload"]["rounds_rps"], results["bare"]["rounds_rps"], strict=True)
        each = " / ".join(f"{a / b:.2f}" if b else "n/a" for a, b in pairs)
        print(f"   authload / bare in each round: {each}")
        if r["failures"]:
            print(f"   {side}: {r['failures']} failed requests, e.g. {r['errors']}")
    print(
        f"   authload: {inst['policy_attempts']} attempts by the retry policy,"
        f" {inst['recorded_rows']} rows in the record spool ({inst['recorded_dropped']} dropped),"
        f" {inst['exporter_requests']} counted by the exporter;"
        f" scrapes answered {inst['scrapes']['answered']}/{inst['scrapes']['tried']}"
    )
    if inst["outcomes"]:
        print(f"   authload: outcomes other than a rotated token: {inst['outcomes']}")
    print()
    print(f"{'':3}{'ratio':<34}{'value':>7}  {'goal':<10}verdict")
    print(f"{'':3}{'authload / bare, req/s':<34}{rate:>7.2f}  {'>= 0.85':<10}{text}")
    print(
        f"{'':5}(by Locust cpu per request: {cost:.2f}, {inst['load_us_per_req']:.0f} vs"
        f" {results['bare']['load_us_per_req']:.0f} us; valid when both Locust sides are"
        f" >= {BUSY_PCT:.0f}% busy and the mock is not)"
    )


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per side (10)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up before each window (3)")
    p.add_argument("--users", type=int, default=64, help="Locust users per side (64)")
    p.add_argument("--rounds", type=int, default=1, help="run both sides N times (1)")
    p.add_argument(
        "--retry",
        default="budget",
        choices=["none", "immediate", "backoff", "retry_after", "budget", "adaptive"],
        help="authload's retry policy (budget, as scenarios/soak.yaml)",
    )
    p.add_argument(
        "--scrape", type=float, default=5.0, help="seconds between exporter scrapes, 0: none (5)"
    )
    p.add_argument("--population", type=int, default=10_000, help="mock accounts (10000)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU of the mock (0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU of the Locust process (1)")
    p.add_argument(
        "--model",
        dest="behaviour",
        action="store_const",
        const="model",
        help="run the mock with its behaviour model (default: the empty profile {})",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    p.add_argument("--keep-temp", action="store_true", help="keep logs and the record spools")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1 or args.scrape < 0:
        p.error("--seconds must be > 0, --warmup >= 0, --rounds >= 1, --scrape >= 0")
    if not 1 <= args.users <= min(args.population, MAX_ACCOUNTS):
        p.error("--users must be 1 .. min(--population, 10000): one account per user")
    usable = os.sched_getaffinity(0)
    if not {args.server_cpu, args.load_cpu} <= usable or args.server_cpu == args.load_cpu:
        p.error(f"--server-cpu and --load-cpu: two different CPUs of {sorted(usable)}")
    args.accounts = args.users  # what mock_throughput's Bench fetches: one account per user
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = start_bench("generator_efficiency")
    if started is None:
        return 2
    taskset, tmp = started
    bench = Bench(
        args, Processes(tmp / "logs"), tmp, taskset, bench_profile(tmp), no_model_profile(tmp)
    )
    try:
        print("fetching test accounts from a mock ...", file=sys.stderr, flush=True)
        bench.fetch_accounts()
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for n in range(1, args.rounds + 1):
            for side in SIDES:
                rounds = f" round {n}/{args.rounds}" if args.rounds > 1 else ""
                print(f"[{side}]{rounds} ...", file=sys.stderr, flush=True)
                runs[side].append(run_side(bench, side, n))
        results = {side: median_round(measured) for side, measured in runs.items()}
        print_report(args, results)
        if args.json:
            rate, cost, text, problems = verdict(results)
            doc = {
                "settings": {k: v for k, v in vars(args).items() if k != "json"},
                "sides": results,
                "ratio": {"rps": rate, "cpu_per_request": cost, "goal": GOAL, "verdict": text},
                "problems": problems,
            }
            args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    except BenchError as exc:
        print(f"generator_efficiency: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("generator_efficiency: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        bench.procs.stop_all()
        if args.keep_temp:
            print(f"generator_efficiency: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
