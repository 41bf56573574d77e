"""The load side of bench/mock_throughput.py: one headless Locust process, used as a library.

Runs FastHttpUser users with no wait time against one URL: spawn them all, warm up, reset
Locust's stats, measure for a fixed window, write the figures as JSON and exit. Besides
Locust's requests/s and percentiles it records the CPU time this process and the server's
processes (given by process group) spent in the window, read from /proc.

Not meant to be run by hand; mock_throughput.py starts it pinned to the load-generator core.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import harness
from locust import FastHttpUser, HttpUser, User, constant, task
from locust.env import Environment

LOGIN_PATH = "/counterparty/login"
LKFL_PATH = "/v2/mobile/users/lkfl/auth"
REFRESH_PATH = "/v2/mobile/users/refresh"
JSON_HEADERS = {"Content-Type": "application/json"}
TICKS = os.sysconf("SC_CLK_TCK")


def login_user(accounts: list[dict[str, Any]], app_token: str, password: str) -> type[User]:
    """Gigma login with the always-accepted password, cycling over all the given accounts."""
    bodies = itertools.cycle(
        [json.dumps({"phone": a["phone"], "password": password}) for a in accounts]
    )
    headers = {**JSON_HEADERS, "Token": app_token}

    class GigmaLogin(FastHttpUser):
        wait_time = constant(0)

        @task
        def login(self) -> None:
            self.client.post(LOGIN_PATH, data=next(bodies), headers=headers, name="gigma.login")

    return GigmaLogin


def refresh_user(
    accounts: list[dict[str, Any]],
    client_secret: str,
    base: type[FastHttpUser] | type[HttpUser] = FastHttpUser,
) -> type[User]:
    """Each user logs in once via LKFL on its own account, then rotates its refresh token."""
    numbers = itertools.count()

    class MobileRefresh(base):  # type: ignore[valid-type,misc]
        wait_time = constant(0)
        token: str | None = None

        def on_start(self) -> None:
            account = accounts[next(numbers) % len(accounts)]
            self.login_body = json.dumps(
                {
                    "inn": account["inn"],
                    "password": account["lkfl_password"],
                    "client_secret": client_secret,
                }
            )
            self.login()

        def login(self) -> None:
            self.token = None
            with self.client.post(
                LKFL_PATH,
                data=self.login_body,
                headers=JSON_HEADERS,
                name="mobile.lkfl_auth",
                catch_response=True,
            ) as resp:
                if resp.status_code == 200:
                    self.token = resp.json()["refresh_token"]
                    resp.success()
                else:
                    resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")

        @task
        def refresh(self) -> None:
            if self.token is None:
                self.login()
                return
            body = json.dumps({"refresh_token": self.token, "client_secret": client_secret})
            with self.client.post(
                REFRESH_PATH,
                data=body,
                headers=JSON_HEADERS,
                name="mobile.refresh",
                catch_response=True,
            ) as resp:
                if resp.status_code == 200:
                    self.token = resp.json()["refresh_token"]
                    resp.success()
                else:
                    self.token = None  # log in again on the next iteration
                    resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")

    return MobileRefresh


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def measure(env: Environment, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Spawn ``args.users`` users on ``env``'s local runner, warm up, reset the statistics,
    measure ``args.seconds`` and return the window's figures (the runner still runs: the
    caller quits it). CPU in % of one core: this process, the server's process groups
    (``args.server_pgid``), and everything else on the machine.

    With ``args.start_at`` (unix seconds; several processes measuring the same window) the
    warm-up lasts until then; ``warmed_s`` tells how long it really was."""
    runner = env.runner
    assert runner is not None
    spawned = time.time()
    runner.start(args.users, spawn_rate=args.users * 20)
    start_at = getattr(args, "start_at", None)
    gevent.sleep(max(0.0, start_at - time.time()) if start_at else args.warmup)
    pgids: list[int] = args.server_pgid
    env.stats.reset_all()
    window_start = time.time()
    t0, cpu0, srv0 = time.monotonic(), own_cpu_seconds(), harness.group_cpu_ticks(pgids)
    busy0 = harness.machine_busy_ticks()
    gevent.sleep(args.seconds)
    entry, total = env.stats.get(name, "POST"), env.stats.total
    elapsed = time.monotonic() - t0
    load_cpu, srv1 = own_cpu_seconds() - cpu0, harness.group_cpu_ticks(pgids)
    busy = harness.machine_busy_ticks() - busy0
    server_pct = [100.0 * (srv1[g] - srv0[g]) / TICKS / elapsed for g in pgids]
    machine_pct = 100.0 * busy / TICKS / elapsed
    return {
        "window_start": window_start,
        "warmed_s": round(window_start - spawned, 3),
        **harness.window_figures(
            endpoint=name,
            elapsed=elapsed,
            requests=entry.num_requests,
            all_requests=total.num_requests,  # other endpoints too (logins after a lost session)
            failures=total.num_failures,
            latency_ms=(
                entry.get_response_time_percentile(0.50),
                entry.get_response_time_percentile(0.99),
                entry.max_response_time,
            ),
            users=runner.user_count,
            load_cpu_s=load_cpu,
            server_pct=server_pct,
            machine_pct=machine_pct,
            errors={f"{e.method} {e.name}: {e.error}": e.occurrences for e in _errors(env)},
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    accounts: list[dict[str, Any]] = json.loads(Path(args.accounts).read_text())
    if args.kind == "login":
        user_class, name = login_user(accounts, args.app_token, args.password), "gigma.login"
    else:
        user_class, name = refresh_user(accounts, args.client_secret), "mobile.refresh"
    env = Environment(user_classes=[user_class], host=args.url)
    runner = env.create_local_runner()
    try:
        return measure(env, name, args)
    finally:
        runner.quit()


def _errors(env: Environment) -> list[Any]:
    return sorted(env.stats.errors.values(), key=lambda e: -e.occurrences)[:5]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", choices=["login", "refresh"], required=True)
    parser.add_argument("--accounts", required=True, help="JSON file: rows of /_mock/accounts")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--server-pgid", type=int, action="append", default=[])
    parser.add_argument("--app-token", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    args = parser.parse_args()
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
