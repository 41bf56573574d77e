"""The load side of bench/generator_efficiency.py: one headless Locust process, as a library.

``--kind bare``: bench/locust_load.py's FastHttpUser refresh loop (LKFL login once per user,
then ``POST /v2/mobile/users/refresh`` with the newest refresh token, the token taken from
the JSON answer).

``--kind httpuser``: the same user on Locust's ``HttpUser`` (python-requests) instead.

``--kind authload``: the same requests sent by authload's instrumented users: a subclass of
authload's ``JourneyUser`` (its timeouts, no hidden HTTP retries, the runtime's ``AuthClient``)
whose task is the refresh step of the sms journey, ``authload.load.flows.refresh``. So every
request goes through ``AuthClient`` (contract check of every answer, the scenario's retry
policy, the flow context), is recorded by ``authload.load.recorder`` to its spool, and is
counted by the client Prometheus exporter (``authload.load.metrics.register``, serving on a
port), exactly as in ``authload run``.

Both: spawn all users, warm up (until ``--start-at`` when given: both sides measure the same
window), reset Locust's statistics, measure for a fixed window, write the figures as JSON and
exit. The authload side tunes its garbage collection as `authload run`'s processes do
(``authload.gc_tuning``, ``AUTHLOAD_GC``). Not meant to be run by hand:
generator_efficiency.py starts it pinned to the load-generator core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, HttpUser, User, constant
from locust.env import Environment
from locust_load import measure, refresh_user

TICKS = os.sysconf("SC_CLK_TCK")
NAME = "mobile.refresh"
FLOW = "refresh_loop"


def authload_user(
    args: argparse.Namespace, environment: Environment, accounts: list[Any] | None = None
) -> tuple[type[User], Any]:
    """authload's runtime, recorder and metrics on this process, and the refresh-loop user.
    The accounts come from the mock at ``args.url`` unless given (``TestAccount`` s)."""
    from authload.load import metrics, recorder
    from authload.load.config import RunConfig
    from authload.load.flows import FlowFailed, refresh
    from authload.load.runtime import Runtime
    from authload.load.users import RUNTIME, JourneyUser
    from authload.scenario.model import Scenario

    scenario = Scenario.model_validate(
        {
            "name": "generator-efficiency",
            "target": "mock",
            "accounts": {"count": args.users},
            "mix": {"lkfl": 1},
            "load": {"stages": [{"duration_s": 3600, "users": args.users}]},
            "retry": {"policy": args.retry},
            "abort": None,
        }
    )
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = RunConfig(
        scenario=scenario,
        run_dir=run_dir,
        target="mock",
        gigma_url=args.url,
        mobile_url=args.url,
        mock_url=args.url if accounts is None else None,
        processes=1,
        accounts=accounts or [],
    )
    rt = Runtime(config, environment)  # accounts from the mock, as in `authload run`
    RUNTIME["current"] = rt
    spool = recorder.register(environment, run_dir, rt.worker)
    exporter = metrics.register(environment, port=args.metrics_port)

    class RefreshLoop(JourneyUser):
        """One LKFL login per user, then the sms journey's refresh step over and over."""

        abstract = False
        flow = FLOW
        wait_time = constant(0)
        token: str | None = None

        def on_start(self) -> None:
            self.journey_ = rt.journey(self.api, FLOW)
            self.login()

        def login(self) -> None:
            account = self.journey_.account
            body = {
                "inn": account.inn,
                "password": account.lkfl_password,
                "client_secret": rt.access.client_secret,
            }
            try:
                answer = self.journey_.call("mobile.lkfl_auth", body)
            except FlowFailed as failed:
                rt.state.outcomes[f"{FLOW}:{failed.outcome}"] += 1
                self.token = None
                return
            self.token = answer.body.refresh_token  # type: ignore[union-attr]

        def refresh_loop(self) -> None:
            if self.token is None:
                self.login()
                return
            try:
                token, lost = refresh(self.journey_, self.token)
            except FlowFailed as failed:
                lost = failed.outcome
            if lost is None:
                self.token = token
            else:
                rt.state.outcomes[f"{FLOW}:{lost}"] += 1
                self.token = None

    # JourneyUser's own task (a whole journey) is replaced, not added to: Locust's metaclass
    # would merge the base class's tasks into any declared here.
    RefreshLoop.tasks = [RefreshLoop.refresh_loop]
    return RefreshLoop, (rt, spool, exporter)


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = Environment(host=args.url)
    instrumented: Any = None
    if args.kind in ("bare", "httpuser"):
        accounts = json.loads(Path(args.accounts).read_text())
        base = HttpUser if args.kind == "httpuser" else FastHttpUser
        env.user_classes = [refresh_user(accounts, args.client_secret, base)]
    else:
        user_class, instrumented = authload_user(args, env)
        env.user_classes = [user_class]
    runner = env.create_local_runner()
    gc_settings: dict[str, Any] = {}
    if instrumented is not None:  # as authload's locustfile does when the test starts
        from authload import gc_tuning

        instrumented[0].reseed()
        gc_settings = gc_tuning.tune()
    try:
        result = {"kind": args.kind, **measure(env, NAME, args)}
    finally:
        runner.quit()
        env.events.quitting.fire(environment=env, reverse=True)  # type: ignore[no-untyped-call]
    if instrumented is not None:
        result.update(_instrumentation(env, *instrumented), **gc_settings)
    return result


def _instrumentation(env: Environment, rt: Any, spool: Any, exporter: Any) -> dict[str, Any]:
    """Proof that the instrumentation ran: what the spool and the exporter counted."""
    counted = 0.0
    for family in exporter.registry.collect():
        if family.name == "authload_requests":
            counted += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return {
        "retry_policy": rt.policy.name,
        "policy_attempts": rt.policy.stats.attempts,
        "recorded_rows": spool.rows,
        "recorded_dropped": spool.dropped,
        "exporter_requests": int(counted),
        "outcomes": dict(rt.state.outcomes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["bare", "httpuser", "authload"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--accounts", help="bare, httpuser: rows of /_mock/accounts (JSON)")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--server-pgid", type=int, action="append", default=[])
    parser.add_argument("--start-at", type=float, help="unix time the measured window starts")
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--retry", default="adaptive", help="authload: the retry policy")
    parser.add_argument("--run-dir", help="authload: where the record spool goes")
    parser.add_argument("--metrics-port", type=int, help="authload: the exporter's port")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    args = parser.parse_args()
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
