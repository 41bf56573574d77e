"""The reference server of bench/mock_throughput.py: the mock's login answer on aiohttp.

A small aiohttp app (uvloop event loop, orjson) serving ``POST /counterparty/login`` with
the answer the mock gives for the test password: the same status (200), the same JSON
object, field for field. The bench takes one answer from the mock and hands it over as a
file; for each request the app reads the body, decodes it (orjson), puts a fresh
Sanctum-shaped access token into the answer and encodes it (orjson). That is about the
least a fast Python server must do to give this answer, so the mock's rate per server
CPU-second is measured against it.

``python bench/reference_app.py --fd N --answer FILE`` serves it on a bound socket.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import socket
from pathlib import Path
from typing import Any

import orjson
import uvloop
from aiohttp import web

LOGIN_PATH = "/counterparty/login"
SECRET = "eS8XlasyDBW2qN1Br8yeARQeiM5p8fGdgRYh19H25f4dbb5e"  # 40 alphanumerics + crc32 hex


def make_app(answer: dict[str, Any]) -> web.Application:
    ids = itertools.count(1)
    token = answer["counterparty"]["access_token"]

    async def login(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        token["value"] = f"{next(ids)}|{SECRET}"
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    app = web.Application()
    app.router.add_post(LOGIN_PATH, login)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="serve the mock's login answer on aiohttp")
    parser.add_argument("--fd", type=int, required=True, help="a bound TCP socket to listen on")
    parser.add_argument("--answer", type=Path, required=True, help="the mock's login answer")
    args = parser.parse_args()
    answer = orjson.loads(args.answer.read_bytes())
    sock = socket.socket(fileno=args.fd)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        make_app(answer), sock=sock, access_log=None, print=None, backlog=4096, handle_signals=True
    )


if __name__ == "__main__":
    main()
