#!/usr/bin/env python3
"""Requests per CPU-second of authload's instrumented users against bare Locust users and k6.

Three sides: one Locust process of bare ``FastHttpUser`` users, one Locust process of
authload's instrumented users (``AuthClient`` with contract checks, the retry policy, the
record spool, the Prometheus exporter) and one k6 process (bench/k6_refresh.js), all sending
the same mobile refresh loop, no wait time, pinned to the same load CPU (default 1), against a
fresh mock pinned to the server CPU (default 0). By default all run at once, sharing that CPU
over the same window, so that the machine's drift hits them alike; ``--sequential`` runs each
alone on it instead. Goal (issue 18): authload sends at least 1.3 times the bare requests per
CPU-second; authload / k6 is shown beside it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import urllib.request
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import harness
from harness import BenchError, Proc, Processes, free_port
from mock_throughput import (
    APP_TOKEN,
    BUSY_PCT,
    CLIENT_SECRET,
    MAX_ACCOUNTS,
    OTHER_PCT,
    Bench,
    Server,
    bench_profile,
    no_model_profile,
)

BENCH_DIR = Path(__file__).resolve().parent
GOAL = 1.3  # authload's requests per CPU-second / bare Locust's, at least (issue 18)
PACKAGES = ("locust", "geventhttpclient", "gevent", "pydantic", "tenacity", "prometheus-client")
STARTUP_S = 12.0  # paired: both processes import and spawn their users within this
SHARE = 0.8  # at once: a side with less than 0.8 of its even share of the core was held back


CONTROL_TEXT = {
    "bare": "control (bare against bare: the method's own bias)",
    "httpuser": "reference (HttpUser, on requests, against FastHttpUser)",
}
SECOND = {"authload": "authload", "bare": "bare-2", "httpuser": "httpuser"}  # kind -> label


def sides(args: argparse.Namespace) -> dict[str, str]:
    """Label -> kind of load process: bare against ``--second`` (authload by default), and
    k6 beside them unless ``--no-k6``."""
    labels = {"bare": "bare", SECOND[args.second]: args.second}
    return labels if args.no_k6 else labels | {"k6": "k6"}


def run_round(bench: Bench, n: int) -> dict[str, dict[str, Any]]:
    """One round: paired (both sides at once on the load CPU, one fresh mock, the same
    window) or sequential (each side alone on the load CPU, a fresh mock each)."""
    a = bench.args
    labels = sides(a)
    if a.sequential:
        return {label: _run(bench, {label: kind}, n, None)[label] for label, kind in labels.items()}
    results = _run(bench, labels, n, time.time() + STARTUP_S + a.warmup)
    for r in results.values():  # the other side ran on this machine too: not foreign work
        partner = sum(o["load_cpu_pct"] for o in results.values() if o is not r)
        r["other_cpu_pct"] = max(0.0, r["other_cpu_pct"] - partner)
    return results


def _run(
    bench: Bench, labels: dict[str, str], n: int, start_at: float | None
) -> dict[str, dict[str, Any]]:
    """A fresh mock, one pinned Locust process per label, all of them stopped afterwards."""
    a = bench.args
    server: Server = bench.mock([a.server_cpu], model=a.behaviour is not None)
    procs: dict[str, tuple[Proc, Path, int]] = {}
    scrapes = {"tried": 0, "answered": 0}
    try:
        for label, kind in labels.items():
            procs[label] = _start_side(bench, server, label, kind, n, start_at)
        deadline = time.monotonic() + STARTUP_S + a.warmup + a.seconds + 60
        next_scrape = time.monotonic() + a.scrape if a.scrape else float("inf")
        while any(p.popen.poll() is None for p, _, _ in procs.values()):
            if time.monotonic() > deadline:
                tails = "\n".join(p.log_tail() for p, _, _ in procs.values())
                raise BenchError(f"Locust did not finish in time:\n{tails}")
            if time.monotonic() >= next_scrape:
                next_scrape += a.scrape
                measuring = start_at is None or time.time() < start_at + a.seconds
                for label, (proc, _, port) in procs.items():
                    if labels[label] == "authload" and measuring and proc.popen.poll() is None:
                        scrapes["tried"] += 1
                        scrapes["answered"] += _scrape(port)
            time.sleep(0.05)
    finally:
        for proc, _, _ in procs.values():
            bench.procs.stop(proc)
        for p in server.procs:
            bench.procs.stop(p)
    results = {}
    for label, (proc, out, _) in procs.items():
        if proc.popen.returncode != 0 or not out.exists():
            raise BenchError(
                f"Locust ({label}) exited with {proc.popen.returncode}:\n{proc.log_tail()}"
            )
        results[label] = json.loads(out.read_text())
        if labels[label] == "authload":
            results[label]["scrapes"] = scrapes
    return results


def _start_side(
    bench: Bench, server: Server, label: str, kind: str, n: int, start_at: float | None
) -> tuple[Proc, Path, int]:
    a = bench.args
    out = bench.tmp / f"result-{label}-{n}.json"
    port = free_port()
    runner = ["k6_load.py"] if kind == "k6" else ["generator_load.py", "--kind", kind]
    cmd = [
        sys.executable, str(BENCH_DIR / runner[0]), *runner[1:],
        "--url", server.url,
        "--users", str(a.users),
        "--warmup", str(a.warmup),
        "--seconds", str(a.seconds),
        "--client-secret", CLIENT_SECRET,
        "--out", str(out),
    ]  # fmt: skip
    if start_at is not None:
        cmd += ["--start-at", repr(start_at)]
    if kind != "authload":  # k6 and bare Locust: the same accounts, one per user
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
        "AUTHLOAD_GC": a.gc,
    }
    proc = bench.procs.start(f"locust-{label}", bench.pinned(str(a.load_cpu), cmd), env=env)
    return proc, out, port


def _scrape(port: int) -> int:
    """One Prometheus-style scrape of the exporter; 1 if it answered with request metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2.0) as resp:
            return int(b"authload_requests_total" in resp.read())
    except OSError:
        return 0


# --- report -------------------------------------------------------------------------------


def ratios(
    rnd: dict[str, dict[str, Any]], of: str | None = None, to: str = "bare"
) -> tuple[float, float]:
    """(requests per CPU-second, req/s) of side ``of`` (by default the second: authload)
    over side ``to``'s."""
    first, second = rnd[to], rnd[of or list(rnd)[1]]
    cost = first["load_us_per_req"] / second["load_us_per_req"] if second["load_us_per_req"] else 0
    rate = second["rps"] / first["rps"] if first["rps"] else 0.0
    return cost, rate


def median_of_rounds(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The round with the median ratio (the lower one of two): all figures shown come from
    one measurement, the ratios of every round go along."""
    ordered = sorted(rounds, key=lambda rnd: ratios(rnd)[0])
    return ordered[(len(ordered) - 1) // 2]


def problems_of(args: argparse.Namespace, rnd: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    busy = sum(r["load_cpu_pct"] for r in rnd.values())
    if not args.sequential and busy < BUSY_PCT:
        problems.append(f"the load cpu was not saturated ({busy:.0f}%)")
    for side, r in rnd.items():
        if args.sequential and r["load_cpu_pct"] < BUSY_PCT:
            problems.append(f"{side}: Locust not CPU-bound ({r['load_cpu_pct']:.0f}%)")
        share = SHARE * 100.0 / len(rnd)
        if not args.sequential and r["load_cpu_pct"] < share:
            problems.append(f"{side}: less than {share:.0f}% of the load cpu")
        if not args.sequential and r["warmed_s"] < args.warmup:
            problems.append(f"{side}: started late, warmed up {r['warmed_s']:.1f} s")
        if r["server_cpu_pct"] >= BUSY_PCT:
            problems.append(f"{side}: the mock saturated ({r['server_cpu_pct']:.0f}%)")
        if r["other_cpu_pct"] > OTHER_PCT:
            problems.append(f"{side}: disturbed ({r['other_cpu_pct']:.0f}% other work)")
        other = r["all_requests"] - r["requests"]
        if other > 0.01 * r["all_requests"]:
            problems.append(f"{side}: {other} requests were not refreshes (sessions lost)")
    return problems


def verdict(
    args: argparse.Namespace, rounds: list[dict[str, dict[str, Any]]]
) -> tuple[float, float, str, list[str]]:
    shown = median_of_rounds(rounds)
    cost, rate = ratios(shown)
    problems = problems_of(args, shown)
    text = "MET" if cost >= GOAL else "NOT MET"
    if args.second != "authload":
        text = CONTROL_TEXT[args.second]
    if problems:
        text += " (invalid: " + "; ".join(problems) + ")"
    return cost, rate, text, problems


def print_report(args: argparse.Namespace, rounds: list[dict[str, dict[str, Any]]]) -> None:
    text = verdict(args, rounds)[2]
    shown = median_of_rounds(rounds)
    first = "bare"  # every ratio is over bare Locust or k6
    versions = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    median = f", {args.rounds} rounds, the median round shown" if args.rounds > 1 else ""
    mock = "empty profile {}" if args.behaviour is None else "shipped profile, no latency/faults"
    how = (
        "one after the other, each alone on"
        if args.sequential
        else "all at once (the same window), sharing"
    )
    print()
    print(
        f"generator_efficiency: mobile.refresh loop, {args.users} users (VUs) per side, no"
        f" wait; 1 process per side ({', '.join(shown)}), {how} cpu {args.load_cpu};"
        f" {args.warmup:g} s warm-up + {args.seconds:g} s measured{median}"
    )
    fresh = "per side" if args.sequential else "per round"
    print(f"mock: 1 process on cpu {args.server_cpu}, {mock}, a fresh one {fresh}; 127.0.0.1")
    if args.second == "authload":
        inst = shown["authload"]
        print(
            f"authload side: JourneyUser + AuthClient (contract checks), retry policy"
            f" {inst.get('retry_policy', args.retry)}, record spool, Prometheus exporter"
            + (f" scraped every {args.scrape:g} s" if args.scrape else " (not scraped)")
            + f"; garbage collection {inst['gc']} (threshold {inst['gc_threshold'][0]})"
        )
    print(f"python {platform.python_version()}, {versions}")
    if "k6" in shown:
        print(f"k6 side: {shown['k6']['k6'].strip()}, bench/k6_refresh.js")
    print()
    print(
        f"{'':3}{'side':<10}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'fails':>7}"
        f"{'load cpu':>10}{'us/req':>8}{'mock cpu':>10}{'other':>7}"
    )
    for side, r in shown.items():
        print(
            f"{'':3}{side:<10}{r['rps']:>7.0f}{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}"
            f"{r['failures']:>7}{r['load_cpu_pct']:>9.0f}%{r['load_us_per_req']:>8.0f}"
            f"{r['server_cpu_pct']:>9.0f}%{r['other_cpu_pct']:>6.0f}%"
        )
    print()
    print("   req/s: mobile.refresh answered in the window; us/req: the side's cpu microseconds")
    print(f"   per request. In % of one core over the window: load cpu (on cpu {args.load_cpu}),")
    print(f"   mock cpu (on cpu {args.server_cpu}), other: everything else on the machine")
    if args.rounds > 1:
        for of, to in _pairs(shown):
            each = " / ".join(f"{ratios(rnd, of, to)[0]:.2f}" for rnd in rounds)
            print(f"   {of} / {to} per cpu-second, each round: {each}")
    for side, r in shown.items():
        if r["failures"]:
            print(f"   {side}: {r['failures']} failed requests, e.g. {r['errors']}")
    if args.second == "authload":
        _print_instrumentation(shown["authload"])
    print()
    print(f"{'':3}{'ratio':<44}{'value':>7}  {'goal':<10}verdict")
    for of, to in _pairs(shown):
        value, pair_rate = ratios(shown, of, to)
        goal, judged = (f">= {GOAL}", text) if to == first else ("-", "(shown)")
        name = f"{of} / {to}, requests per cpu-second"
        print(f"{'':3}{name:<44}{value:>7.2f}  {goal:<10}{judged}")
        print(f"{'':5}(req/s: {pair_rate:.2f}; {shown[of]['load_us_per_req']:.0f} against"
              f" {shown[to]['load_us_per_req']:.0f} us of cpu per request)")  # fmt: skip


def _pairs(shown: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """The ratios shown: the second side over bare (judged), and over k6 when it ran."""
    first, second = list(shown)[:2]
    return [(second, first)] + ([(second, "k6")] if "k6" in shown else [])


def _print_instrumentation(inst: dict[str, Any]) -> None:
    print(
        f"   authload: {inst['policy_attempts']} attempts by the retry policy,"
        f" {inst['recorded_rows']} rows in the record spool ({inst['recorded_dropped']} dropped),"
        f" {inst['exporter_requests']} counted by the exporter;"
        f" scrapes answered {inst['scrapes']['answered']}/{inst['scrapes']['tried']}"
    )
    if inst["outcomes"]:
        print(f"   authload: outcomes other than a rotated token: {inst['outcomes']}")


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per side (10)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up before each window (3)")
    p.add_argument("--users", type=int, default=64, help="Locust users per side (64)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown (3)")
    p.add_argument(
        "--sequential",
        action="store_true",
        help="each side alone on the load CPU, one after the other (default: both at once)",
    )
    p.add_argument(
        "--second",
        choices=sorted(SECOND),
        default="authload",
        help="what runs against the bare FastHttpUser side: authload (the goal), bare (a"
        " control: the method's own bias) or httpuser (Locust's HttpUser)",
    )
    p.add_argument("--no-k6", action="store_true", help="leave the k6 side out")
    p.add_argument(
        "--gc",
        choices=["tuned", "default"],
        default="tuned",
        help="authload's garbage collection, as AUTHLOAD_GC (tuned)",
    )
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
    started = harness.start_bench("generator_efficiency")
    if started is None:
        return 2
    taskset, tmp = started
    bench = Bench(
        args, Processes(tmp / "logs"), tmp, taskset, bench_profile(tmp), no_model_profile(tmp)
    )
    try:
        print("fetching test accounts from a mock ...", file=sys.stderr, flush=True)
        bench.fetch_accounts()
        rounds = []
        for n in range(1, args.rounds + 1):
            what = " and ".join(sides(args))
            print(f"[{what}] round {n}/{args.rounds} ...", file=sys.stderr, flush=True)
            rounds.append(run_round(bench, n))
        print_report(args, rounds)
        if args.json:
            cost, rate, text, problems = verdict(args, rounds)
            doc = {
                "settings": {k: v for k, v in vars(args).items() if k != "json"},
                "rounds": rounds,
                "shown": median_of_rounds(rounds),
                "ratio": {"cpu_second": cost, "rps": rate, "goal": GOAL, "verdict": text},
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
        harness.ignore_interrupts()
        bench.procs.stop_all()
        if args.keep_temp:
            print(f"generator_efficiency: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
