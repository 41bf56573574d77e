"""How authload's users put a request on the wire: geventhttpclient's keep-alive connection
pool, used directly.

Locust's ``FastHttpSession`` wraps the same client in a cookie jar, a user agent that
follows redirects and verifies statuses, and a response wrapper that detects charsets. The
two APIs set no cookies and answer no redirects, and every answer is checked against its
contract by :class:`~authload.load.clients.AuthClient`, so none of that is used; it cost
about a third of the generator's CPU per request (issue 18, ``bench/generator_efficiency``).
The attempt still reaches Locust as Locust intends: ``AuthClient`` fires its request event,
on which Locust's statistics, the recorder and the exporter listen.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import gevent
from geventhttpclient._parser import HTTPParseError
from geventhttpclient.client import HTTPClient
from geventhttpclient.header import Headers
from locust.contrib.fasthttp import insecure_ssl_context_factory

#: What sending or reading a request may raise that means "no answer": socket errors
#: (refused, reset, TLS: all OSError), the network timeout, a broken or cut-short answer.
TRANSPORT_ERRORS = (OSError, gevent.Timeout, HTTPParseError, zlib.error)

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one attempt; ``status_code`` 0 when there was none (``error`` says
    why). Listeners of Locust's request event read it as they would Locust's response."""

    status_code: int
    content: bytes = b""
    headers: Headers | None = None
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Sent:
    """A reply, when its request started (unix s) and how long it took (ms, until the
    whole answer was read)."""

    reply: Reply
    start_time: float
    response_time_ms: float


class Wire:
    """Keep-alive connections to each origin a user speaks to (at most ``connections`` at
    once to each), no hidden retries of a POST, ``timeout_s`` to connect and per read."""

    def __init__(self, timeout_s: float, connections: int = 1) -> None:
        self.timeout_s = timeout_s
        self.connections = connections
        self._origins: dict[str, tuple[HTTPClient, str]] = {}

    def send(
        self, method: str, base: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Sent:
        """``method`` ``base`` + ``path``; transport failures become a reply with status 0."""
        client, prefix = self._origins.get(base) or self._open(base)
        start_time = time.time()
        started = time.perf_counter()
        try:
            answer = client.request(method, prefix + path, body=body, headers=headers)
            content = answer.read()
            found = answer.info()
            if "content-encoding" in found:
                content = _decoded(content, str(found["content-encoding"]))
            reply = Reply(answer.status_code, content, found)
        except TRANSPORT_ERRORS as exc:
            reply = Reply(0, error=exc)
        return Sent(reply, start_time, (time.perf_counter() - started) * 1000.0)

    def _open(self, base: str) -> tuple[HTTPClient, str]:
        parts = urlsplit(base)
        client = HTTPClient(
            parts.hostname or "",
            parts.port,
            ssl=parts.scheme == "https",
            ssl_context_factory=insecure_ssl_context_factory,
            insecure=True,
            concurrency=self.connections,
            connection_timeout=self.timeout_s,
            network_timeout=self.timeout_s,
        )
        self._origins[base] = (client, parts.path.rstrip("/"))
        return self._origins[base]

    def close(self) -> None:
        for client, _ in self._origins.values():
            client.close()
        self._origins.clear()


def _decoded(content: bytes, encoding: str) -> bytes:
    """An answer compressed though no compression was asked for (gzip or deflate)."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(content, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(content)
    return content
