"""Safety of shared environments: a mock target must really be one mock, the send_password
budget and the request-rate ceiling hold at run time over every process, and a target's abort
level cannot be made unreachable. Runs go only to mocks on 127.0.0.1; a mock with
``mock: false`` in a targets file plays a shared stand, and its own counters prove the limits
held. Code that imports Locust runs in a fresh interpreter (``child_*``)."""

from __future__ import annotations

import contextlib
import itertools
import random
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authload.errors import TargetError
from authload.load.config import RunConfig, RunLimits
from authload.load.run_limits import (
    BUDGET_SPENT,
    LimitRefused,
    RateCeiling,
    RequestLimits,
    budget_share,
    process_limits,
)
from authload.mock.server import EmbeddedMock
from authload.run.sessions import session_for
from authload.run.targets import (
    Limits,
    Target,
    load_targets,
    resolve_target,
    run_limits,
    within_limits,
)
from authload.scenario.loader import parse_scenario
from authload.scenario.model import Abort, Scenario
from tests.helpers import locust_child
from tests.helpers.runs import REPO, Run, run_scenario

# ---------------------------------------------------------------------------------------------
# 1: a mock target is one mock: its APIs on the origin of its control


def _targets(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            "gigma_url: https://beta.api.gigma.ru\n  mobile_url: http://127.0.0.1:9\n"
            "  mock_url: http://127.0.0.1:9",
            "gigma_url",
        ),
        ("gigma_url: http://127.0.0.1:9\n  mobile_url: http://127.0.0.1:10", "mobile_url"),
        ("gigma_url: http://127.0.0.1:9\n  mobile_url: https://127.0.0.1:9", "mobile_url"),
        ("gigma_url: http://127.0.0.1:9\n  mobile_url: http://localhost:9", "mobile_url"),
        (
            "gigma_url: http://127.0.0.1:80\n  mobile_url: http://127.0.0.1\n"
            "  mock_url: http://127.0.0.1:8080",
            "gigma_url",
        ),
        ("gigma_url: http://127.0.0.1:9\n  mobile_url: http://127.0.0.1:9\n  mock_url: x", ""),
    ],
)
def test_a_mock_target_pointing_elsewhere_is_refused_naming_file_target_and_field(
    tmp_path: Path, body: str, field: str
) -> None:
    path = _targets(tmp_path, f"sneaky:\n  mock: true\n  {body}\n")
    with pytest.raises(TargetError) as raised:
        load_targets(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: target sneaky: {field}"), message


def test_a_mock_target_with_its_mobile_url_from_the_environment_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _targets(
        tmp_path,
        "m:\n  mock: true\n  gigma_url: http://127.0.0.1:9\n  mobile_url_env: SAFETY_MOBILE\n",
    )
    monkeypatch.setenv("SAFETY_MOBILE", "https://beta.example.invalid")
    with pytest.raises(TargetError, match=r"target m: mobile_url \(\$SAFETY_MOBILE\)"):
        load_targets(path)
    monkeypatch.setenv("SAFETY_MOBILE", "http://127.0.0.1:9/")
    assert load_targets(path)["m"].urls() == ("http://127.0.0.1:9", "http://127.0.0.1:9")


def test_mocks_on_one_origin_load_and_shared_stands_are_not_concerned(tmp_path: Path) -> None:
    path = _targets(
        tmp_path,
        "one:\n  mock: true\n  gigma_url: http://127.0.0.1:9/\n  mobile_url: HTTP://127.0.0.1:9\n"
        "  mock_url: http://127.0.0.1:9/_mock\n"
        "tls:\n  mock: true\n  gigma_url: https://m.local\n  mobile_url: https://m.local:443\n"
        "stand:\n  gigma_url: http://127.0.0.1:9\n  mobile_url: http://127.0.0.1:10\n",
    )
    assert {"one", "tls", "stand"} <= set(load_targets(path))
    shipped = load_targets(REPO / "deploy" / "targets.yaml")
    assert shipped["compose-mock"].mock and shipped["k8s-mock"].mock


# ---------------------------------------------------------------------------------------------
# 2 and 3: the limits, their shares, stated before a run, carried to every process


def _scenario(text: str = "") -> Scenario:
    base = "name: beta-smoke\nmix: {password_call: 1}\n"
    base += "load: {stages: [{duration_s: 30, users: 2}]}\n"
    return parse_scenario(base + text, "s.yaml")


def test_beta_has_a_send_password_budget_and_a_rate_ceiling_stated_before_a_run() -> None:
    beta = resolve_target("beta")
    assert beta.limits.send_password_budget == 10
    assert beta.limits.max_request_rate == 20
    stated = session_for(beta).safety(_scenario(), confirmed=True)
    assert "send_password_budget=10" in stated
    assert "max_request_rate=20.0" in stated
    assert run_limits(beta) == RunLimits(10, 20.0)
    mock = Target(name="m", mock=True, limits=Limits(max_request_rate=5, max_users=1))
    assert session_for(mock).safety(_scenario(), confirmed=False) == ["max_request_rate=5.0"]
    assert session_for(resolve_target("mock")).safety(_scenario(), confirmed=False) == []


def test_limits_in_a_targets_file_are_checked(tmp_path: Path) -> None:
    path = _targets(tmp_path, "s:\n  gigma_url: http://x\n  limits: {send_password_budget: -1}\n")
    with pytest.raises(TargetError, match=r"s\.limits\.send_password_budget"):
        load_targets(path)
    path = _targets(tmp_path, "s:\n  gigma_url: http://x\n  limits: {max_request_rate: 0}\n")
    with pytest.raises(TargetError, match=r"s\.limits\.max_request_rate"):
        load_targets(path)


def test_mock_targets_have_no_limits_in_the_client_path() -> None:
    assert run_limits(resolve_target("mock")) == RunLimits()
    assert process_limits(RunLimits()) is None
    assert process_limits(RunLimits(max_request_rate=5.0)) is not None


def test_the_limits_reach_local_and_remote_processes() -> None:
    scenario = _scenario()
    config = RunConfig(scenario, Path("r"), "stand", "http://g", "http://m", None, 3)
    config.limits = RunLimits(7, 12.5)
    assert RunConfig.from_json(config.to_json()).limits == RunLimits(7, 12.5)
    assert RunConfig.from_wire(config.to_wire(), {}).limits == RunLimits(7, 12.5)
    older = {k: v for k, v in config.to_wire().items() if k != "limits"}
    assert RunConfig.from_wire(older, {}).limits == RunLimits()


def test_budget_shares_add_up_with_the_remainder_to_the_lowest_indexes() -> None:
    assert [budget_share(10, i, 4) for i in range(4)] == [3, 3, 2, 2]
    assert [budget_share(2, i, 3) for i in range(3)] == [1, 1, 0]
    for budget in range(0, 40):
        for processes in range(1, 9):
            assert sum(budget_share(budget, i, processes) for i in range(processes)) == budget
    assert budget_share(10, 4, 4) == 0, "a process beyond those expected gets nothing"


def test_a_process_refuses_send_password_once_its_share_is_spent() -> None:
    limits = RequestLimits(RunLimits(send_password_budget=5), index=1, processes=2)
    for _ in range(2):
        limits.pace("gigma.send_password")
        limits.spend("gigma.send_password")
    limits.pace("gigma.login")  # other endpoints are not counted
    limits.spend("gigma.login")
    with pytest.raises(LimitRefused) as refused:
        limits.pace("gigma.send_password")
    assert refused.value.outcome == BUDGET_SPENT
    with pytest.raises(LimitRefused):
        limits.spend("gigma.send_password")
    report = limits.report()["send_password_budget"]
    assert (report["share"], report["used"], report["refused"]) == (2, 2, 2)


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_rate_ceiling_spaces_attempts_and_counts_the_waits() -> None:
    fake = FakeTime()
    ceiling = RateCeiling(4.0, clock=fake.clock, sleep=fake.sleep)
    sent = []
    rng = random.Random(1)
    for _ in range(200):
        fake.now += rng.choice((0.0, 0.0, 0.01, 0.5))  # bursts and pauses
        ceiling.wait()
        sent.append(fake.now)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.25 - 1e-9, "never faster than the ceiling"
    first = sent[0] - 0.25  # the bucket starts empty
    for i, t in enumerate(sent):
        assert i + 1 <= 4.0 * (t - first) + 1e-6
    assert ceiling.waited > 0 and ceiling.longest_wait_s == pytest.approx(max(fake.slept))


def test_a_shared_target_abort_cannot_be_made_unreachable() -> None:
    beta = resolve_target("beta")
    lax = _scenario("abort: {error_rate: 0.1, window_s: 1000000, min_requests: 1000000000}\n")
    abort = within_limits(lax, beta).abort
    assert abort is not None
    default = Abort()
    assert abort.error_rate == 0.1, "a stricter level of the scenario stays"
    assert (abort.window_s, abort.min_requests) == (default.window_s, default.min_requests)
    loose = _scenario("abort: {error_rate: 0.9, window_s: 1000000, min_requests: 1000000000}\n")
    assert within_limits(loose, beta).abort == Abort(
        error_rate=0.2, window_s=default.window_s, min_requests=default.min_requests
    )
    never = _scenario("abort: null\n")
    assert within_limits(never, beta).abort == Abort(error_rate=0.2)
    strict = _scenario("abort: {error_rate: 0.05, window_s: 3, min_requests: 5}\n")
    assert within_limits(strict, beta).abort == strict.abort
    mock = resolve_target("mock")
    assert within_limits(lax, mock).abort == lax.abort


# ---------------------------------------------------------------------------------------------
# the client path: every attempt, retries included (in a fresh interpreter: Locust)


class _Wire:
    """Answers every request 503: the policy retries. Counts what was sent, per endpoint."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def send(self, method: str, base: str, path: str, body: Any, headers: Any) -> Any:
        from authload.contracts import ENDPOINTS
        from authload.load.wire import Reply, Sent

        name = next(n for n, e in ENDPOINTS.items() if (e.method, e.path) == (method, path))
        self.sent[name] += 1
        return Sent(Reply(503), 0.0, 1.0)


def child_every_attempt_takes_a_unit_and_the_journey_ends_with_its_outcome() -> None:
    from locust.event import EventHook

    from authload.load.clients import AuthClient, FlowContext, TargetAccess
    from authload.load.config import TestAccount
    from authload.load.flows import Journey, SharedState, run_journey
    from authload.load.retry import CallError, RetryPolicy
    from authload.scenario.model import Retry

    scenario = _scenario("retry: {policy: immediate, max_attempts: 3}\n")
    limits = RequestLimits(RunLimits(send_password_budget=4))
    wire = _Wire()
    access = TargetAccess("http://127.0.0.1:9", "http://127.0.0.1:9", "t", "s")
    policy = RetryPolicy(Retry(policy="immediate", max_attempts=3))
    client = AuthClient(wire, EventHook(), access, policy, limits=limits)  # type: ignore[arg-type]
    ctx = FlowContext("password_call", "w0-1")
    with contextlib.suppress(CallError):
        client.call("gigma.send_password", ctx, {"phone": "79990000001"})
    assert wire.sent["gigma.send_password"] == 3, "three attempts, three units"
    state = SharedState()
    account = TestAccount("79990000001", call_password="1111")
    journey = Journey(client, None, account, scenario, state, ctx, random.Random(1), "s")  # type: ignore[arg-type]
    assert run_journey("password_call", journey) == BUDGET_SPENT  # 1 sent, then refused
    assert wire.sent["gigma.send_password"] == 4
    assert run_journey("password_call", journey) == BUDGET_SPENT  # nothing sent at all
    assert wire.sent["gigma.send_password"] == 4
    assert state.outcomes == Counter({f"password_call:{BUDGET_SPENT}": 2})
    assert limits.report()["send_password_budget"]["used"] == 4


def test_every_attempt_takes_a_unit_and_the_journey_ends_with_its_outcome() -> None:
    result = locust_child.run_child(
        __name__, "child_every_attempt_takes_a_unit_and_the_journey_ends_with_its_outcome"
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# end to end: a stand (a mock on 127.0.0.1 with mock: false) proves the limits held


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    profile = tmp_path_factory.mktemp("stand") / "profile.yaml"
    profile.write_text("{}\n", encoding="utf-8")
    with EmbeddedMock(args=("--behaviour", str(profile))) as mock:
        with httpx.Client(base_url=mock.url, timeout=10) as client:
            accounts = client.get("/_mock/accounts", params={"limit": 8}).json()["accounts"]
        yield mock.url, accounts


def _stand_run(
    tmp_path: Path, stand: tuple[str, list[dict[str, Any]]], limits: str, scenario: str, s: float
) -> tuple[Run, dict[str, Any]]:
    url, accounts = stand
    httpx.post(url + "/_mock/reset").raise_for_status()
    before = httpx.get(url + "/_mock/stats").json()
    env = {f"STAND_LKFL_{i}": a["lkfl_password"] for i, a in enumerate(accounts)}
    lines = "".join(
        f'    - {{phone: "{a["phone"]}", inn: "{a["inn"]}", lkfl_password_env: STAND_LKFL_{i}, '
        f'call_password: "1111"}}\n'
        for i, a in enumerate(accounts)
    )
    targets = _targets(
        tmp_path,
        f"stand:\n  mock: false\n  gigma_url: {url}\n  mobile_url: {url}\n"
        f"  limits: {limits}\n  accounts:\n{lines}",
    )
    env |= {"AUTHLOAD_APP_TOKEN": "mock-app-token", "AUTHLOAD_CLIENT_SECRET": "mock-client-secret"}
    run = run_scenario(
        tmp_path,
        scenario,
        "--target", "stand", "--targets", targets, "--confirm", "--processes", "2",
        env=env, load_s=s,
    )  # fmt: skip
    after = httpx.get(url + "/_mock/stats").json()
    counts = {
        name: sum(after["requests"][name].values())
        - sum(before.get("requests", {}).get(name, {}).values())
        for name in after["requests"]
    }
    return run, counts


BUDGET_SCENARIO = f"""
name: budget-{secrets.token_hex(3)}
mix: {{password_call: 1}}
load:
  model: closed
  stages: [{{duration_s: 5, users: 4, spawn_rate: 20}}]
think_time: {{dist: fixed, ms: 50}}
flows:
  password_call: {{devices: {{1: 1.0}}, session: {{dist: fixed, ms: 50}}}}
retry: {{policy: none}}
"""


@pytest.mark.integration
def test_the_send_password_budget_holds_over_processes(
    tmp_path: Path, stand: tuple[str, list[dict[str, Any]]]
) -> None:
    run, counts = _stand_run(tmp_path, stand, "{send_password_budget: 5}", BUDGET_SCENARIO, 5)
    assert run.code == 0, run.describe()
    assert "send_password_budget=5" in run.output, "stated before the run"
    assert counts["gigma.send_password"] == 5, counts  # the stand's own counter
    records = run.records
    assert (records["endpoint"] == "gigma.send_password").sum() == 5
    assert run.outcomes[f"password_call:{BUDGET_SPENT}"] > 0
    reports = sorted((e for e in run.events if e["kind"] == "limits"), key=lambda e: e["index"])
    budgets = [
        (e["send_password_budget"]["share"], e["send_password_budget"]["used"]) for e in reports
    ]
    assert budgets == [(3, 3), (2, 2)]
    used = run.summary["limits"]["send_password_budget"]
    assert (used["used"], used["shares"]) == (5, 5) and used["refused"] > 0
    assert "send_password budget: used 5 of 5" in run.output


CEILING_SCENARIO = f"""
name: ceiling-{secrets.token_hex(3)}
mix: {{lkfl: 1}}
load:
  model: closed
  stages: [{{duration_s: 4, users: 6, spawn_rate: 30}}]
think_time: {{dist: fixed, ms: 0}}
flows:
  lkfl: {{wrong_password_share: 0.3}}
retry: {{policy: immediate, max_attempts: 3}}
"""
CEILING = 10.0
WAKE_LATENESS_S = 0.05  # how late a sleep may return on a loaded 2-core machine


@pytest.mark.integration
def test_the_request_rate_ceiling_holds_over_processes_and_says_it_throttled(
    tmp_path: Path, stand: tuple[str, list[dict[str, Any]]]
) -> None:
    run, counts = _stand_run(
        tmp_path, stand, f"{{max_request_rate: {CEILING:g}}}", CEILING_SCENARIO, 4
    )
    assert run.code == 0, run.describe()
    total = sum(counts.values())
    times = sorted(run.records["t"])
    assert total == len(times) > 20, counts
    # Each process sends on slots 1/5 s apart, so total <= 10 x (slots' span) + 2 (one first
    # slot each). The records time an attempt when its sleep returns: a first attempt woken
    # late on a busy machine makes the recorded span shorter than the slots' by that lateness.
    span = times[-1] - times[0] + WAKE_LATENESS_S
    assert (total - 2) / span <= CEILING, (total, span)
    for i, t in enumerate(times):  # any one-second window
        window = sum(1 for u in times[i:] if u < t + 1.0)
        assert window <= CEILING + 2, (t, window)
    ceiling = run.summary["limits"]["max_request_rate"]
    assert ceiling["rate_per_s"] == CEILING
    assert ceiling["waited"] > 0 and ceiling["longest_wait_s"] > 0
    assert "max_request_rate 10/s:" in run.output and "requests waited" in run.output
