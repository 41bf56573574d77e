"""Client retry policies: tenacity ``Retrying`` objects built from the scenario's ``retry``.

Every policy is one ``tenacity.Retrying`` composed from tenacity strategies; the pieces
tenacity lacks are written as tenacity strategies too (``wait_full_jitter``,
``wait_retry_after``, ``stop_when_budget_spent``), so they compose with ``+``, ``|`` and ``&``.

=============  ==========================================================================
policy         behaviour (``stop`` counts attempts, the first one included)
=============  ==========================================================================
none           one attempt, never retried
immediate      up to ``max_attempts``, no wait between attempts
backoff        up to ``max_attempts``, full-jitter exponential wait:
               uniform(0, min(cap_ms, base_ms * 2 ** (n - 1))) after failed attempt n
retry_after    as backoff, but waits the server's ``Retry-After`` when it sends one,
               honoured in full (also above ``cap_ms``) up to ``RETRY_AFTER_MAX_S``
budget         as backoff, at most min(max_attempts, 3) attempts, and each retry must be
               granted by the process's shared ``RetryBudget``
adaptive       as backoff, and every attempt (retries included) first passes the process's
               shared ``AdaptiveThrottle``, which may reject it locally (``Throttled``)
=============  ==========================================================================

Only retryable ``CallError`` s are retried (timeouts, connection failures and resets, HTTP
429, 500, 502, 503, 504); other errors, ``Throttled`` included, end the call at once, and
``run`` re-raises the last error itself (``reraise=True``).

The shared state (``RetryBudget``, ``AdaptiveThrottle``) is one object per process for all
users. It runs under gevent: greenlets only switch at I/O or sleep, never inside these
methods, so no locks are needed; nothing here starts threads, and waiting goes through the
injected ``sleep`` (``time.sleep``, which gevent patches).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_none
from tenacity.stop import stop_base
from tenacity.wait import wait_base

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from authload.scenario.model import Retry

__all__ = [
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
]

T = TypeVar("T")
Clock = Callable[[], float]

RETRY_AFTER_MAX_S = 60.0
"""The longest ``Retry-After`` honoured; a longer one waits this long (a broken or hostile
header must not park a virtual user for the rest of the run)."""
BUDGET_MAX_ATTEMPTS = 3
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
OVERLOAD_STATUSES = frozenset({429, 503})
NO_ANSWER_KINDS = frozenset({"timeout", "connect", "reset"})


class CallError(Exception):
    """One failed attempt: ``kind`` is timeout, connect, reset, http or contract; ``status``
    the HTTP status (0 without an answer); ``retry_after_s`` the Retry-After header."""

    def __init__(self, kind: str, status: int = 0, retry_after_s: float | None = None) -> None:
        super().__init__(f"{kind} (status {status})")
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        if self.kind in NO_ANSWER_KINDS:
            return True
        return self.kind == "http" and self.status in RETRYABLE_STATUSES

    @property
    def overload(self) -> bool:
        """The backend was unreachable or said it is overloaded (429, 503): not an accept
        for adaptive throttling. Any other answer, even an error, was accepted."""
        if self.kind in NO_ANSWER_KINDS:
            return True
        return self.kind == "http" and self.status in OVERLOAD_STATUSES


class Throttled(Exception):
    """The adaptive throttle rejected attempt ``attempt`` locally; nothing was sent."""

    def __init__(self, attempt: int) -> None:
        super().__init__(f"attempt {attempt} rejected locally by adaptive throttling")
        self.attempt = attempt


class _Window:
    """Sliding counts over the last ``window_s`` in fixed buckets: constant memory, and a
    bucket drops out whole once it is ``window_s`` old."""

    def __init__(self, fields: int, window_s: float, clock: Clock, bucket_s: float) -> None:
        self._size = max(1, math.ceil(window_s / bucket_s))
        self._bucket_s = bucket_s
        self._clock = clock
        self._buckets = [[0] * fields for _ in range(self._size)]
        self._totals = [0] * fields
        self._head: int | None = None

    def _current(self) -> list[int]:
        now = math.floor(self._clock() / self._bucket_s)
        if self._head is None:
            self._head = now
        elif now > self._head:
            for index in range(max(self._head + 1, now - self._size + 1), now + 1):
                self._expire(self._buckets[index % self._size])
            self._head = now
        return self._buckets[self._head % self._size]

    def _expire(self, bucket: list[int]) -> None:
        for field, count in enumerate(bucket):
            self._totals[field] -= count
            bucket[field] = 0

    def add(self, field: int) -> None:
        self._current()[field] += 1
        self._totals[field] += 1

    def totals(self) -> tuple[int, ...]:
        self._current()
        return tuple(self._totals)


class RetryBudget:
    """The SRE book's per-client retry budget, one per process: a retry is granted only
    while retries stay within ``ratio`` of first attempts over the last ``window_s``."""

    _REQUESTS, _RETRIES = 0, 1

    def __init__(
        self,
        ratio: float = 0.1,
        *,
        window_s: float = 60.0,
        clock: Clock = time.monotonic,
        bucket_s: float = 1.0,
    ) -> None:
        self.ratio = ratio
        self.denied = 0  # cumulative, for metrics
        self._window = _Window(2, window_s, clock, bucket_s)

    @property
    def requests(self) -> int:
        return self._window.totals()[self._REQUESTS]

    @property
    def retries(self) -> int:
        return self._window.totals()[self._RETRIES]

    def on_request(self) -> None:
        """Count a first attempt."""
        self._window.add(self._REQUESTS)

    def try_retry(self) -> bool:
        """Grant (and count) one retry if it keeps retries <= ratio * requests."""
        requests, retries = self._window.totals()
        if retries + 1 > self.ratio * requests + 1e-9:
            self.denied += 1
            return False
        self._window.add(self._RETRIES)
        return True


class AdaptiveThrottle:
    """Client-side adaptive throttling (SRE book, "Handling Overload"), one per process:
    each attempt is rejected locally with probability
    max(0, (requests - k * accepts) / (requests + 1)) over the last ``window_s``."""

    _REQUESTS, _ACCEPTS = 0, 1

    def __init__(
        self,
        k: float = 2.0,
        *,
        window_s: float = 120.0,
        clock: Clock = time.monotonic,
        bucket_s: float = 1.0,
    ) -> None:
        self.k = k
        self.rejected = 0  # cumulative, for metrics
        self._window = _Window(2, window_s, clock, bucket_s)

    @property
    def requests(self) -> int:
        return self._window.totals()[self._REQUESTS]

    @property
    def accepts(self) -> int:
        return self._window.totals()[self._ACCEPTS]

    def reject_probability(self) -> float:
        requests, accepts = self._window.totals()
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def should_reject(self, rng: random.Random) -> bool:
        """Decide on one attempt. A rejected one counts as a request at once; a sent one
        when its answer comes (:meth:`record`), so attempts still in flight count neither
        as requests nor as accepts: counted at send time, the first burst of a run (many
        in flight, no answer yet) would reject almost everything before any answer."""
        reject = rng.random() < self.reject_probability()
        if reject:
            self._window.add(self._REQUESTS)
        self.rejected += reject
        return reject

    def record(self, accepted: bool) -> None:
        """After a sent attempt: did the backend accept it (answer without overload)?"""
        self._window.add(self._REQUESTS)
        if accepted:
            self._window.add(self._ACCEPTS)


class wait_full_jitter(wait_exponential):
    """tenacity's ``wait_random_exponential`` (uniform(0, exponential)), drawing from the
    given ``Random`` so that a seeded run waits the same way again."""

    def __init__(self, multiplier: float, max: float, rng: random.Random) -> None:
        super().__init__(multiplier=multiplier, max=max)
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(0.0, super().__call__(retry_state))


class wait_retry_after(wait_base):
    """Wait the failed attempt's ``Retry-After`` (at most ``max_s``); without one, wait
    what ``fallback`` says."""

    def __init__(self, fallback: wait_base, max_s: float = RETRY_AFTER_MAX_S) -> None:
        self.fallback = fallback
        self.max_s = max_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(error, CallError) and error.retry_after_s is not None:
            return min(max(0.0, error.retry_after_s), self.max_s)
        return self.fallback(retry_state)


class stop_when_budget_spent(stop_base):
    """Stop unless the budget grants the retry. A stop (not a retry) strategy because
    tenacity asks ``stop`` only once a retry is due and other stops have passed, so the
    budget is spent on retries that really happen."""

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        return not self.budget.try_retry()


@dataclass
class RetryStats:
    """Cumulative counts of one policy object."""

    runs: int = 0  # calls of run()
    attempts: int = 0  # attempts sent
    retries: int = 0  # attempts sent after the first
    throttled: int = 0  # attempts rejected locally
    failed: int = 0  # runs that ended in an error


def _retryable(error: BaseException) -> bool:
    return isinstance(error, CallError) and error.retryable


def _stop(spec: Retry, budget: RetryBudget | None) -> stop_base:
    if spec.policy == "none":
        return stop_after_attempt(1)
    if budget is not None:
        attempts = min(spec.max_attempts, BUDGET_MAX_ATTEMPTS)
        return stop_after_attempt(attempts) | stop_when_budget_spent(budget)
    return stop_after_attempt(spec.max_attempts)


def _wait(spec: Retry, rng: random.Random) -> wait_base:
    if spec.policy in ("none", "immediate"):
        return wait_none()
    backoff = wait_full_jitter(spec.base_ms / 1000, spec.cap_ms / 1000, rng)
    return wait_retry_after(backoff) if spec.policy == "retry_after" else backoff


class RetryPolicy:
    """The scenario's retry policy as a ``tenacity.Retrying``; ``run(attempt)`` calls
    ``attempt(1)``, ``attempt(2)``, ... until one returns or the policy gives up."""

    def __init__(
        self,
        spec: Retry,
        budget: RetryBudget | None = None,
        throttle: AdaptiveThrottle | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if spec.policy == "budget" and budget is None:
            raise ValueError("retry policy 'budget' needs the process's RetryBudget")
        if spec.policy == "adaptive" and throttle is None:
            raise ValueError("retry policy 'adaptive' needs the process's AdaptiveThrottle")
        self.name = spec.policy
        self.stats = RetryStats()
        self._budget = budget if spec.policy == "budget" else None
        self._throttle = throttle if spec.policy == "adaptive" else None
        self._rng = rng if rng is not None else random.Random()
        self.retrying = Retrying(
            stop=_stop(spec, self._budget),
            wait=_wait(spec, self._rng),
            retry=retry_if_exception(_retryable),
            sleep=sleep,
            reraise=True,
        )

    def run(self, attempt: Callable[[int], T]) -> T:
        self.stats.runs += 1
        if self._budget is not None:
            self._budget.on_request()
        numbers = itertools.count(1)
        try:
            try:  # the first attempt directly: most succeed, and tenacity costs tens of us
                return self._once(attempt, numbers)
            except Exception as error:
                if not _retryable(error):
                    raise
                first: list[BaseException] = [error]

            def again() -> T:  # tenacity's attempt 1 is the failure already seen
                if first:
                    raise first.pop()
                return self._once(attempt, numbers)

            # a copy per call: tenacity keeps per-call state on the Retrying object
            return self.retrying.copy()(again)
        except Exception:
            self.stats.failed += 1
            raise

    def _once(self, attempt: Callable[[int], T], numbers: Iterator[int]) -> T:
        number = next(numbers)
        if self._throttle is not None and self._throttle.should_reject(self._rng):
            self.stats.throttled += 1
            raise Throttled(number)
        self.stats.attempts += 1
        self.stats.retries += number > 1
        if self._throttle is None:
            return attempt(number)
        try:
            value = attempt(number)
        except CallError as error:
            self._throttle.record(not error.overload)
            raise
        self._throttle.record(True)
        return value
