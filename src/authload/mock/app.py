"""The mock as an ASGI app: both APIs on one port, routed from the contracts.

An API request goes through the behaviour model in this order: faults that answer instead of
the service (status, hang); the per-address rate limit; capacity (queue or shed with 503);
the handler, with state changes; added latency, inside the capacity slot so that throughput
plateaus at concurrency / service time; then faults that spoil the answer (reset, truncate,
malformed) after the state has changed, as a response lost on the way back would.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from authload.contracts import ENDPOINTS
from authload.contracts.base import ErrorStyle
from authload.mock import admin, gigma, mobile
from authload.mock.behaviour import Limiter, Shed
from authload.mock.core import Mock
from authload.mock.http import ApiError, Reply, Request, render_error
from authload.mock.profile import Fault
from authload.mock.rate_limits import rate_limit

log = logging.getLogger("authload.mock")

Handler = Callable[[Mock, Request], Awaitable[Reply]]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

API_HANDLERS: dict[str, Handler] = {
    "gigma.send_password": gigma.send_password,
    "gigma.login": gigma.login,
    "gigma.logout": gigma.logout,
    "mobile.esia_url": mobile.esia_url,
    "mobile.esia_auth": mobile.esia_auth,
    "mobile.lkfl_auth": mobile.lkfl_auth,
    "mobile.phone_request": mobile.phone_request,
    "mobile.phone_verify": mobile.phone_verify,
    "mobile.refresh": mobile.refresh,
}

ADMIN_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/healthz"): admin.healthz,
    ("GET", "/openapi.json"): admin.openapi,
    ("GET", "/metrics"): admin.metrics,
    ("GET", "/_mock/stats"): admin.stats,
    ("GET", "/_mock/held"): admin.held,
    ("POST", "/_mock/reset"): admin.reset,
    ("POST", "/_mock/epoch"): admin.set_epoch,
    ("GET", "/_mock/accounts"): admin.accounts,
    ("GET", "/_mock/esia/authorize"): admin.esia_authorize,
    ("GET", "/_mock/faults"): admin.get_faults,
    ("POST", "/_mock/faults"): admin.add_fault,
    ("DELETE", "/_mock/faults"): admin.end_faults,
    ("GET", "/_mock/behaviour"): admin.get_behaviour,
    ("PUT", "/_mock/behaviour"): admin.put_behaviour,
}
# admin routes with a path parameter: (method, prefix) -> handler(mock, request, param)
PARAM_ROUTES: dict[tuple[str, str], Callable[[Mock, Request, str], Awaitable[Reply]]] = {
    ("GET", "/_mock/inbox/"): admin.inbox,
    ("DELETE", "/_mock/faults/"): admin.end_faults,
}


@dataclass(frozen=True)
class Route:
    endpoint: str  # the contract's endpoint name; "" for admin and unmatched paths
    style: ErrorStyle
    handler: Handler


class MockApp:
    def __init__(self, mock: Mock) -> None:
        if set(API_HANDLERS) != set(ENDPOINTS):
            raise RuntimeError("every contract endpoint needs exactly one mock handler")
        self.mock = mock
        self.routes: dict[tuple[str, str], Route] = {
            (e.method, e.path): Route(e.name, e.api.error_style, API_HANDLERS[e.name])
            for e in ENDPOINTS.values()
        }
        for key, handler in ADMIN_ROUTES.items():
            self.routes[key] = Route("", ErrorStyle.JSON_MESSAGE, handler)
        self.methods: dict[str, list[str]] = {}
        for method, path in self.routes:
            self.methods.setdefault(path, []).append(method)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(self.mock, receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route = self._route(scope)
        if not route.endpoint:
            await _send(send, await self._plain(route, scope, receive))
            return
        answer = await self._api(route, scope, receive, send)
        if answer is None:  # the connection was hung up or reset on purpose
            return
        self.mock.metrics.answered(route.endpoint, answer.status, time.perf_counter() - started)
        await _send(send, answer)

    async def _plain(self, route: Route, scope: Scope, receive: Receive) -> Reply:
        try:
            return await route.handler(self.mock, await self._read(scope, receive))
        except ApiError as error:
            return render_error(error, route.style)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            return render_error(ApiError(500, "Internal server error."), route.style)

    async def _api(self, route: Route, scope: Scope, receive: Receive, send: Send) -> Reply | None:
        mock, name = self.mock, route.endpoint
        behaviour = mock.behaviour
        fault, added_ms = (
            behaviour.faults.pick(name, time.time(), mock.rng)
            if behaviour.faults.records
            else (None, 0.0)
        )
        if fault is not None:
            mock.metrics.child(mock.metrics.faults_applied, name, fault.kind).inc()
            if fault.kind == "status":
                return render_error(_fault_error(fault), route.style)
            if fault.kind == "hang":
                if not await _hang(receive, fault.hang_max_s):
                    await _reset(send)
                return None
        try:
            request = await self._read(scope, receive)
            per_ip = behaviour.profile.rate_limits.per_ip
            if per_ip is not None:
                await rate_limit(mock, f"ip:{request.client}", per_ip, "Too many requests.")
            reply = await self._serve(route, request, added_ms)
        except Shed as shed:
            mock.metrics.child(mock.metrics.shed, name).inc()
            retry = shed.retry_after_s or None
            reply = render_error(
                ApiError(503, "Service overloaded, retry later.", retry_after_s=retry), route.style
            )
        except ApiError as error:
            reply = render_error(error, route.style)
        except Exception:
            log.exception("unhandled error on %s", name)
            reply = render_error(ApiError(500, "Internal server error."), route.style)
        if reply.status == 429:
            mock.metrics.child(mock.metrics.rate_limited, name).inc()
        if fault is not None and fault.kind == "reset":
            await _reset(send)
            return None
        if fault is not None:
            _spoil(fault, reply)
        return reply

    async def _serve(self, route: Route, request: Request, added_ms: float) -> Reply:
        """The handler inside the capacity slots (the endpoint's, then the shared one), with
        the added latency; the slots are given back in reverse order, whatever happens."""
        mock, name = self.mock, route.endpoint
        behaviour = mock.behaviour
        own, shared = behaviour.limiters.get(name), behaviour.shared
        if own is not None:
            await self._acquire(own, name)
        try:
            if shared is not None:
                await self._acquire(shared, name)
            try:
                metrics = mock.metrics
                metrics.serving(name, 1)
                try:
                    try:
                        reply = await route.handler(mock, request)
                    except ApiError as error:  # a refusal takes the service its time too
                        reply = render_error(error, route.style)
                    delay = behaviour.added_latency_s(name) + added_ms / 1000.0
                    if added_ms > 0:  # latency faults delayed this answer (counted once)
                        mock.metrics.child(mock.metrics.faults_applied, name, "latency").inc()
                    if delay > 0:
                        await asyncio.sleep(delay)
                finally:
                    metrics.serving(name, -1)
            finally:
                if shared is not None:
                    shared.release()
        finally:
            if own is not None:
                own.release()
        return reply

    async def _acquire(self, limiter: Limiter, endpoint: str) -> None:
        if limiter.try_acquire():  # a free slot and nobody waiting: no queue to count
            return
        queued = self.mock.metrics.child(self.mock.metrics.queued, endpoint)
        await limiter.acquire(lambda delta: queued.inc(delta))

    def _route(self, scope: Scope) -> Route:
        method, path = scope["method"], scope["path"]
        route = self.routes.get((method, path))
        if route is not None:
            return route
        for (param_method, prefix), handler in PARAM_ROUTES.items():
            if method == param_method and path.startswith(prefix) and len(path) > len(prefix):
                param = path.removeprefix(prefix)
                return Route("", ErrorStyle.JSON_MESSAGE, _bind(handler, param))
        style = ErrorStyle.PLAIN_TEXT if path.startswith("/v2/") else ErrorStyle.JSON_MESSAGE
        allowed = self.methods.get(path)
        error = (
            ApiError(
                405,
                f"Method {method} not allowed; use {', '.join(allowed)}.",
                headers=[(b"allow", ", ".join(allowed).encode())],
            )
            if allowed
            else ApiError(404, f"No route for {method} {path}.")
        )
        return Route("", style, _raiser(error))

    async def _read(self, scope: Scope, receive: Receive) -> Request:
        headers = {
            raw_name.decode("latin-1").lower(): raw_value.decode("latin-1")
            for raw_name, raw_value in scope["headers"]
        }
        limit = self.mock.settings.max_body_bytes
        declared = headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"Request body larger than {limit} bytes.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"Request body larger than {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        client = scope.get("client")
        return Request(
            scope["method"],
            scope["path"],
            headers,
            scope.get("query_string", b""),
            b"".join(chunks),
            client[0] if client else "",
        )


def _fault_error(fault: Fault) -> ApiError:
    messages = {
        500: "Internal server error.",
        502: "Bad gateway.",
        503: "Service temporarily unavailable.",
        504: "Gateway timeout.",
    }
    return ApiError(fault.status, messages[fault.status], retry_after_s=fault.retry_after_s)


def _spoil(fault: Fault, reply: Reply) -> None:
    """Faults that spoil the answer after the service did its work."""
    if fault.kind == "truncate":
        reply.body = reply.body[: max(1, len(reply.body) // 2)]
    elif fault.kind == "malformed":
        reply.body = b'{"error": <html>Bad Gateway</html>'


async def _reset(send: Send) -> None:
    """Abort the connection with a TCP reset (SO_LINGER 0), as a crashed peer or a middlebox
    does. Uses the server's transport: uvicorn's ``send`` is bound to its request cycle."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("this server does not expose its transport")
    sock = transport.get_extra_info("socket")
    if sock is not None and not transport.is_closing():
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)  # let the server see the connection gone before the app returns


async def _hang(receive: Receive, limit_s: float) -> bool:
    """Answer nothing until the client gives up; False if the limit passed first."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), limit_s)
    except TimeoutError:
        return False
    return True


def _bind(handler: Callable[[Mock, Request, str], Awaitable[Reply]], param: str) -> Handler:
    async def bound(mock: Mock, request: Request) -> Reply:
        return await handler(mock, request, param)

    return bound


def _raiser(error: ApiError) -> Handler:
    async def handler(mock: Mock, request: Request) -> Reply:
        raise error

    return handler


async def _send(send: Send, reply: Reply) -> None:
    headers = (
        (b"content-type", reply.content_type.encode()),
        (b"content-length", b"%d" % len(reply.body)),
        *reply.headers,
    )
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _lifespan(mock: Mock, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await mock.start()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await mock.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(mock: Mock) -> MockApp:
    return MockApp(mock)
