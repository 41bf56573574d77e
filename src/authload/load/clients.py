"""Typed calls of every endpoint on Locust's HTTP session, each answer checked against its
contract. One call is one logical operation; each of its attempts is one HTTP request, which
Locust reports (and the recorder records) with the flow, operation and attempt number."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
from locust.event import EventHook
from locust.exception import CatchResponseError
from pydantic import ValidationError

from authload.contracts import ENDPOINTS, Contract
from authload.contracts.base import Endpoint
from authload.load.config import STOP_GRACE_S
from authload.load.failures import failure_message
from authload.load.recorder import answer_retry_after, error_kind
from authload.load.retry import CallError, RetryPolicy
from authload.load.run_limits import RequestLimits
from authload.load.wire import JSON_HEADERS, Reply, Wire

OK = frozenset({200})


@dataclass(frozen=True)
class TargetAccess:
    """What a client needs to speak to a target (secrets stay in memory, never on disk)."""

    gigma_url: str
    mobile_url: str
    app_token: str
    client_secret: str


@dataclass
class FlowContext:
    """The journey an operation belongs to (recorded with every attempt)."""

    flow: str
    flow_id: str
    t_intended: float | None = None  # open model: when the journey was due to start
    queued: bool = False  # open model: it waited for a free place (max_in_flight)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Contract | None  # the parsed contract model of a 200, else None
    text: str = ""  # the error message of a non-200 (plain text or Gigma's "message")


class RunStopping(Exception):
    """The test is stopping: the operation was not sent (journeys end here, uncounted)."""


class Stop:
    """When a stop began (unix s; None: not stopping), and an event set then."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.event = gevent.event.Event()

    def begin(self) -> None:
        if self.since is None:
            self.since = time.time()
        self.event.set()

    def clear(self) -> None:
        self.since = None
        self.event.clear()


class StopGate:
    """How a test's end reaches the requests, so that every request sent is one the records
    keep. Once the test is stopping (Locust stops its users, each finishing its journey),
    journeys start requests for :data:`STOP_GRACE_S` more, then end at their next call
    (kept as ``stopped``); a journey waiting (think time, a session) that would wait past
    the grace ends at once. Once ``closed`` (Locust has stopped the users) no attempt starts,
    a journey waiting (an open-model arrival, a timed event, neither run by a Locust user)
    ends at once, and the attempts in flight are waited for (each ends within the request
    timeout) before the records close."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.stop = Stop()  # the test's
        self._closed = gevent.event.Event()

    @property
    def stopping_since(self) -> float | None:
        return self.stop.since

    def stopping(self) -> None:
        self.stop.begin()

    @property
    def closed(self) -> bool:
        return bool(self._closed.is_set())

    def close(self) -> None:
        self.stopping()
        self._closed.set()

    def open(self) -> None:
        self.stop.clear()
        self._closed.clear()

    def grace_end(self, user: Stop) -> float | None:
        """When requests may no longer start (the test's or the user's stop, the earlier,
        plus the grace); None while neither is stopping."""
        since = [t for t in (self.stop.since, user.since) if t is not None]
        return min(since) + STOP_GRACE_S if since else None

    def refuses(self, user: Stop) -> bool:
        """Whether no request may start now: the gate is closed, or the grace has passed."""
        if self.closed:
            return True
        end = self.grace_end(user)
        return end is not None and time.time() > end

    def pause(self, seconds: float, user: Stop) -> None:
        """Sleep ``seconds``, or raise RunStopping as soon as the gate closes, or as soon as
        a stop begins if the wait would outlast its grace (the journey could not go on)."""
        end = time.time() + max(0.0, seconds)
        gevent.wait([self._closed, self.stop.event, user.event], timeout=seconds, count=1)
        if time.time() >= end:
            return
        grace = self.grace_end(user)
        if self.closed or (grace is not None and end > grace):
            raise RunStopping("the test is stopping")
        if self._closed.wait(max(0.0, end - time.time())):
            raise RunStopping("the test is stopping")

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no attempt is in flight; False if some still are after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            gevent.sleep(0.05)
        return self.in_flight == 0


class AuthClient:
    """Sends each attempt on ``wire`` and reports it on Locust's ``request_event``."""

    def __init__(
        self,
        wire: Wire,
        request_event: EventHook,
        access: TargetAccess,
        policy: RetryPolicy,
        ops: Iterator[int] | None = None,
        gate: StopGate | None = None,
        limits: RequestLimits | None = None,
    ) -> None:
        self.wire = wire
        self.request_event = request_event
        self.access = access
        self.policy = policy
        self._ops = ops if ops is not None else itertools.count(1)
        self.gate = gate if gate is not None else StopGate()
        self.limits = limits  # a shared target's send_password budget and rate ceiling
        self.user_stop = Stop()  # its Locust user's (fewer users in the next stage, the end)

    def call(
        self,
        name: str,
        ctx: FlowContext,
        body: dict[str, Any] | None = None,
        bearer: str | None = None,
        expect: frozenset[int] = OK,
    ) -> Answer:
        """One logical operation, retried by the policy; statuses in ``expect`` are answers,
        anything else raises CallError once the policy gives up; RunStopping once the test
        is stopping; LimitRefused when the target's limits refuse an attempt (not sent)."""
        if self.gate.refuses(self.user_stop):
            raise RunStopping(name)
        op_id = next(self._ops)
        return self.policy.run(
            lambda attempt: self._attempt(name, ctx, body, bearer, expect, op_id, attempt)
        )

    def _attempt(
        self,
        name: str,
        ctx: FlowContext,
        body: dict[str, Any] | None,
        bearer: str | None,
        expect: frozenset[int],
        op_id: int,
        attempt: int,
    ) -> Answer:
        endpoint = ENDPOINTS[name]
        base = self.access.gigma_url if endpoint.api.name == "gigma" else self.access.mobile_url
        headers = dict(JSON_HEADERS) if body is not None else {}
        if endpoint.api.app_header:
            headers["Token"] = self.access.app_token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        context: dict[str, Any] = {
            "flow": ctx.flow,
            "flow_id": ctx.flow_id,
            "op_id": op_id,
            "attempt": attempt,
            "t_intended": ctx.t_intended,
        }
        limits = self.limits
        if limits is not None:  # each attempt, retries included, within the target's limits
            limits.pace(name)
        if self.gate.refuses(self.user_stop):  # a retry due after the stop's grace
            raise RunStopping(name)
        if limits is not None:
            limits.spend(name)
        self.gate.in_flight += 1
        try:
            return self._send(endpoint, base, name, body, headers, expect, context)
        finally:
            self.gate.in_flight -= 1

    def _send(
        self,
        endpoint: Endpoint,
        base: str,
        name: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        expect: frozenset[int],
        context: dict[str, Any],
    ) -> Answer:
        payload = None if body is None else json.dumps(body).encode()
        sent = self.wire.send(endpoint.method, base, endpoint.path, payload, headers)
        reply = sent.reply
        status = reply.status_code
        kind, parsed = _outcome(name, status, reply, expect)
        failure = None
        if kind is not None:
            context["error"] = kind
            failure = CatchResponseError(failure_message(name, kind, status))
        self.request_event.fire(
            request_type=endpoint.method,
            name=name,
            response_time=sent.response_time_ms,
            response_length=len(reply.content),
            response=reply,
            context=context,
            exception=failure,
            start_time=sent.start_time,
            url=base + endpoint.path,
        )
        if kind is not None:
            raise CallError(kind, status, answer_retry_after(status, reply.headers))
        return Answer(status, parsed, "" if status == 200 else _message(reply))


def _outcome(
    name: str, status: int, reply: Reply, expect: frozenset[int]
) -> tuple[str | None, Contract | None]:
    """The error kind of an answer (None when it is one of ``expect``), and its parsed body."""
    if status == 0:
        return error_kind(reply.error, 0) or "connect", None
    if status not in expect:
        return "http", None
    if status != 200:
        return None, None
    try:
        return None, ENDPOINTS[name].parse_response(reply.content)
    except (ValidationError, ValueError, UnicodeDecodeError):
        return "contract", None


def _message(reply: Reply) -> str:
    """The error message of an answer: Gigma's JSON ``message`` or the mobile plain text."""
    text = reply.text[:500]
    if text.startswith("{"):
        try:
            return str(json.loads(text).get("message", text))
        except ValueError:
            return text
    return text
