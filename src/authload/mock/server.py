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

from authload import gc_tuning, memtrace
from authload.children import die_with_parent
from authload.errors import InputError, MockStartError, ProfileError
from authload.mock.app import MockApp, create_app
from authload.mock.core import Mock
from authload.mock.metrics import MULTIPROC_ENV
from authload.mock.one_write import OneWriteProtocol
from authload.mock.profile import load_profile
from authload.mock.settings import MockSettings, load_settings
from authload.mock.store import open_store
from authload.tempdirs import owned_dir

#: On SIGTERM the mock finishes the answers in flight, then stops: a connection still open
#: after this long (a client that keeps it and never sends) no longer holds it up.
SHUTDOWN_GRACE_S = 5  # s


def app_from_environment() -> MockApp:
    """The app as configured by AUTHLOAD_MOCK_* (the factory each worker process calls)."""
    settings = load_settings()
    memtrace.install("mock")
    app = create_app(Mock(settings, load_profile(settings.behaviour), open_store(settings.store)))
    gc_tuning.tune()  # what the process has built by now lives as long as it
    return app


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


def uvicorn_options(log_level: str = "warning") -> dict[str, Any]:
    """How uvicorn serves the mock (and the benches' bare app, to compare like with like)."""
    return dict(
        loop="uvloop",
        http=OneWriteProtocol,
        lifespan="on",
        access_log=False,
        # the per-address rate limit counts the connection's peer: no client poses as
        # another address with X-Forwarded-For (and no middleware scans every request)
        proxy_headers=False,
        log_level=log_level,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        backlog=4096,
    )


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
    common = uvicorn_options(log_level)
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
    gc_tuning.tune()  # what the process has built by now lives as long as it
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
