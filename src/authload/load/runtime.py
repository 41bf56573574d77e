"""What one Locust process needs to run journeys: the run's configuration, read once at
start (a remote worker: once its master sent it), and the state its users share (accounts,
codes, retry budget, sessions, outcomes)."""

from __future__ import annotations

import itertools
import math
import os
import random
from collections import deque

from locust.env import Environment

from authload.load.accounts import CodeSource, ConfiguredCodes, MockInbox
from authload.load.arrivals import Arrivals
from authload.load.clients import AuthClient, FlowContext, StopGate, TargetAccess
from authload.load.config import APP_TOKEN_ENV, CLIENT_SECRET_ENV, RunConfig, TestAccount
from authload.load.flows import Journey, SharedState
from authload.load.retry import AdaptiveThrottle, RetryBudget, RetryPolicy
from authload.load.run_limits import RequestLimits, process_limits
from authload.load.wire import Wire
from authload.scenario.model import RefreshStorm, Scenario


class Runtime:
    """Per-process: built on Locust's init event (a remote worker: on its master's config
    message, before its users spawn), used by every user of the process."""

    def __init__(
        self,
        config: RunConfig,
        environment: Environment,
        secrets: tuple[str, str] | None = None,
    ) -> None:
        """``secrets``: the app token and client secret; by default from the environment
        variables the runner sets for the Locust processes it starts."""
        self.config = config
        self.scenario = config.scenario
        self.environment = environment
        token, client_secret = secrets or (
            os.environ.get(APP_TOKEN_ENV, ""),
            os.environ.get(CLIENT_SECRET_ENV, ""),
        )
        self.access = TargetAccess(config.gigma_url, config.mobile_url, token, client_secret)
        inbox = MockInbox(config.mock_url) if config.mock_url else None
        self.codes: CodeSource = inbox if inbox is not None else ConfiguredCodes()
        accounts = self.scenario.accounts
        self.accounts = (
            inbox.accounts(accounts.count, accounts.offset)
            if inbox is not None
            else config.accounts
        )
        if not self.accounts:
            raise RuntimeError("no test accounts for this target")
        self.state = SharedState(
            idle_mobile=deque(maxlen=storm_share(self.scenario, self.share()[1]))
        )
        self.arrivals = Arrivals(self.scenario.load, self.state)  # open model
        self.test_started = 0.0  # when this process's test started (Locust's test_start)
        self.rng = random.Random()
        self.reseed()
        retry = self.scenario.retry
        self.policy = RetryPolicy(
            retry, RetryBudget(retry.budget_ratio), AdaptiveThrottle(retry.k), self.rng
        )
        self.ops = itertools.count(1)
        self.gate = StopGate()  # closed while the test stops (see StopGate)
        self.limits: RequestLimits | None = process_limits(config.limits, *self.share())
        self._journeys = itertools.count(1)
        self._next_account = itertools.count()

    def reseed(self) -> None:
        """Seed from the scenario and this process's index (known once the test starts), so
        the same seed makes the same journey choices again."""
        index, processes = self.share()
        self.rng.seed(f"{self.scenario.seed}:{index}/{processes}")

    def divide_limits(self) -> None:
        """This process's share of the target's limits, once its index is known (test start)."""
        if self.limits is not None:
            self.limits.divide(*self.share())

    @property
    def worker(self) -> str:
        runner = self.environment.runner
        index = getattr(runner, "worker_index", 0) if runner is not None else 0
        return f"w{index}"

    def share(self) -> tuple[int, int]:
        """(this process's index, number of processes) for dividing events and accounts."""
        runner = self.environment.runner
        index = getattr(runner, "worker_index", 0) if runner is not None else 0
        return index, max(self.config.processes, index + 1)

    def next_account(self) -> TestAccount:
        """Accounts in turn over this process's slice, so processes never share an account."""
        index, count = self.share()
        mine = self.accounts[index::count] or self.accounts
        return mine[next(self._next_account) % len(mine)]

    def client(self, connections: int = 1) -> AuthClient:
        """A client of its own for a user (or a timed event): ``connections`` to each origin."""
        wire = Wire(self.scenario.request_timeout_s, connections)
        events = self.environment.events.request
        return AuthClient(wire, events, self.access, self.policy, self.ops, self.gate, self.limits)

    def journey(
        self,
        client: AuthClient,
        flow: str,
        account: TestAccount | None = None,
        t_intended: float | None = None,
        queued: bool = False,
    ) -> Journey:
        ctx = FlowContext(flow, f"{self.worker}-{next(self._journeys)}", t_intended, queued)
        return Journey(
            client,
            self.codes,
            account or self.next_account(),
            self.scenario,
            self.state,
            ctx,
            self.rng,
            self.access.client_secret,
        )


def storm_share(scenario: Scenario, processes: int) -> int:
    """Idle sessions a process keeps for the scenario's refresh storms: the most one storm
    takes from it (its share of the storm's sessions); 0 without a storm. A storm puts the
    sessions it refreshed back, so the newest this many serve every storm in turn."""
    storms = [e.sessions for e in scenario.events if isinstance(e, RefreshStorm)]
    return max((math.ceil(n / processes) for n in storms), default=0)
