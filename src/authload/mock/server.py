"""Serving the mock: in this process (``authload mock``) or as a child process (tests, runs)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from authload import memtrace
from authload.children import die_with_parent
from authload.errors import InputError, MockStartError, ProfileError
from authload.mock.app import MockApp, create_app
from authload.mock.core import Mock
from authload.mock.metrics import MULTIPROC_ENV
from authload.mock.profile import load_profile
from authload.mock.settings import MockSettings, load_settings
from authload.mock.store import open_store
from authload.tempdirs import owned_dir


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
            headers = tuple((name, value) for name, value in message.get("headers", ()))
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


def app_from_environment() -> MockApp:
    """The app as configured by AUTHLOAD_MOCK_* (the factory each worker process calls)."""
    settings = load_settings()
    memtrace.install("mock")
    return create_app(Mock(settings, load_profile(settings.behaviour), open_store(settings.store)))


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (as uvicorn binds it), or an InputError naming them:
    the port is taken, the address is not this host's, the name does not resolve."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(
    settings: MockSettings,
    host: str = "127.0.0.1",
    port: int = 8080,
    fd: int | None = None,
    workers: int = 1,
    log_level: str = "warning",
    sock: socket.socket | None = None,
) -> None:
    """Run the mock until interrupted. ``fd`` or ``sock``: an already bound socket (one
    worker only; more workers bind ``host:port`` themselves)."""
    load_profile(settings.behaviour)  # fail here, with the file's error, not in a worker
    if workers > 1 and settings.store == "memory":
        raise ProfileError(f"--workers {workers} needs a shared store: --store redis://HOST:PORT")
    common: dict[str, Any] = dict(
        loop="uvloop",
        http=OneWriteProtocol,
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_keep_alive=30,
        backlog=4096,
    )
    if workers > 1:
        _export(settings)
        own = MULTIPROC_ENV not in os.environ  # a directory we make is ours to remove
        if own:
            os.environ[MULTIPROC_ENV] = str(owned_dir("authload-mock-metrics-"))
        try:
            uvicorn.run(
                "authload.mock.server:app_from_environment",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                **common,
            )
        finally:
            if own:
                shutil.rmtree(os.environ.pop(MULTIPROC_ENV), ignore_errors=True)
        return
    memtrace.install("mock")  # off unless bench/soak_memory --diagnose asks for it
    app = create_app(Mock(settings, load_profile(settings.behaviour), open_store(settings.store)))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **common))
    if sock is None and fd is not None:
        sock = socket.socket(fileno=fd)
    server.run(sockets=[sock] if sock is not None else None)


def _export(settings: MockSettings) -> None:
    """Hand the settings to worker processes through their environment."""
    for name, value in settings.model_dump().items():
        if value is not None:
            os.environ[f"AUTHLOAD_MOCK_{name.upper()}"] = str(value)


class EmbeddedMock:
    """A mock in a child process on a free 127.0.0.1 port, stopped on exit.

    The port is bound here and the socket handed to the child, so there is no window in
    which another process could take it. The child is a separate process because the load
    side runs under gevent, which must not share a process with the mock's event loop.
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        startup_timeout_s: float = 30.0,
    ) -> None:
        self._env = env or {}
        self._args = args
        self._timeout = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives until __exit__
        self.url = ""

    def __enter__(self) -> EmbeddedMock:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "authload", "mock", "--fd", str(sock.fileno()), *self._args]
        try:
            self._proc = subprocess.Popen(
                cmd,
                pass_fds=[sock.fileno()],
                env={**os.environ, **self._env},
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C stops the run, which then stops the mock
                preexec_fn=die_with_parent,
            )
        finally:
            sock.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            self._log.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise MockStartError(
                    f"the mock exited with {self._proc.returncode}: {self.output()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise MockStartError(
            f"the mock did not answer /healthz within {self._timeout:.0f} s: "
            f"{self.output()[-2000:]}"
        )

    def exit_code(self) -> int | None:
        """The mock's exit code once it has exited (died), else None."""
        return None if self._proc is None else self._proc.poll()

    def output(self) -> str:
        """What the child printed so far."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
