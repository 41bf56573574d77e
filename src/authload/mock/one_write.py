"""uvicorn's httptools protocol, each response sent in one write.

uvicorn writes a response's head as soon as the app starts the response and its body when
the app sends it: two system calls and two TCP segments per answer, where one does. And it
builds every head afresh, header by header, though the mock's answers repeat a few heads.
This protocol holds the head back until the body's first write, and reuses a head built for
the same inputs. It subclasses uvicorn's internals (``HttpToolsProtocol._start_asgi_task``,
``RequestResponseCycle.send``), so a new uvicorn must pass the mock's tests before it is
taken (the lock pins it). Measured: mock / reference per server CPU-second 0.62 -> 0.68 for
the single write, 0.72 -> 0.74 for the reused heads (``bench/mock_throughput``).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _OneWrite:
    """A connection's transport as a response cycle sees it: the head of a response (status
    line and headers) is held back and leaves with the first write of its body, in one
    system call and one TCP segment instead of two."""

    __slots__ = ("head", "holding", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.head = b""
        self.holding = False

    def write(self, data: bytes) -> None:
        if self.holding:
            self.head += data
            return
        if self.head:
            data, self.head = self.head + data, b""
        self.transport.write(data)

    def flush(self) -> None:
        if self.head:
            self.transport.write(self.head)
            self.head = b""

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())

    def __getattr__(self, name: str) -> Any:  # get_extra_info, abort, ...: the transport's
        return getattr(self.transport, name)


class _Heads:
    """Response heads uvicorn has built, by everything that goes into one: the status, the
    app's headers, uvicorn's default headers (the date, renewed every second, and the server),
    and the state of the cycle that decides connection and transfer headers. The same inputs
    give uvicorn the same head and the same state, so a head built once is reused as long as
    the default headers stay the same list."""

    LIMIT = 1024  # distinct heads kept at most (statuses x header sets x body lengths)

    def __init__(self) -> None:
        self.defaults: object = None
        self.known: dict[tuple[Any, ...], tuple[bytes, int, bool | None, bool]] = {}

    def lookup(self, cycle: RequestResponseCycle, message: Any) -> tuple[Any, ...] | None:
        """The key of this response's head; None where uvicorn must build it every time."""
        if cycle.access_log or cycle.flow.write_paused or cycle.disconnected:
            return None
        if self.defaults is not cycle.default_headers:
            self.defaults = cycle.default_headers
            self.known.clear()
        try:
            headers = message.get("headers", ())
            if type(headers) is not tuple:  # the mock's own answers come as tuples
                headers = tuple((name, value) for name, value in headers)
            key = (
                message["status"],
                headers,
                cycle.keep_alive,
                cycle.chunked_encoding,
                cycle.scope["method"] == "HEAD",
            )
            hash(key)
        except (TypeError, ValueError):
            return None
        return key


_HEADS = _Heads()


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, writing each response's head with its body, and
    reusing a head it has built for the same inputs (``_Heads``)."""

    async def send(self, message: Any) -> None:
        writes: _OneWrite = self.transport  # type: ignore[assignment]
        if message["type"] == "http.response.start":
            key = None if self.response_started else _HEADS.lookup(self, message)
            known = None if key is None else _HEADS.known.get(key)
            if known is not None:
                head, self.expected_content_length, self.chunked_encoding, self.keep_alive = known
                self.response_started = True
                self.waiting_for_100_continue = False
                writes.head += head
                return
            writes.holding = True
            try:
                await super().send(message)
            finally:
                writes.holding = False
            if key is not None and self.response_started and writes.head:
                if len(_HEADS.known) >= _HEADS.LIMIT:
                    _HEADS.known.clear()
                _HEADS.known[key] = (
                    writes.head,
                    self.expected_content_length,
                    self.chunked_encoding,
                    self.keep_alive,
                )
            return
        try:
            await super().send(message)
        finally:
            writes.flush()  # nothing written (a HEAD request): the head alone


class OneWriteProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, each response sent in one write (see ``_OneWrite``).

    uvicorn writes a response's head as soon as the app starts the response and its body
    when the app sends it: two system calls and two TCP segments per answer, where one does.
    Every cycle of a connection writes through one ``_OneWrite`` of its transport.
    """

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        writes = getattr(self, "_one_write", None)
        if writes is None or writes.transport is not self.transport:
            writes = self._one_write = _OneWrite(self.transport)
        cycle.__class__ = _OneWriteCycle
        cycle.transport = writes  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)
