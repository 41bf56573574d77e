"""Retry policies against scripted failures, with a fake sleep and a fake clock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
import tenacity

from authload.load import retry
from authload.load.retry import (
    AdaptiveThrottle,
    CallError,
    RetryBudget,
    RetryPolicy,
    Throttled,
)
from authload.scenario.model import Retry

OK = "ok"
E503 = CallError("http", 503)


def nosleep(seconds: float) -> None:
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FixedRandom(random.Random):
    """random() always returns ``value``: rejects exactly when the probability exceeds it."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class Script:
    """The attempt callable: plays ``outcomes`` in order (raise a CallError, else return)."""

    def __init__(self, *outcomes: CallError | str) -> None:
        self.outcomes = list(outcomes)
        self.numbers: list[int] = []

    def __call__(self, number: int) -> str:
        self.numbers.append(number)
        outcome = self.outcomes[min(number, len(self.outcomes)) - 1]
        if isinstance(outcome, CallError):
            raise outcome
        return outcome


def make(
    policy: str, sleeps: list[float] | None = None, seed: int = 1, **spec: float
) -> RetryPolicy:
    return RetryPolicy(
        Retry(policy=policy, **spec),
        budget=RetryBudget(),
        throttle=AdaptiveThrottle(),
        rng=random.Random(seed),
        sleep=(sleeps if sleeps is not None else []).append,
    )


def test_public_api() -> None:
    assert set(retry.__all__) == {
        "RETRY_AFTER_MAX_S",
        "AdaptiveThrottle",
        "CallError",
        "RetryBudget",
        "RetryPolicy",
        "RetryStats",
        "Throttled",
        "stop_when_budget_spent",
        "wait_full_jitter",
        "wait_retry_after",
    }


@pytest.mark.parametrize(
    ("kind", "status", "retryable", "overload"),
    [
        ("timeout", 0, True, True),
        ("connect", 0, True, True),
        ("reset", 0, True, True),
        ("http", 429, True, True),
        ("http", 500, True, False),
        ("http", 502, True, False),
        ("http", 503, True, True),
        ("http", 504, True, False),
        ("http", 400, False, False),
        ("http", 401, False, False),
        ("http", 404, False, False),
        ("http", 409, False, False),
        ("http", 501, False, False),
        ("http", 505, False, False),
        ("contract", 200, False, False),
        ("contract", 503, False, False),
    ],
)
def test_call_error_classes(kind: str, status: int, retryable: bool, overload: bool) -> None:
    error = CallError(kind, status)
    assert (error.retryable, error.overload) == (retryable, overload)


def test_policy_is_a_tenacity_retrying_sleeping_through_time_sleep() -> None:
    policy = RetryPolicy(Retry(policy="backoff"))
    assert isinstance(policy.retrying, tenacity.Retrying)
    assert policy.retrying.reraise
    import time

    assert policy.retrying.sleep is time.sleep


def test_none_makes_one_attempt() -> None:
    sleeps: list[float] = []
    policy = make("none", sleeps, max_attempts=5)
    script = Script(CallError("http", 503, 2.0), OK)
    with pytest.raises(CallError) as caught:
        policy.run(script)
    assert caught.value is script.outcomes[0]
    assert script.numbers == [1]
    assert sleeps == []
    assert (policy.stats.runs, policy.stats.attempts, policy.stats.retries) == (1, 1, 0)
    assert policy.stats.failed == 1


def test_immediate_retries_without_waiting() -> None:
    sleeps: list[float] = []
    policy = make("immediate", sleeps, max_attempts=3)
    assert policy.run(Script(E503, CallError("timeout"), OK)) == OK
    assert sleeps == [0, 0]
    assert (policy.stats.attempts, policy.stats.retries, policy.stats.failed) == (3, 2, 0)


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    sleeps: list[float] = []
    policy = make("immediate", sleeps, max_attempts=3)
    last = CallError("reset")
    script = Script(E503, CallError("http", 500), last, OK)
    with pytest.raises(CallError) as caught:
        policy.run(script)
    assert caught.value is last
    assert script.numbers == [1, 2, 3]
    assert sleeps == [0, 0]


@pytest.mark.parametrize("policy", ["immediate", "backoff", "retry_after", "budget", "adaptive"])
@pytest.mark.parametrize(
    "error", [CallError("http", 400), CallError("http", 404), CallError("contract", 200)]
)
def test_non_retryable_errors_are_not_retried(policy: str, error: CallError) -> None:
    sleeps: list[float] = []
    retry_policy = make(policy, sleeps, max_attempts=5)
    script = Script(error, OK)
    with pytest.raises(CallError) as caught:
        retry_policy.run(script)
    assert caught.value is error
    assert script.numbers == [1]
    assert sleeps == []


def backoff_sleeps(runs: int, attempts: int, base_ms: float, cap_ms: float) -> list[list[float]]:
    rng = random.Random(7)
    result = []
    for _ in range(runs):
        sleeps: list[float] = []
        policy = RetryPolicy(
            Retry(policy="backoff", max_attempts=attempts, base_ms=base_ms, cap_ms=cap_ms),
            rng=rng,
            sleep=sleeps.append,
        )
        script = Script(E503)
        with pytest.raises(CallError):
            policy.run(script)
        assert script.numbers == list(range(1, attempts + 1))
        result.append(sleeps)
    return result


def test_backoff_is_full_jitter_exponential_under_the_cap() -> None:
    bounds = [0.1, 0.2, 0.25, 0.25, 0.25]  # min(cap, base * 2 ** (n - 1))
    runs = backoff_sleeps(300, 6, base_ms=100, cap_ms=250)
    for sleeps in runs:
        assert len(sleeps) == 5
        for wait, bound in zip(sleeps, bounds, strict=True):
            assert 0 <= wait <= bound
    for n, bound in enumerate(bounds):
        column = [sleeps[n] for sleeps in runs]
        assert len(set(column)) == len(column)  # jittered, not fixed
        assert min(column) < 0.1 * bound and max(column) > 0.9 * bound  # the whole range
        assert abs(sum(column) / len(column) - bound / 2) < 0.1 * bound  # uniform: mean ~ b/2


def test_backoff_replays_with_the_same_seed() -> None:
    first: list[float] = []
    second: list[float] = []
    for sleeps in (first, second):
        policy = make("backoff", sleeps, seed=42, max_attempts=4)
        with pytest.raises(CallError):
            policy.run(Script(E503))
    assert first == second and len(first) == 3


def test_backoff_with_zero_base_does_not_wait() -> None:
    sleeps: list[float] = []
    policy = make("backoff", sleeps, max_attempts=3, base_ms=0)
    assert policy.run(Script(E503, E503, OK)) == OK
    assert sleeps == [0, 0]


def test_retry_after_waits_what_the_server_asks() -> None:
    sleeps: list[float] = []
    policy = make("retry_after", sleeps, max_attempts=3)
    script = Script(CallError("http", 503, 2.0), OK)
    assert policy.run(script) == OK
    assert script.numbers == [1, 2]
    assert sleeps == [2.0]


def test_retry_after_falls_back_to_backoff_and_caps_the_header() -> None:
    sleeps: list[float] = []
    policy = make("retry_after", sleeps, max_attempts=5, base_ms=100, cap_ms=5000)
    script = Script(
        CallError("http", 429, 0.5),
        E503,
        CallError("http", 503, 10.0),
        CallError("http", 503, 3600.0),
        OK,
    )
    assert policy.run(script) == OK
    assert sleeps[0] == 0.5
    assert 0 <= sleeps[1] <= 0.2  # no header after attempt 2: backoff bound 0.1 * 2
    assert sleeps[2] == 10.0  # honoured above cap_ms (5 s)
    assert sleeps[3] == retry.RETRY_AFTER_MAX_S == 60.0
    assert len(sleeps) == 4


def test_retry_after_on_a_non_retryable_answer_is_ignored() -> None:
    sleeps: list[float] = []
    policy = make("retry_after", sleeps, max_attempts=3)
    script = Script(CallError("http", 400, 1.0), OK)
    with pytest.raises(CallError):
        policy.run(script)
    assert script.numbers == [1] and sleeps == []


def test_budget_limits_retries_to_the_ratio_of_requests() -> None:
    budget = RetryBudget(0.1, clock=Clock())
    sleeps: list[float] = []
    policy = RetryPolicy(
        Retry(policy="budget", max_attempts=5),
        budget=budget,
        rng=random.Random(3),
        sleep=sleeps.append,
    )
    for _ in range(1000):
        with pytest.raises(CallError):
            policy.run(Script(E503))
    assert budget.requests == 1000
    assert budget.retries == policy.stats.retries == len(sleeps) == 100
    assert policy.stats.attempts == 1100
    assert policy.stats.failed == 1000


def test_budget_caps_attempts_at_three_and_spends_only_on_real_retries() -> None:
    budget = RetryBudget(1.0, clock=Clock())
    for _ in range(10):
        budget.on_request()
    policy = RetryPolicy(
        Retry(policy="budget", max_attempts=10), budget=budget, rng=random.Random(3), sleep=nosleep
    )
    script = Script(E503)
    with pytest.raises(CallError):
        policy.run(script)
    assert script.numbers == [1, 2, 3]
    assert budget.retries == 2  # the third failure ends the call without a retry
    assert budget.denied == 0


def test_budget_retries_when_allowed() -> None:
    budget = RetryBudget(0.5, clock=Clock())
    policy = RetryPolicy(Retry(policy="budget"), budget=budget, sleep=nosleep)
    budget.on_request()  # 2 requests with this call's own: one retry is within 0.5
    script = Script(E503, OK)
    assert policy.run(script) == OK
    assert script.numbers == [1, 2]
    assert (budget.requests, budget.retries) == (2, 1)


def test_budget_window_slides() -> None:
    clock = Clock()
    budget = RetryBudget(0.1, window_s=60, clock=clock)
    for _ in range(10):
        budget.on_request()
    assert budget.try_retry()
    assert not budget.try_retry()
    clock.now += 59.5
    assert not budget.try_retry()
    assert (budget.requests, budget.retries) == (10, 1)
    clock.now += 0.5  # the first bucket is now 60 s old
    assert (budget.requests, budget.retries) == (0, 0)
    assert not budget.try_retry()
    for _ in range(10):
        budget.on_request()
    assert budget.try_retry()
    assert budget.denied == 3
    clock.now += 10_000  # a long gap empties every bucket
    assert (budget.requests, budget.retries) == (0, 0)


def test_policies_that_need_shared_state_refuse_to_run_without_it() -> None:
    with pytest.raises(ValueError, match="RetryBudget"):
        RetryPolicy(Retry(policy="budget"))
    with pytest.raises(ValueError, match="AdaptiveThrottle"):
        RetryPolicy(Retry(policy="adaptive"))


def test_throttle_probability_is_exact() -> None:
    throttle = AdaptiveThrottle(2.0, clock=Clock())
    assert throttle.reject_probability() == 0.0
    never = FixedRandom(0.999)
    for _ in range(10):
        assert not throttle.should_reject(never)
        throttle.record(False)  # sent, answered with an overload
    assert throttle.reject_probability() == pytest.approx(10 / 11)
    for _ in range(3):
        assert not throttle.should_reject(never)
        throttle.record(True)
    assert throttle.reject_probability() == pytest.approx((13 - 6) / 14)
    assert throttle.should_reject(FixedRandom(7 / 14 - 1e-9))  # rejected: a request at once
    assert (throttle.requests, throttle.accepts, throttle.rejected) == (14, 3, 1)
    assert not throttle.should_reject(FixedRandom((14 - 6) / 15 + 1e-9))
    assert throttle.requests == 14, "sent, not answered yet: not counted"
    throttle.record(True)
    assert (throttle.requests, throttle.accepts) == (15, 4)


def test_throttle_does_not_reject_the_first_burst_before_any_answer() -> None:
    """64 users send at once: none is answered yet, so none can be judged rejected."""
    throttle = AdaptiveThrottle(2.0, clock=Clock())
    rng = random.Random(3)
    assert not any(throttle.should_reject(rng) for _ in range(64))
    for _ in range(64):
        throttle.record(True)
    assert throttle.reject_probability() == 0.0


def test_throttle_never_rejects_when_everything_is_accepted() -> None:
    throttle = AdaptiveThrottle(1.0, clock=Clock())  # the strictest k
    policy = RetryPolicy(
        Retry(policy="adaptive"), throttle=throttle, rng=FixedRandom(0.0), sleep=nosleep
    )
    for _ in range(1000):
        assert policy.run(Script(OK)) == OK
    assert throttle.rejected == policy.stats.throttled == 0
    assert (throttle.requests, throttle.accepts) == (1000, 1000)


def test_throttle_rejection_rate_follows_the_formula_under_503s() -> None:
    k = 2.0
    throttle = AdaptiveThrottle(k, clock=Clock())
    policy = RetryPolicy(
        Retry(policy="adaptive", max_attempts=1),
        throttle=throttle,
        rng=random.Random(11),
        sleep=nosleep,
    )
    for _ in range(100):
        policy.run(Script(OK))
    expected: list[float] = []
    outcomes: list[bool] = []
    for i in range(2000):
        requests = 100 + i  # 503s and rejections add requests, never accepts
        expected.append(max(0.0, (requests - k * 100) / (requests + 1)))
        with pytest.raises((CallError, Throttled)) as caught:
            policy.run(Script(E503))
        outcomes.append(isinstance(caught.value, Throttled))
    assert not any(outcomes[:101])  # p = 0 until requests exceed k * accepts
    assert throttle.accepts == 100 and throttle.requests == 2100
    sd = math.sqrt(sum(p * (1 - p) for p in expected))
    assert abs(sum(outcomes) - sum(expected)) < 4 * sd
    tail = slice(-500, None)
    rate, promised = sum(outcomes[tail]) / 500, sum(expected[tail]) / 500
    assert abs(rate - promised) < 0.05
    assert 0.85 < promised < 0.9
    assert policy.stats.throttled == throttle.rejected == sum(outcomes)


def test_throttle_gates_every_attempt_and_records_each_answer() -> None:
    throttle = AdaptiveThrottle(2.0, clock=Clock())
    sleeps: list[float] = []
    policy = RetryPolicy(
        Retry(policy="adaptive", max_attempts=5),
        throttle=throttle,
        rng=FixedRandom(0.0),
        sleep=sleeps.append,
    )
    script = Script(E503, OK)
    with pytest.raises(Throttled) as caught:  # the retry sees p = 1/2 and rng 0.0
        policy.run(script)
    assert caught.value.attempt == 2
    assert script.numbers == [1]
    assert len(sleeps) == 1  # the wait before the rejected retry
    assert (throttle.requests, throttle.accepts, throttle.rejected) == (2, 0, 1)
    assert (policy.stats.attempts, policy.stats.retries, policy.stats.throttled) == (1, 0, 1)


def test_throttle_counts_non_overload_errors_as_accepts() -> None:
    throttle = AdaptiveThrottle(2.0, clock=Clock())
    policy = RetryPolicy(
        Retry(policy="adaptive", max_attempts=3),
        throttle=throttle,
        rng=FixedRandom(0.999),
        sleep=nosleep,
    )
    assert policy.run(Script(CallError("http", 500), OK)) == OK
    with pytest.raises(CallError):
        policy.run(Script(CallError("http", 400)))
    with pytest.raises(CallError):
        policy.run(Script(CallError("timeout"), CallError("http", 429), E503))
    assert (throttle.requests, throttle.accepts) == (6, 3)


def test_throttle_window_slides() -> None:
    clock = Clock()
    throttle = AdaptiveThrottle(2.0, window_s=120, clock=clock)
    never = FixedRandom(0.999)
    for _ in range(10):
        throttle.record(False)
    clock.now += 60
    for _ in range(10):
        throttle.should_reject(never)
        throttle.record(True)
    assert throttle.reject_probability() == 0.0  # 20 - 2 * 10 <= 0
    clock.now += 60  # the first 10 requests expire, the accepted ones stay
    assert (throttle.requests, throttle.accepts) == (10, 10)
    for _ in range(30):
        throttle.record(False)
    assert throttle.reject_probability() == pytest.approx((40 - 20) / 41)
    clock.now += 119.5
    assert throttle.requests == 30
    clock.now += 0.5
    assert throttle.reject_probability() == 0.0
    assert (throttle.requests, throttle.accepts) == (0, 0)


def test_attempt_numbers_reach_the_callable() -> None:
    seen: list[int] = []

    def attempt(number: int) -> int:
        seen.append(number)
        if number < 4:
            raise CallError("connect")
        return number

    policy = make("immediate", max_attempts=4)
    run: Callable[[Callable[[int], int]], int] = policy.run
    assert run(attempt) == 4
    assert seen == [1, 2, 3, 4]
