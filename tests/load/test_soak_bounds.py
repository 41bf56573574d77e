"""Nothing on the load side grows with run length (issue 21): each structure a long soak
fills is driven here by a fast synthetic load far past its bound and must stay at it.

Code that imports Locust runs in a fresh interpreter (``child_*``, see
tests/helpers/locust_child.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import pytest
import yaml

from authload.mock.settings import load_settings
from authload.mock.store import MemoryStore, NewSession, Pair, TokenRules
from authload.scenario.distributions import Distribution, Fixed, Uniform
from authload.scenario.loader import load_scenario
from authload.scenario.model import RefreshStorm, Scenario, Stage
from tests.helpers import locust_child
from tests.helpers.runs import REPO

STORMY = """
name: stormy
mix: {lkfl: 1, password_call: 1}
load: {stages: [{duration_s: 60, users: 2}]}
think_time: {dist: fixed, ms: 0}
flows:
  lkfl: {wrong_password_share: 0}
  password_call: {devices: {2: 1.0}, logout_all_share: 0, session: {dist: fixed, ms: 0}}
events:
  - {kind: refresh_storm, at_s: 10, sessions: 100, window_s: 1}
  - {kind: refresh_storm, at_s: 20, sessions: 250, window_s: 1}
"""


class _Service:
    """Answers lkfl logins with a fresh refresh token each, and the Gigma calls; notes how
    many Gigma sessions the journeys' shared state holds at each logout."""

    def __init__(self, state: Any) -> None:
        from authload.mock.gigma import _counterparty
        from authload.mock.population import Population

        self.state = state
        self.tokens = (str(uuid.UUID(int=i, version=4)) for i in itertools.count(1))
        self.issued: list[str] = []
        self.in_session_at_logout: list[int] = []
        self.account = Population(10, 1).account(0)
        self.counterparty = _counterparty

    def send(self, method: str, base: str, path: str, body: Any, headers: Any) -> Any:
        """Enough of :class:`authload.load.wire.Wire` for authload's client."""
        from authload.contracts import ENDPOINTS
        from authload.load.wire import Reply, Sent

        name = next(n for n, e in ENDPOINTS.items() if (e.method, e.path) == (method, path))
        if name == "mobile.lkfl_auth":
            self.issued.append(next(self.tokens))
            body = {"sessionId": f"{0:024x}:{self.issued[-1]}", "refresh_token": self.issued[-1]}
        elif name == "gigma.login":
            token = f"{len(self.issued)}|{'a' * 40}00000000"
            body = {"counterparty": self.counterparty(self.account, token).model_dump()}
        else:
            if name == "gigma.logout":
                self.in_session_at_logout.append(len(self.state.gigma))
            body = {"message": "ok"}
        return Sent(Reply(200, json.dumps(body).encode()), 0.0, 1.0)


def _journeys(scenario_text: str, processes: int, lkfl: int, calls: int) -> tuple[Any, Any]:
    """Run ``lkfl`` LKFL journeys and ``calls`` call-reset journeys of one process."""
    from locust.event import EventHook

    from authload.load.accounts import ConfiguredCodes
    from authload.load.clients import AuthClient, FlowContext, TargetAccess
    from authload.load.config import TestAccount
    from authload.load.flows import Journey, SharedState, run_journey
    from authload.load.retry import RetryPolicy
    from authload.load.runtime import storm_share
    from authload.scenario.loader import parse_scenario
    from authload.scenario.model import Retry

    scenario = parse_scenario(scenario_text, "s.yaml")
    state = SharedState(idle_mobile=deque(maxlen=storm_share(scenario, processes)))
    service = _Service(state)
    access = TargetAccess("http://127.0.0.1:9", "http://127.0.0.1:9", "t", "s")
    policy = RetryPolicy(Retry(policy="none"))
    client = AuthClient(service, EventHook(), access, policy)  # type: ignore[arg-type]
    account = TestAccount(
        "79990000001", inn="500100732259", lkfl_password="pw", call_password="1111"
    )
    rng = random.Random(1)
    for i, flow in enumerate(["lkfl"] * lkfl + ["password_call"] * calls):
        ctx = FlowContext(flow, f"w0-{i}")
        journey = Journey(client, ConfiguredCodes(), account, scenario, state, ctx, rng, "s")
        assert run_journey(flow, journey) == "completed"
    return state, service


def child_idle_sessions_are_the_newest_a_storm_takes() -> None:
    state, service = _journeys(STORMY, processes=4, lkfl=20_000, calls=0)
    # the larger storm's share of 4 processes: ceil(250 / 4) = 63 sessions, the newest
    assert state.idle_mobile.maxlen == 63
    assert [s.refresh_token for s in state.idle_mobile] == service.issued[-63:]


def child_no_idle_session_is_kept_without_a_storm() -> None:
    calm = STORMY[: STORMY.index("events:")]
    state, service = _journeys(calm, processes=1, lkfl=20_000, calls=0)
    assert len(service.issued) == 20_000
    assert state.idle_mobile.maxlen == 0 and len(state.idle_mobile) == 0


def child_gigma_sessions_are_held_only_while_in_session() -> None:
    state, service = _journeys(STORMY, processes=1, lkfl=0, calls=2_000)
    assert service.in_session_at_logout == [1] * 4_000  # two devices, two logouts each
    assert state.gigma == {}


def child_locust_statistics_stay_bounded_over_hours() -> None:
    from locust.stats import RequestStats

    from authload.load import locust_stats

    stats = RequestStats()
    start = int(stats.start_time) + 1  # Locust reads rates from its start on
    names = [f"endpoint.{i}" for i in range(9)]
    points: list[tuple[int, int]] = []  # (s into the run, history points) after each trim
    for second in range(start, start + 3 * 3600):  # three hours, 2 requests a second each
        for name in names:
            entry = stats.get(name, "POST")
            entry._log_time_of_request(second + 0.1)
            entry._log_time_of_request(second + 0.6)
            if second % 7 == 0:
                entry.num_fail_per_sec[second] += 1
        stats.total.num_reqs_per_sec[second] += 2 * len(names)
        stats.total.last_request_timestamp = second + 0.6
        if second % 5 == 0:
            stats.history.append({"time": second})
        if second % 30 == 0:
            locust_stats.trim(stats, second)
            points.append((second - start, len(stats.history)))
    for entry in (stats.total, *stats.entries.values()):
        assert len(entry.num_reqs_per_sec) <= locust_stats.KEEP_S + 30
        assert len(entry.num_fail_per_sec) <= (locust_stats.KEEP_S + 30) // 7 + 1
    assert stats.entries[("endpoint.0", "POST")].current_rps == 2.0  # still read correctly
    assert stats.total.current_rps == 18.0
    assert len(stats.history) <= locust_stats.MAX_POINTS
    warm_up = max(n for s, n in points if s <= 600)  # a soak's first 10 minutes
    assert max(n for s, n in points if s > 600) <= warm_up, "the history's bound came late"
    times = [point["time"] for point in stats.history]
    assert times[0] < start + 5 and times[-1] > start + 3 * 3600 - 300, "the whole run, thinner"
    assert times == sorted(times)


def _child(main: str) -> None:
    result = locust_child.run_child(__name__, main)
    assert result.returncode == 0, result.stdout + result.stderr


def test_idle_sessions_are_the_newest_a_storm_takes() -> None:
    _child("child_idle_sessions_are_the_newest_a_storm_takes")


def test_no_idle_session_is_kept_without_a_storm() -> None:
    _child("child_no_idle_session_is_kept_without_a_storm")


def test_gigma_sessions_are_held_only_while_in_session() -> None:
    _child("child_gigma_sessions_are_held_only_while_in_session")


def test_locust_statistics_stay_bounded_over_hours() -> None:
    _child("child_locust_statistics_stay_bounded_over_hours")


# ---------------------------------------------------------------------------------------------
# the mock's store, on a fake clock: hours of logins and refreshes in a second


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _sizes(store: MemoryStore) -> dict[str, int]:
    """Every map the store keeps per session, and its rotated tokens."""
    return {
        "sessions": len(store._sessions),
        "by_access": len(store._by_access),
        "by_refresh": len(store._by_refresh),
        "by_account": sum(len(owned) for owned in store._by_account.values()),
        "ending": sum(len(ids) for ids in store._ending.values()),
        "rotated": len(store._rotated),
    }


async def _soak(
    store: MemoryStore, clock: _Clock, hours: float, accounts: int, logins_per_s: int
) -> tuple[int, list[dict[str, int]]]:
    """Mobile logins round-robin over the accounts, each session refreshed once 10 s after
    its login, then abandoned, as the journeys do; the store's sizes every 10 minutes."""
    rules = TokenRules(access_ttl=900, refresh_ttl=LIFETIME_S, reuse_memory=REUSE_S)
    evicted, sizes, n = 0, [], 0
    for second in range(int(hours * 3600)):
        clock.now = float(second)
        for _ in range(logins_per_s):
            new = NewSession("mobile", n % accounts, f"a{n}", f"r{n}", 900, LIFETIME_S)
            evicted += await store.open_session(new, CAP)
            if n >= 10 * logins_per_s:
                old = n - 10 * logins_per_s
                await store.rotate_refresh(f"r{old}", Pair(f"a{old}b", f"r{old}b"), rules)
            n += 1
        if second % 600 == 0:
            sizes.append(_sizes(store))
    return evicted, sizes


LIFETIME_S, REUSE_S, CAP = 1800.0, 3600.0, 10


def test_mock_sessions_and_rotated_tokens_reach_their_bound_and_stay_flat() -> None:
    """2 logins/s over 500 accounts for 8 hours, each session last used 10 s after its login:
    2 x (10 + 1800 s) = 3620 live sessions (7.2 per account, under the cap: none evicted)
    and 2 x 1800 = 3600 remembered rotated tokens (the reuse memory, 3600 s, is cut to the
    refresh lifetime) from minute 31 on, and every index the same size as the sessions."""
    clock = _Clock()
    store = MemoryStore(clock)
    evicted, sizes = asyncio.run(_soak(store, clock, hours=8, accounts=500, logins_per_s=2))
    assert evicted == 0
    settled = sizes[4:]  # from minute 40 on: past the lifetime
    assert {s["sessions"] for s in settled} == {int(2 * (10 + LIFETIME_S))}
    assert {s["rotated"] for s in settled} == {int(2 * LIFETIME_S)}
    for s in sizes:
        assert s["by_access"] == s["by_refresh"] == s["by_account"] == s["ending"] == s["sessions"]


def test_past_the_cap_the_mock_holds_accounts_x_cap_sessions() -> None:
    """10 logins/s over 50 accounts: 360 an hour each, far past the cap: the store holds
    exactly accounts x cap sessions, evicting the rest (counted)."""
    clock = _Clock()
    store = MemoryStore(clock)
    evicted, sizes = asyncio.run(_soak(store, clock, hours=2, accounts=50, logins_per_s=10))
    assert {s["sessions"] for s in sizes[1:]} == {50 * CAP}
    assert evicted == 2 * 3600 * 10 - 50 * CAP


# ---------------------------------------------------------------------------------------------
# the shipped scenarios never fill the embedded mock's per-account cap, however long they run

MOBILE_FLOWS = ("sms", "esia", "lkfl")  # mobile has no logout: its sessions end by lifetime
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
STRETCHED_S = 8 * 3600.0  # any --duration: eight hours of the stretched last stage


def _mean_s(dist: Distribution) -> float:
    """The mean of a distribution, or a lower bound of it (a capped lognormal)."""
    if isinstance(dist, Fixed):
        return dist.ms / 1000
    if isinstance(dist, Uniform):
        return (dist.min_ms + dist.max_ms) / 2000
    if dist.max_ms is not None:  # half the draws reach the median, or the cap
        return min(dist.median_ms, dist.max_ms) / 2000
    return dist.median_ms * math.exp(dist.sigma**2 / 2) / 1000


def _long_s(dist: Distribution) -> float:
    """A long draw: the value, the maximum, or the 99th percentile (or the cap)."""
    if isinstance(dist, Fixed):
        return dist.ms / 1000
    if isinstance(dist, Uniform):
        return dist.max_ms / 1000
    return min(dist.p99_ms, dist.max_ms or math.inf) / 1000


def _mobile_logins_per_s(scenario: Scenario, stage: Stage) -> float:
    """At most: open model, the mobile share of the arrivals; closed model, each mobile user
    at most one login per mean think time (a journey takes that long at least)."""
    share = sum(w for f, w in scenario.mix.items() if f in MOBILE_FLOWS) / sum(
        scenario.mix.values()
    )
    if scenario.load.model == "open":
        return (stage.rate or 0.0) * share
    return (stage.users or 0) * share / _mean_s(scenario.think_time)


def _most_in_window(scenario: Scenario, window_s: float) -> float:
    """The most mobile logins any ``window_s`` of the stretched run can hold."""
    spans, t = [], 0.0
    for stage in scenario.load.stages:
        spans.append((t, t + stage.duration_s, _mobile_logins_per_s(scenario, stage)))
        t += stage.duration_s
    starts = {max(0.0, min(b - d, t - window_s)) for b, _, _ in spans for d in (0.0, window_s)}
    return max(
        sum(rate * max(0.0, min(end, s + window_s) - max(begin, s)) for begin, end, rate in spans)
        for s in starts
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_stay_under_the_mocks_session_cap_for_any_duration(path: Path) -> None:
    """Live mobile sessions per account = logins per account within a session's life (its
    use: the sms refreshes, then its lifetime; storms extend the sessions they refresh):
    below the cap, so the mock never evicts. Gigma sessions end with the journey's logout."""
    scenario = load_scenario(path).with_duration(STRETCHED_S)
    if scenario.target != "mock":
        pytest.skip("not run on the mock")
    settings = load_settings(**scenario.mock.settings)
    assert scenario.accounts.offset + scenario.accounts.count <= settings.population
    sms = scenario.flows.sms
    use_s = sms.refreshes[1] * _long_s(sms.refresh_every) if "sms" in scenario.mix else 0.0
    storms = sum(e.sessions for e in scenario.events if isinstance(e, RefreshStorm))
    logins = _most_in_window(scenario, use_s + settings.refresh_ttl_s) + storms
    per_account = logins / scenario.accounts.count
    assert per_account <= settings.max_sessions_per_account, (
        f"up to {per_account:.1f} live mobile sessions per account: give the scenario more "
        f"accounts or a shorter mock.settings.refresh_ttl_s"
    )


def test_the_stands_mocks_end_abandoned_sessions_as_the_soak_scenarios_do() -> None:
    """docker-compose and Kubernetes run a mock of their own for release-gate and soak (the
    scenarios' mock.settings do not reach it): the same mobile session lifetime."""
    lifetimes = {
        load_scenario(REPO / "scenarios" / f"{name}.yaml").mock.settings["refresh_ttl_s"]
        for name in ("release-gate", "soak")
    }
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    k8s = yaml.safe_load_all((REPO / "deploy" / "k8s" / "mock.yaml").read_text(encoding="utf-8"))
    deployment = next(d for d in k8s if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    stands = {
        float(compose["services"]["mock"]["environment"]["AUTHLOAD_MOCK_REFRESH_TTL_S"]),
        *(
            float(e["value"])
            for e in container["env"]
            if e["name"] == "AUTHLOAD_MOCK_REFRESH_TTL_S"
        ),
    }
    assert lifetimes == stands == {900.0}


def test_codes_and_rate_limit_windows_are_held_only_while_they_last() -> None:
    """An SMS a second to 5000 phones in turn, for 4 hours: 300 live codes (300 s each)
    and 600 open rate-limit windows (600 s), not a code and a window per phone ever used."""
    clock = _Clock()
    store = MemoryStore(clock)

    async def soak() -> list[dict[str, int]]:
        held = []
        for second in range(4 * 3600):
            clock.now = float(second)
            key = f"sms:{second % 5000}"
            await store.hit(key, 600)
            await store.put_code(key, "1234", "", ttl=300, max_attempts=5)
            if second % 600 == 599:
                held.append({"codes": len(store._codes), "windows": len(store._hits[600])})
        return held

    assert asyncio.run(soak()) == [{"codes": 300, "windows": 600}] * 24
