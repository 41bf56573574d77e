"""Where a Locust process serves its metrics, and how it serves the final values.

Ports. Each Locust process serves its own ``/metrics`` when a base port is given
(``AUTHLOAD_METRICS_PORT``), on 127.0.0.1 unless ``AUTHLOAD_METRICS_HOST`` says otherwise
(``0.0.0.0`` in a container). ``AUTHLOAD_METRICS_PORT_MODE`` says which port:

- ``offset`` (the default, for processes sharing a host): the master or a local runner on the
  base port, worker ``i`` (Locust's worker index, 0-based) on base + i + 1. So
  ``--processes 2`` with ``AUTHLOAD_METRICS_PORT=9646`` serves the master on 9646 and the
  workers on 9647 and 9648 (``dashboards/prometheus/prometheus.yml`` scrapes those). A worker
  learns its index from the master after Locust's init event, so its server starts once the
  index is known.
- ``fixed`` (one process per container or pod: docker compose, Kubernetes): this process
  serves on exactly the base port.

Linger. When the process quits (Locust's ``quitting`` event) the values are final: requests
from then on are counted neither here nor in the records. A process that serves metrics then
keeps serving those values for ``AUTHLOAD_METRICS_LINGER_S`` seconds (default 10: twice the
shipped scrape interval) before it goes on exiting, so that Prometheus scrapes the final
counts; 0 turns it off. Master and workers linger together: the run takes that much longer.
While it lingers the process does nothing else (:func:`serve_frozen`): nothing left running
by the test (a journey, a timed event) sends a request meanwhile, so the run's counts, the
records', Locust's and the target's, are as they would be without the linger. The server
is never shut down: that waits for its greenlet, which would let such a request through; the
process exits instead.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from locust.env import Environment

__all__ = [
    "DEFAULT_HOST",
    "HOST_ENV",
    "LINGER_ENV",
    "PORT_ENV",
    "PORT_MODES",
    "PORT_MODE_ENV",
    "host_from_env",
    "linger_from_env",
    "port_from_env",
    "port_mode_from_env",
    "process_port",
    "serve_frozen",
]

PORT_ENV = "AUTHLOAD_METRICS_PORT"
PORT_MODE_ENV = "AUTHLOAD_METRICS_PORT_MODE"
PORT_MODES = ("offset", "fixed")
HOST_ENV = "AUTHLOAD_METRICS_HOST"
LINGER_ENV = "AUTHLOAD_METRICS_LINGER_S"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_LINGER_S = 10.0


def port_from_env() -> int | None:
    """The base port from ``AUTHLOAD_METRICS_PORT``; None when unset or empty."""
    value = os.environ.get(PORT_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{PORT_ENV}={value!r}: a port number") from None


def port_mode_from_env() -> str:
    """``offset`` (the default) or ``fixed``, from ``AUTHLOAD_METRICS_PORT_MODE``."""
    mode = os.environ.get(PORT_MODE_ENV, "").strip().lower() or "offset"
    if mode not in PORT_MODES:
        raise ValueError(f"{PORT_MODE_ENV}={mode!r}: one of {', '.join(PORT_MODES)}")
    return mode


def host_from_env() -> str:
    """The address to serve on, from ``AUTHLOAD_METRICS_HOST`` (default 127.0.0.1)."""
    return os.environ.get(HOST_ENV, "").strip() or DEFAULT_HOST


def linger_from_env() -> float:
    """Seconds to keep serving after the test, from ``AUTHLOAD_METRICS_LINGER_S``."""
    value = os.environ.get(LINGER_ENV, "").strip()
    if not value:
        return DEFAULT_LINGER_S
    try:
        linger = float(value)
    except ValueError:
        linger = -1.0
    if not linger >= 0:
        raise ValueError(f"{LINGER_ENV}={value!r}: seconds, 0 or more")
    return linger


def process_port(environment: Environment, base: int, mode: str = "offset") -> int | None:
    """This process's port: the base for a master or local runner, or in ``fixed`` mode;
    base + index + 1 for a worker; None while a worker's index is not known yet."""
    runner = environment.runner
    if mode == "fixed" or type(runner).__name__ != "WorkerRunner":
        return base
    index = int(getattr(runner, "worker_index", -1))
    return base + index + 1 if index >= 0 else None


def serve_frozen(listener: socket.socket, body: bytes, seconds: float) -> int:
    """Answer every HTTP request coming to ``listener`` (a listening socket gevent did not
    patch) with ``body``, an exposition, for ``seconds``; returns how many were answered.

    It blocks the process: no other greenlet runs until it returns, so a journey or timed
    event that outlived the test cannot send a request the records would miss (the record
    spool is closed by now) while the final values are served.
    """
    from gevent import monkey

    select = monkey.get_original("select", "select")
    header = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {CONTENT_TYPE_LATEST}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    deadline = time.monotonic() + seconds
    answered = 0
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select([listener], [], [], left)
        if not ready:
            continue
        try:  # the C accept: socket.accept() would wrap the connection in gevent's class
            fd, _ = listener._accept()  # type: ignore[attr-defined]
        except (BlockingIOError, InterruptedError):
            continue
        with type(listener)(fileno=fd) as connection:
            connection.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
            try:
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                connection.sendall(header + body)
                answered += 1
            except OSError:
                continue
    return answered
