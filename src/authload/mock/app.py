"""The mock as an ASGI app: both APIs on one port, routed from the contracts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from authload.contracts import ENDPOINTS
from authload.contracts.base import ErrorStyle
from authload.mock import admin, gigma, mobile
from authload.mock.core import Mock
from authload.mock.http import ApiError, Reply, Request, render_error

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
    ("GET", "/_mock/stats"): admin.stats,
    ("POST", "/_mock/reset"): admin.reset,
    ("GET", "/_mock/accounts"): admin.accounts,
    ("GET", "/_mock/esia/authorize"): admin.esia_authorize,
}
INBOX_PREFIX = "/_mock/inbox/"


@dataclass(frozen=True)
class Route:
    name: str  # endpoint name for API routes, None-like "" for admin
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
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        route = self._route(scope)
        try:
            request = await self._read(scope, receive)
            reply = await route.handler(self.mock, request)
        except ApiError as error:
            reply = render_error(error, route.style)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            reply = render_error(ApiError(500, "Internal server error."), route.style)
        if route.name:
            self.mock.stats.requests[(route.name, reply.status)] += 1
        else:
            self.mock.stats.other[reply.status] += 1
        await _send(send, reply)

    def _route(self, scope: Scope) -> Route:
        method, path = scope["method"], scope["path"]
        route = self.routes.get((method, path))
        if route is not None:
            return route
        if path.startswith(INBOX_PREFIX) and method == "GET":
            phone = path.removeprefix(INBOX_PREFIX)
            return Route(
                "", ErrorStyle.JSON_MESSAGE, lambda mock, request: admin.inbox(mock, request, phone)
            )
        style = ErrorStyle.PLAIN_TEXT if path.startswith("/v2/") else ErrorStyle.JSON_MESSAGE
        allowed = self.methods.get(path)
        error = (
            ApiError(405, f"Method {method} not allowed; use {', '.join(allowed)}.")
            if allowed
            else ApiError(404, f"No route for {method} {path}.")
        )
        return Route("", style, _raiser(error))

    async def _read(self, scope: Scope, receive: Receive) -> Request:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            headers[raw_name.decode("latin-1").lower()] = raw_value.decode("latin-1")
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


def _raiser(error: ApiError) -> Handler:
    async def handler(mock: Mock, request: Request) -> Reply:
        raise error

    return handler


async def _send(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
        *reply.headers,
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(mock: Mock) -> MockApp:
    return MockApp(mock)
