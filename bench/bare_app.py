"""The bare comparison app of bench/mock_throughput.py: a hello-world ASGI app.

It reads the request body and answers every HTTP request with the same small JSON, so the
difference between it and the mock on the same server stack is the mock's own cost.

``python bench/bare_app.py --fd N`` serves it on uvicorn with exactly the options the mock
uses (authload.mock.server.uvicorn_options, its httptools protocol that sends each response
in one write included); granian imports ``bare_app:app`` directly.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

BODY = b'{"status":"ok"}'
HEADERS = ((b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY)))

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description="serve the bare app on uvicorn")
    parser.add_argument("--fd", type=int, required=True, help="a bound TCP socket to listen on")
    args = parser.parse_args()
    from authload.mock.server import uvicorn_options  # here: granian imports only `app`

    config = uvicorn.Config(app, **uvicorn_options())
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])


if __name__ == "__main__":
    main()
