"""`authload worker`: a Locust worker for a distributed run's master on another host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from authload.errors import AuthloadError, InputError
from authload.load.config import CONFIG_ENV, WORKER_ENV, WORKER_UNFIT_EXIT
from authload.run.console import Console
from authload.run.defaults import DEFAULT_MASTER_PORT, DEFAULT_MASTER_TIMEOUT_S
from authload.run.locust_process import LOCUSTFILE

MAX_MASTER_TIMEOUT_S = 3600  # Locust's connection loop recurses once per 5 s try


def worker(
    master_host: str,
    master_port: int = DEFAULT_MASTER_PORT,
    master_timeout_s: int = DEFAULT_MASTER_TIMEOUT_S,
    console: Console | None = None,
) -> int:
    """A Locust worker running authload's locustfile for the master at ``master_host``: it
    gets the run from the master when the test starts, and exits when the master quits (0).
    Gives up when no master answers within ``master_timeout_s``."""
    if not 1 <= master_timeout_s <= MAX_MASTER_TIMEOUT_S:
        raise InputError(f"--master-timeout must be between 1 and {MAX_MASTER_TIMEOUT_S} s")
    if not 0 < master_port < 65536:
        raise InputError(f"--master-port {master_port}: not a port number")
    console = (console or Console()).named("authload worker")
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env.update({WORKER_ENV: str(master_timeout_s), "PYTHONUNBUFFERED": "1"})
    console.say(
        f"waiting up to {master_timeout_s} s for the Locust master at {master_host}:{master_port}"
    )
    code = _run_until_quit(subprocess.Popen(_command(master_host, master_port), env=env))
    if code == 0:
        console.say("the master ended the run")
        return 0
    if code == 255:  # Locust's exit when its connection loop gives up
        raise AuthloadError(
            f"no Locust master answered at {master_host}:{master_port} within "
            f"{master_timeout_s} s: start `authload run SCENARIO --expect-workers N` there "
            f"(or raise --master-timeout)"
        )
    if code == WORKER_UNFIT_EXIT:
        raise InputError("this worker could not take part in the run (see above)")
    raise AuthloadError(f"the Locust worker exited with code {code}")


def _command(master_host: str, master_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]


def _run_until_quit(proc: subprocess.Popen[bytes]) -> int:
    # compose and Kubernetes stop a container with SIGTERM: Locust shuts down on it
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached Locust too (one process group)
            try:
                return proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
