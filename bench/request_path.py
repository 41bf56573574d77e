#!/usr/bin/env python3
"""authload's own CPU per request, with the network taken out.

Each case runs in a fresh interpreter pinned to one CPU (default 1) and repeats the mobile
refresh step ``--n`` times in one greenlet, with geventhttpclient's client answering at once
from a canned 200 (no socket, no gevent switch): what is left is the Python path of a
request, from the user's task to Locust's request event and its listeners. Cases:

- ``bare``: bench/locust_load.py's refresh user's request (``FastHttpSession.post`` with a
  JSON string, ``catch_response``, the token read with ``resp.json()``);
- ``authload-core``: generator_load.py's authload user (``Journey.call`` -> ``AuthClient`` ->
  the ``budget`` retry policy -> the contract check), without recorder and exporter;
- ``authload-recorder``: the same with the record spool;
- ``authload``: the same with the record spool and the Prometheus exporter, as in a run.

Prints microseconds per request (the fastest of 5 batches). It explains where
bench/generator_efficiency's difference comes from; it is not the generator's cost per
request, which the network and gevent's switching dominate. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import harness

BENCH_DIR = Path(__file__).resolve().parent
CASES = ("bare", "authload-core", "authload-recorder", "authload")
BATCHES = 5
BODY = (
    b'{"sessionId":"7aac80f3fabc195033a33d52:0c3ce5cf-d3c0-4bba-aed3-8e6647639ac7",'
    b'"refresh_token":"972c2430-4a5e-43cd-a95a-4ebced5f8db0"}'
)
URL = "http://127.0.0.1:9"  # never connected to: every answer is canned


def can_answers() -> None:
    """geventhttpclient's ``HTTPClient.request`` answers at once, for every client of this
    process: a fresh 200 with BODY, no socket. Both sides' paths above it stay whole."""
    from geventhttpclient.client import HTTPClient
    from geventhttpclient.header import Headers

    headers = Headers()
    headers["content-type"] = "application/json"
    headers["content-length"] = str(len(BODY))

    class Answer:  # the parts of geventhttpclient's response that Locust and authload read
        __slots__ = ()
        _headers_index = headers
        length = len(BODY)
        status_code = 200
        _sent_request = None

        def get_code(self) -> int:
            return 200

        def info(self) -> Headers:
            return headers

        def read(self, n: int | None = None) -> bytes:
            return BODY

        def release(self) -> None:
            pass

    answer = Answer()
    HTTPClient.request = lambda self, method, uri, **kwargs: answer  # type: ignore[method-assign,assignment]


def bare_step(env: Any) -> Callable[[], None]:
    from locust.contrib.fasthttp import FastHttpSession
    from locust_load import JSON_HEADERS, REFRESH_PATH

    session = FastHttpSession(URL, env.events.request, None)
    state = {"token": "first"}

    def step() -> None:
        body = json.dumps({"refresh_token": state["token"], "client_secret": "secret"})
        with session.post(
            REFRESH_PATH, data=body, headers=JSON_HEADERS, name="mobile.refresh",
            catch_response=True,
        ) as resp:  # fmt: skip
            if resp.status_code == 200:
                state["token"] = resp.json()["refresh_token"]
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}")

    return step


def authload_step(env: Any, case: str, tmp: Path) -> Callable[[], None]:
    import generator_load

    from authload.load import metrics, recorder
    from authload.load.config import TestAccount
    from authload.load.users import runtime

    if case == "authload-core":
        recorder.register = lambda *a, **k: None  # type: ignore[assignment]
    if case != "authload":
        metrics.register = lambda *a, **k: None  # type: ignore[assignment]
    args = argparse.Namespace(
        users=1, retry="budget", run_dir=str(tmp / "run"), url=URL, metrics_port=None
    )
    account = TestAccount(phone="79000000001", inn="770000000001", lkfl_password="pw")
    user_class, _ = generator_load.authload_user(args, env, [account])
    user: Any = user_class(env)
    user.journey_ = runtime().journey(user.api, generator_load.FLOW)
    user.token = "first"
    step: Callable[[], None] = user.refresh_loop
    return step


def measure(case: str, n: int) -> dict[str, Any]:
    """In this process: ``n`` refresh steps of ``case`` after a warm-up; us per request."""
    import locust  # noqa: F401  (gevent's monkey-patching, as in a Locust process)
    from locust.env import Environment

    os.environ.setdefault("AUTHLOAD_CLIENT_SECRET", "secret")
    os.environ.setdefault("AUTHLOAD_APP_TOKEN", "token")
    env = Environment(host=URL)
    env.create_local_runner()  # Locust's own statistics listener, as in a run
    can_answers()
    tmp = Path(tempfile.mkdtemp(prefix="request-path-"))
    try:
        step = bare_step(env) if case == "bare" else authload_step(env, case, tmp)
        for _ in range(2000):
            step()
        per_batch = max(1, n // BATCHES)
        best = float("inf")
        for _ in range(BATCHES):
            t0 = time.perf_counter()
            for _ in range(per_batch):
                step()
            best = min(best, (time.perf_counter() - t0) / per_batch * 1e6)
        total = env.stats.total
        return {"case": case, "us": best, "requests": total.num_requests,
                "failures": total.num_failures}  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=100_000, help="requests per case (100000)")
    p.add_argument("--cpu", type=int, default=1, help="CPU to pin each case to (1)")
    p.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # a child: one case
    args = p.parse_args(argv)
    if args.n < BATCHES:
        p.error(f"--n must be at least {BATCHES}")
    if args.case:
        print(json.dumps(measure(args.case, args.n)))
        return 0
    taskset = harness.need_taskset("request_path")
    if taskset is None:
        return 2
    print(f"request_path: mobile.refresh, {args.n} requests per case, canned answers, cpu"
          f" {args.cpu}; us per request, fastest of {BATCHES} batches")  # fmt: skip
    results = {}
    for case in CASES:
        cmd = harness.pinned(taskset, args.cpu, [sys.executable, __file__, "--case", case])
        proc = subprocess.run(
            [*cmd, "--n", str(args.n)], capture_output=True, text=True, timeout=600, check=False
        )
        if proc.returncode != 0:
            print(f"request_path: {case} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 3
        results[case] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[case]
        print(f"   {case:<20}{r['us']:>7.1f} us   ({r['requests']} requests,"
              f" {r['failures']} failed)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
